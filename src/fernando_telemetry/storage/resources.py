"""Shared OTLP resources in SQL: the ``traces`` writer hook that stores each distinct resource of a group once in
``telemetry_resources`` and points the span rows at it, and the retention delete of resources no longer seen.

Imports only core.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from fernando_telemetry.core.ingest.rows import SpanRow
from fernando_telemetry.core.resource_keys import EMPTY_RESOURCE, resource_key
from fernando_telemetry.storage.results import rows_affected

__all__ = ["COPY_COLUMNS", "expire", "prepare"]

COPY_COLUMNS = SpanRow._fields
"""The ``traces`` columns the writer copies: the decoded span columns, the last one the key of the span's resource."""

# Keys in order, so two writers upserting the same resources wait on each other instead of deadlocking. A row seen
# again moves last_seen_at at most once an hour: spans of a busy service do not rewrite their resource row per batch.
_UPSERT = """
INSERT INTO telemetry_resources AS r (resource_id, license_id, attributes, first_seen_at, last_seen_at)
SELECT k.resource_id, k.license_id, k.attributes, now(), now()
FROM json_to_recordset(%s::json) AS k(resource_id uuid, license_id bigint, attributes jsonb)
ORDER BY 1
ON CONFLICT (resource_id, license_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
WHERE EXCLUDED.last_seen_at - r.last_seen_at > interval '1 hour'  -- immutable operators only, as Citus requires here
"""


def prepare(connection: psycopg.Connection[Any], rows: list[SpanRow]) -> list[SpanRow]:
    """The ``traces`` ``TableSpec.prepare`` hook: upsert each distinct (license, resource) of the group once and
    return the rows in ``COPY_COLUMNS`` order, each with ``resource`` ``{}`` and its ``resource_id``.

    Rows come back one for one, in order. A resource
    without attributes stays inline (``{}``, no key). Runs in the group's transaction: the resources commit with
    their spans, or neither does.
    """
    keys: dict[tuple[int, str], UUID] = {}
    prepared: list[SpanRow] = []
    for row in rows:
        if row.resource == EMPTY_RESOURCE:
            prepared.append(row)
            continue
        # one decoded resource is one str object shared by its spans: the dict hashes it once
        found = (row.license_id, row.resource)
        key = keys.get(found)
        if key is None:
            key = keys[found] = resource_key(*found)
        prepared.append(row._replace(resource=EMPTY_RESOURCE, resource_id=key))
    if keys:
        connection.execute(_UPSERT, (_recordset(keys),))
    return prepared


def _recordset(keys: dict[tuple[int, str], UUID]) -> str:
    # the stored JSON goes in as it is (it is JSON already): no parse and dump of each resource in Python
    return (
        "["
        + ",".join(
            f'{{"resource_id":"{key}","license_id":{int(license_id)},"attributes":{resource_json}}}'
            for (license_id, resource_json), key in keys.items()
        )
        + "]"
    )


def expire(session: Session, *, cutoff: datetime) -> int:
    """Delete the resources last seen before ``cutoff``; returns how many.

    The caller picks a cutoff past which no span that may point at them is still kept (the longest span
    retention and a margin): a span whose resource is gone would still read, with ``{}`` as its resource.
    """
    result = session.execute(text("DELETE FROM telemetry_resources WHERE last_seen_at < :cutoff"), {"cutoff": cutoff})
    return rows_affected(result)
