"""The audit log of administrative actions: keys, licenses, rules, channels, silences and alert changes.

``record`` adds one entry inside the caller's transaction, so an action and its entry commit together;
``entries`` reads them newest first. Details summarise the change and never hold a secret or a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.storage.models import AuditEntry

__all__ = ["AuditRecord", "actor_of", "entries", "list_entries", "record"]


@dataclass(frozen=True)
class AuditRecord:
    entry_id: int
    occurred_at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    license_id: int | None
    details: dict[str, Any]


def actor_of(principal: Principal | None) -> str:
    """``key:<api_key_id>`` for a request, ``cli`` for a command (no principal)."""
    return "cli" if principal is None else f"key:{principal.api_key_id}"


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int | None,
    license_id: int | None,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            occurred_at=now,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            license_id=license_id,
            details=dict(details or {}),
        )
    )
    session.flush()


def entries(session: Session, *, license_id: int | None = None, action: str | None = None, limit: int = 100) -> list[AuditRecord]:
    """Newest first; ``license_id`` None means every license (admin view)."""
    query = select(AuditEntry).order_by(AuditEntry.occurred_at.desc(), AuditEntry.entry_id.desc()).limit(limit)
    if license_id is not None:
        query = query.where(AuditEntry.license_id == license_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return [
        AuditRecord(e.entry_id, e.occurred_at, e.actor, e.action, e.target_type, e.target_id, e.license_id, dict(e.details))
        for e in session.scalars(query)
    ]


def list_entries(
    sessions: sessionmaker[Session], *, caller: Caller, license_id: int | None = None, action: str | None = None, limit: int = 100
) -> list[AuditRecord]:
    """The use case behind ``GET /api/v1/admin/audit`` (an admin's read; the route demands the admin scope)."""
    with sessions() as session:
        return entries(session, license_id=caller.visible_license(license_id), action=action, limit=limit)
