"""Admin routes the host platform calls to keep its users and licenses in sync (admin scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.api.deps import AdminCaller
from fernando_telemetry.api.schemas import LicenseIn, LicenseOut, UserIn, UserOut
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import audit, platform

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    403: {"description": "Not an admin key"},
}


@router.put(
    "/users/{user_id}",
    response_model=UserOut,
    responses={
        **_ERRORS,
        400: {"description": "No license_id (a user belongs to one license), or two different ones"},
        404: {"description": "Unknown license"},
    },
    summary="Create or update a platform user of one license",
    description=(
        "A user is identified by its license and its id: the license is the body's `license_id` or the "
        "`license_id` query parameter. A user that ingest registered on first sight is filled in: its fields "
        "are replaced, its first and last sightings kept, and its origin becomes `platform`."
    ),
)
async def put_user(
    request: Request,
    response: Response,
    body: UserIn,
    caller: AdminCaller,
    user_id: str = Path(min_length=1, max_length=128),
    license_id: int | None = Query(default=None, ge=1, le=2**62, description="The user's license (or body license_id)"),
) -> UserOut:
    def work() -> tuple[UserOut, bool]:
        if license_id is not None and body.license_id is not None and license_id != body.license_id:
            raise InvalidInput(
                f"license_id {license_id} in the query and {body.license_id} in the body differ",
                details=[{"field": "license_id", "reason": "conflicting values"}],
            )
        user, created = platform.put_user(
            request.app.state.sessions,
            caller=caller,
            license_id=license_id or body.license_id,
            user_id=user_id,
            fields=body.model_dump(),
            sent_fields=body.model_dump(exclude_unset=True),
        )
        return UserOut.model_validate(user, from_attributes=True), created

    user, created = await run_in_threadpool(work)
    response.status_code = 201 if created else 200
    return user


@router.put("/licenses/{license_id}", response_model=LicenseOut, responses=_ERRORS, summary="Create or update a platform license")
async def put_license(
    request: Request,
    response: Response,
    body: LicenseIn,
    caller: AdminCaller,
    license_id: int = Path(ge=1, le=2**62),
) -> LicenseOut:
    def work() -> tuple[LicenseOut, bool]:
        license_, created = platform.put_license(
            request.app.state.sessions,
            caller=caller,
            license_id=license_id,
            fields=body.model_dump(),
            sent_fields=body.model_dump(exclude_unset=True),
        )
        return LicenseOut.model_validate(license_, from_attributes=True), created

    license_, created = await run_in_threadpool(work)
    response.status_code = 201 if created else 200
    return license_


class AuditEntryOut(BaseModel):
    entry_id: int
    occurred_at: datetime
    actor: str = Field(description="key:<api_key_id> for a request, cli for a command, evaluator/system for jobs")
    action: str = Field(description="For example key.create, key.revoke, license.update, rule.create, silence.create")
    target_type: str
    target_id: str | None
    license_id: int | None
    details: dict[str, Any]


@router.get(
    "/audit", response_model=list[AuditEntryOut], responses=_ERRORS, summary="The audit log of admin actions, newest first"
)
async def get_audit(
    request: Request,
    caller: AdminCaller,
    license_id: int | None = Query(default=None, ge=1, le=2**62, description="Only this license's entries"),
    action: str | None = Query(default=None, max_length=64, description="Only this action, e.g. key.revoke"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[AuditEntryOut]:
    def work() -> list[AuditEntryOut]:
        found = audit.list_entries(request.app.state.sessions, caller=caller, license_id=license_id, action=action, limit=limit)
        return [AuditEntryOut.model_validate(entry, from_attributes=True) for entry in found]

    return await run_in_threadpool(work)
