"""``query_scopes``: the license each running ``POST /api/v1/query`` connection may read, keyed by its backend pid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from fernando_telemetry.storage.models.base import Base, created_at_column

__all__ = ["QueryScope"]


class QueryScope(Base):
    """Written by the owner before user SQL runs and removed after; the query role reads only its own row."""

    __tablename__ = "query_scopes"

    backend_pid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    license_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
