"""``POST /api/v1/query``: one read-only SQL SELECT over the telemetry tables and views, for the caller's license."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadKey
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
    truncated: bool = Field(description="true when the result had more rows than the limit")
    elapsed_ms: float


@router.post(
    "/query",
    response_model=QueryOut,
    responses={
        400: {"description": "Not a single SELECT, an SQL error, or the statement timeout was reached"},
        401: {"description": "Missing or unknown API key"},
        403: {"description": "The key lacks the read scope, or the query reads a table outside the telemetry tables and views"},
        503: {"description": "The query role cannot connect"},
    },
)
def run_query(body: QueryIn, request: Request, principal: ReadKey) -> QueryOut:
    """Run one SELECT as the read-only query role: row-level security limits it to the caller's license,
    it can read only the telemetry tables, their rollups and the views, in a read-only transaction with a
    statement timeout and a row cap."""
    state = request.app.state
    result = user_query.run(
        state.engine,
        state.query_url,
        principal,
        body.sql,
        license_id=body.license_id,
        row_limit=body.row_limit,
        limits=state.query_limits,
    )
    return QueryOut(
        columns=result.columns,
        rows=result.rows,
        row_count=len(result.rows),
        truncated=result.truncated,
        elapsed_ms=result.elapsed_ms,
    )
