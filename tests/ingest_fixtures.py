"""Fixtures for the ingest tests: a running writer and app on the shared migrated database, and keys."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from fernando_telemetry.core.keys import KEY_PREFIX
from fernando_telemetry.services import keys, platform
from fernando_telemetry.storage.database import session_factory

__all__ = ["Tenant", "admin_key", "make_tenant", "new_token"]


def new_token() -> str:
    return KEY_PREFIX + secrets.token_hex(24)


@dataclass(frozen=True)
class Tenant:
    license_id: int
    ingest_key: str
    read_key: str
    user_id: str


def make_tenant(engine: Engine) -> Tenant:
    """A fresh license with one known user, an ingest+read key and a read-only key."""
    from datetime import UTC, datetime

    with session_factory(engine).begin() as session:
        license_id = keys.create_license(session, name=f"tenant-{uuid.uuid4().hex[:6]}")
        user_id = f"user-{uuid.uuid4().hex[:8]}"
        platform.upsert_user(session, license_id=license_id, user_id=user_id, fields={}, now=datetime.now(UTC))
        ingest = keys.create_key(session, license_id=license_id, scopes=["ingest", "read"], new_token=new_token)
        read = keys.create_key(session, license_id=license_id, scopes=["read"], new_token=new_token)
    return Tenant(license_id, ingest.token, read.token, user_id)


def admin_key(engine: Engine) -> str:
    with session_factory(engine).begin() as session:
        return keys.create_key(session, license_id=None, scopes=[], admin=True, new_token=new_token).token
