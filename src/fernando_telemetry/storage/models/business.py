"""``business_metrics``: one KPI value for a period, unique on its natural key so a rerun replaces it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fernando_telemetry.core.enums import MetricCategory, PeriodType
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.models.base import (
    Base,
    created_at_column,
    jsonb_column,
    updated_at_column,
    vocabulary,
)

if TYPE_CHECKING:
    from fernando_telemetry.storage.models.platform import License

__all__ = ["BusinessMetric"]


class BusinessMetric(Base):
    """A KPI for one period; the platform license (0) holds the platform-wide value."""

    __tablename__ = "business_metrics"
    __table_args__ = (
        # serves: upsert by natural key (a recomputed KPI replaces the old value); the platform license = overall;
        # its leading columns also serve one KPI's history, newest period first (read backwards)
        UniqueConstraint(
            "metric_name",
            "period_type",
            "period_start",
            "license_id",
            "dimensions",
            name="uq_business_metrics_natural_key",
            postgresql_nulls_not_distinct=True,
        ),
    )

    business_metric_id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    """With ``license_id`` the primary key (the license is in every key: the distribution column on Citus)."""
    metric_name: Mapped[str] = mapped_column(String(200))
    metric_category: Mapped[MetricCategory] = mapped_column(vocabulary(MetricCategory, "metric_category"))
    metric_value: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    currency: Mapped[str | None] = mapped_column(String(3))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    period_type: Mapped[PeriodType] = mapped_column(vocabulary(PeriodType, "period_type"))
    license_id: Mapped[int] = mapped_column(
        ForeignKey("licenses.license_id"), primary_key=True, index=True, server_default=text(str(PLATFORM_LICENSE_ID))
    )
    dimensions: Mapped[dict[str, Any]] = jsonb_column()
    target_value: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    previous_value: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    source: Mapped[str] = mapped_column(String(64), server_default=text("'api'"))
    computed_at: Mapped[datetime] = created_at_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    license: Mapped[License] = relationship(back_populates="business_metrics", lazy="raise")
