"""Fixtures for the ingest tests: a running writer and app on the shared migrated database, and keys."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fernando_telemetry.core.keys import KEY_PREFIX
from fernando_telemetry.services import keys, platform
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.wiring import Wiring, build

__all__ = ["Tenant", "make_tenant", "running_wiring"]


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
        platform.upsert_user(session, user_id=user_id, fields={"license_id": license_id}, now=datetime.now(UTC))
        ingest = keys.create_key(session, license_id=license_id, scopes=["ingest", "read"], new_token=new_token)
        read = keys.create_key(session, license_id=license_id, scopes=["read"], new_token=new_token)
    return Tenant(license_id, ingest.token, read.token, user_id)


def admin_key(engine: Engine) -> str:
    with session_factory(engine).begin() as session:
        return keys.create_key(session, license_id=None, scopes=[], admin=True, new_token=new_token).token


@pytest.fixture()
def running_wiring(engine: Engine) -> Iterator[Wiring]:
    wiring = build(Settings(ingest_max_body_bytes=200_000), engine=engine)
    wiring.start()
    try:
        yield wiring
    finally:
        wiring.stop()


@pytest.fixture()
def client(running_wiring: Wiring) -> Iterator[TestClient]:
    with TestClient(running_wiring.app) as test_client:
        yield test_client
