"""Which license a caller sees: a license key sees its own; an admin key sees all, or the one it asks for.

Besides the filters the services apply, a license key's request is scoped in the database itself:
``enter`` marks the request, and sessions from a factory passed through ``scope_sessions`` then run each
transaction as the tenant role under row-level security (``storage.tenant_scope``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller, license_scope
from fernando_telemetry.core.keys import Principal, Scope
from fernando_telemetry.storage import tenant_scope

__all__ = ["OPERATOR", "enter", "principal_of", "scope_sessions", "unscoped", "visible_license"]


def scope_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Make ``sessions`` honour the license scope of the request they serve (see ``enter``)."""
    return tenant_scope.install(sessions)


def unscoped() -> AbstractContextManager[None]:
    """A block whose sessions run as the connecting role, whatever the request's scope: key checks read
    ``api_keys``, which the tenant role may not."""
    return tenant_scope.scoped(None)


def enter(principal: Principal) -> None:
    """Scope the rest of this request's database work to the principal's license (admin keys: unscoped)."""
    if not principal.is_admin and principal.license_id is not None:
        tenant_scope.current_license.set(principal.license_id)


def visible_license(principal: Principal, requested: int | None = None) -> int | None:
    """The license to filter reads by; None means every license (admin keys only).

    A license key asking for another license's data is refused rather than silently narrowed.
    """
    return license_scope(principal, requested)


OPERATOR = Principal(api_key_id=0, license_id=None, scopes=frozenset({Scope.ADMIN.value}))
"""The principal of the CLI and jobs: the operator sees every license, like an admin key."""


def principal_of(caller: Caller) -> Principal:
    """The key a caller acts with, for the helpers that take a principal (``OPERATOR`` for the CLI and jobs)."""
    return OPERATOR if caller.principal is None else caller.principal
