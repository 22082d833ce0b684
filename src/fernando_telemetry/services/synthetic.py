"""Synthetic data: demo licenses and users, then events, spans and metric samples loaded by COPY."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.core.ingest import events, metrics, spans
from fernando_telemetry.core.platform_license import owner_license
from fernando_telemetry.core.synthetic import SyntheticUser, Window, event_rows, metric_rows, span_rows
from fernando_telemetry.services import partitions
from fernando_telemetry.storage.bulk import copy_rows
from fernando_telemetry.storage.models import License, User

__all__ = ["GenerateResult", "generate", "prepare_users"]

DEMO_LICENSES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli")


@dataclass(frozen=True)
class GenerateResult:
    events: int
    spans: int
    metrics: int
    users: int
    first_day: str
    last_day: str


def prepare_users(session: Session, *, users: int, license_id: int | None, rng: random.Random) -> list[SyntheticUser]:
    """The generator's users (``synthetic-u00001``...), created when missing, spread over demo licenses."""
    if license_id is not None:
        if session.get(License, license_id) is None:
            raise InvalidInput(f"license {license_id} does not exist")
        license_ids = [license_id]
    else:
        license_ids = []
        for name in DEMO_LICENSES:
            existing = session.scalars(select(License.license_id).where(License.name == name).limit(1)).first()
            if existing is None:
                demo = License(name=name, plan=rng.choice(("pro", "enterprise")))
                session.add(demo)
                session.flush()
                existing = demo.license_id
            license_ids.append(existing)
    chosen = [SyntheticUser(f"synthetic-u{n:05d}", license_ids[n % len(license_ids)]) for n in range(1, users + 1)]
    for start in range(0, len(chosen), 5_000):
        chunk = chosen[start : start + 5_000]
        session.execute(
            insert(User).on_conflict_do_nothing(index_elements=[User.license_id, User.user_id]),
            [{"user_id": u.user_id, "license_id": u.license_id, "email": f"{u.user_id}@example.com"} for u in chunk],
        )
    return chosen


def generate(
    session: Session,
    *,
    now: datetime,
    days: int,
    events_count: int,
    spans_count: int,
    metrics_count: int,
    users: int,
    license_id: int | None,
    seed: int,
    dump_json: Callable[[Any], str],
    progress: Callable[[str, int], None] = lambda kind, rows: None,
) -> GenerateResult:
    """Load ``days`` days up to ``now`` of consistent telemetry; the caller commits."""
    if days < 1 or days > 365:
        raise InvalidInput(f"days must be between 1 and 365, got {days}", details=[field_problem("days", "out of range")])
    if min(events_count, spans_count, metrics_count) < 0 or users < 1:
        raise InvalidInput("counts must not be negative and at least one user is needed")
    rng = random.Random(seed)
    window = Window(now - timedelta(days=days), now)
    partitions.ensure_for_days(session, first_day=window.start.date(), last_day=now.date())
    people = prepare_users(session, users=users, license_id=license_id, rng=rng)
    written_events = copy_rows(
        session,
        table="telemetry_events",
        columns=events.COLUMNS,
        rows=event_rows(rng, events_count, window=window, users=people, dump_json=dump_json),
        progress=lambda n: progress("events", n),
    )
    written_spans = copy_rows(
        session,
        table="traces",
        columns=spans.COLUMNS,
        rows=span_rows(rng, spans_count, window=window, users=people, dump_json=dump_json),
        progress=lambda n: progress("spans", n),
    )
    written_metrics = copy_rows(
        session,
        table="system_metrics",
        columns=metrics.COLUMNS,
        rows=metric_rows(rng, metrics_count, window=window, dump_json=dump_json, license_id=owner_license(license_id)),
        progress=lambda n: progress("metrics", n),
    )
    return GenerateResult(
        written_events, written_spans, written_metrics, len(people), window.start.date().isoformat(), now.date().isoformat()
    )
