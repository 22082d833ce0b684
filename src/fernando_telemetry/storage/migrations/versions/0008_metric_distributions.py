"""Metric rows keep what their values cover: the interval of an increment and the distribution of a histogram.

``start_time`` opens the interval ``(start_time, timestamp]`` that a counter increment or a histogram's values
cover (NULL for gauges); ``sketch_keys``/``sketch_counts`` hold the values' distribution in the mergeable
sketch form of ``core.sketch`` (NULL: the row is one value, weighted by ``sample_count``); ``min_value`` and
``max_value`` are the exact extremes of those values when known.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("start_time", "sketch_keys", "sketch_counts", "min_value", "max_value")


def upgrade() -> None:
    op.add_column("system_metrics", sa.Column("start_time", sa.DateTime(timezone=True), nullable=True))
    op.add_column("system_metrics", sa.Column("sketch_keys", postgresql.ARRAY(sa.Integer()), nullable=True))
    op.add_column("system_metrics", sa.Column("sketch_counts", postgresql.ARRAY(sa.BigInteger()), nullable=True))
    op.add_column("system_metrics", sa.Column("min_value", sa.Double(), nullable=True))
    op.add_column("system_metrics", sa.Column("max_value", sa.Double(), nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.drop_column("system_metrics", column)
