"""Existence checks the ingest path makes before COPY: which users and licenses of a batch exist."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from fernando_telemetry.storage.models import IngestBatch, License, User

__all__ = ["existing_license_ids", "existing_user_ids", "stored_response"]


def existing_user_ids(session: Session, user_ids: Iterable[str]) -> set[str]:
    wanted = list(set(user_ids))
    if not wanted:
        return set()
    return set(session.scalars(select(User.user_id).where(User.user_id.in_(wanted))))


def existing_license_ids(session: Session, license_ids: Iterable[int]) -> set[int]:
    wanted = list(set(license_ids))
    if not wanted:
        return set()
    return set(session.scalars(select(License.license_id).where(License.license_id.in_(wanted))))


def stored_response(session: Session, *, api_key_id: int, endpoint: str, key: str) -> dict | None:  # type: ignore[type-arg]
    batch = session.get(IngestBatch, (api_key_id, endpoint, key))
    return None if batch is None else batch.response
