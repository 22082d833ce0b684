"""What the ingest path does before COPY: which licenses of a batch exist, and registering the users it names."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fernando_telemetry.storage.models import IngestBatch, License, User

__all__ = ["existing_license_ids", "known_user", "register_users", "stored_response"]

# One statement for first sightings and sightings again: a new (license, user) is inserted with origin
# 'ingest'; an existing one gets its last_seen_at moved forward (and first_seen_at set if the platform made
# it before any row named it). Rows are taken in key order, so concurrent transactions lock the same
# users in the same order and never deadlock; ON CONFLICT makes a concurrent first sighting wait for the
# other insert and then update, never fail.
_REGISTER_USERS = text("""
INSERT INTO users AS u (license_id, user_id, first_seen_at, last_seen_at, origin)
SELECT seen.license_id, seen.user_id, seen_at.value, seen_at.value, 'ingest'
  FROM unnest(CAST(:license_ids AS bigint[]), CAST(:user_ids AS varchar[])) AS seen (license_id, user_id),
       (SELECT coalesce(CAST(:seen_at AS timestamptz), now())) AS seen_at (value)
 ORDER BY seen.license_id, seen.user_id
ON CONFLICT (license_id, user_id) DO UPDATE
   SET last_seen_at = EXCLUDED.last_seen_at, first_seen_at = coalesce(u.first_seen_at, EXCLUDED.first_seen_at)
 WHERE u.last_seen_at IS NULL OR u.last_seen_at < EXCLUDED.last_seen_at
""")


def register_users(session: Session, keys: Iterable[tuple[int, str]], *, seen_at: datetime | None) -> None:
    """Make sure every ``(license_id, user_id)`` has a user row, registering unknown ones (origin ``ingest``),
    and record ``seen_at`` (None: the database's clock) as their last sighting. The same whether a user
    existed or not."""
    ordered = sorted(set(keys))
    if not ordered:
        return
    session.execute(
        _REGISTER_USERS,
        {"license_ids": [k[0] for k in ordered], "user_ids": [k[1] for k in ordered], "seen_at": seen_at},
    )


def known_user(session: Session, user_id: str, *, license_id: int | None) -> bool:
    """Whether ``user_id`` is a user of ``license_id`` (None: a user of any license, for platform-wide rows)."""
    if len(user_id) > 128 or "\x00" in user_id:
        return False
    query = select(User.user_id).where(User.user_id == user_id)
    if license_id is not None:
        query = query.where(User.license_id == license_id)
    return session.scalars(query.limit(1)).first() is not None


def existing_license_ids(session: Session, license_ids: Iterable[int]) -> set[int]:
    wanted = list(set(license_ids))
    if not wanted:
        return set()
    return set(session.scalars(select(License.license_id).where(License.license_id.in_(wanted))))


def stored_response(session: Session, *, api_key_id: int, endpoint: str, key: str) -> dict[str, Any] | None:
    batch = session.get(IngestBatch, (api_key_id, endpoint, key))
    return None if batch is None else batch.response
