"""Admin routes the host platform calls to keep its users and licenses in sync (admin scope)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.api.deps import AdminKey
from fernando_telemetry.api.schemas import LicenseIn, LicenseOut, UserIn, UserOut
from fernando_telemetry.services import platform

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

_ERRORS = {401: {"description": "Missing or unknown API key"}, 403: {"description": "Not an admin key"}}


@router.put("/users/{user_id}", response_model=UserOut, responses={**_ERRORS, 404: {"description": "Unknown license"}},
            summary="Create or update a platform user")
async def put_user(
    request: Request,
    response: Response,
    body: UserIn,
    principal: AdminKey,
    user_id: str = Path(min_length=1, max_length=128),
) -> UserOut:
    def work() -> tuple[UserOut, bool]:
        with request.app.state.sessions.begin() as session:
            user, created = platform.upsert_user(session, user_id=user_id, fields=body.model_dump(), now=datetime.now(UTC))
            return UserOut.model_validate(user, from_attributes=True), created

    user, created = await run_in_threadpool(work)
    response.status_code = 201 if created else 200
    return user


@router.put("/licenses/{license_id}", response_model=LicenseOut, responses=_ERRORS,
            summary="Create or update a platform license")
async def put_license(
    request: Request,
    response: Response,
    body: LicenseIn,
    principal: AdminKey,
    license_id: int = Path(ge=1, le=2**62),
) -> LicenseOut:
    def work() -> tuple[LicenseOut, bool]:
        with request.app.state.sessions.begin() as session:
            license_, created = platform.upsert_license(
                session, license_id=license_id, fields=body.model_dump(), now=datetime.now(UTC)
            )
            return LicenseOut.model_validate(license_, from_attributes=True), created

    license_, created = await run_in_threadpool(work)
    response.status_code = 201 if created else 200
    return license_
