"""The group-commit writer: rows of concurrent requests merged into COPY batches, one transaction per group.

``submit()`` queues a request's rows and returns a future resolved after its rows are committed. A
background thread takes everything queued (up to ``max_batch_rows``, waiting ``linger_s`` for more),
COPYs it table by table in one transaction and commits. Rows that may repeat earlier ones (a retried
batch) are detected by the unique keys: the group is then rewritten through a staging table with
``ON CONFLICT DO NOTHING``. Every unique key includes the license (the distribution column on Citus), so a
repeated key is always the same license's retry, never another license's row. Past ``max_rows_in_flight``
rows queued, ``submit()`` raises ``Overloaded``; above half of it, a license already holding more than its fair
share of the queued rows gets ``OverFairShare`` (429) while the others are still admitted. A table's ``prepare`` hook runs inside the transaction before
the COPY (and again on every retry of the group), so state it reads and writes commits with the rows.
Imports only core and ``storage.database``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from fernando_telemetry.core.errors import (
    Conflict,
    DatabaseUnavailable,
    FernandoTelemetryError,
    InvalidInput,
    OverFairShare,
    Overloaded,
)
from fernando_telemetry.core.fair_share import FairShareRefusal, QueueShares
from fernando_telemetry.storage.database import KEEPALIVE

__all__ = ["GroupCommitWriter", "IdempotencyClaim", "TableSpec", "WriteResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSpec:
    """Where rows go: the table, the COPY columns, and what a repeated key means."""

    table: str
    columns: tuple[str, ...]
    on_conflict: str = "error"
    """``ignore``: a row whose unique key exists is a retry and is skipped; ``upsert``: it replaces the old
    values (``conflict_constraint`` names the key); ``error``: rows never repeat (no unique key but the id)."""
    conflict_constraint: str | None = None
    key_columns: tuple[str, ...] = ()
    """For ``upsert``: the natural key's columns; of rows repeating a key in one group the last one wins."""
    # Any: each table's hook takes and returns its own row type (``core.ingest.rows``), all of them tuples
    prepare: Callable[[psycopg.Connection[Any], list[Any]], list[Any]] | None = None
    """Run in the group's transaction before the COPY: takes the submitted rows, returns the rows to COPY (in
    ``columns`` order). It may read and write other tables; a failed group rolls that back with the rows."""
    row_type: type[tuple[Any, ...]] | None = None
    """The rows' ``NamedTuple`` (``core.ingest.rows``), when the spec was made from it with ``for_rows``."""

    @classmethod
    def for_rows(cls, table: str, row_type: type[tuple[Any, ...]], **options: Any) -> TableSpec:
        """The spec of ``table`` whose COPY columns are the fields of ``row_type``, a ``NamedTuple`` in column order."""
        columns: tuple[str, ...] = row_type._fields  # type: ignore[attr-defined]
        return cls(table, columns, row_type=row_type, **options)


@dataclass(frozen=True)
class IdempotencyClaim:
    """The stored answer of a batch, claimed in the same transaction as its rows."""

    api_key_id: int
    endpoint: str
    key: str
    response: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    committed_rows: int
    replayed_response: dict[str, Any] | None = None
    """Set when the batch's Idempotency-Key was already committed: its stored answer, nothing written."""


@dataclass
class _Submission:
    spec: TableSpec
    rows: Sequence[tuple[Any, ...]]
    claim: IdempotencyClaim | None
    owner: Hashable = None
    """The license whose queued rows these are (None: an admin key), for the fair shares of the queue."""
    future: Future[WriteResult] = field(default_factory=Future)


