"""Archives record whose rows they hold: ``partition_archives.license_rows``.

- ``partition_archives.license_rows`` (jsonb, null for archives written before this revision): the partition's
  row count per license at archive time, ``{"<license_id>": rows}`` (``"null"`` for rows of no license). A
  restore loads the file into a staging table and refuses it unless its rows per license are exactly these, so
  a rewritten archive cannot move one license's rows to another.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("partition_archives", sa.Column("license_rows", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("partition_archives", "license_rows")
