"""Silence routes: ``/api/v1/silences`` create and list, ``/{id}`` get, change (PATCH) and expire
(``POST /{id}/expire``, or ``DELETE /{id}``, which expires it and keeps it for the record).

A license key manages its license's silences, which match only its alerts; an admin key manages every
license's, and may create platform-wide silences (no ``license_id``) that match every alert.
Imports services and core.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer
from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.services import silences

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/silences", tags=["alerts"])

_SILENCE_ID = Path(ge=1, le=2**63 - 1, description="The silence's id")
_MAX_DURATION_MINUTES = 366 * 24 * 60
_ONE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope"},
    404: {"description": "No such silence in the key's license"},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid matchers or times; `details` lists every problem with its field"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or names another license"},
    422: {"description": "The body does not match the schema"},
}
_MATCHERS_DOC = (
    'List of {"name", "op", "value"}: name is alertname, rule_id, severity, a rule label or a group-key field; '
    "op is =, !=, =~ or !~ (regular expressions match the whole value, RE2 syntax: at most 1,000 characters, no "
    "backreferences or lookaround); at least one must not match an empty value"
)


class SilenceOut(BaseModel):
    silence_id: int
    license_id: int | None = Field(description="null: a platform-wide silence (admin), matching every license's alerts")
    matchers: list[dict[str, str]]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str | None
    expired_at: datetime | None = Field(description="When it was expired by hand")
    created_at: datetime
    state: str = Field(description="pending (starts later), active or expired")
    alerts_changed: int = Field(0, description="Open alerts this request suppressed or released")


class SilencePageOut(BaseModel):
    silences: list[SilenceOut] = Field(description="Latest ending first")
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page")


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: Any = Field(description=_MATCHERS_DOC, examples=[[{"name": "alertname", "op": "=", "value": "High CPU Usage"}]])
    starts_at: str | None = Field(None, description="ISO 8601 instant (default: now)")
    ends_at: str | None = Field(None, description="ISO 8601 instant; give it or duration_minutes")
    duration_minutes: int | None = Field(None, ge=1, le=_MAX_DURATION_MINUTES, description="Minutes from starts_at")
    comment: str | None = Field(None, max_length=silences.MAX_COMMENT_CHARS)
    license_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="Admin keys: the license it belongs to (omit for platform-wide)"
    )


class SilencePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: Any = Field(None, description=_MATCHERS_DOC)
    starts_at: str | None = None
    ends_at: str | None = None
    comment: str | None = Field(None, max_length=silences.MAX_COMMENT_CHARS)


def _out(view: silences.SilenceView) -> SilenceOut:
    return SilenceOut.model_validate(asdict(view))


@router.post(
    "",
    response_model=SilenceOut,
    status_code=201,
    responses=_WRITE_ERRORS,
    summary="Create a silence",
    description=(
        "Matching open alerts become `suppressed` at once, and alerts that fire while it is in force are created "
        "suppressed (no notifications). They still resolve. When it ends they return to `active` (or "
        "`acknowledged`)."
    ),
)
def create_silence(request: Request, caller: ReadCaller, body: SilenceIn) -> SilenceOut:
    view = silences.open_silence(
        request.app.state.sessions,
        caller=caller,
        license_id=body.license_id,
        matchers=body.matchers,
        starts_at=time_range.parse_instant(body.starts_at, parameter="starts_at"),
        ends_at=time_range.parse_instant(body.ends_at, parameter="ends_at"),
        duration_minutes=body.duration_minutes,
        comment=body.comment,
        quotas=request.app.state.quotas,
    )
    return _out(view)


@router.get(
    "",
    response_model=SilencePageOut,
    responses={**_WRITE_ERRORS, 400: {"description": "An unknown state or parameter, or a bad limit or offset"}},
    summary="Silences, latest ending first",
)
def list_silences(
    request: Request,
    caller: ReadCaller,
    state: str | None = Query(None, description="pending, active or expired"),
    license_id: str | None = Query(None, description="Admin keys: only this license's silences"),
    limit: str | None = Query(None, description=f"1 to {silences.MAX_LIMIT} (default {silences.DEFAULT_LIMIT})"),
    offset: str | None = Query(None, description="next_offset of the previous page"),
) -> SilencePageOut:
    check_names(request, allowed={"state", "license_id", "limit", "offset"})
    page = silences.read_silences(
        request.app.state.sessions,
        caller=caller,
        license_id=integer(license_id, parameter="license_id", minimum=1),
        state=state,
        limit=integer(limit, parameter="limit", default=silences.DEFAULT_LIMIT, minimum=1, maximum=silences.MAX_LIMIT),
        offset=integer(offset, parameter="offset", default=0, minimum=0),
    )
    return SilencePageOut(silences=[_out(view) for view in page.silences], next_offset=page.next_offset)


@router.get("/{silence_id}", response_model=SilenceOut, responses=_ONE_ERRORS, summary="One silence")
def get_silence(request: Request, caller: ReadCaller, silence_id: int = _SILENCE_ID) -> SilenceOut:
    return _out(silences.read_silence(request.app.state.sessions, caller=caller, silence_id=silence_id))


@router.patch(
    "/{silence_id}",
    response_model=SilenceOut,
    responses={**_WRITE_ERRORS, **_ONE_ERRORS, 409: {"description": "The silence has ended"}},
    summary="Change a silence that has not ended",
    description="Fields left out keep their value; the change applies to open alerts at once.",
)
def update_silence(request: Request, caller: ReadCaller, body: SilencePatch, silence_id: int = _SILENCE_ID) -> SilenceOut:
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "matchers" in given:
        changes["matchers"] = body.matchers
    for name in ("starts_at", "ends_at"):
        if name in given:
            changes[name] = time_range.parse_instant(getattr(body, name), parameter=name)
    if "comment" in given:
        changes["comment"] = body.comment
    return _out(silences.change_silence(request.app.state.sessions, caller=caller, silence_id=silence_id, **changes))


def _expire(request: Request, caller: Caller, silence_id: int) -> SilenceOut:
    return _out(silences.end_silence(request.app.state.sessions, caller=caller, silence_id=silence_id))


_EXPIRE_DOC = "Ends it now (it is kept, expired); the alerts it suppressed return to active or acknowledged."


@router.post(
    "/{silence_id}/expire",
    response_model=SilenceOut,
    responses={**_ONE_ERRORS, 409: {"description": "The silence has already ended"}},
    summary="Expire a silence",
    description=_EXPIRE_DOC,
)
def expire_silence(request: Request, caller: ReadCaller, silence_id: int = _SILENCE_ID) -> SilenceOut:
    return _expire(request, caller, silence_id)


@router.delete(
    "/{silence_id}",
    response_model=SilenceOut,
    responses={**_ONE_ERRORS, 409: {"description": "The silence has already ended"}},
    summary="Expire a silence (same as POST .../expire)",
    description=_EXPIRE_DOC,
)
def delete_silence(request: Request, caller: ReadCaller, silence_id: int = _SILENCE_ID) -> SilenceOut:
    return _expire(request, caller, silence_id)