class GroupCommitWriter:
    def __init__(
        self,
        conninfo: str,
        *,
        max_rows_in_flight: int = 200_000,
        max_batch_rows: int = 20_000,
        linger_s: float = 0.002,
        retry_after_s: int = 1,
        fair_admission: bool = True,
    ) -> None:
        self._conninfo = conninfo
        self._max_batch_rows = max_batch_rows
        self._linger_s = linger_s
        self._retry_after_s = retry_after_s
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._shares = QueueShares(max_rows_in_flight, fair=fair_admission)
        self._connection: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.groups_written = 0

    # -- public surface -------------------------------------------------------------------------

    @property
    def rows_in_flight(self) -> int:
        return self._shares.queued

    def rows_in_flight_of(self, owner: Hashable) -> int:
        """Rows of license ``owner`` (None: admin keys) accepted but not yet committed."""
        with self._lock:
            return self._shares.held(owner)

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="fernando-telemetry-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the thread and close the connection."""
        if self._thread is None:
            return
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def check_admission(self, rows: int, *, owner: Hashable = None) -> None:
        """Raise what ``submit`` would raise for ``rows`` rows of ``owner`` now, queuing nothing: the ingest path asks
        before it registers users or makes partitions, so a refused batch has no side effect at all."""
        with self._lock:
            self._refuse_if_full(rows, owner)

    def submit(
        self,
        spec: TableSpec,
        rows: Sequence[tuple[Any, ...]],
        *,
        claim: IdempotencyClaim | None = None,
        owner: Hashable = None,
    ) -> Future[WriteResult]:
        """Queue rows of license ``owner``; the future resolves once they are committed (or fails with a domain
        error). A refused batch (``Overloaded``, ``OverFairShare``) is refused whole: nothing of it is queued."""
        with self._lock:
            self._refuse_if_full(len(rows), owner)
            self._shares.add(owner, len(rows))
        submission = _Submission(spec, rows, claim, owner)
        self._queue.put(submission)
        return submission.future

    def _refuse_if_full(self, rows: int, owner: Hashable) -> None:
        if self._stopping or self._thread is None:
            raise DatabaseUnavailable("the writer is shutting down; retry shortly", retry_after_s=self._retry_after_s)
        # a full queue is the server's state and answered as such (503/UNAVAILABLE) to everyone; below it, a license
        # over its share is told that it is the one to slow down (429/RESOURCE_EXHAUSTED)
        queued = self._shares.queued
        if queued and queued + rows > self._shares.capacity:
            raise Overloaded(
                f"{queued} rows are waiting to be written (limit {self._shares.capacity}); retry shortly",
                retry_after_s=self._retry_after_s,
            )
        refusal = self._shares.refusal(owner)
        if refusal is not None:
            raise _over_fair_share(refusal, retry_after_s=self._retry_after_s)

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                if self._queue.empty():
                    return
                continue
            group = [first]
            size = len(first.rows)
            deadline = time.monotonic() + self._linger_s
            stop_seen = False
            while size < self._max_batch_rows:
                try:
                    more = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    stop_seen = True
                    continue
                group.append(more)
                size += len(more.rows)
            self._write_group(group)
            if stop_seen and self._queue.empty():
                return

    def _release(self, submissions: list[_Submission]) -> None:
        with self._lock:
            for submission in submissions:
                self._shares.remove(submission.owner, len(submission.rows))

    def _write_group(self, group: list[_Submission], *, careful: bool = False) -> None:
        """Write and answer a group; a retry's unique-key clash rewrites it carefully, any other failure
        splits it so only the offending request fails."""
        try:
            results = self._attempt(group, careful=careful)
        except psycopg.errors.UniqueViolation as exc:
            if not careful:
                self._write_group(group, careful=True)
            elif len(group) > 1:
                for submission in group:
                    self._write_group([submission], careful=True)
            else:
                self._fail(group, _domain_error(exc))
            return
        except psycopg.OperationalError as exc:
            self._drop_connection()
            self._fail(group, DatabaseUnavailable(f"the database is unavailable: {_first_line(exc)}", retry_after_s=2))
            return
        except psycopg.Error as exc:
            if len(group) > 1:
                # one submission spoiled the group: write each alone so only its own request fails
                for submission in group:
                    self._write_group([submission], careful=careful)
            else:
                self._fail(group, _domain_error(exc))
            return
        except Exception as exc:  # a defect in a prepare hook must fail its requests, never kill the writer thread
            logger.exception("writing a group failed")
            self._fail(group, DatabaseUnavailable(f"the batch could not be written: {_first_line(exc)}", retry_after_s=2))
            return
        self._resolve(group, results)

    def _attempt(self, group: list[_Submission], *, careful: bool) -> list[WriteResult]:
        connection = self._connect()
        results: list[WriteResult] = []
        try:
            with connection.transaction():
                by_table: dict[TableSpec, list[tuple[Any, ...]]] = defaultdict(list)
                for submission in group:
                    replay = self._claim(connection, submission.claim)
                    results.append(WriteResult(0, replay) if replay is not None else WriteResult(len(submission.rows)))
                    if replay is None:
                        by_table[submission.spec].extend(submission.rows)
                for spec, rows in by_table.items():
                    prepared = spec.prepare(connection, rows) if spec.prepare is not None else rows
                    if prepared:
                        self._copy(connection, spec, prepared, careful=careful)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            if connection.closed or connection.broken:
                self._drop_connection()
            if isinstance(exc, psycopg.errors.InternalError_) and str(exc).startswith("duplicate key value"):
                # Citus's COPY reports a worker's unique violation as an internal error: a retry all the same
                raise psycopg.errors.UniqueViolation(str(exc)) from exc
            raise
        self.groups_written += 1
        return results

    def _claim(self, connection: psycopg.Connection[Any], claim: IdempotencyClaim | None) -> dict[str, Any] | None:
        """Record the batch's answer; if its key was already committed, return that answer instead."""
        if claim is None:
            return None
        inserted = connection.execute(
            "INSERT INTO ingest_batches (api_key_id, endpoint, idempotency_key, response) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            (claim.api_key_id, claim.endpoint, claim.key, Jsonb(claim.response)),
        ).fetchone()
        if inserted is not None:
            return None
        stored = connection.execute(
            "SELECT response FROM ingest_batches WHERE api_key_id = %s AND endpoint = %s AND idempotency_key = %s",
            (claim.api_key_id, claim.endpoint, claim.key),
        ).fetchone()
        return stored[0] if stored else claim.response

    def _copy(self, connection: psycopg.Connection[Any], spec: TableSpec, rows: list[tuple[Any, ...]], *, careful: bool) -> None:
        """Write the rows: COPY straight in, or through a staging table when keys may repeat."""
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
        if spec.on_conflict == "error" or (spec.on_conflict == "ignore" and not careful):
            target = sql.Identifier(spec.table)
            with connection.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, columns)) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if spec.on_conflict == "ignore":
            self._insert_new(connection, spec, rows)
            return
        if spec.key_columns:
            positions = [spec.columns.index(c) for c in spec.key_columns]
            rows = list({tuple(row[p] for p in positions): row for row in rows}.values())
        staging = sql.Identifier(f"staging_{spec.table}")
        connection.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA").format(
                staging, columns, sql.Identifier(spec.table)
            )
        )
        with connection.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, columns)) as copy:
            for row in rows:
                copy.write_row(row)
        updates = sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in spec.columns
        )
        # the transaction's time as a literal: Citus refuses a function (now()) in DO UPDATE SET of a distributed
        # table, and loses a bound parameter of an INSERT ... SELECT from a local table
        written_at = connection.execute("SELECT now()").fetchone()
        connection.execute(
            sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ON CONSTRAINT {} DO UPDATE SET {}, updated_at = {}"
            ).format(
                sql.Identifier(spec.table),
                columns,
                columns,
                staging,
                sql.Identifier(spec.conflict_constraint or ""),
                updates,
                sql.Literal(written_at[0] if written_at else None),
            )
        )

    def _insert_new(self, connection: psycopg.Connection[Any], spec: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows whose key is new, in order: of rows repeating a key, the first wins (a retry is skipped)."""
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
        staging = sql.Identifier(f"staging_{spec.table}")
        connection.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {}, 0::integer AS staged_position FROM {} WITH NO DATA"
            ).format(staging, columns, sql.Identifier(spec.table))
        )
        with connection.cursor().copy(sql.SQL("COPY {} ({}, staged_position) FROM STDIN").format(staging, columns)) as copy:
            for position, row in enumerate(rows):
                copy.write_row((*row, position))
        connection.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ORDER BY staged_position ON CONFLICT DO NOTHING").format(
                sql.Identifier(spec.table), columns, columns, staging
            )
        )

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed or self._connection.broken:
            try:
                # merged into one conninfo string first: the keyword dict holds libpq parameters only, and
                # connect() would also match it against its own keywords (autocommit, row_factory, ...)
                self._connection = psycopg.connect(
                    make_conninfo(
                        self._conninfo,
                        connect_timeout=5,
                        options="-c timezone=UTC",
                        application_name="fernando-telemetry-writer",
                        **KEEPALIVE,
                    )
                )
            except psycopg.OperationalError:
                self._connection = None
                raise
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _resolve(self, group: list[_Submission], results: list[WriteResult]) -> None:
        self._release(group)
        for submission, result in zip(group, results, strict=True):
            submission.future.set_result(result)

    def _fail(self, group: list[_Submission], error: FernandoTelemetryError) -> None:
        self._release(group)
        for submission in group:
            if not submission.future.done():
                submission.future.set_exception(error)


def _over_fair_share(refusal: FairShareRefusal, *, retry_after_s: int) -> OverFairShare:
    who = "admin keys" if refusal.owner is None else f"license {refusal.owner}"
    return OverFairShare(
        f"the write queue is over half full ({refusal.queued} of {refusal.capacity} rows) and {who} already holds "
        f"{refusal.held} of them, more than its fair share of {refusal.share} (the queued rows divided among "
        f"{refusal.sharers} licenses); other licenses are still admitted: slow down and retry after Retry-After",
        retry_after_s=retry_after_s,
        details=[
            {
                "field": "license_id",
                "license_id": refusal.owner,
                "reason": "over its fair share of the write queue",
                "held_rows": refusal.held,
                "fair_share_rows": refusal.share,
                "queued_rows": refusal.queued,
                "setting": "FERNANDO_TELEMETRY_INGEST_FAIR_ADMISSION",
            }
        ],
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _domain_error(exc: psycopg.Error) -> FernandoTelemetryError:
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return Conflict(f"a user or license of this batch was removed while it was written; resend it: {_first_line(exc)}")
    if isinstance(exc, psycopg.errors.CheckViolation | psycopg.errors.DataError | psycopg.errors.IntegrityError):
        return InvalidInput(f"the database refused the batch: {_first_line(exc)}")
    return DatabaseUnavailable(f"the batch could not be written: {_first_line(exc)}", retry_after_s=2)
