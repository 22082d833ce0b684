"""``telemetry_event_is_error`` with a searched ``CASE``: the same rule, in a form Citus can send to its workers.

The planner inlines this SQL function into the queries that call it; Citus then writes the query back to SQL for
the workers. A simple ``CASE jsonb_typeof(...) WHEN 'number' ...`` that has been inlined comes back as
``CASE jsonb_typeof(...) WHEN (jsonb_typeof(...) = 'number') ...``, which a worker refuses ("operator does not
exist: text = boolean"): every hourly rollup of events failed on Citus. ``CASE WHEN jsonb_typeof(...) = 'number'``
means the same and is written back as it is. Downgrade restores revision 0012's text.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_IS_ERROR = """
CREATE OR REPLACE FUNCTION telemetry_event_is_error(event_type text, payload jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT event_type = 'error_event'
    OR coalesce(payload -> 'error' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR coalesce(payload -> 'exception' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR CASE WHEN jsonb_typeof(payload -> 'status_code') = 'number'
                THEN (payload ->> 'status_code')::numeric >= 500 AND (payload ->> 'status_code')::numeric < 600
            WHEN jsonb_typeof(payload -> 'status_code') = 'string'
                THEN (payload ->> 'status_code') ~ '^5[0-9][0-9]$'
            ELSE false
       END
$$
"""

EVENT_IS_ERROR_0012 = """
CREATE OR REPLACE FUNCTION telemetry_event_is_error(event_type text, payload jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT event_type = 'error_event'
    OR coalesce(payload -> 'error' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR coalesce(payload -> 'exception' NOT IN ('null'::jsonb, 'false'::jsonb), false)
    OR CASE jsonb_typeof(payload -> 'status_code')
           WHEN 'number' THEN (payload ->> 'status_code')::numeric >= 500 AND (payload ->> 'status_code')::numeric < 600
           WHEN 'string' THEN (payload ->> 'status_code') ~ '^5[0-9][0-9]$'
           ELSE false
       END
$$
"""


def upgrade() -> None:
    op.execute(EVENT_IS_ERROR)


def downgrade() -> None:
    op.execute(EVENT_IS_ERROR_0012)
