"""``POST /api/v1/query``: check that the text is one SELECT, pick the license, run it as the query role."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import re2
from sqlalchemy import Engine

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput, NotSupported, RateLimited, field_problem
from fernando_telemetry.services.tenancy import principal_of, visible_license
from fernando_telemetry.storage import user_sql
from fernando_telemetry.storage.user_sql import QueryResult, query_role_url

__all__ = ["ConcurrencyGate", "QueryLimits", "QueryResult", "first_keyword", "query_role_url", "run"]

_READING_KEYWORDS = {"select", "with", "values", "table"}
# RE2, not re: a backtracking engine scans to the end from every unclosed "/*", quadratic in the statement
_COMMENTS = re2.compile(r"(--[^\n]*(\n|$))|(/\*(?s:.*?)\*/)")


@dataclass(frozen=True)
class QueryLimits:
    timeout_ms: int = 5000
    row_cap: int = 10_000
    byte_cap: int = 10 * 1024 * 1024
    """Most bytes of JSON rows one answer carries; longer results are cut and flagged."""
    work_mem_kb: int = 16 * 1024
    max_concurrent_per_key: int = 4
    """Statements one API key may have running at once; one more is answered 429."""
    retry_after_s: int = 1


@dataclass
class ConcurrencyGate:
    """Counts the statements running per API key (in this process)."""

    _running: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def enter(self, key_id: int, *, limit: int, retry_after_s: int) -> Iterator[None]:
        with self._lock:
            running = self._running.get(key_id, 0)
            if running >= limit:
                raise RateLimited(
                    f"this key already runs {running} SQL queries, the most it may run at once; retry after {retry_after_s} s",
                    retry_after_s=retry_after_s,
                    details=[field_problem("sql", "too many concurrent queries", limit=limit)],
                )
            self._running[key_id] = running + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[key_id] - 1
                if left:
                    self._running[key_id] = left
                else:
                    del self._running[key_id]


def first_keyword(statement: str) -> str:
    """The statement's first word, comments and leading parentheses skipped, lower-cased ('' when empty)."""
    stripped = _COMMENTS.sub(" ", statement).lstrip().lstrip("(").lstrip()
    match = re.match(r"[A-Za-z_]+", stripped)
    return match.group(0).lower() if match else ""


def run(
    owner: Engine,
    query_url: str,
    caller: Caller,
    statement: str,
    *,
    license_id: int | None,
    row_limit: int | None,
    limits: QueryLimits,
    gate: ConcurrencyGate | None = None,
) -> QueryResult:
    """The use case behind ``POST /api/v1/query``: one read-only SELECT for the caller's license (admin keys name the
    license), counted against the caller's key in ``gate``."""
    if not statement.strip():
        raise InvalidInput("sql is empty: send one SELECT statement", details=[field_problem("sql", "empty")])
    keyword = first_keyword(statement)
    if keyword not in _READING_KEYWORDS:
        raise InvalidInput(
            f"only a single SELECT statement may run here, not {keyword.upper() or 'this text'}",
            details=[field_problem("sql", f"starts with {keyword.upper() or 'nothing'}", allowed=["SELECT", "WITH"])],
        )
    principal = principal_of(caller)
    scope = visible_license(principal, license_id)
    if scope is None:
        raise InvalidInput(
            "admin keys must name the license to query: add license_id",
            details=[field_problem("license_id", "required for admin keys")],
        )
    if user_sql.runs_on_citus(owner):
        # the query role's policies read query_scopes by pg_backend_pid(), the coordinator's backend: the workers,
        # where distributed tables are scanned, do not share it, so there the scope would hide every row or none
        raise NotSupported(
            "user SQL is not available on a Citus cluster: its license isolation is per coordinator backend",
            details=[field_problem("sql", "not supported on Citus")],
        )
    cap = limits.row_cap if row_limit is None else min(row_limit, limits.row_cap)
    gate = gate or ConcurrencyGate()
    with gate.enter(principal.api_key_id, limit=limits.max_concurrent_per_key, retry_after_s=limits.retry_after_s):
        return user_sql.run_select(
            owner,
            query_url,
            statement,
            license_id=scope,
            timeout_ms=limits.timeout_ms,
            row_cap=cap,
            byte_cap=limits.byte_cap,
            work_mem_kb=limits.work_mem_kb,
        )
