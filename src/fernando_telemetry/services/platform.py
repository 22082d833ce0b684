"""The host platform's users and licenses, upserted by the platform to keep them in sync."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput, NotFound, field_problem
from fernando_telemetry.services import audit
from fernando_telemetry.storage.models import License, User

__all__ = ["put_license", "put_user", "upsert_license", "upsert_user"]


def upsert_user(
    session: Session, *, license_id: int | None, user_id: str, fields: dict[str, Any], now: datetime
) -> tuple[User, bool]:
    """Create or update the user ``user_id`` of license ``license_id``; returns the user and whether it was created.

    A user ingest registered on first sight is filled in: its fields are replaced, its first and last
    sightings kept, and its origin becomes ``platform`` (the platform now vouches for it)."""
    if not user_id or len(user_id) > 128:
        raise InvalidInput("user_id must be 1 to 128 characters")
    fields = dict(fields)
    fields.pop("license_id", None)
    if license_id is None:
        raise InvalidInput(
            "license_id is required: a user belongs to one license (send it in the body or as ?license_id=)",
            details=[field_problem("license_id", "missing")],
        )
    if session.get(License, license_id) is None:
        raise NotFound(f"license {license_id} does not exist: PUT /api/v1/admin/licenses/{license_id} first")
    existed = session.get(User, (license_id, user_id)) is not None
    statement = insert(User).values(license_id=license_id, user_id=user_id, **fields, origin="platform", updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[User.license_id, User.user_id],
        set_={**{key: statement.excluded[key] for key in fields}, "origin": "platform", "updated_at": now},
    )
    session.execute(statement)
    session.expire_all()
    return session.get_one(User, (license_id, user_id)), not existed


def upsert_license(session: Session, *, license_id: int, fields: dict[str, Any], now: datetime) -> tuple[License, bool]:
    """Create or update a license by the platform's id, keeping the id sequence ahead of explicit ids."""
    if license_id < 1:
        raise InvalidInput("license_id must be a positive integer")
    existed = session.get(License, license_id) is not None
    if not existed and not fields.get("name"):
        raise InvalidInput("a new license needs a name")
    statement = insert(License).values(license_id=license_id, **fields, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[License.license_id], set_={**{key: statement.excluded[key] for key in fields}, "updated_at": now}
    )
    session.execute(statement)
    highest = session.scalar(select(func.max(License.license_id)))
    # an explicit id must never be handed out again by the identity sequence
    session.execute(
        text(
            "SELECT setval(seq, :highest) FROM (SELECT pg_get_serial_sequence('licenses', 'license_id')::regclass AS seq) s "
            "WHERE :highest > COALESCE(pg_sequence_last_value(seq), 0)"
        ),
        {"highest": highest},
    )
    session.expire_all()
    return session.get_one(License, license_id), not existed


def put_user(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None,
    user_id: str,
    fields: dict[str, Any],
    sent_fields: Iterable[str],
) -> tuple[User, bool]:
    """The use case behind ``PUT /api/v1/admin/users/{user_id}``: the upsert and its audit entry in one transaction.

    ``sent_fields`` are the fields the request named (the audit entry lists them, never their values)."""
    with sessions.begin() as session:
        now = caller.now()
        user, created = upsert_user(session, license_id=license_id, user_id=user_id, fields=fields, now=now)
        audit.record(
            session,
            actor=caller.actor,
            action="user.create" if created else "user.update",
            target_type="user",
            target_id=user_id,
            license_id=user.license_id,
            now=now,
            details={"fields": sorted(sent_fields)},
        )
    return user, created


def put_license(
    sessions: sessionmaker[Session], *, caller: Caller, license_id: int, fields: dict[str, Any], sent_fields: Iterable[str]
) -> tuple[License, bool]:
    """The use case behind ``PUT /api/v1/admin/licenses/{license_id}``: the upsert and its audit entry in one transaction."""
    with sessions.begin() as session:
        now = caller.now()
        license_, created = upsert_license(session, license_id=license_id, fields=fields, now=now)
        audit.record(
            session,
            actor=caller.actor,
            action="license.create" if created else "license.update",
            target_type="license",
            target_id=license_id,
            license_id=license_id,
            now=now,
            details={"fields": sorted(sent_fields)},
        )
    return license_, created
