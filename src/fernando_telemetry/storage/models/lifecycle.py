"""Data lifecycle: per-license retention overrides, the archives of dropped partitions, and what retention must do
before it drops one (the one row of ``retention_settings``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Identity, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fernando_telemetry.storage.models.base import Base, created_at_column, updated_at_column

__all__ = ["PartitionArchive", "RetentionOverride", "RetentionSetting"]


class RetentionOverride(Base):
    """How long one license's raw rows of one kind are kept, instead of the global default."""

    __tablename__ = "retention_overrides"
    __table_args__ = (
        CheckConstraint("data_kind IN ('events', 'metrics', 'traces')", name="data_kind"),
        CheckConstraint("retention_days >= 1", name="retention_days_positive"),
    )

    license_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("licenses.license_id", ondelete="CASCADE"), primary_key=True)
    data_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    retention_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class PartitionArchive(Base):
    """One daily partition written to Parquet before it was dropped; the manifest file says the same."""

    __tablename__ = "partition_archives"
    __table_args__ = (UniqueConstraint("table_name", "partition_name", name="uq_partition_archives_table_name_partition_name"),)

    archive_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(64))
    partition_name: Mapped[str] = mapped_column(String(128))
    range_start: Mapped[datetime]
    range_end: Mapped[datetime]
    row_count: Mapped[int] = mapped_column(BigInteger)
    file_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    archived_at: Mapped[datetime]
    restored_at: Mapped[datetime | None]
    license_rows: Mapped[dict[str, Any] | None]
    """Rows per license at archive time, ``{"<license_id>": rows}`` (``"null"``: rows of no license); null for
    archives written before this was recorded. A restore refuses a file whose rows differ."""
    created_at: Mapped[datetime] = created_at_column()


class RetentionSetting(Base):
    """The one row of ``retention_settings``: what ``cleanup_old_telemetry_data`` must respect whoever calls it.

    ``archive_before_drop`` is written by every retention run (true when it archives to Parquet); while it is
    set, the SQL function keeps an expired partition that has no ``partition_archives`` row.
    """

    __tablename__ = "retention_settings"
    __table_args__ = (CheckConstraint("settings_id", name="one_row"),)

    settings_id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    archive_before_drop: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[datetime] = updated_at_column()
