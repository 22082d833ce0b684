"""OTLP resources stored once per license: ``telemetry_resources`` keyed by a content hash, and
``traces.resource_id`` pointing at it.

A resource of 60 KB sent over 2,000 spans was copied into every span's ``resource``; now it is one row here
and each span holds ``{}`` in ``resource`` and the row's key in ``resource_id``. ``resource`` stays for rows
written before (and archives restored from them): readers take ``COALESCE(telemetry_resources.attributes,
traces.resource)``.

No foreign key from ``traces.resource_id``: on the partitioned table it would make every span insert probe
and share-lock its resource row (the same few hot rows under every concurrent batch) and every resource
delete scan all partitions (nothing indexes ``resource_id``). Readers tolerate a missing row.

Row-level security as on the other per-license tables: the tenant role sees its license's rows
(``tenant_isolation``), the user-SQL reader role its query scope's (``query_isolation``).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "fernando_telemetry_tenant"
READER_ROLE = "fernando_telemetry_query_reader"
_TENANT_LICENSE = "NULLIF(current_setting('fernando_telemetry.license_id', true), '')::bigint"
_QUERY_LICENSE = "(SELECT license_id FROM query_scopes WHERE backend_pid = pg_backend_pid())"


def upgrade() -> None:
    op.create_table(
        "telemetry_resources",
        sa.Column("resource_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("license_id", sa.BigInteger(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.license_id"],
            name=op.f("fk_telemetry_resources_license_id_licenses"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_telemetry_resources")),
    )  # fmt: skip
    # a nullable column without a default: catalog only, no rewrite of the partitions
    op.add_column("traces", sa.Column("resource_id", postgresql.UUID(as_uuid=True), nullable=True))

    op.execute("ALTER TABLE telemetry_resources ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON telemetry_resources TO {TENANT_ROLE} "
        f"USING (license_id = {_TENANT_LICENSE}) WITH CHECK (license_id = {_TENANT_LICENSE})"
    )
    op.execute(
        f"CREATE POLICY query_isolation ON telemetry_resources FOR SELECT TO {READER_ROLE} USING (license_id = {_QUERY_LICENSE})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON telemetry_resources TO {TENANT_ROLE}")
    op.execute(f"GRANT SELECT ON telemetry_resources TO {READER_ROLE}")


def downgrade() -> None:
    # the spans keep their resources inline again, as before this revision
    op.execute(
        "UPDATE traces SET resource = r.attributes FROM telemetry_resources r "
        "WHERE traces.resource_id IS NOT NULL AND r.resource_id = traces.resource_id"
    )
    op.drop_column("traces", "resource_id")
    op.drop_table("telemetry_resources")  # its policies and grants go with it
