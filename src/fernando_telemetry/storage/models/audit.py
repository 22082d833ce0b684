"""``audit_log``: who changed what among keys, licenses, rules, channels, silences and alerts, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from fernando_telemetry.storage.models.base import Base, jsonb_column

__all__ = ["AuditEntry"]


class AuditEntry(Base):
    """One administrative action: the actor, the action, its target and a summary of the change (never a secret)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        # serves: the audit trail newest first, optionally for one license
        Index("ix_audit_log_license_id_occurred_at", "license_id", text("occurred_at DESC")),
    )

    entry_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    """``key:<api_key_id>``, ``cli`` or ``system``"""
    action: Mapped[str] = mapped_column(String(64))
    """for example ``key.create``, ``rule.update``, ``silence.create``"""
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(200))
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id"))
    details: Mapped[dict[str, Any]] = jsonb_column()
