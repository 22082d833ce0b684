"""Request dependencies: the caller's key, checked for a scope, and the app's services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.core.keys import Principal, Scope
from fernando_telemetry.services import keys, tenancy

__all__ = ["AdminKey", "IngestKey", "ReadKey", "authenticate", "authenticate_key", "key_from", "presented_key", "requires"]


def presented_key(request: Request) -> str | None:
    return key_from(request.headers.get("authorization"), request.headers.get("x-api-key"))


def key_from(authorization: str | None, api_key: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` value, else of an ``X-API-Key`` value (HTTP headers, gRPC metadata)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return api_key.strip() if api_key else None


def authenticate(request: Request, scope: Scope) -> Principal:
    """The caller's principal (blocking: run it in a thread): 401 without a valid key, 403 without ``scope``."""
    return authenticate_key(request.app.state.sessions, presented_key(request), scope)


def authenticate_key(sessions: sessionmaker[Session], token: str | None, scope: Scope) -> Principal:
    """``authenticate`` for a key already read from the request (blocking): ``Unauthorized``, ``Forbidden``."""
    with tenancy.unscoped(), sessions.begin() as session:
        principal = keys.authenticate(session, token=token, now=datetime.now(UTC))
    keys.require(principal, scope)
    return principal


def requires(scope: Scope) -> Callable[..., object]:
    """A dependency giving the caller's principal: 401 without a valid key, 403 without ``scope``."""

    async def dependency(request: Request) -> Principal:
        principal = await run_in_threadpool(authenticate, request, scope)
        request.state.principal = principal
        tenancy.enter(principal)  # the route's transactions now run under row-level security for its license
        return principal

    return Depends(dependency)


IngestKey = Annotated[Principal, requires(Scope.INGEST)]
ReadKey = Annotated[Principal, requires(Scope.READ)]
AdminKey = Annotated[Principal, requires(Scope.ADMIN)]
