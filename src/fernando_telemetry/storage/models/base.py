"""Declarative base with the naming convention, and column helpers shared by every model."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Dialect, Enum, MetaData, TypeDecorator, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column

__all__ = ["Base", "UtcDateTime", "created_at_column", "jsonb_column", "metadata", "updated_at_column", "vocabulary"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """``timestamptz`` whose naive Python datetimes mean UTC (``datetime(2024, 1, 1)`` is 2024-01-01T00:00Z).

    PostgreSQL reads a naive value in the session's ``TimeZone``; making it aware here gives the same instant
    on every connection, whatever its time zone. Aware values pass unchanged; rows read back are aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSONB}


def vocabulary(enum_class: type[StrEnum], name: str) -> Enum:
    """A closed vocabulary stored as text with a CHECK constraint (easier to extend than a PG enum)."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(member.value) for member in enum_class) + 8,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def jsonb_column(default: str = "{}") -> Any:
    from sqlalchemy import text

    return mapped_column(JSONB, nullable=False, server_default=text(f"'{default}'::jsonb"))


def created_at_column() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def updated_at_column() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now())
