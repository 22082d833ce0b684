"""``job_runs``: the last run and outcome of each scheduled job, for ``status`` and the health of the scheduler."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Double, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from fernando_telemetry.storage.models.base import Base

__all__ = ["JobRun"]


class JobRun(Base):
    """One row per job name, updated at the end of each run (in its own transaction, so a failed run is recorded)."""

    __tablename__ = "job_runs"

    job_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    """ok, skipped or failed"""
    last_summary: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[float | None] = mapped_column(Double)
    runs: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    failures: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
