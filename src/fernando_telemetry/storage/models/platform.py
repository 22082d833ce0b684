"""The host platform's ``users`` and ``licenses`` (kept in sync by the platform), and ``api_keys``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fernando_telemetry.storage.models.base import Base, created_at_column, jsonb_column, updated_at_column

if TYPE_CHECKING:
    from fernando_telemetry.storage.models.alerting import Alert, AlertRule
    from fernando_telemetry.storage.models.business import BusinessMetric
    from fernando_telemetry.storage.models.telemetry import SystemMetric, TelemetryEvent, Trace

__all__ = ["USER_ORIGINS", "ApiKey", "License", "User"]

USER_ORIGINS = ("platform", "ingest", "migration")
"""How a user row came to exist: put by the platform, registered by ingest on first sight, made by revision 0009."""


def _named_by(model: str, column: str = "user_id") -> str:
    """The join of users with the rows of ``model`` naming them: same license and same user id."""
    return f"and_(User.license_id == foreign({model}.license_id), User.user_id == foreign({model}.{column}))"


class License(Base):
    """A customer account of the platform; every telemetry row can belong to one."""

    __tablename__ = "licenses"

    license_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), server_default=text("'active'"))
    max_users: Mapped[int | None] = mapped_column(Integer)
    valid_until: Mapped[datetime | None]
    attributes: Mapped[dict[str, Any]] = jsonb_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    users: Mapped[list[User]] = relationship(back_populates="license", passive_deletes=True)
    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="license", passive_deletes=True)
    events: Mapped[list[TelemetryEvent]] = relationship(back_populates="license", viewonly=True, lazy="raise")
    system_metrics: Mapped[list[SystemMetric]] = relationship(back_populates="license", viewonly=True, lazy="raise")
    spans: Mapped[list[Trace]] = relationship(back_populates="license", viewonly=True, lazy="raise")
    business_metrics: Mapped[list[BusinessMetric]] = relationship(back_populates="license", viewonly=True, lazy="raise")
    alert_rules: Mapped[list[AlertRule]] = relationship(back_populates="license", viewonly=True, lazy="raise")
    alerts: Mapped[list[Alert]] = relationship(back_populates="license", viewonly=True, lazy="raise")


class User(Base):
    """A user of one license, identified by the platform's own id (any string: an int, a UUID...).

    User "4242" of license A and "4242" of license B are two users. A row exists because the platform
    put it (``origin`` ``platform``), because ingest saw the id on a row of the license first (``ingest``),
    or because revision 0009 made it from the rows naming it (``migration``).
    """

    __tablename__ = "users"
    __table_args__ = (
        PrimaryKeyConstraint("license_id", "user_id", name="pk_users"),
        CheckConstraint(f"origin IN ({', '.join(repr(o) for o in USER_ORIGINS)})", name="origin"),
        # serves: find a user by e-mail whatever its case (sign-in, support lookups)
        Index("ix_users_lower_email", func.lower(text("email"))),
    )

    # the primary key leads with license_id: it also serves "the users of a license"
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.license_id"))
    user_id: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    attributes: Mapped[dict[str, Any]] = jsonb_column()
    first_seen_at: Mapped[datetime | None]
    """When ingest first received a row of the license naming this user; NULL until one does."""
    last_seen_at: Mapped[datetime | None]
    """When ingest last received such a row, at most the ingest cache's TTL behind (see docs/GUIDE.md)."""
    origin: Mapped[str] = mapped_column(String(16), server_default=text("'platform'"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    license: Mapped[License] = relationship(back_populates="users")
    events: Mapped[list[TelemetryEvent]] = relationship(
        back_populates="user", viewonly=True, lazy="raise", primaryjoin=_named_by("TelemetryEvent")
    )
    system_metrics: Mapped[list[SystemMetric]] = relationship(
        back_populates="user", viewonly=True, lazy="raise", primaryjoin=_named_by("SystemMetric")
    )
    spans: Mapped[list[Trace]] = relationship(back_populates="user", viewonly=True, lazy="raise", primaryjoin=_named_by("Trace"))


class ApiKey(Base):
    """A key for the HTTP API: only its SHA-256 is stored; ``license_id`` NULL means an admin key."""

    __tablename__ = "api_keys"

    api_key_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    key_prefix: Mapped[str] = mapped_column(String(16))
    # serves: authenticate a request by the hash of its key (unique index)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    license_id: Mapped[int | None] = mapped_column(ForeignKey("licenses.license_id", ondelete="CASCADE"), index=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default=text("'{}'::varchar[]"))
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    license: Mapped[License | None] = relationship(back_populates="api_keys")
