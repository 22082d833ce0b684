"""Users are scoped by license and registered on first sight.

``users`` is keyed by ``(license_id, user_id)`` with ``license_id`` NOT NULL: user "4242" of license A and
"4242" of license B are two users. New columns: ``first_seen_at`` and ``last_seen_at`` (when ingest first
and last received rows naming the user; NULL for a user no row has named yet) and ``origin`` (how the row
came to exist: ``platform`` for ``PUT /api/v1/admin/users/{id}``, ``ingest`` when registered on first
sight, ``migration`` when this revision made it).

Every reference to a user becomes a composite foreign key ``(license_id, <user column>) -> users`` with
``ON DELETE SET NULL (<user column>)`` and MATCH SIMPLE: a row without a license keeps the user id it was
sent with, unlinked. The referencing tables: ``telemetry_events``, ``system_metrics``, ``traces`` (partitioned:
the constraint is added on the parent, PostgreSQL clones it onto every partition and onto partitions attached
later), ``alert_rules.owner_user_id`` and ``alerts.acknowledged_by/resolved_by/assigned_to``. The constraints
keep their former names.

Data: every ``(license, user)`` pair named by a row with a license gets a user row when it has none
(origin ``migration``; first and last seen from the rows' own times). When the user existed without a
license, its e-mail, name, state and attributes are copied into each such license; a user of another
license is not copied (its personal data stays with its own license). Users without a license are then
deleted: rows of no license that named them keep the user id, unlinked. Users whose license is set keep all
their data, origin ``platform``.

Row-level security: the tenant role reads only its license's users.

Downgrade: one row per user id is kept (the platform's before the others, then the oldest), users named by
rows but absent get a row of no license, and the single-column keys come back.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_ROLE = "fernando_telemetry_tenant"
_TENANT_LICENSE = "NULLIF(current_setting('fernando_telemetry.license_id', true), '')::bigint"

USER_REFERENCES = (
    # (table, user column, time column or None)
    ("telemetry_events", "user_id", "event_timestamp"),
    ("system_metrics", "user_id", "timestamp"),
    ("traces", "user_id", "start_time"),
    ("alert_rules", "owner_user_id", None),
    ("alerts", "acknowledged_by", None),
    ("alerts", "resolved_by", None),
    ("alerts", "assigned_to", None),
)


def _fk_name(table: str, column: str) -> str:
    return f"fk_{table}_{column}_users"


def _named_pairs() -> str:
    parts = []
    for table, column, time_column in USER_REFERENCES:
        seen = f'"{time_column}"' if time_column else "NULL::timestamptz"
        parts.append(
            f"SELECT license_id, {column} AS user_id, {seen} AS seen_at FROM {table} "
            f"WHERE license_id IS NOT NULL AND {column} IS NOT NULL"
        )
    return "\nUNION ALL\n".join(parts)


def upgrade() -> None:
    for table, column, _time in USER_REFERENCES:
        op.drop_constraint(_fk_name(table, column), table, type_="foreignkey")
    op.add_column("users", sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("origin", sa.String(length=16), server_default=sa.text("'platform'"), nullable=False))
    op.create_check_constraint(op.f("ck_users_origin"), "users", "origin IN ('platform', 'ingest', 'migration')")
    op.drop_constraint("pk_users", "users", type_="primary")

    op.execute(
        f"""
CREATE TEMPORARY TABLE migration_user_pairs ON COMMIT DROP AS
SELECT license_id, user_id, min(seen_at) AS first_seen_at, max(seen_at) AS last_seen_at
  FROM ({_named_pairs()}) AS named
 GROUP BY license_id, user_id
"""
    )
    op.execute(
        """
UPDATE users u
   SET first_seen_at = p.first_seen_at, last_seen_at = p.last_seen_at
  FROM migration_user_pairs p
 WHERE p.license_id = u.license_id AND p.user_id = u.user_id
"""
    )
    op.execute(
        """
INSERT INTO users (license_id, user_id, email, display_name, is_active, attributes, created_at, updated_at,
                   first_seen_at, last_seen_at, origin)
SELECT p.license_id, p.user_id, unlicensed.email, unlicensed.display_name, coalesce(unlicensed.is_active, true),
       coalesce(unlicensed.attributes, '{}'::jsonb), coalesce(unlicensed.created_at, now()), now(),
       p.first_seen_at, p.last_seen_at, 'migration'
  FROM migration_user_pairs p
  LEFT JOIN users unlicensed ON unlicensed.user_id = p.user_id AND unlicensed.license_id IS NULL
 WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.license_id = p.license_id AND u.user_id = p.user_id)
"""
    )
    op.execute("DROP TABLE migration_user_pairs")
    op.execute("DELETE FROM users WHERE license_id IS NULL")
    op.drop_index("ix_users_license_id", table_name="users")
    op.alter_column("users", "license_id", existing_type=sa.BigInteger(), nullable=False)
    op.create_primary_key("pk_users", "users", ["license_id", "user_id"])
    for table, column, _time in USER_REFERENCES:
        op.create_foreign_key(
            _fk_name(table, column),
            table,
            "users",
            ["license_id", column],
            ["license_id", "user_id"],
            ondelete=f"SET NULL ({column})",
        )

    op.execute("ALTER TABLE users ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON users TO {TENANT_ROLE} USING (license_id = {_TENANT_LICENSE}) "
        f"WITH CHECK (license_id = {_TENANT_LICENSE})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON users")
    op.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
    for table, column, _time in USER_REFERENCES:
        op.drop_constraint(_fk_name(table, column), table, type_="foreignkey")
    op.drop_constraint("pk_users", "users", type_="primary")
    op.execute(
        """
DELETE FROM users u
 USING (SELECT ctid AS row_ref,
               row_number() OVER (PARTITION BY user_id ORDER BY origin <> 'platform', created_at, license_id) AS rank
          FROM users) ranked
 WHERE u.ctid = ranked.row_ref AND ranked.rank > 1
"""
    )
    op.alter_column("users", "license_id", existing_type=sa.BigInteger(), nullable=True)
    op.create_primary_key("pk_users", "users", ["user_id"])
    op.create_index("ix_users_license_id", "users", ["license_id"], unique=False)
    named = "\nUNION\n".join(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL" for table, column, _ in USER_REFERENCES)
    op.execute(f"INSERT INTO users (user_id) SELECT named.user_id FROM ({named}) AS named (user_id) ON CONFLICT DO NOTHING")
    op.drop_constraint(op.f("ck_users_origin"), "users", type_="check")
    for column in ("origin", "last_seen_at", "first_seen_at"):
        op.drop_column("users", column)
    for table, column, _time in USER_REFERENCES:
        op.create_foreign_key(_fk_name(table, column), table, "users", [column], ["user_id"], ondelete="SET NULL")
