"""Per-license quotas, checked by the service calls that create rules, channels, silences and API keys (so the
API, the CLI and the dashboard share them). The check takes a transaction-level advisory lock per license and
kind, so two concurrent creates cannot both take the last place. Imports storage and core; never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session

from fernando_telemetry.core.errors import QuotaExceeded, field_problem
from fernando_telemetry.storage.models import AlertRule, ApiKey, NotificationChannel, Silence

__all__ = ["ensure_room"]

_LOCK_CLASS = {"rules": 1, "channels": 2, "silences": 3, "keys": 4}
_SETTING = {
    "rules": "FERNANDO_TELEMETRY_QUOTA_RULES_PER_LICENSE",
    "channels": "FERNANDO_TELEMETRY_QUOTA_CHANNELS_PER_LICENSE",
    "silences": "FERNANDO_TELEMETRY_QUOTA_SILENCES_PER_LICENSE",
    "keys": "FERNANDO_TELEMETRY_QUOTA_KEYS_PER_LICENSE",
}
_WHAT = {"rules": "alert rules", "channels": "notification channels", "silences": "unexpired silences", "keys": "active API keys"}


def ensure_room(session: Session, *, kind: str, license_id: int | None, limit: int, now: datetime | None = None) -> None:
    """Raise ``QuotaExceeded`` (409, code ``quota_exceeded``) when ``license_id`` already holds ``limit`` objects of
    ``kind`` (``rules``, ``channels``, ``silences`` not yet ended, ``keys`` not revoked). Platform-wide objects
    (``license_id`` None, admin only) are not limited."""
    if license_id is None:
        return
    # 0x46540000 ("FT" quota) + kind, and the license folded into 32 bits (ids may exceed int4; a shared hash only
    # makes two licenses wait for each other): a key no job uses
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, hashtextextended(CAST(:license AS text), 0)::bit(32)::integer)"),
        {"cls": 0x46540000 + _LOCK_CLASS[kind], "license": license_id},
    )
    count = session.scalar(_count_query(kind, license_id, now)) or 0
    if count >= limit:
        raise QuotaExceeded(
            f"license {license_id} already has {count} {_WHAT[kind]}; its quota is {limit} ({_SETTING[kind]}): "
            f"delete some before creating more",
            details=[field_problem(kind, "quota exceeded", limit=limit, current=count, setting=_SETTING[kind])],
        )


def _count_query(kind: str, license_id: int, now: datetime | None) -> Select[int]:
    match kind:
        case "rules":
            return select(func.count()).select_from(AlertRule).where(AlertRule.license_id == license_id)
        case "channels":
            return select(func.count()).select_from(NotificationChannel).where(NotificationChannel.license_id == license_id)
        case "silences":
            query = (
                select(func.count()).select_from(Silence).where(Silence.license_id == license_id, Silence.expired_at.is_(None))
            )
            if now is not None:
                query = query.where(Silence.ends_at > now)
            return query
        case "keys":
            return select(func.count()).select_from(ApiKey).where(ApiKey.license_id == license_id, ApiKey.revoked_at.is_(None))
    raise ValueError(f"unknown quota kind {kind!r}")
