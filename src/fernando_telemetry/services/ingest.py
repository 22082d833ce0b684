"""Ingest: decoded rows are checked against licenses, their users registered, partitions made, then handed to
the group-commit writer.

An ``Ingestor`` lives as long as the server and holds the steps of one batch (its rate buckets, caches and writer);
``services.ingestion.ingest`` runs them in order for every path. ``store`` answers only after the accepted rows are
committed, with a ``Stored`` (``{"accepted": n, "rejected": [{"index", "field", "reason"}, ...]}`` as its answer) and
leaves the batch it was given as it was. A batch sent again with the same Idempotency-Key gets its first answer and
writes nothing. A user id a row of a license names
is registered for that license on first sight (never a reason to refuse the row); an item whose key is
already stored under another license is rejected, one of the same license is an idempotent duplicate.
Imports core, services.partitions and storage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.errors import DatabaseUnavailable, InvalidInput, PayloadTooLarge, RateLimited
from fernando_telemetry.core.ingest import business, events, metrics, spans
from fernando_telemetry.core.ingest.common import DecodeContext, IngestBounds, Rejection, decode_items
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.core.ratelimit import KeyedRateLimiter
from fernando_telemetry.services import partitions
from fernando_telemetry.storage import lookups, metric_streams, resources
from fernando_telemetry.storage.writer import GroupCommitWriter, IdempotencyClaim, TableSpec

__all__ = ["KINDS", "RESOURCE_BUDGET_FACTOR", "IngestLimits", "Ingestor", "Kind", "RowBatch", "Stored"]

RESOURCE_BUDGET_FACTOR = 4
"""An OTLP request whose rows carry a copy of their resource's attributes may store them up to this many times its own
size (or ``otlp_resource_budget_chars``, whichever is larger). Spans, the only rows that stored a resource, now store
each once (``storage.resources``): only the per-resource limit ``max_resource_chars`` applies to them."""
_MIN_RESOURCE_CHARS = 64


@dataclass(frozen=True)
class Kind:
    """One kind of telemetry: its endpoint, body key, decoder and destination."""

    name: str
    body_key: str
    decode: Callable[..., tuple[Any, ...]]
    spec: TableSpec
    user_field: str | None
    """The row field naming the user (registered on first sight); None: the rows name no user."""
    license_field: str | None
    """The row field naming the license (checked to exist); None: the rows name no license."""
    time_field: str | None
    """The row field the table is partitioned by (partitions made before the rows are written); None: not partitioned."""
    retention_setting: str | None
    shares_resources: bool = False
    """Rows point at one stored copy of their resource (``storage.resources``) instead of carrying it."""


KINDS: dict[str, Kind] = {
    "events": Kind(
        "events",
        "events",
        events.decode,
        TableSpec.for_rows(
            "telemetry_events",
            events.EventRow,
            on_conflict="ignore",
        ),
        "user_id",
        "license_id",
        "event_timestamp",
        "events_retention_days",
    ),
    "system_metrics": Kind(
        "system_metrics",
        "metrics",
        metrics.decode,
        TableSpec.for_rows("system_metrics", metrics.MetricRow, prepare=metric_streams.prepare),
        "user_id",
        "license_id",
        "timestamp",
        "metrics_retention_days",
    ),
    "business_metrics": Kind(
        "business_metrics",
        "metrics",
        business.decode,
        TableSpec.for_rows(
            "business_metrics",
            business.KpiRow,
            on_conflict="upsert",
            conflict_constraint="uq_business_metrics_natural_key",
            key_columns=("metric_name", "period_type", "period_start", "license_id", "dimensions"),
        ),
        None,
        "license_id",
        None,
        None,
    ),
    "spans": Kind(
        "spans",
        "spans",
        spans.decode,
        TableSpec.for_rows(
            "traces",
            spans.SpanRow,
            on_conflict="ignore",
            prepare=resources.prepare,
        ),
        "user_id",
        "license_id",
        "start_time",
        "traces_retention_days",
        shares_resources=True,
    ),
}


@dataclass(frozen=True)
class IngestLimits:
    events_retention_days: int = 90
    metrics_retention_days: int = 180
    traces_retention_days: int = 30
    max_future_s: float = 3600.0
    max_items_per_request: int = 10_000
    otlp_max_items_per_request: int = 50_000
    commit_timeout_s: float = 60.0
    cache_ttl_s: float = 60.0
    rate_limit_items_per_s: float = 0.0
    rate_limit_items_per_s_per_license: float = 0.0
    """Items per second all keys of one license may send together (bursts up to 10 s worth); 0: unlimited."""
    bounds: IngestBounds = field(default_factory=IngestBounds)
    otlp_resource_budget_chars: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class RowBatch:
    """Rows ready to store, with each row's index in the request and the items already rejected (never rewritten:
    ``Ingestor.store`` returns what it kept in a ``Stored``)."""

    rows: list[tuple[Any, ...]]
    indexes: list[int]
    rejections: list[Rejection]
    received: int
    received_at: datetime | None = None
    """When the request arrived: the users it names are seen then (None: the database's clock)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """What ``Ingestor.store`` did: the rows committed, every rejection ordered by index, and the native answer
    (``{"accepted": n, "rejected": [...]}``), which a batch sent again with its Idempotency-Key gets back."""

    accepted: int
    rejections: tuple[Rejection, ...]
    answer: dict[str, Any]
    replayed: bool = False
    """True when ``answer`` is the stored answer of a batch committed before (nothing was written this time)."""

    @classmethod
    def replay_of(cls, answer: dict[str, Any]) -> Stored:
        """The outcome of a batch already committed under its Idempotency-Key: its first answer, as it was stored."""
        rejections = tuple(Rejection(r["index"], r.get("field"), r["reason"]) for r in answer.get("rejected", []))
        return cls(int(answer.get("accepted", 0)), rejections, answer, replayed=True)


class _TtlSet:
    """Ids known to exist, remembered for ``ttl_s`` (a cache of positive answers only)."""

    def __init__(self, ttl_s: float, max_items: int = 200_000) -> None:
        self._ttl_s = ttl_s
        self._max_items = max_items
        self._expiry: dict[Any, float] = {}
        self._lock = threading.Lock()

    def missing(self, ids: set[Any]) -> set[Any]:
        now = time.monotonic()
        with self._lock:
            return {i for i in ids if self._expiry.get(i, 0.0) < now}

    def add(self, ids: set[Any]) -> None:
        expiry = time.monotonic() + self._ttl_s
        with self._lock:
            if len(self._expiry) + len(ids) > self._max_items:
                self._expiry.clear()
            for i in ids:
                self._expiry[i] = expiry


class Ingestor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        writer: GroupCommitWriter,
        *,
        limits: IngestLimits,
        new_id: Callable[[], Any],
        dump_json: Callable[[Any], str],
    ) -> None:
        self._sessions = sessions
        self._writer = writer
        self._limits = limits
        self._new_id = new_id
        self._dump_json = dump_json
        self._users = _TtlSet(limits.cache_ttl_s)
        self._licenses = _TtlSet(limits.cache_ttl_s)
        self._partitions = _TtlSet(24 * 3600.0)
        self._rates = KeyedRateLimiter(
            rate_per_s=limits.rate_limit_items_per_s, burst=max(1.0, limits.rate_limit_items_per_s * 10)
        )
        self._license_rates = KeyedRateLimiter(
            rate_per_s=limits.rate_limit_items_per_s_per_license,
            burst=max(1.0, limits.rate_limit_items_per_s_per_license * 10),
        )

    def check_rate(self, principal: Principal, items: int, *, now_s: float) -> None:
        """``RateLimited`` (429) when the key is over its rate of items per second, or its license is over the rate
        all the license's keys share (admin keys have no license and only the per-key rate)."""
        license_id = principal.license_id
        # the license's bucket is looked at before the key's is drawn from, so a batch the license refuses does
        # not cost the key its tokens too
        if license_id is not None:
            self._refuse_license(license_id, self._license_rates.wait_s(license_id, items, now_s=now_s))
        wait_s = self._rates.try_take(principal.api_key_id, items, now_s=now_s)
        if wait_s > 0:
            raise RateLimited(
                f"this key is over its rate of {self._limits.rate_limit_items_per_s:g} items/s; slow down",
                retry_after_s=max(1, int(wait_s + 0.999)),
            )
        if license_id is not None:
            self._refuse_license(license_id, self._license_rates.try_take(license_id, items, now_s=now_s))

    def check_admission(self, principal: Principal, items: int) -> None:
        """``Overloaded`` (503) when the write queue is full, ``OverFairShare`` (429) when it is over half full and the
        key's license already holds more than its share: asked before a body is decoded, so a refused flood costs
        the server little (``store`` asks again, and ``submit`` decides under the queue's lock)."""
        if items:
            self._writer.check_admission(items, owner=principal.license_id)

    def _refuse_license(self, license_id: int, wait_s: float) -> None:
        if wait_s <= 0:
            return
        rate = self._limits.rate_limit_items_per_s_per_license
        raise RateLimited(
            f"license {license_id} is over its ingest rate of {rate:g} items/s (shared by all its keys, bursts up to "
            f"{rate * 10:g} items; setting FERNANDO_TELEMETRY_INGEST_RATE_LIMIT_ITEMS_PER_S_PER_LICENSE); slow down",
            retry_after_s=max(1, int(wait_s + 0.999)),
            details=[
                {
                    "field": "license_id",
                    "license_id": license_id,
                    "reason": "over the license's ingest rate",
                    "limit_items_per_s": rate,
                    "setting": "FERNANDO_TELEMETRY_INGEST_RATE_LIMIT_ITEMS_PER_S_PER_LICENSE",
                }
            ],
        )

    def context(self, kind: Kind, principal: Principal, now: datetime) -> DecodeContext:
        retention_days = getattr(self._limits, kind.retention_setting) if kind.retention_setting else 3650
        return DecodeContext(
            now=now,
            earliest=now - timedelta(days=retention_days),
            latest=now + timedelta(seconds=self._limits.max_future_s),
            license_id=principal.license_id,
            is_admin=principal.is_admin,
            new_id=self._new_id,
            dump_json=self._dump_json,
            bounds=self._limits.bounds,
        )

    def otlp_context(self, kind: Kind, principal: Principal, now: datetime, *, body_bytes: int, items: int) -> DecodeContext:
        """The decode context of one OTLP request: the resource stored per row is cut so the request's rows hold at
        most ``max(RESOURCE_BUDGET_FACTOR x body_bytes, otlp_resource_budget_chars)`` characters of resource in all.
        A kind sharing its resources stores each once, so only ``max_resource_chars`` bounds it."""
        context = self.context(kind, principal, now)
        if kind.shares_resources:
            return context
        budget = max(RESOURCE_BUDGET_FACTOR * body_bytes, self._limits.otlp_resource_budget_chars)
        per_row = min(context.bounds.max_resource_chars, max(_MIN_RESOURCE_CHARS, budget // max(1, items)))
        return replace(context, bounds=replace(context.bounds, max_resource_chars=per_row))

    def check_otlp_size(self, items: int) -> None:
        """Refuse an OTLP request holding more items than the limit, before any of them is decoded."""
        if items > self._limits.otlp_max_items_per_request:
            raise PayloadTooLarge(
                f"{items} items in one OTLP request; at most {self._limits.otlp_max_items_per_request} are accepted "
                "(lower the exporter's batch size)"
            )

    def check_items(self, kind: Kind, items: Any) -> int:
        """How many items a native body holds; ``InvalidInput`` when they are not an array or more than the limit."""
        if not isinstance(items, list):
            raise InvalidInput(f"'{kind.body_key}' must be a JSON array of items")
        if len(items) > self._limits.max_items_per_request:
            raise InvalidInput(f"{len(items)} items in one request; at most {self._limits.max_items_per_request} are accepted")
        return len(items)

    def decode(self, kind: Kind, items: Any, *, principal: Principal, now: datetime) -> RowBatch:
        """Decode a request body's items; whole-request problems raise ``InvalidInput``."""
        self.check_items(kind, items)
        rows, indexes, rejections = decode_items(items, kind.decode, self.context(kind, principal, now))
        return RowBatch(rows, indexes, rejections, received=len(items), received_at=now)

    def replayed(self, *, principal: Principal, endpoint: str, idempotency_key: str | None) -> dict[str, Any] | None:
        """The stored answer of a batch already committed under this key, if any."""
        if idempotency_key is None:
            return None
        with self._sessions() as session:
            return lookups.stored_response(session, api_key_id=principal.api_key_id, endpoint=endpoint, key=idempotency_key)

    def store(self, kind: Kind, batch: RowBatch, *, principal: Principal, endpoint: str, idempotency_key: str | None) -> Stored:
        """Reject rows naming unknown licenses, register the users they name, make their partitions, write,
        and answer after commit. ``batch`` is left as it came: the rows written and every rejection (decode's,
        unknown licenses') are in the returned ``Stored``.
        A batch the write queue cannot take now (``Overloaded``, or ``OverFairShare`` for a license holding more
        than its share) is refused whole, before anything is written."""
        if batch.rows:
            self._writer.check_admission(len(batch.rows), owner=principal.license_id)
        rows, indexes, license_rejections = self._known_license_rows(kind, batch.rows, batch.indexes)
        self._register_users(kind, rows, seen_at=batch.received_at)
        self._ensure_partitions(kind, rows)
        kept_rejections = [*batch.rejections, *license_rejections]

        ordered = tuple(sorted(kept_rejections, key=lambda r: r.index))
        first = Stored(len(rows), ordered, {"accepted": len(rows), "rejected": [r.as_dict() for r in ordered]})
        if not rows and idempotency_key is None:
            return first
        claim = (
            IdempotencyClaim(principal.api_key_id, endpoint, idempotency_key, first.answer)
            if idempotency_key is not None
            else None
        )
        future = self._writer.submit(kind.spec, rows, claim=claim, owner=principal.license_id)
        try:
            result = future.result(timeout=self._limits.commit_timeout_s)
        except TimeoutError:
            raise DatabaseUnavailable("the database did not commit the batch in time; retry it", retry_after_s=5) from None
        if result.replayed_response is not None:
            return Stored.replay_of(result.replayed_response)
        return first

    # -- checks ---------------------------------------------------------------------------------

    def _known_license_rows(
        self, kind: Kind, rows: list[tuple[Any, ...]], indexes: list[int]
    ) -> tuple[list[tuple[Any, ...]], list[int], list[Rejection]]:
        """The rows whose license exists (with their indexes), and a rejection for each of the others."""
        license_field = kind.license_field
        if license_field is None:
            return rows, indexes, []
        license_ids = {getattr(row, license_field) for row in rows} - {None}
        unknown_licenses = self._licenses.missing(license_ids)
        if not unknown_licenses:
            return rows, indexes, []
        with self._sessions() as session:
            found_licenses = lookups.existing_license_ids(session, unknown_licenses)
        self._licenses.add(found_licenses)
        unknown_licenses -= found_licenses
        if not unknown_licenses:
            return rows, indexes, []
        kept_rows, kept_indexes, rejections = [], [], []
        for row, index in zip(rows, indexes, strict=True):
            license_id = getattr(row, license_field)
            if license_id in unknown_licenses:
                rejections.append(Rejection(index, "license_id", f"unknown license {license_id}"))
            else:
                kept_rows.append(row)
                kept_indexes.append(index)
        return kept_rows, kept_indexes, rejections

    def _register_users(self, kind: Kind, rows: Sequence[tuple[Any, ...]], *, seen_at: datetime | None) -> None:
        """Register the (license, user) pairs the rows name, committed before the rows are written.

        A pair is written at most once per cache TTL per server: a first sighting inserts it, a later one
        moves its ``last_seen_at``; in between the cache answers. Rows of no license keep their user id
        with no user row (the foreign key does not apply to them)."""
        if kind.user_field is None or kind.license_field is None:
            return
        user_field, license_field = kind.user_field, kind.license_field
        pairs = ((getattr(row, license_field), getattr(row, user_field)) for row in rows)
        named = {(license_id, user_id) for license_id, user_id in pairs if user_id is not None and license_id is not None}
        unseen = self._users.missing(named)
        if not unseen:
            return
        with self._sessions.begin() as session:
            lookups.register_users(session, unseen, seen_at=seen_at)
        self._users.add(unseen)

    def _ensure_partitions(self, kind: Kind, rows: Sequence[tuple[Any, ...]]) -> None:
        if kind.time_field is None or not rows:
            return
        days: set[date] = {getattr(row, kind.time_field).date() for row in rows}
        keyed = {(kind.spec.table, day) for day in days}
        missing = self._partitions.missing(keyed)
        if not missing:
            return
        with self._sessions.begin() as session:
            for _table, day in sorted(missing):
                partitions.ensure_for_days(session, first_day=day, last_day=day, tables=(kind.spec.table,))
        self._partitions.add(missing)
