"""``POST /api/v1/query``: one read-only SQL SELECT over the telemetry tables and views, for the caller's license."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.services import user_query

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])


class QueryIn(BaseModel):
    sql: str = Field(
        max_length=100_000,
        description="One SELECT (or WITH ... SELECT) statement",
        examples=[
            "SELECT event_type, count(*) FROM telemetry_events WHERE timestamp > now() - interval '1 day' GROUP BY 1 ORDER BY 2 DESC"
        ],
    )
    license_id: int | None = Field(default=None, description="Admin keys: the license to query (required for them)")
    row_limit: int | None = Field(default=None, ge=1, description="At most this many rows (never more than the server's cap)")


class QueryOut(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="true when the result had more rows than the row limit or more bytes than the byte cap")
    truncated_by: str | None = Field(default=None, description="`rows` or `bytes`: which limit cut the result")
    message: str | None = Field(default=None, description="Says why and where the result was cut, when it was")
    elapsed_ms: float


@router.post(
    "/query",
    response_model=QueryOut,
    responses={
        400: {"description": "Not a single SELECT, an SQL error, or the statement timeout was reached"},
        401: {"description": "Missing or unknown API key"},
        403: {"description": "The key lacks the read scope, or the query reads a table outside the telemetry tables and views"},
        429: {"description": "The key already runs as many queries as it may at once; retry after Retry-After seconds"},
        503: {"description": "The query role cannot connect"},
    },
)
def run_query(body: QueryIn, request: Request, caller: ReadCaller) -> QueryOut:
    """Run one SELECT as the read-only query role: row-level security limits it to the caller's license,
    it can read only the telemetry tables, their rollups and the views, in a read-only transaction with a
    statement timeout, a row cap, a byte cap and a limit of concurrent queries per key."""
    state = request.app.state
    result = user_query.run(
        state.engine,
        state.query_url,
        caller,
        body.sql,
        license_id=body.license_id,
        row_limit=body.row_limit,
        limits=state.query_limits,
        gate=state.query_gate,
    )
    message = None
    if result.truncated_by == "bytes":
        message = (
            f"the result was cut after {len(result.rows)} rows: the next row would take the answer past "
            f"{state.query_limits.byte_cap} bytes; select fewer or narrower columns, or aggregate"
        )
    elif result.truncated_by == "rows":
        message = f"the result was cut after {len(result.rows)} rows (the row limit)"
    return QueryOut(
        columns=result.columns,
        rows=result.rows,
        row_count=len(result.rows),
        truncated=result.truncated,
        truncated_by=result.truncated_by,
        message=message,
        elapsed_ms=result.elapsed_ms,
    )
