"""Regenerate docs/SCHEMA.md from a freshly migrated database: tables, every index with the query it
serves and that query's plan on realistic data, views and SQL functions.

    .venv/bin/python scripts/schema_doc.py [--database-url URL] [--output docs/SCHEMA.md]

With a URL (or DATABASE_URL) a temporary database ``ft_schema_doc_<random>`` is created on that server
and dropped at the end; without one, a throwaway embedded PostgreSQL 18 is started. The script fails
when an index of the schema has no entry in ``INDEX_QUERIES`` or an entry names an index that does not
exist, so the document cannot go stale silently. A plan that does not use the index it is meant for is
reported on stderr and marked in the document, never hidden.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.services import partitions, rollups, schema
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory, sqlalchemy_url
from fernando_telemetry.storage.embedded import EmbeddedPostgres

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "SCHEMA.md"
COLUMN_DOC = REPO_ROOT / "docs" / "schema_columns.md"
"""Hand-written: what writes and what reads each column of ``COLUMN_DOC_TABLES``; copied into the document."""
COLUMN_DOC_TABLES = ("telemetry_events", "system_metrics", "business_metrics", "alert_rules", "alerts", "traces")

TABLE_ORDER = (
    "users",
    "licenses",
    "api_keys",
    "ingest_batches",
    "metric_streams",
    "telemetry_events",
    "system_metrics",
    "business_metrics",
    "alert_rules",
    "alerts",
    "alert_rule_states",
    "alert_events",
    "notification_channels",
    "alert_notifications",
    "alert_deliveries",
    "silences",
    "traces",
    "telemetry_resources",
    "rollup_dirty_buckets",
    "rollup_state",
    "system_metrics_daily",
    "system_metrics_hourly",
    "telemetry_events_daily",
    "telemetry_events_hourly",
    "traces_daily",
    "traces_hourly",
    "job_runs",
    "audit_log",
    "query_scopes",
    "retention_overrides",
    "partition_archives",
    "retention_settings",
)

ROLES = {
    "fernando_telemetry_tenant": "API requests made with a license key: every transaction of such a request starts with "
    "`SET LOCAL ROLE fernando_telemetry_tenant` and sets `fernando_telemetry.license_id` (storage/tenant_scope.py). "
    "It may read and write every table; the `tenant_isolation` policies keep it to the rows of that license.",
    "fernando_telemetry_query": "User SQL of `POST /api/v1/query` logs in as this role on a connection of its own "
    "(storage/user_sql.py). NOINHERIT and without privileges of its own: it only switches to "
    "`fernando_telemetry_query_reader`.",
    "fernando_telemetry_query_reader": "User SQL runs as this role (`SET LOCAL ROLE`, storage/user_sql.py). It can read "
    "only the telemetry tables, their rollups, the views and the rollup bookkeeping, and its license is not a setting "
    "(user SQL cannot call `set_config`) but the `query_scopes` row of its backend pid, written by the owner before the "
    "statement runs and deleted after it. It holds none of the login role's privileges, so it cannot see or signal "
    "any backend (migration 0014).",
}

FUNCTIONS = {
    "ensure_daily_partitions": "Creates the missing daily partitions of one partitioned table for "
    "[first day, last day] (create standalone, then ATTACH); idempotent, serialised per table by an advisory lock.",
    "cleanup_old_telemetry_data": "Retention: drops whole daily partitions older than each table's cutoff and "
    "deletes the older rows of the boundary partition only; one result row per table. Each cutoff is the longest "
    "of the argument and the license overrides of that kind, truncated to its UTC hour and capped at the oldest "
    "hour or day the rollups do not hold yet. While `retention_settings.archive_before_drop` is set, an expired "
    "partition with rows and no `partition_archives` row is kept whole (`partitions_kept`).",
    "cleanup_old_rollups": "Rollup retention: deletes hourly and daily rollup rows older than their own retention, "
    "never hourly rows whose raw rows are still kept or whose day is not rolled up yet; one result row per table.",
    "rollup_sketch_key": "The percentile sketch's order-preserving bucket key of a value (core/sketch.py in SQL).",
    "rollup_sketch_value": "The estimate of every value counted under a sketch key.",
    "rollup_sketch_quantiles": "Quantiles (percentile_cont's definition) of a sketch given as ascending keys and "
    "counts, clamped to the exact lowest and highest value.",
    "rollup_concat": "Aggregate: arrays end to end (the sketches of several rollup rows, merged by the views).",
    "rollup_pending_hours": "The hours of a raw table its rollups do not hold yet: marked dirty, or holding rows "
    "written after the watermark (the views' raw tail).",
    "telemetry_events_hour_summary": "One hour of telemetry_events_hourly_summary computed from raw rows (the tail).",
    "system_metrics_hour_aggregate": "One hour of system_metrics_service_summary computed from raw rows (the tail), aggregated as every metric reader does.",
    "traces_hour_summary": "One hour of traces_service_summary computed from raw rows (the tail).",
    "telemetry_event_is_error": "The one rule for a failed event: an error_event; a payload error or exception that is "
    "not null or false; a payload status_code of 500..599 (a failed request of the SDK middleware). Used by the events "
    "rollup, the view's raw tail and every reader of errors.",
    "traces_server_errors_hour_summary": "One hour's failed server spans per license from raw rows (the tail of "
    "telemetry_events_hourly_summary.server_span_errors).",
    "alert_rules_sync_condition": "Trigger function (BEFORE INSERT OR UPDATE on alert_rules): keeps "
    "evaluation_window_minutes and pending_period_minutes equal to condition_config's window_minutes and for_minutes, "
    "copying whichever side was written and refusing the two set to different values.",
}

# -- the data set the plans are taken on ---------------------------------------------------------

FIRST_DAY = date(2026, 11, 1)
DAYS = 4
USERS = 5_000
LICENSES = 200
EVENTS = 200_000
METRIC_SAMPLES = 100_000
SPANS = 100_000
KPI_DAYS = 90
KPI_LICENSES = 40
ALERT_RULES = 300
ALERTS = 5_000
AUDIT_ENTRIES = 20_000
SILENCES = 600
UNTAGGED_PENDING = 3_000
ARCHIVED_DAYS = 60
NOTIFICATION_MAX_ATTEMPTS = 5
JOB_NAMES = ("partition_upkeep", "retention", "host_metrics", "kpis", "rollups", "alert_evaluation", "notification_dispatch")
SEED = 20261101


def day_start(offset_days: float) -> datetime:
    return datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC) + timedelta(days=offset_days)


def user_id(n: int) -> str:
    return f"user-{n:05d}"


def trace_id(n: int) -> str:
    return hashlib.sha256(f"trace-{n}".encode()).hexdigest()[:32]


def span_id(trace_n: int, position: int) -> str:
    return hashlib.sha256(f"span-{trace_n}-{position}".encode()).hexdigest()[:16]


def key_hash(n: int) -> str:
    return hashlib.sha256(f"ft_key_{n}".encode()).hexdigest()


def fingerprint(rule_n: int, group_n: int) -> str:
    return hashlib.sha256(f"alert-{rule_n}-{group_n}".encode()).hexdigest()[:40]


def event_uuid(n: int) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.md5(f"event-{n}".encode()).digest(), version=4)


# Values the queries below look up; the loader guarantees each exists.
SAMPLE = {
    "license_id": 17,
    "user_id": user_id(42),
    "email": "USER.00042@example.com",
    "api_key_id": 7,
    "key_hash": key_hash(123),
    "event_id": str(event_uuid(123_456)),
    "trace_id": trace_id(4_242),
    "span_id": span_id(4_242, 0),
    "rule_id": 42,
    "fingerprint": fingerprint(42, 0),
    "alert_id": 4242,
    "notification_id": 4242,
}


@dataclass(frozen=True)
class IndexQuery:
    """The named query pattern an index exists for, and one concrete instance of it to EXPLAIN."""

    pattern: str
    sql: str
    note: str = ""


INDEX_QUERIES: dict[str, IndexQuery] = {
    # -- users ---------------------------------------------------------------------------------
    "pk_users": IndexQuery(
        "one user of a license by the platform's id (attribution, foreign-key checks on ingest, registration on "
        "first sight); its leading column also serves the users of one license",
        "SELECT * FROM users WHERE license_id = {license_id} AND user_id = '{user_id}'",
    ),
    "ix_users_lower_email": IndexQuery(
        "a user by e-mail whatever its case (sign-in, support lookups)",
        "SELECT * FROM users WHERE lower(email) = lower('{email}')",
    ),
    # -- licenses ------------------------------------------------------------------------------
    "pk_licenses": IndexQuery(
        "one license by id (key authentication, foreign-key checks on every telemetry insert)",
        "SELECT * FROM licenses WHERE license_id = {license_id}",
        "`licenses` holds hundreds of rows in a few pages, where a sequential scan costs less than the index; "
        "the key is there for uniqueness and as the target of every `license_id` foreign key.",
    ),
    # -- api_keys ------------------------------------------------------------------------------
    "pk_ingest_batches": IndexQuery(
        "the stored answer of a retried batch (same key, endpoint and Idempotency-Key)",
        "SELECT response FROM ingest_batches WHERE api_key_id = 3 AND endpoint = 'events' AND idempotency_key = 'batch-42'",
    ),
    "ix_ingest_batches_created_at": IndexQuery(
        "expiry of stored answers older than the deduplication window (retention job)",
        "DELETE FROM ingest_batches WHERE created_at < now() - interval '24 hours'",
    ),
    "pk_metric_streams": IndexQuery(
        "the streams of a batch of cumulative points, created or locked by the writer in key order",
        "INSERT INTO metric_streams AS s (stream_key, license_id, metric_name, kind, last_seen) VALUES ('k1', 0, 'orders', 'number', now())\n"
        "ON CONFLICT (stream_key, license_id) DO UPDATE SET last_seen = now() RETURNING s.last_time",
    ),
    "pk_api_keys": IndexQuery(
        "one key by id (rename, revoke)",
        "SELECT * FROM api_keys WHERE api_key_id = {api_key_id}",
    ),
    "uq_api_keys_key_hash": IndexQuery(
        "authenticate a request by the SHA-256 of its key; no two keys share a hash",
        "SELECT api_key_id, license_id, scopes FROM api_keys WHERE key_hash = '{key_hash}' AND revoked_at IS NULL",
    ),
    "ix_api_keys_license_id": IndexQuery(
        "the keys of one license (key list; ON DELETE CASCADE from licenses)",
        "SELECT api_key_id, name, key_prefix, created_at, revoked_at FROM api_keys\n"
        " WHERE license_id = {license_id} ORDER BY created_at",
    ),
    # -- telemetry_events ----------------------------------------------------------------------
    "pk_telemetry_events": IndexQuery(
        "one event by id, no time range (GET /api/v1/events/{event_id}); no duplicate event in a partition",
        "SELECT * FROM telemetry_events WHERE event_id = '{event_id}'",
    ),
    "ix_telemetry_events_event_timestamp_brin": IndexQuery(
        "all events in a time range shorter than a day, all types (hourly rollup of the last hour)",
        "SELECT date_trunc('hour', event_timestamp, 'UTC') AS hour, event_type, license_id, count(*) AS events,\n"
        "       count(DISTINCT user_id) AS unique_users, avg(duration_ms) AS avg_duration_ms\n"
        "  FROM telemetry_events\n"
        " WHERE event_timestamp >= '2026-11-03 10:00+00' AND event_timestamp < '2026-11-03 11:00+00'\n"
        " GROUP BY 1, 2, 3",
        "Partition pruning narrows a range to its days; the BRIN narrows it inside a day, because rows arrive "
        "in time order. A query that reads only `event_type` and `event_timestamp` (a bare count by type) can "
        "instead be answered by an index-only scan of `ix_telemetry_events_event_type_event_timestamp` on "
        "PostgreSQL 18, whose B-tree skip scan does not need the leading `event_type`.",
    ),
    "ix_telemetry_events_created_at_brin": IndexQuery(
        "events written since the rollup watermark, whatever their event time (rollup refresh, the views' tail)",
        "SELECT DISTINCT date_trunc('hour', event_timestamp, 'UTC') FROM telemetry_events WHERE created_at > '{watermark}'",
        "`created_at` follows insertion order, so 16-page ranges hold narrow time spans; a late row for an old day "
        "lands at the end of that day's partition, in a range whose summary covers its `created_at`.",
    ),
    "ix_telemetry_events_event_type_event_timestamp": IndexQuery(
        "events of one type, newest first (dashboard, GET /api/v1/events?event_type=)",
        "SELECT event_id, event_name, user_id, event_timestamp FROM telemetry_events\n"
        " WHERE event_type = 'error_event'\n"
        "   AND event_timestamp >= '2026-11-03 00:00+00' AND event_timestamp < '2026-11-05 00:00+00'\n"
        " ORDER BY event_timestamp DESC LIMIT 100",
    ),
    "ix_telemetry_events_user_id_event_timestamp": IndexQuery(
        "one user's activity timeline, newest first",
        "SELECT event_id, event_type, event_name, event_timestamp FROM telemetry_events\n"
        " WHERE user_id = '{user_id}' ORDER BY event_timestamp DESC LIMIT 100",
    ),
    "ix_telemetry_events_payload_gin": IndexQuery(
        "payload containment filters over a time range (payload @> '{\"feature\": ...}')",
        "SELECT event_id, event_name, user_id, event_timestamp FROM telemetry_events\n"
        ' WHERE payload @> \'{{"feature": "bulk_export"}}\'\n'
        "   AND event_timestamp >= '2026-11-02 00:00+00' AND event_timestamp < '2026-11-05 00:00+00'",
    ),
    # -- system_metrics ------------------------------------------------------------------------
    "pk_system_metrics": IndexQuery(
        "one sample by id, no time range; no duplicate sample id in a partition",
        "SELECT * FROM system_metrics WHERE metric_id = 4242",
    ),
    "ix_system_metrics_service_name_metric_name_timestamp": IndexQuery(
        "one metric of one service over time (series endpoint, service summary)",
        'SELECT "timestamp", value, p95 FROM system_metrics\n'
        " WHERE service_name = 'checkout' AND metric_name = 'http.server.duration'\n"
        "   AND \"timestamp\" >= '2026-11-03 00:00+00' AND \"timestamp\" < '2026-11-04 00:00+00'\n"
        ' ORDER BY "timestamp" DESC',
    ),
    "ix_system_metrics_timestamp_brin": IndexQuery(
        "all samples in a time range shorter than a day (hourly rollup, retention boundary delete)",
        "SELECT service_name, metric_name, count(*), avg(value), max(value) FROM system_metrics\n"
        " WHERE \"timestamp\" >= '2026-11-03 10:00+00' AND \"timestamp\" < '2026-11-03 11:00+00'\n"
        " GROUP BY 1, 2",
    ),
    "ix_system_metrics_created_at_brin": IndexQuery(
        "samples written since the rollup watermark, whatever their time (rollup refresh, the views' tail)",
        "SELECT DISTINCT date_trunc('hour', \"timestamp\", 'UTC') FROM system_metrics WHERE created_at > '{watermark}'",
    ),
    "ix_system_metrics_labels_gin": IndexQuery(
        "label filters over a time range (labels @> '{\"endpoint\": ...}')",
        'SELECT "timestamp", service_name, metric_name, value FROM system_metrics\n'
        ' WHERE labels @> \'{{"endpoint": "/api/v1/invoices/{{id}}/pdf"}}\'\n'
        "   AND \"timestamp\" >= '2026-11-02 00:00+00' AND \"timestamp\" < '2026-11-05 00:00+00'",
    ),
    # -- business_metrics ----------------------------------------------------------------------
    "pk_business_metrics": IndexQuery(
        "one KPI value by id",
        "SELECT * FROM business_metrics WHERE business_metric_id = 4242",
    ),
    "uq_business_metrics_natural_key": IndexQuery(
        "upsert by natural key: a recomputed KPI replaces the old value (the platform license 0 = platform-wide)",
        "INSERT INTO business_metrics (metric_name, metric_category, metric_value, period_start, period_end,\n"
        "                              period_type, license_id, dimensions)\n"
        "VALUES ('mrr', 'revenue', 1234.5, '2026-11-03 00:00+00', '2026-11-04 00:00+00', 'daily', NULL, '{{}}')\n"
        "ON CONFLICT ON CONSTRAINT uq_business_metrics_natural_key\n"
        "DO UPDATE SET metric_value = EXCLUDED.metric_value, computed_at = now()",
    ),
    "ix_business_metrics_license_id": IndexQuery(
        "the KPIs of one license (license report; foreign-key checks when a license is deleted)",
        "SELECT metric_name, period_start, metric_value FROM business_metrics\n"
        " WHERE license_id = {license_id} AND period_type = 'daily' AND period_start >= '2026-10-01 00:00+00'\n"
        " ORDER BY metric_name, period_start",
    ),
    # -- alert_rules ---------------------------------------------------------------------------
    "pk_alert_rules": IndexQuery(
        "one rule by id (rule API, alerts joined to their rule)",
        "SELECT * FROM alert_rules WHERE rule_id = {rule_id}",
    ),
    "uq_alert_rules_license_id_name": IndexQuery(
        "a rule by name within its license; no two rules of a license share a name",
        "SELECT rule_id, enabled FROM alert_rules WHERE license_id = {license_id} AND name = 'High error rate'",
    ),
    "ix_alert_rules_enabled_last_evaluated_at": IndexQuery(
        "the evaluator's enabled rules, never evaluated first, then least recently evaluated",
        "SELECT rule_id, condition_config, evaluation_window_minutes FROM alert_rules\n"
        " WHERE enabled ORDER BY last_evaluated_at NULLS FIRST LIMIT 20",
    ),
    # -- alerts --------------------------------------------------------------------------------
    "pk_alerts": IndexQuery(
        "one alert by id (acknowledge, resolve, assign)",
        "SELECT * FROM alerts WHERE alert_id = 4242",
    ),
    "uq_alerts_rule_id_fingerprint_open": IndexQuery(
        "the open alert of a rule and group key; at most one can exist",
        "SELECT alert_id, status, error_count FROM alerts\n"
        " WHERE rule_id = {rule_id} AND fingerprint = '{fingerprint}' AND status <> 'resolved'",
    ),
    "ix_alerts_triggered_at_active": IndexQuery(
        "active and acknowledged alerts, newest first (dashboard, GET /api/v1/alerts?status=active)",
        "SELECT alert_id, severity, title, triggered_at FROM alerts\n"
        " WHERE status IN ('active', 'acknowledged') ORDER BY triggered_at DESC LIMIT 50",
    ),
    # -- alert_rule_states ---------------------------------------------------------------------
    "pk_alert_rule_states": IndexQuery(
        "the group states of one rule, locked in fingerprint order, at each evaluation (a manual resolve locks "
        "one by rule and fingerprint; a rule change deletes the rule's states that are not firing)",
        "SELECT * FROM alert_rule_states WHERE rule_id = {rule_id} ORDER BY fingerprint FOR UPDATE",
    ),
    # -- alert_events --------------------------------------------------------------------------
    "pk_alert_events": IndexQuery(
        "none in the code: the key identifies a transition (the `event_id` of the history API, its tie-breaker "
        "within one instant); nothing looks one up by id",
        "SELECT * FROM alert_events WHERE event_id = 4242",
    ),
    "ix_alert_events_alert_id_occurred_at": IndexQuery(
        "an alert's transitions, oldest first (GET /api/v1/alerts/{id}/history, `alerts history`); the "
        "evaluator's last repeat of an alert; ON DELETE CASCADE from alerts",
        "SELECT * FROM alert_events WHERE alert_id = {alert_id} ORDER BY occurred_at, event_id",
    ),
    "ix_alert_events_rule_id_occurred_at": IndexQuery(
        "a firing group's pending transitions of this episode, which have no alert yet, given to the new alert "
        "(evaluator); ON DELETE SET NULL from alert_rules",
        "UPDATE alert_events SET alert_id = {alert_id}\n"
        " WHERE rule_id = {rule_id} AND fingerprint = '{fingerprint}' AND alert_id IS NULL\n"
        "   AND occurred_at >= '2026-11-04 23:50+00'",
        "The model's comment names \"a rule's history, newest first\", but no code reads one: the evaluator's "
        "update above is the index's only query (its `DESC` order is of no use to it).",
    ),
    # -- notification_channels -----------------------------------------------------------------
    "pk_notification_channels": IndexQuery(
        "the channels of the notifications the dispatcher claimed; foreign-key checks of every outbox and delivery row",
        "SELECT * FROM notification_channels WHERE channel_id IN (3, 17, 42)",
    ),
    "uq_notification_channels_license_id_name": IndexQuery(
        "a channel by name within its license, NULL being the platform (API, CLI, each notification queued); no "
        "two channels of a license share a name",
        "SELECT * FROM notification_channels\n"
        " WHERE license_id IS NOT DISTINCT FROM {license_id} AND name IN ('ops-email', 'team-slack') AND enabled\n"
        " ORDER BY name",
        "The services compare the license with `IS NOT DISTINCT FROM` (so that one query serves the platform's "
        "NULL), which no index can answer: only `license_id = $1`, or `license_id IS NULL`, can lead a B-tree "
        "lookup (rule validation writes it that way). The table holds a few channels per license, so the cost is "
        "small; the index also enforces the names' uniqueness.",
    ),
    # -- alert_notifications -------------------------------------------------------------------
    "pk_alert_notifications": IndexQuery(
        "the dispatcher's claim of each due row it locked (one more attempt, the lease); foreign-key checks of "
        "every delivery row",
        "UPDATE alert_notifications SET attempts = 2, next_attempt_at = '2026-11-05 00:05+00'\n"
        " WHERE notification_id = {notification_id}",
        "The dispatcher's record of the attempt afterwards, `... WHERE notification_id = $1 AND status = 'pending' "
        "AND attempts = $2` (only while the row is still its own), may instead go to the partial index of pending "
        "rows, which the planner prefers while few rows are pending.",
    ),
    "ix_alert_notifications_next_attempt_at_pending": IndexQuery(
        "the dispatcher's due messages, oldest first, claimed with SKIP LOCKED (a batch of 50)",
        "SELECT * FROM alert_notifications\n"
        " WHERE status = 'pending' AND next_attempt_at <= '2026-11-05 00:00+00'\n"
        " ORDER BY next_attempt_at, notification_id LIMIT 50 FOR UPDATE SKIP LOCKED",
    ),
    "ix_alert_notifications_alert_id": IndexQuery(
        "whether an alert's firing was ever announced (only then is its resolve); ON DELETE CASCADE from alerts",
        "SELECT EXISTS (SELECT * FROM alert_notifications WHERE alert_id = {alert_id} AND kind IN ('firing', 'repeat'))",
        "The other lookups by alert ask for its pending rows (`alert_id = $1 AND status = 'pending'`, when a resolve "
        "or a repeat is queued); while few rows are pending the planner answers them from the partial index of "
        "pending rows instead.",
    ),
    # -- alert_deliveries ----------------------------------------------------------------------
    "pk_alert_deliveries": IndexQuery(
        "none in the code: the key identifies an attempt (the `delivery_id` of the history API, its tie-breaker "
        "within one instant); nothing looks one up by id",
        "SELECT * FROM alert_deliveries WHERE delivery_id = 4242",
    ),
    "ix_alert_deliveries_alert_id_attempted_at": IndexQuery(
        "an alert's delivery log, oldest first (GET /api/v1/alerts/{id}/history); ON DELETE CASCADE from alerts",
        "SELECT * FROM alert_deliveries WHERE alert_id = {alert_id} ORDER BY attempted_at, delivery_id",
    ),
    "ix_alert_deliveries_notification_id": IndexQuery(
        "none in the code: only the ON DELETE SET NULL of `fk_alert_deliveries_notification_id` when an outbox row "
        "is deleted (shown: the update PostgreSQL then runs)",
        "UPDATE alert_deliveries SET notification_id = NULL WHERE notification_id = {notification_id}",
        'The model\'s comment names "the attempts of one notification", but nothing reads them: deliveries are '
        "read by alert. The code never deletes an outbox row either; only deleting an alert does, by cascade, and "
        "that cascade deletes the same deliveries through `alert_id`.",
    ),
    # -- silences ------------------------------------------------------------------------------
    "pk_silences": IndexQuery(
        "one silence by id, locked, to change or expire it (API, CLI); the silences holding open alerts",
        "SELECT * FROM silences WHERE silence_id = 42 AND license_id = {license_id} FOR UPDATE",
    ),
    "ix_silences_ends_at": IndexQuery(
        "the silences in force now, longest-lasting first, at each evaluation",
        "SELECT * FROM silences\n"
        " WHERE ends_at > '2026-11-05 00:00+00' AND starts_at <= '2026-11-05 00:00+00' AND expired_at IS NULL\n"
        " ORDER BY ends_at DESC, silence_id",
    ),
    # -- traces --------------------------------------------------------------------------------
    "pk_traces": IndexQuery(
        "one span by span and trace id (parent lookups, deduplication on retry); span_id leads so "
        "trace_id lookups go to the hash index",
        "SELECT * FROM traces WHERE span_id = '{span_id}' AND trace_id = '{trace_id}'",
    ),
    "pk_telemetry_resources": IndexQuery(
        "a span's shared resource by its key (trace detail, the traces page, archives: the join on "
        "traces.resource_id); the ingest upsert's conflict target",
        "SELECT attributes FROM telemetry_resources WHERE resource_id = '00000000-0000-0000-0000-000000000000'",
        "One row per distinct resource and license: a handful per service.",
    ),
    "ix_traces_trace_id_hash": IndexQuery(
        "a whole trace by its id, no time range, across all partitions",
        "SELECT span_id, parent_span_id, service_name, operation_name, start_time, duration_ms, status\n"
        "  FROM traces WHERE trace_id = '{trace_id}' ORDER BY start_time",
    ),
    "ix_traces_service_name_operation_name_start_time": IndexQuery(
        "spans of one service and operation over time, newest first (trace search, service summary)",
        "SELECT trace_id, span_id, start_time, duration_ms, status FROM traces\n"
        " WHERE service_name = 'orders' AND operation_name = 'POST /api/v1/orders'\n"
        "   AND start_time >= '2026-11-03 00:00+00' AND start_time < '2026-11-05 00:00+00'\n"
        " ORDER BY start_time DESC LIMIT 100",
    ),
    "ix_traces_created_at_brin": IndexQuery(
        "spans written since the rollup watermark, whatever their start time (rollup refresh, the views' tail)",
        "SELECT DISTINCT date_trunc('hour', start_time, 'UTC') FROM traces WHERE created_at > '{watermark}'",
    ),
    "ix_traces_attributes_gin": IndexQuery(
        "attribute filters over a time range (attributes @> '{\"peer.service\": ...}')",
        "SELECT trace_id, span_id, service_name, operation_name, start_time FROM traces\n"
        ' WHERE attributes @> \'{{"peer.service": "payments-gateway"}}\'\n'
        "   AND start_time >= '2026-11-02 00:00+00' AND start_time < '2026-11-05 00:00+00'",
    ),
    # -- rollups -------------------------------------------------------------------------------
    "uq_telemetry_events_hourly_grain": IndexQuery(
        "hourly event rollups over a time range (the hourly summary view); one row per hour, type and license",
        "SELECT bucket_start, event_type, license_id, events, unique_users FROM telemetry_events_hourly\n"
        " WHERE bucket_start >= '2026-11-03 10:00+00' AND bucket_start < '2026-11-03 12:00+00'",
    ),
    "uq_telemetry_events_daily_grain": IndexQuery(
        "daily event rollups over a range of days; one row per day, type and license",
        "SELECT bucket_start, event_type, license_id, events, unique_users FROM telemetry_events_daily\n"
        " WHERE bucket_start >= '2026-11-02 00:00+00' AND bucket_start < '2026-11-03 00:00+00'",
    ),
    "uq_system_metrics_hourly_grain": IndexQuery(
        "hourly metric rollups over a time range (the service summary view); one row per hour, service, metric, host and license",
        "SELECT bucket_start, service_name, metric_name, samples, value_p95 FROM system_metrics_hourly\n"
        " WHERE bucket_start >= '2026-11-03 10:00+00' AND bucket_start < '2026-11-03 12:00+00'",
    ),
    "uq_system_metrics_daily_grain": IndexQuery(
        "daily metric rollups over a range of days; one row per day, service, metric, host and license",
        "SELECT bucket_start, service_name, metric_name, samples, value_p95 FROM system_metrics_daily\n"
        " WHERE bucket_start = '2026-11-02 00:00+00' AND service_name = 'checkout'",
    ),
    "ix_system_metrics_hourly_metric_name_bucket_start": IndexQuery(
        "one metric over time from the hourly rollups (metric series at step=1h)",
        "SELECT bucket_start, host_name, observations, weighted_sum FROM system_metrics_hourly\n"
        " WHERE metric_name = 'queue.depth' AND bucket_start >= '2026-11-02 00:00+00' AND bucket_start < '2026-11-04 00:00+00'",
    ),
    "ix_system_metrics_daily_metric_name_bucket_start": IndexQuery(
        "one metric over time from the daily rollups (metric series at step=1d)",
        "SELECT bucket_start, host_name, observations, weighted_sum FROM system_metrics_daily\n"
        " WHERE metric_name = 'queue.depth' AND bucket_start >= '2026-11-01 00:00+00' AND bucket_start < '2026-11-04 00:00+00'",
    ),
    "uq_traces_hourly_grain": IndexQuery(
        "hourly span rollups over a time range (the traces summary view); one row per hour, service, operation and license",
        "SELECT bucket_start, service_name, operation_name, spans, duration_p95 FROM traces_hourly\n"
        " WHERE bucket_start >= '2026-11-03 10:00+00' AND bucket_start < '2026-11-03 12:00+00'",
    ),
    "uq_traces_daily_grain": IndexQuery(
        "daily span rollups over a range of days; one row per day, service, operation and license",
        "SELECT bucket_start, service_name, operation_name, spans, duration_p95 FROM traces_daily\n"
        " WHERE bucket_start >= '2026-11-02 00:00+00' AND bucket_start < '2026-11-03 00:00+00'",
    ),
    "pk_rollup_state": IndexQuery(
        "a raw table's rollup watermark (every refresh step, the views' tail)",
        "SELECT watermark FROM rollup_state WHERE source_table = 'traces'",
        "Three rows: a sequential scan is cheaper than the index, which exists as the primary key.",
    ),
    "pk_rollup_failures": IndexQuery(
        "whether a dirty bucket failed recently (refresh skips it until its retry); one row per failing bucket",
        "SELECT 1 FROM rollup_failures WHERE source_table = 'traces' AND grain = 'hour'\n"
        " AND bucket_start = '2026-01-01T00:00:00Z' AND failed_at > '2026-01-01T00:00:00Z'",
        "Empty unless a bucket cannot be aggregated, so a sequential scan is what the plan takes.",
    ),
    "pk_rollup_dirty_buckets": IndexQuery(
        "the oldest dirty hours of a raw table (refresh); one mark per bucket",
        "SELECT bucket_start FROM rollup_dirty_buckets WHERE source_table = 'traces' AND grain = 'hour'\n"
        " ORDER BY bucket_start LIMIT 24",
        "Empty between refreshes (a few rows at most), so a sequential scan is what the plan takes.",
    ),
    # -- job_runs ------------------------------------------------------------------------------
    "pk_job_runs": IndexQuery(
        "upsert of a job's start and end by job name (scheduler, `jobs run`); one row per job",
        "INSERT INTO job_runs (job_name, last_started_at) VALUES ('rollups', '2026-11-05 00:00+00')\n"
        "ON CONFLICT (job_name) DO UPDATE SET last_started_at = excluded.last_started_at",
    ),
    # -- audit_log -----------------------------------------------------------------------------
    "pk_audit_log": IndexQuery(
        "none in the code: the key identifies an entry (the tie-breaker of the newest-first order); nothing looks one up by id",
        "SELECT * FROM audit_log WHERE entry_id = 4242",
    ),
    "ix_audit_log_license_id_occurred_at": IndexQuery(
        "one license's audit trail, newest first (GET /api/v1/admin/audit?license_id=)",
        "SELECT * FROM audit_log WHERE license_id = {license_id} ORDER BY occurred_at DESC, entry_id DESC LIMIT 100",
        "Without `license_id` (the same route's default, every license) the index cannot give the order, since "
        "`license_id` leads it: that listing sorts the whole table for its top 100.",
    ),
    # -- query_scopes --------------------------------------------------------------------------
    "pk_query_scopes": IndexQuery(
        "the license of the running user query: the `query_isolation` policies' lookup of their own backend's row "
        "(also the owner's upsert before and delete after each query)",
        "SELECT license_id FROM query_scopes WHERE backend_pid = pg_backend_pid()",
        "A row per user query running at that moment, so a handful at most: a sequential scan is cheaper, and the "
        "key is the upsert's conflict arbiter and keeps one license per connection.",
    ),
    # -- retention_overrides -------------------------------------------------------------------
    "pk_retention_overrides": IndexQuery(
        "upsert of a license's retention of one data kind (API, CLI); one override per license and kind; "
        "ON DELETE CASCADE from licenses",
        "INSERT INTO retention_overrides (license_id, data_kind, retention_days, created_at, updated_at)\n"
        "VALUES ({license_id}, 'events', 30, '2026-11-05 00:00+00', '2026-11-05 00:00+00')\n"
        "ON CONFLICT (license_id, data_kind)\n"
        "DO UPDATE SET retention_days = EXCLUDED.retention_days, updated_at = EXCLUDED.updated_at",
    ),
    # -- partition_archives --------------------------------------------------------------------
    "pk_partition_archives": IndexQuery(
        "none in the code: the key identifies an archive; archives are found by table and partition name",
        "SELECT * FROM partition_archives WHERE archive_id = 42",
    ),
    "uq_partition_archives_table_name_partition_name": IndexQuery(
        "whether an expired partition was archived already (retention), the archive's upsert and its restore "
        "mark; one archive per partition",
        "SELECT path FROM partition_archives\n"
        " WHERE table_name = 'telemetry_events' AND partition_name = 'telemetry_events_p20260915'",
    ),
    # -- retention_settings --------------------------------------------------------------------
    "pk_retention_settings": IndexQuery(
        "the retention job's upsert of whether it archives; cleanup_old_telemetry_data reads the one row "
        "(the key and its CHECK keep it to one)",
        "SELECT archive_before_drop FROM retention_settings WHERE settings_id",
    ),
}


# An example query per view, to show how a filter on the view reaches the tables beneath it.
VIEW_QUERIES: dict[str, str] = {
    "telemetry_events_hourly_summary": "SELECT * FROM telemetry_events_hourly_summary\n"
    " WHERE hour >= '2026-11-03 10:00+00' AND hour < '2026-11-03 12:00+00'",
    "system_metrics_service_summary": "SELECT * FROM system_metrics_service_summary\n"
    " WHERE service_name = 'checkout' AND hour >= '2026-11-03 10:00+00' AND hour < '2026-11-03 12:00+00'",
    "traces_service_summary": "SELECT * FROM traces_service_summary\n"
    " WHERE service_name = 'orders' AND hour >= '2026-11-03 10:00+00' AND hour < '2026-11-03 12:00+00'",
    "business_metrics_kpi_summary": "SELECT * FROM business_metrics_kpi_summary\n"
    " WHERE metric_name = 'mrr' AND license_id IS NULL",
    "storage_by_license": "SELECT * FROM storage_by_license WHERE license_id = 17",
}

TENANT_ROLE = "fernando_telemetry_tenant"
QUERY_ROLE = "fernando_telemetry_query"
READER_ROLE = "fernando_telemetry_query_reader"


@dataclass(frozen=True)
class ScopedQuery:
    """A query as one of the two roles sees it, scoped to the sample license: how a policy shows in a plan."""

    title: str
    role: str
    sql: str


SCOPED_QUERIES = (
    ScopedQuery(
        "A license key's active alerts (the tenant role)",
        TENANT_ROLE,
        "SELECT alert_id, severity, title, triggered_at FROM alerts\n"
        " WHERE status IN ('active', 'acknowledged') ORDER BY triggered_at DESC LIMIT 50",
    ),
    ScopedQuery(
        "A manual resolve locking its group's state (the tenant role; the policy of a table without `license_id`)",
        TENANT_ROLE,
        "SELECT rule_id FROM alert_rule_states WHERE rule_id = {rule_id} AND fingerprint = '{fingerprint}' FOR UPDATE",
    ),
    ScopedQuery(
        "User SQL counting a day's events by type (the query reader role)",
        READER_ROLE,
        "SELECT event_type, count(*) FROM telemetry_events\n"
        " WHERE event_timestamp >= '2026-11-03 00:00+00' AND event_timestamp < '2026-11-04 00:00+00'\n"
        " GROUP BY event_type",
    ),
)


def scope_setup(role: str) -> list[str]:
    """Statements that make the rest of a transaction run as ``role`` for the sample license, as the app does."""
    license_id = int(SAMPLE["license_id"])
    if role == TENANT_ROLE:
        return [f"SET LOCAL ROLE {TENANT_ROLE}", f"SELECT set_config('fernando_telemetry.license_id', '{license_id}', true)"]
    return [
        f"INSERT INTO query_scopes (backend_pid, license_id) VALUES (pg_backend_pid(), {license_id})",
        f"SET LOCAL ROLE {READER_ROLE}",
    ]


def query_sql(index_name: str) -> str:
    return INDEX_QUERIES[index_name].sql.format(**SAMPLE)


# -- where the database comes from ----------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """A new empty database: a temporary one on ``server_url``, or one in a throwaway embedded cluster."""
    if server_url:
        yield from _temporary_database(server_url)
        return
    root = Path(tempfile.mkdtemp(prefix="ft-schemadoc-"))
    cluster = EmbeddedPostgres(root, port=0, database="schemadoc", durable=False)
    try:
        progress("starting embedded PostgreSQL")
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _temporary_database(server_url: str) -> Iterator[str]:
    maintenance_url = libpq_url(server_url)
    name = f"ft_schema_doc_{uuid.uuid4().hex[:10]}"
    try:
        connection = psycopg.connect(maintenance_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"schema_doc: cannot connect to the --database-url server: {_first_line(exc)}") from exc
    with connection:
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise SystemExit(
                f"schema_doc: cannot create the temporary database {name}: {_first_line(exc)} "
                "(the role needs CREATEDB; or omit --database-url to use an embedded PostgreSQL)"
            ) from exc
    progress(f"created temporary database {name}")
    try:
        yield sqlalchemy_url(server_url).set(database=name, drivername="postgresql").render_as_string(hide_password=False)
    finally:
        with psycopg.connect(maintenance_url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        progress(f"dropped temporary database {name}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def migrate(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(session, first_day=FIRST_DAY, last_day=FIRST_DAY + timedelta(days=DAYS - 1))
    finally:
        engine.dispose()


# -- the data set ---------------------------------------------------------------------------------

EVENT_TYPES = {
    "user_action": 50,
    "api_event": 25,
    "system_event": 10,
    "performance_event": 8,
    "error_event": 4,
    "security_event": 2,
    "business_event": 1,
}
EVENT_NAMES = {
    "user_action": ["page_view", "click", "search", "form_submit", "download"],
    "api_event": ["request_completed", "rate_limited"],
    "system_event": ["job_started", "job_finished", "cache_evicted"],
    "performance_event": ["slow_query", "page_load"],
    "error_event": ["exception", "http_5xx"],
    "security_event": ["login_failed", "password_changed"],
    "business_event": ["subscription_started", "invoice_paid"],
}
FEATURES = [f"feature_{n:02d}" for n in range(58)] + ["bulk_export", "sso_login"]
SERVICES = [
    "api-gateway",
    "checkout",
    "orders",
    "payments",
    "inventory",
    "search",
    "users",
    "notifications",
    "billing",
    "reports",
    "auth",
    "catalog",
    "shipping",
    "recommendations",
    "analytics",
]
METRICS = {
    "http.server.duration": "histogram",
    "http.server.requests": "counter",
    "db.client.duration": "timer",
    "process.cpu.utilization": "gauge",
    "process.memory.rss": "gauge",
    "queue.depth": "gauge",
    "cache.hits": "counter",
    "cache.misses": "counter",
    "jobs.duration": "distribution",
    "errors": "counter",
    "gc.pause": "timer",
    "threads": "gauge",
    "open_connections": "gauge",
    "disk.io": "counter",
    "net.bytes_sent": "counter",
    "net.bytes_received": "counter",
    "lock.wait": "timer",
    "tasks": "gauge",
    "retries": "counter",
    "payload.size": "distribution",
}
ENDPOINTS = [f"/api/v1/resource{n:02d}/{{id}}" for n in range(79)] + ["/api/v1/invoices/{id}/pdf"]
OPERATIONS = [
    "GET /api/v1/orders",
    "POST /api/v1/orders",
    "GET /api/v1/orders/{id}",
    "SELECT orders",
    "INSERT orders",
    "publish order.created",
    "GET /api/v1/catalog",
    "charge",
    "refund",
    "render",
]
PEERS = [f"peer-{n:02d}" for n in range(29)] + ["payments-gateway"]
KPIS = {
    "mrr": "revenue",
    "arr": "revenue",
    "active_users": "user_engagement",
    "new_signups": "acquisition",
    "churned_licenses": "retention",
    "trial_conversion": "conversion",
    "api_calls": "usage",
    "storage_gb": "usage",
    "p95_latency_ms": "performance",
    "infra_cost": "cost",
    "nps": "other",
    "sessions": "user_engagement",
}


def load(url: str) -> dict[str, int]:
    """Fill every table with a deterministic, realistically shaped data set, then ANALYZE."""
    rng = random.Random(SEED)
    counts: dict[str, int] = {}
    with psycopg.connect(libpq_url(url), options="-c timezone=UTC") as connection:
        counts["licenses"] = _copy(
            connection,
            "licenses",
            ("name", "plan", "max_users"),
            (
                (f"Customer {n}", rng.choice(["free", "pro", "enterprise"]), rng.choice([5, 50, 500]))
                for n in range(1, LICENSES + 1)
            ),
        )
        # every user belongs to a license (users are keyed by (license_id, user_id))
        user_license = {n: rng.randint(1, LICENSES) for n in range(1, USERS + 1)}
        counts["users"] = _copy(
            connection,
            "users",
            ("user_id", "email", "display_name", "license_id"),
            (
                (user_id(n), f"user.{n:05d}@example.com" if n % 3 else f"User.{n:05d}@Example.com", f"User {n}", license_id)
                for n, license_id in user_license.items()
            ),
        )
        counts["api_keys"] = _copy(
            connection,
            "api_keys",
            ("name", "key_prefix", "key_hash", "license_id", "scopes", "created_at", "revoked_at"),
            (
                (
                    f"key {n}",
                    f"ft_{key_hash(n)[:8]}",
                    key_hash(n),
                    (n % (LICENSES + 5)) + 1 if n % (LICENSES + 5) < LICENSES else None,
                    "{ingest,read}",
                    day_start(-rng.randint(1, 365)),
                    day_start(-1) if n % 10 == 0 else None,
                )
                for n in range(1, 3 * LICENSES + 16)
            ),
        )
        counts["ingest_batches"] = _copy(
            connection,
            "ingest_batches",
            ("api_key_id", "endpoint", "idempotency_key", "response", "created_at"),
            (
                (
                    (n % 50) + 1,
                    rng.choice(["events", "spans", "system-metrics"]),
                    f"batch-{n}",
                    '{"accepted": 500, "rejected": []}',
                    day_start(-2) + timedelta(seconds=n * 7),
                )
                for n in range(1, 20_001)
            ),
        )
        user_weights = _zipf_weights(USERS)
        counts["telemetry_events"] = _copy(
            connection,
            "telemetry_events",
            (
                "event_id",
                "event_type",
                "event_name",
                "category",
                "source",
                "user_id",
                "license_id",
                "session_id",
                "payload",
                "duration_ms",
                "environment",
                "app_version",
                "event_timestamp",
            ),
            _events(rng, user_license, user_weights),
        )
        counts["system_metrics"] = _copy(
            connection,
            "system_metrics",
            (
                "metric_name",
                "metric_type",
                "value",
                "unit",
                "service_name",
                "host_name",
                "instance_id",
                "labels",
                "sample_count",
                "p50",
                "p90",
                "p95",
                "p99",
                "timestamp",
            ),
            _metric_samples(rng),
        )
        counts["traces"] = _copy(
            connection,
            "traces",
            (
                "trace_id",
                "span_id",
                "parent_span_id",
                "operation_name",
                "service_name",
                "span_kind",
                "start_time",
                "end_time",
                "duration_ms",
                "status",
                "status_code",
                "http_method",
                "http_route",
                "user_id",
                "license_id",
                "attributes",
                "environment",
            ),
            _spans(rng, user_license, user_weights),
        )
        counts["business_metrics"] = _copy(
            connection,
            "business_metrics",
            (
                "metric_name",
                "metric_category",
                "metric_value",
                "currency",
                "period_start",
                "period_end",
                "period_type",
                "license_id",
                "source",
            ),
            _kpis(rng),
        )
        counts["alert_rules"] = _copy(
            connection,
            "alert_rules",
            (
                "name",
                "condition_config",
                "severity",
                "enabled",
                "license_id",
                "last_evaluated_at",
            ),
            _rules(rng),
        )
        counts["alerts"] = _copy(
            connection,
            "alerts",
            (
                "rule_id",
                "status",
                "severity",
                "title",
                "fingerprint",
                "triggered_at",
                "resolved_at",
                "license_id",
            ),
            _alerts(rng),
        )
        counts.update(_load_operations(connection, rng))
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")
    engine = make_engine(url, pool_size=1)
    try:
        with session_factory(engine).begin() as session:
            rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(url), options="-c timezone=UTC", autocommit=True) as connection:
        for table in (
            "telemetry_events_hourly",
            "system_metrics_hourly",
            "traces_hourly",
            "rollup_state",
            "rollup_dirty_buckets",
        ):
            counts[table] = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]  # type: ignore[index]
        connection.execute("VACUUM ANALYZE")
        watermark = connection.execute("SELECT min(watermark) FROM rollup_state").fetchone()[0]  # type: ignore[index]
        SAMPLE["watermark"] = watermark.isoformat()
    return counts


def _copy(connection: psycopg.Connection[Any], table: str, columns: tuple[str, ...], rows: Any) -> int:
    progress(f"loading {table}")
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    # rows of no license belong to the platform license where the column is NOT NULL (revision 0018)
    owned = "license_id" in columns and table in OWNED_TABLES
    position = columns.index("license_id") if owned else -1
    written = 0
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            if owned and row[position] is None:
                row = (*row[:position], PLATFORM_LICENSE_ID, *row[position + 1 :])
            copy.write_row(row)
            written += 1
    return written


OWNED_TABLES = ("telemetry_events", "system_metrics", "traces", "business_metrics")


def _zipf_weights(n: int) -> list[float]:
    weights = [1.0 / (rank**0.8) for rank in range(1, n + 1)]
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    return cumulative


def _spread(rng: random.Random, n: int, count: int) -> datetime:
    """The n-th of ``count`` arrivals over the data set's days, in time order with a little jitter."""
    seconds = min((n + rng.random()) * DAYS * 86_400 / count, DAYS * 86_400 - 60)
    return day_start(0) + timedelta(seconds=seconds)


def _events(rng: random.Random, user_license: dict[int, int | None], user_weights: list[float]) -> Iterator[tuple[Any, ...]]:
    types, type_weights = list(EVENT_TYPES), list(EVENT_TYPES.values())
    users = rng.choices(range(1, USERS + 1), cum_weights=user_weights, k=EVENTS)
    for n in range(EVENTS):
        event_type = rng.choices(types, type_weights)[0]
        user_n = users[n] if rng.random() < 0.85 else None
        payload: dict[str, Any] = {"feature": rng.choice(FEATURES), "plan": rng.choice(["free", "pro", "enterprise"])}
        if event_type == "error_event":
            payload["error"] = rng.choice(["TimeoutError", "KeyError", "IntegrityError"])
        yield (
            event_uuid(n),
            event_type,
            rng.choice(EVENT_NAMES[event_type]),
            rng.choice(["web", "billing", "admin", None]),
            rng.choice(["web", "api", "mobile", "sdk", "batch_job"]),
            user_id(user_n) if user_n else None,
            user_license[user_n] if user_n else None,
            f"s-{(user_n or 0)}-{n // 40}",
            json.dumps(payload),
            round(rng.lognormvariate(4, 1), 2) if event_type in ("api_event", "performance_event") else None,
            "production",
            "2.14.0",
            _spread(rng, n, EVENTS),
        )


def _metric_samples(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    names = list(METRICS)
    for n in range(METRIC_SAMPLES):
        metric_name = rng.choice(names)
        metric_type = METRICS[metric_name]
        value = rng.lognormvariate(3, 1)
        summary = metric_type in ("histogram", "timer", "distribution")
        host = rng.randint(1, 40)
        yield (
            metric_name,
            metric_type,
            value,
            "ms" if summary else None,
            rng.choice(SERVICES),
            f"host-{host:02d}",
            f"i-{host:02d}{rng.randint(0, 3)}",
            json.dumps({"region": rng.choice(["eu-west-1", "us-east-1", "ap-south-1"]), "endpoint": rng.choice(ENDPOINTS)}),
            rng.randint(1, 500) if summary else 1,
            *((value * 0.8, value * 1.5, value * 1.9, value * 3.0) if summary else (None, None, None, None)),
            _spread(rng, n, METRIC_SAMPLES),
        )


def _spans(rng: random.Random, user_license: dict[int, int | None], user_weights: list[float]) -> Iterator[tuple[Any, ...]]:
    traces = SPANS // 8
    written, trace_n = 0, 0
    while written < SPANS:
        trace_start = _spread(rng, trace_n, traces)
        user_n = rng.choices(range(1, USERS + 1), cum_weights=user_weights)[0] if rng.random() < 0.7 else None
        span_total = min(rng.randint(1, 15), SPANS - written)
        for position in range(span_total):
            service = "api-gateway" if position == 0 else rng.choice(SERVICES)
            operation = rng.choice(OPERATIONS)
            start = trace_start + timedelta(milliseconds=position * rng.randint(1, 20))
            duration_ms = rng.lognormvariate(3, 1)
            failed = rng.random() < 0.03
            kind = "server" if position == 0 else rng.choice(["internal", "client", "server", "producer"])
            attributes: dict[str, Any] = {"http.method": operation.split(" ")[0]} if operation[0].isupper() else {}
            if kind == "client":
                attributes["peer.service"] = rng.choice(PEERS)
            yield (
                trace_id(trace_n),
                span_id(trace_n, position),
                span_id(trace_n, position - 1) if position else None,
                operation,
                service,
                kind,
                start,
                start + timedelta(milliseconds=duration_ms),
                duration_ms,
                "error" if failed else "ok",
                (500 if failed else 200) if position == 0 else None,
                operation.split(" ")[0] if position == 0 else None,
                None,
                user_id(user_n) if user_n else None,
                user_license[user_n] if user_n else None,
                json.dumps(attributes),
                "production",
            )
        written += span_total
        trace_n += 1


def _kpis(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for day in range(-KPI_DAYS + DAYS, DAYS):
        for license_id in [None, *range(1, KPI_LICENSES + 1)]:
            for name, category in KPIS.items():
                yield (
                    name,
                    category,
                    round(rng.uniform(10, 10_000), 2),
                    "EUR" if category in ("revenue", "cost") else None,
                    day_start(day),
                    day_start(day + 1),
                    "daily",
                    license_id,
                    "kpi_job",
                )


def _rules(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    names = ["High error rate", "Slow checkout", "Queue backlog", "Login failures", "Low conversion"]
    for n in range(ALERT_RULES):
        license_id = _rule_license(n + 1)
        evaluated = day_start(DAYS) - timedelta(seconds=rng.randint(0, 600)) if rng.random() < 0.95 else None
        yield (
            names[n % len(names)],
            json.dumps({"metric": "errors", "op": ">", "threshold": 5}),
            rng.choice(["info", "warning", "error", "critical"]),
            rng.random() < 0.85,
            license_id,
            evaluated,
        )


def _alerts(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    statuses = {"resolved": 94, "active": 3, "acknowledged": 2, "suppressed": 1}
    for n in range(ALERTS):
        rule_n = (n % ALERT_RULES) + 1
        status = rng.choices(list(statuses), list(statuses.values()))[0] if n >= ALERT_RULES else "resolved"
        if rule_n == SAMPLE["rule_id"] and n < ALERT_RULES:
            status = "active"
        triggered = day_start(DAYS - KPI_DAYS) + timedelta(seconds=n * KPI_DAYS * 86_400 / ALERTS)
        yield (
            rule_n,
            status,
            rng.choice(["warning", "error", "critical"]),
            f"Alert {n}",
            fingerprint(rule_n, n // ALERT_RULES),
            triggered,
            triggered + timedelta(minutes=rng.randint(1, 600)) if status == "resolved" else None,
            rng.randint(1, LICENSES),
        )


NOW = day_start(DAYS)
"""The data set's present: the queries above ask for what is due, in force or pending at this instant."""
CHANNEL_KINDS = (("ops-email", "email"), ("team-slack", "slack"), ("pager-webhook", "webhook"))
AUDIT_ACTIONS = {
    "key.create": 8,
    "key.revoke": 2,
    "license.update": 1,
    "user.create": 6,
    "user.update": 2,
    "rule.create": 3,
    "rule.update": 6,
    "rule.delete": 1,
    "channel.create": 1,
    "channel.update": 1,
    "silence.create": 4,
    "silence.expire": 2,
    "silence.update": 1,
    "retention.override": 1,
}


def _load_operations(connection: psycopg.Connection[Any], rng: random.Random) -> dict[str, int]:
    """Alerting history, channels and their outbox, silences, job runs, the audit log and the lifecycle tables,
    shaped after the alerts already loaded (90 days of them, 6% still open)."""
    counts: dict[str, int] = {}
    counts["notification_channels"] = _copy(
        connection,
        "notification_channels",
        (
            "license_id",
            "name",
            "type",
            "config",
            "secrets",
            "send_resolved",
            "enabled",
            "created_at",
            "updated_at",
        ),
        _channels(rng),
    )
    channels: dict[int | None, list[tuple[int, str, str, bool]]] = {}
    for channel_id, license_id, name, type_, send_resolved in connection.execute(
        "SELECT channel_id, license_id, name, type, send_resolved FROM notification_channels ORDER BY channel_id"
    ):
        channels.setdefault(license_id, []).append((channel_id, name, type_, send_resolved))
    alerts = connection.execute(
        "SELECT alert_id, rule_id, license_id, fingerprint, status, severity, title, triggered_at, resolved_at"
        "  FROM alerts ORDER BY alert_id"
    ).fetchall()
    counts["alert_rule_states"] = _copy(
        connection,
        "alert_rule_states",
        (
            "rule_id",
            "fingerprint",
            "group_key",
            "state",
            "active_since",
            "last_true_at",
            "last_value",
            "last_evaluated_at",
            "alert_id",
            "updated_at",
        ),
        _rule_states(rng, alerts),
    )
    counts["alert_events"] = _copy(
        connection,
        "alert_events",
        (
            "alert_id",
            "rule_id",
            "license_id",
            "fingerprint",
            "group_key",
            "from_state",
            "to_state",
            "actor",
            "note",
            "observed_value",
            "details",
            "occurred_at",
        ),
        _alert_events(rng, alerts),
    )
    counts["alert_notifications"] = _copy(
        connection,
        "alert_notifications",
        (
            "alert_id",
            "channel_id",
            "channel_name",
            "license_id",
            "kind",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "updated_at",
        ),
        _notifications(rng, alerts, channels),
    )
    channel_types = {channel_id: type_ for listed in channels.values() for channel_id, _, type_, _ in listed}
    notifications = connection.execute(
        "SELECT notification_id, alert_id, license_id, channel_id, channel_name, kind, status, attempts, created_at"
        "  FROM alert_notifications ORDER BY notification_id"
    ).fetchall()
    counts["alert_deliveries"] = _copy(
        connection,
        "alert_deliveries",
        (
            "notification_id",
            "alert_id",
            "license_id",
            "channel_id",
            "channel_name",
            "channel_type",
            "kind",
            "attempt",
            "outcome",
            "http_status",
            "smtp_reply",
            "error",
            "latency_ms",
            "attempted_at",
        ),
        _deliveries(rng, notifications, channel_types),
    )
    counts["silences"] = _copy(
        connection,
        "silences",
        (
            "license_id",
            "matchers",
            "starts_at",
            "ends_at",
            "created_by",
            "comment",
            "expired_at",
            "created_at",
        ),
        _silences(rng),
    )
    counts["job_runs"] = _copy(
        connection,
        "job_runs",
        (
            "job_name",
            "last_started_at",
            "last_finished_at",
            "last_outcome",
            "last_summary",
            "last_error",
            "last_duration_ms",
            "runs",
            "failures",
        ),
        (
            (
                name,
                NOW - timedelta(seconds=40 + 7 * n),
                NOW - timedelta(seconds=38 + 7 * n),
                "ok",
                "done",
                None,
                round(rng.uniform(5, 2_000), 1),
                5_000 + 100 * n,
                n,
            )
            for n, name in enumerate(JOB_NAMES)
        ),
    )
    counts["audit_log"] = _copy(
        connection,
        "audit_log",
        (
            "occurred_at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "license_id",
            "details",
        ),
        _audit_entries(rng),
    )
    counts["query_scopes"] = _copy(
        connection,
        "query_scopes",
        ("backend_pid", "license_id", "created_at"),
        ((40_000 + n, rng.randint(1, LICENSES), NOW - timedelta(seconds=n)) for n in range(2)),
    )
    counts["retention_overrides"] = _copy(
        connection,
        "retention_overrides",
        (
            "license_id",
            "data_kind",
            "retention_days",
            "created_at",
            "updated_at",
        ),
        (
            (license_id, kind, rng.choice([7, 14, 30, 60, 180]), day_start(-license_id), day_start(-license_id))
            for license_id in range(1, LICENSES + 1, 5)
            for kind in ("events", "metrics", "traces")
            if rng.random() < 0.6
        ),
    )
    counts["partition_archives"] = _copy(
        connection,
        "partition_archives",
        (
            "table_name",
            "partition_name",
            "range_start",
            "range_end",
            "row_count",
            "file_bytes",
            "sha256",
            "path",
            "archived_at",
            "restored_at",
        ),
        _archives(rng),
    )
    return counts


def _channels(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for license_id in [None, *range(1, LICENSES + 1)]:
        kinds = CHANNEL_KINDS[:2] if license_id is None else rng.sample(CHANNEL_KINDS, rng.randint(1, 3))
        domain = "platform.example.com" if license_id is None else f"customer{license_id}.example.com"
        for name, type_ in kinds:
            config = {
                "email": {"to": [f"oncall@{domain}"], "smtp_host": "smtp.example.com", "smtp_port": 587, "starttls": True},
                "slack": {"webhook_url": "https://hooks.slack.com/services/****", "channel": "#alerts"},
                "webhook": {"url": f"https://hooks.{domain}/****", "format": "fernando"},
            }[type_]
            created = day_start(-rng.randint(30, 400))
            yield (
                license_id,
                name,
                type_,
                json.dumps(config),
                "v1." + hashlib.sha256(f"{license_id}{name}".encode()).hexdigest() * 2,
                rng.random() < 0.9,
                rng.random() < 0.95,
                created,
                created,
            )


def _rule_license(rule_n: int) -> int | None:
    """The license ``_rules`` gave rule ``rule_n`` (the first five rules are platform-wide)."""
    return (rule_n - 1) // 5 + 1 if rule_n > 5 else None


def _group_key(group_n: int) -> str:
    return json.dumps({"service_name": SERVICES[group_n % len(SERVICES)]})


def _rule_states(rng: random.Random, alerts: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    open_alerts = {(rule_id, fp): alert_id for alert_id, rule_id, _, fp, status, *_ in alerts if status != "resolved"}
    for rule_n in range(1, ALERT_RULES + 1):
        for group_n in range(rng.randint(1, 16) if rule_n != SAMPLE["rule_id"] else 16):
            fp = fingerprint(rule_n, group_n)
            alert_id = open_alerts.get((rule_n, fp))
            state = "firing" if alert_id else ("pending" if rng.random() < 0.05 else "inactive")
            since = NOW - timedelta(minutes=rng.randint(1, 600)) if state != "inactive" else None
            yield (
                rule_n,
                fp,
                _group_key(group_n),
                state,
                since,
                NOW - timedelta(seconds=30) if since else None,
                round(rng.lognormvariate(2, 1), 2),
                NOW - timedelta(seconds=rng.randint(0, 60)),
                alert_id,
                NOW,
            )


def _alert_events(rng: random.Random, alerts: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Each alert's own transitions (pending, fire, acknowledge, repeat, resolve) in time order, and between them the
    pending episodes that cleared before firing, which keep no alert."""
    untagged = sorted(
        (NOW - timedelta(seconds=rng.uniform(0, KPI_DAYS * 86_400)), (n % ALERT_RULES) + 1, rng.randint(0, 16))
        for n in range(UNTAGGED_PENDING)
    )
    # the episode of the sample group that just started: its pending step waits for an alert
    untagged.append((NOW - timedelta(minutes=5), SAMPLE["rule_id"], 0))
    position = 0

    def event(
        alert_id: int | None,
        rule_id: int,
        license_id: int,
        fp: str,
        group_n: int,
        from_state: str,
        to_state: str,
        action: str,
        at: datetime,
        actor: str = "evaluator",
        note: str | None = None,
    ) -> tuple[Any, ...]:
        return (
            alert_id,
            rule_id,
            license_id,
            fp,
            _group_key(group_n),
            from_state,
            to_state,
            actor,
            note,
            round(rng.lognormvariate(2, 1), 2),
            json.dumps({"action": action, "reason": "threshold crossed"}),
            at,
        )

    for alert_id, rule_id, license_id, fp, status, _, _, triggered, resolved in alerts:
        group_n = (alert_id - 1) // ALERT_RULES
        while position < len(untagged) and untagged[position][0] < triggered:
            at, rule_n, untagged_group = untagged[position]
            fp_n = fingerprint(rule_n, untagged_group)
            yield event(None, rule_n, _rule_license(rule_n), fp_n, untagged_group, "inactive", "pending", "pending", at)
            if at < NOW - timedelta(minutes=10):
                yield event(
                    None,
                    rule_n,
                    _rule_license(rule_n),
                    fp_n,
                    untagged_group,
                    "pending",
                    "inactive",
                    "clear",
                    at + timedelta(minutes=3),
                )
            position += 1
        if rng.random() < 0.6:
            yield event(
                alert_id, rule_id, license_id, fp, group_n, "inactive", "pending", "pending", triggered - timedelta(minutes=5)
            )
        yield event(alert_id, rule_id, license_id, fp, group_n, "pending", "active", "fire", triggered)
        if status == "acknowledged" or (status == "resolved" and rng.random() < 0.3):
            yield event(
                alert_id,
                rule_id,
                license_id,
                fp,
                group_n,
                "active",
                "acknowledged",
                "acknowledge",
                triggered + timedelta(minutes=rng.randint(1, 30)),
                f"key:{rng.randint(1, 50)}",
                "looking into it",
            )
        if rng.random() < 0.1:
            yield event(alert_id, rule_id, license_id, fp, group_n, "active", "active", "repeat", triggered + timedelta(hours=4))
        if resolved is not None:
            yield event(alert_id, rule_id, license_id, fp, group_n, "active", "resolved", "resolve", resolved)
    for at, rule_n, untagged_group in untagged[position:]:
        yield event(
            None,
            rule_n,
            _rule_license(rule_n),
            fingerprint(rule_n, untagged_group),
            untagged_group,
            "inactive",
            "pending",
            "pending",
            at,
        )


def _notifications(
    rng: random.Random, alerts: list[tuple[Any, ...]], channels: dict[int | None, list[tuple[int, str, str, bool]]]
) -> Iterator[tuple[Any, ...]]:
    """A firing message per channel of the alert's license the rule names, a resolved one when it resolved; nearly
    all sent at once. Pending: some of the last hours' messages, to receivers failing for now, due or waiting to retry."""
    for alert_id, rule_id, license_id, _, _, severity, title, triggered, resolved in alerts:
        for channel_id, name, _, send_resolved in channels.get(license_id, []):
            if rng.random() < 0.3 and alert_id != SAMPLE["alert_id"]:
                continue
            sends = [("firing", triggered)] + ([("resolved", resolved)] if resolved is not None and send_resolved else [])
            for kind, at in sends:
                if NOW - at < timedelta(hours=6) and rng.random() < 0.3:
                    state, attempts, next_attempt = "pending", rng.randint(1, 4), NOW + timedelta(minutes=rng.randint(-5, 30))
                elif rng.random() < 0.03:
                    state, attempts, next_attempt = "failed", NOTIFICATION_MAX_ATTEMPTS, at + timedelta(minutes=30)
                else:
                    state, attempts, next_attempt = (
                        "sent",
                        1 if rng.random() < 0.9 else rng.randint(2, 3),
                        at + timedelta(seconds=2),
                    )
                payload = {
                    "alert_id": alert_id,
                    "rule_id": rule_id,
                    "title": title,
                    "severity": severity,
                    "kind": kind,
                    "status": "resolved" if kind == "resolved" else "firing",
                    "starts_at": triggered.isoformat(),
                }
                yield (
                    alert_id,
                    channel_id,
                    name,
                    license_id,
                    kind,
                    json.dumps(payload),
                    state,
                    attempts,
                    next_attempt,
                    "HTTP 503 from the receiver" if state == "failed" else None,
                    at,
                    next_attempt,
                )


def _deliveries(
    rng: random.Random, notifications: list[tuple[Any, ...]], channel_types: dict[int, str]
) -> Iterator[tuple[Any, ...]]:
    for notification_id, alert_id, license_id, channel_id, name, kind, status, attempts, created in notifications:
        channel_type = channel_types.get(channel_id, "unknown")
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            outcome = "sent" if status == "sent" and last else ("abandoned" if status == "failed" and last else "failed")
            ok = outcome == "sent"
            http_status = None if channel_type == "email" else (200 if ok else 503)
            yield (
                notification_id,
                alert_id,
                license_id,
                channel_id,
                name,
                channel_type,
                kind,
                attempt,
                outcome,
                http_status,
                "250 2.0.0 Ok: queued" if channel_type == "email" and ok else None,
                None if ok else "the receiver answered 503",
                round(rng.lognormvariate(4, 0.7), 1),
                created + timedelta(minutes=2 ** (attempt - 1) - 1, seconds=1),
            )


def _silences(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """Maintenance windows over the 90 days, a fifth ended early; a few in force now and two still to start."""
    for n in range(SILENCES):
        starts = day_start(DAYS - KPI_DAYS) + timedelta(seconds=(n + rng.random()) * KPI_DAYS * 86_400 / SILENCES)
        if n >= SILENCES - 2:
            starts = NOW + timedelta(hours=n - SILENCES + 4)
        ends = starts + timedelta(hours=rng.choice([1, 2, 4, 8, 24, 48]))
        expired = starts + (ends - starts) / 2 if rng.random() < 0.2 and ends < NOW else None
        rule = ["High error rate", "Slow checkout", "Queue backlog", "Login failures", "Low conversion"][n % 5]
        yield (
            rng.randint(1, LICENSES) if rng.random() < 0.9 else None,
            json.dumps(
                [{"name": "alertname", "op": "=", "value": rule}, {"name": "service_name", "op": "=~", "value": "check.*"}]
            ),
            starts,
            expired or ends,
            f"key:{rng.randint(1, 50)}",
            "deploy window",
            expired,
            starts - timedelta(minutes=10),
        )


def _audit_entries(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    actions, weights = list(AUDIT_ACTIONS), list(AUDIT_ACTIONS.values())
    for n in range(AUDIT_ENTRIES):
        action = rng.choices(actions, weights)[0]
        yield (
            day_start(DAYS - KPI_DAYS) + timedelta(seconds=(n + rng.random()) * KPI_DAYS * 86_400 / AUDIT_ENTRIES),
            "cli" if rng.random() < 0.1 else f"key:{rng.randint(1, 50)}",
            action,
            action.split(".")[0],
            str(rng.randint(1, 5_000)),
            rng.randint(1, LICENSES) if rng.random() < 0.9 else None,
            json.dumps({"fields": ["name", "enabled"]} if action.endswith("update") else {}),
        )


def _archives(rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """The daily partitions retention dropped in the last two months, each written to Parquet first."""
    for table in ("telemetry_events", "system_metrics", "traces"):
        for day in range(-ARCHIVED_DAYS, 0):
            start = day_start(day)
            partition = f"{table}_p{start:%Y%m%d}"
            rows = rng.randint(40_000, 60_000)
            yield (
                table,
                partition,
                start,
                start + timedelta(days=1),
                rows,
                rows * 60,
                hashlib.sha256(partition.encode()).hexdigest(),
                f"/var/lib/fernando-telemetry/archives/{table}/{partition}.parquet",
                start + timedelta(days=31, minutes=5),
                start + timedelta(days=40) if day == -ARCHIVED_DAYS + 3 else None,
            )


# -- the catalog ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[Column]
    partition_key: str | None
    partitions: list[str]
    checks: list[tuple[str, str]]


@dataclass(frozen=True)
class IndexInfo:
    name: str
    table: str
    method: str
    kind: str
    definition: str

    @property
    def droppable(self) -> bool:
        """Not backing a constraint, so dropping it (in a rolled-back transaction) shows the plan without it."""
        return self.kind in ("secondary", "unique index")


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    definition: str
    supporting_index: str | None
    unusable_partial_index: str | None


@dataclass(frozen=True)
class Plan:
    text: str
    indexes_used: list[str]
    access_paths: list[str]
    relations: list[str]

    def uses(self, index_name: str) -> bool:
        return index_name in self.indexes_used


@dataclass(frozen=True)
class Names:
    """Partitions' own indexes and tables mapped to the partitioned index or table they belong to."""

    index_parent: dict[str, str]
    table_parent: dict[str, str]

    @classmethod
    def read(cls, connection: psycopg.Connection[Any]) -> Names:
        rows = connection.execute(
            "SELECT child.relkind, child.relname, parent.relname FROM pg_inherits i"
            " JOIN pg_class child ON child.oid = i.inhrelid JOIN pg_class parent ON parent.oid = i.inhparent"
        ).fetchall()
        return cls(
            index_parent={child: parent for kind, child, parent in rows if kind == "i"},
            table_parent={child: parent for kind, child, parent in rows if kind in ("r", "p")},
        )


def read_tables(connection: psycopg.Connection[Any]) -> list[Table]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
            " AND relkind IN ('r', 'p') AND NOT relispartition AND relname <> 'alembic_version'"
        )
    ]
    missing = set(TABLE_ORDER) - set(names)
    if missing:
        raise SystemExit(f"schema_doc: expected tables missing from the migrated database: {sorted(missing)}")
    return [_read_table(connection, name) for name in _table_order(names)]


def _table_order(names: list[str]) -> list[str]:
    return [name for name in TABLE_ORDER if name in names] + sorted(set(names) - set(TABLE_ORDER))


def _read_table(connection: psycopg.Connection[Any], name: str) -> Table:
    columns = [
        Column(*row)
        for row in connection.execute(
            """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
               CASE WHEN a.attidentity = 'd' THEN 'generated by default as identity'
                    WHEN a.attidentity = 'a' THEN 'generated always as identity'
                    ELSE pg_get_expr(d.adbin, d.adrelid) END
          FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum
        """,
            (name,),
        )
    ]
    partition_key = connection.execute("SELECT pg_get_partkeydef(%s::regclass)", (name,)).fetchone()[0]  # type: ignore[index]
    children = [
        row[0]
        for row in connection.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            (name,),
        )
    ]
    checks = [
        (row[0], row[1])
        for row in connection.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'c' ORDER BY conname",
            (name,),
        )
    ]
    return Table(name, columns, partition_key, children, checks)


def read_indexes(connection: psycopg.Connection[Any]) -> list[IndexInfo]:
    """Every index of the parent tables (the partitions' own copies excluded): keys, then unique, then the rest."""
    rows = connection.execute(
        """
        SELECT i.relname, t.relname, am.amname,
               CASE WHEN x.indisprimary THEN 'primary key'
                    WHEN c.contype = 'u' THEN 'unique constraint'
                    WHEN c.contype = 'x' THEN 'exclusion constraint'
                    WHEN x.indisunique THEN 'unique index'
                    ELSE 'secondary' END,
               pg_get_indexdef(x.indexrelid)
          FROM pg_index x
          JOIN pg_class i ON i.oid = x.indexrelid
          JOIN pg_class t ON t.oid = x.indrelid
          JOIN pg_am am ON am.oid = i.relam
          LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')
         WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind IN ('r', 'p')
           AND NOT t.relispartition AND t.relname <> 'alembic_version'
         ORDER BY NOT x.indisprimary, c.contype IS NULL, NOT x.indisunique, i.relname
        """
    ).fetchall()
    indexes = [IndexInfo(*row) for row in rows]
    order = {table: position for position, table in enumerate(_table_order(sorted({index.table for index in indexes})))}
    return sorted(indexes, key=lambda index: order[index.table])


def check_coverage(indexes: list[IndexInfo]) -> None:
    """Fail unless INDEX_QUERIES names exactly the indexes of the migrated schema."""
    in_database = {index.name: index.table for index in indexes}
    problems = [
        f"  index {name} on {table} has no entry in INDEX_QUERIES: add the query it serves"
        for name, table in sorted(in_database.items())
        if name not in INDEX_QUERIES
    ] + [
        f"  INDEX_QUERIES has an entry for {name}, an index the migrated schema does not have: remove or rename it"
        for name in sorted(INDEX_QUERIES)
        if name not in in_database
    ]
    if problems:
        raise SystemExit("schema_doc: scripts/schema_doc.py is out of date with the schema:\n" + "\n".join(problems))


def read_foreign_keys(connection: psycopg.Connection[Any]) -> list[ForeignKey]:
    """Foreign keys of the parent tables and an index whose leading columns are the key's, if any."""
    keys = connection.execute(
        """
        SELECT t.relname, c.conname, pg_get_constraintdef(c.oid), c.conkey::int[], c.conrelid
          FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
         WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace AND NOT t.relispartition
        """
    ).fetchall()
    indexes = connection.execute(
        "SELECT x.indrelid, i.relname, string_to_array(x.indkey::text, ' ')::int[], pg_get_expr(x.indpred, x.indrelid),"
        "       array(SELECT attname FROM pg_attribute WHERE attrelid = x.indrelid AND attnum = ANY(x.indkey))"
        "  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    ).fetchall()
    order = {table: position for position, table in enumerate(_table_order(sorted({row[0] for row in keys})))}
    found = []
    for table, name, definition, columns, table_oid in keys:
        leading = sorted(
            (index_name, predicate, column_names)
            for index_table, index_name, index_columns, predicate, column_names in indexes
            if index_table == table_oid and set(index_columns[: len(columns)]) == set(columns)
        )
        # A partial index serves the key's "column = $1" lookups only when that implies its predicate.
        usable = [
            index_name
            for index_name, predicate, column_names in leading
            if predicate is None or _implied_by_equality(predicate, column_names)
        ]
        unusable = [f"{index_name} WHERE {predicate}" for index_name, predicate, _ in leading if index_name not in usable]
        found.append(ForeignKey(table, name, definition, usable[0] if usable else None, unusable[0] if unusable else None))
    return sorted(found, key=lambda key: (order[key.table], key.name))


def _implied_by_equality(predicate: str, column_names: list[str]) -> bool:
    match = re.fullmatch(r"\(?(\w+) IS NOT NULL\)?", predicate)
    return bool(match and match.group(1) in column_names)


def read_views(connection: psycopg.Connection[Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    views = [
        row[0]
        for row in connection.execute("SELECT viewname FROM pg_views WHERE schemaname = current_schema() ORDER BY viewname")
    ]
    return [
        (
            view,
            [
                (row[0], row[1])
                for row in connection.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    (view,),
                )
            ],
        )
        for view in views
    ]


def read_functions(connection: psycopg.Connection[Any]) -> list[tuple[str, str, str, str]]:
    rows = connection.execute(
        "SELECT proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), l.lanname"
        "  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
        " WHERE p.pronamespace = current_schema()::regnamespace AND proname = ANY(%s) ORDER BY proname",
        (list(FUNCTIONS),),
    ).fetchall()
    missing = set(FUNCTIONS) - {row[0] for row in rows}
    if missing:
        raise SystemExit(f"schema_doc: SQL functions missing from the migrated database: {sorted(missing)}")
    return [tuple(row) for row in rows]


@dataclass(frozen=True)
class Policy:
    tables: list[str]
    name: str
    roles: list[str]
    command: str
    using: str | None
    check: str | None


@dataclass(frozen=True)
class Security:
    roles: list[tuple[str, bool, list[str]]]
    """name, whether it can log in, its settings"""
    policies: list[Policy]
    """one entry per distinct policy, with every table that has it"""
    tables_without_rls: list[str]
    forced: list[str]
    """tables whose policies apply to their owner too (FORCE ROW LEVEL SECURITY)"""
    tenant_denied: list[str]
    query_readable: list[str]
    partitions: int
    partitions_with_rls: int
    partitions_tenant_reads: int


def column_doc_problems(text: str, columns: dict[str, list[str]]) -> list[str]:
    """What is wrong with the hand-written column table ``text`` for the tables and columns of ``columns``: a
    column not listed, listed twice, listed without a writer or a reader, or listed but not in the table. A row may
    name several columns (`` `p50`, `p90` ``)."""
    problems: list[str] = []
    listed: dict[str, dict[str, tuple[str, str]]] = {}
    table: str | None = None
    for line in text.splitlines():
        heading = re.fullmatch(r"## `(\w+)`.*", line.strip())
        if heading:
            table = heading.group(1)
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if table not in columns or len(cells) != 3 or cells[0] in ("column", "---"):
            continue
        for name in re.findall(r"`(\w+)`", cells[0]):
            if name in listed.setdefault(table, {}):
                problems.append(f"{table}.{name} is listed twice")
            listed[table][name] = (cells[1], cells[2])
    for table_name, names in columns.items():
        documented = listed.get(table_name, {})
        for name in names:
            if name not in documented:
                problems.append(f"{table_name}.{name} has no row (what writes it, what reads it)")
            elif not all(documented[name]):
                problems.append(f"{table_name}.{name} is listed without a writer or a reader")
        problems += [f"{table_name}.{name} is listed but is not a column" for name in sorted(set(documented) - set(names))]
    return problems


def read_column_doc(tables: list[Table]) -> str:
    """The hand-written column table, checked against the migrated tables; exits when it does not cover them."""
    text = COLUMN_DOC.read_text(encoding="utf-8")
    columns = {table.name: [column.name for column in table.columns] for table in tables if table.name in COLUMN_DOC_TABLES}
    problems = column_doc_problems(text, columns)
    if problems:
        raise SystemExit("schema_doc: docs/schema_columns.md does not match the schema:\n  " + "\n  ".join(problems))
    return text


def read_security(connection: psycopg.Connection[Any]) -> Security:
    """The two roles, the row-level security policies and what each role can reach, from the catalog."""
    roles = [
        (row[0], row[1], list(row[2]))
        for row in connection.execute(
            "SELECT rolname, rolcanlogin, coalesce(rolconfig, '{}') FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname DESC",
            (list(ROLES),),
        )
    ]
    missing = set(ROLES) - {name for name, _, _ in roles}
    if missing:
        raise SystemExit(f"schema_doc: roles missing from the migrated cluster: {sorted(missing)}")
    grouped: dict[tuple[str, tuple[str, ...], str, str | None, str | None], list[str]] = {}
    for table, name, policy_roles, command, using, check in connection.execute(
        "SELECT tablename, policyname, roles::text[], cmd, qual, with_check FROM pg_policies"
        " WHERE schemaname = current_schema() ORDER BY policyname, tablename"
    ):
        grouped.setdefault((name, tuple(policy_roles), command, using, check), []).append(table)
    order = {table: position for position, table in enumerate(_table_order(sorted({t for ts in grouped.values() for t in ts})))}
    policies = [
        Policy(sorted(tables, key=order.__getitem__), name, list(policy_roles), command, using, check)
        for (name, policy_roles, command, using, check), tables in grouped.items()
    ]
    tables_without_rls = _table_order(
        [
            row[0]
            for row in connection.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p')"
                " AND NOT relispartition AND NOT relrowsecurity AND relname <> 'alembic_version'"
                " AND has_table_privilege(%s, oid, 'SELECT')",
                (TENANT_ROLE,),
            )
        ]
    )
    forced = _table_order(
        [
            row[0]
            for row in connection.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relforcerowsecurity"
            )
        ]
    )
    tenant_denied = _table_order(
        [
            row[0]
            for row in connection.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p')"
                " AND NOT relispartition AND relname <> 'alembic_version' AND NOT has_table_privilege(%s, oid, 'SELECT')",
                (TENANT_ROLE,),
            )
        ]
    )
    query_readable = [
        row[0]
        for row in connection.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'v')"
            " AND has_table_privilege(%s, oid, 'SELECT') ORDER BY relkind = 'v', relname",
            (READER_ROLE,),
        )
    ]
    partitions, with_rls, tenant_reads = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE relrowsecurity), count(*) FILTER (WHERE has_table_privilege(%s, oid, 'SELECT'))"
        "  FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relispartition AND relkind = 'r'",
        (TENANT_ROLE,),
    ).fetchone()  # type: ignore[misc]
    return Security(
        roles, policies, tables_without_rls, forced, tenant_denied, query_readable, partitions, with_rls, tenant_reads
    )


# -- plans ----------------------------------------------------------------------------------------


def explain(
    connection: psycopg.Connection[Any], query: str, names: Names, *, without: str | None = None, setup: list[str] | None = None
) -> Plan:
    """EXPLAIN the query (never executed) in a rolled-back transaction, optionally with one index dropped or after
    ``setup`` statements (a role and its license)."""
    with connection.transaction(force_rollback=True):
        if without:
            connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(without)))
        for statement in setup or []:
            connection.execute(statement)
        text = "\n".join(row[0] for row in connection.execute("EXPLAIN (COSTS OFF) " + query))
        document = connection.execute("EXPLAIN (COSTS OFF, FORMAT JSON) " + query).fetchone()[0]  # type: ignore[index]
    indexes: list[str] = []
    paths: list[str] = []
    relations: list[str] = []

    def note(items: list[str], item: str) -> None:
        if item not in items:
            items.append(item)

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        node_type = node.get("Node Type", "")
        if "Index Name" in node:
            index = names.index_parent.get(node["Index Name"], node["Index Name"])
            note(indexes, index)
            note(paths, f"{node_type} using {index}")
        elif "Relation Name" in node and node_type != "Bitmap Heap Scan":
            note(paths, f"{node_type} on {names.table_parent.get(node['Relation Name'], node['Relation Name'])}")
        for index in node.get("Conflict Arbiter Indexes", []):
            index = names.index_parent.get(index, index)
            note(indexes, index)
            note(paths, f"conflict arbiter {index}")
        if "Relation Name" in node:
            note(relations, node["Relation Name"])
        for value in node.values():
            walk(value)

    walk(document)
    return Plan(text, indexes, paths, relations)


@dataclass(frozen=True)
class IndexReport:
    index: IndexInfo
    query: IndexQuery
    plan: Plan
    plan_without: Plan | None

    @property
    def used(self) -> bool:
        return self.plan.uses(self.index.name)


# -- the document ---------------------------------------------------------------------------------


def render(
    *,
    version: str,
    settings: dict[str, str],
    counts: dict[str, int],
    tables: list[Table],
    reports: list[IndexReport],
    foreign_keys: list[ForeignKey],
    views: list[tuple[str, list[tuple[str, str]]]],
    view_plans: dict[str, Plan],
    functions: list[tuple[str, str, str, str]],
    security: Security,
    scoped_plans: list[tuple[ScopedQuery, Plan]],
    column_doc: str = "",
) -> str:
    out: list[str] = []
    add = out.append
    partitions_of = {table.name: table.partitions for table in tables if table.partitions}
    add("# Schema")
    add("")
    add("<!-- Generated by scripts/schema_doc.py. Do not edit by hand: change the schema or the script and rerun it. -->")
    add("")
    add(f"Generated by `scripts/schema_doc.py` on PostgreSQL {version}. **Do not edit by hand**: change the schema")
    add("(models and an Alembic revision) or the index catalogue `INDEX_QUERIES` in the script, then run")
    add("`.venv/bin/python scripts/schema_doc.py`. The script fails when an index has no documented query or a")
    add("documented index no longer exists.")
    add("")
    add("Tables, columns, indexes, views and functions are read from the catalog of a freshly migrated database.")
    add("Each index is shown with the query it serves and that query's `EXPLAIN (COSTS OFF)` plan, taken after")
    add("loading this data set and `VACUUM ANALYZE`:")
    add("")
    add("| table | rows |")
    add("|---|---:|")
    for table in tables:
        add(f"| `{table.name}` | {counts.get(table.name, 0):,} |")
    add("")
    add(
        f"Events, metric samples and spans arrive in time order over {DAYS} days ({FIRST_DAY} to "
        f"{FIRST_DAY + timedelta(days=DAYS - 1)}, one daily partition each); KPIs are daily over {KPI_DAYS} days. "
        "Planner settings are the server's defaults: " + ", ".join(f"`{k} = {v}`" for k, v in settings.items()) + ". "
        "Plans name the partitions' own copies of an index (`<partition>_<columns>_idx`, `<partition>_pkey`); "
        "the script maps them back to the index of the parent table."
    )
    add("")
    unused = [report.index.name for report in reports if not report.used]
    if unused:
        add(
            f"> **{len(unused)} index(es) are not used by the plan of the query they serve:** "
            + ", ".join(f"[`{name}`](#{name})" for name in unused)
            + "."
        )
        add("")

    add("## Index summary")
    add("")
    add('"Without it" is the plan\'s access path when the index is dropped (in a rolled-back transaction);')
    add("indexes that back a constraint are not dropped.")
    add("")
    add("| index | table | method | query pattern | plan uses it | without it |")
    add("|---|---|---|---|---|---|")
    for report in reports:
        index = report.index
        add(
            f"| [`{index.name}`](#{index.name}) | `{index.table}` | {index.method} | {_cell(report.query.pattern)} | "
            f"{'yes' if report.used else '**NO**'} | {_without(report)} |"
        )
    add("")

    add("## Tables")
    add("")
    for table in tables:
        add(f"### `{table.name}`")
        add("")
        if table.partition_key and table.partitions:
            add(
                f"Partitioned by `{table.partition_key}`: one partition per UTC day, named `{table.name}_pYYYYMMDD`, "
                "created ahead of the data by `ensure_daily_partitions` and dropped whole by retention "
                f"(here {len(table.partitions)}: `{table.partitions[0]}` to `{table.partitions[-1]}`)."
            )
        elif table.partition_key:
            add(f"Partitioned by `{table.partition_key}` (no partitions yet).")
        else:
            add("Not partitioned.")
        add("")
        add("| column | type | nullable | default |")
        add("|---|---|---|---|")
        for column in table.columns:
            add(
                f"| `{column.name}` | {column.type} | {'yes' if column.nullable else 'no'} | "
                f"{_code(column.default) if column.default else ''} |"
            )
        add("")
        for name, definition in table.checks:
            add(f"- `{name}`: {_check(definition)}")
        for key in foreign_keys:
            if key.table == table.name:
                add(f"- `{key.name}`: {_code(key.definition)}")
        if table.checks or any(key.table == table.name for key in foreign_keys):
            add("")
        add("Indexes: " + ", ".join(f"[`{r.index.name}`](#{r.index.name})" for r in reports if r.index.table == table.name) + ".")
        add("")

    if column_doc:
        # the hand-written file, one heading level down: "## Who writes ..." then "### `table`"
        add("<!-- From docs/schema_columns.md (hand-written; the script checks it covers every column). -->")
        add("")
        for line in column_doc.strip().splitlines():
            add("#" + line if line.startswith("#") else line)
        add("")

    add("## Indexes")
    add("")
    for report in reports:
        _render_index(add, report)

    add("## Foreign keys and their indexes")
    add("")
    add("A foreign key whose columns lead no index on the referencing table makes every delete (or key update)")
    add("of a referenced row scan that table, every partition of it for the partitioned ones.")
    add("")
    add("| table | foreign key | index with these leading columns |")
    add("|---|---|---|")
    for key in foreign_keys:
        if key.supporting_index:
            supported = f"[`{key.supporting_index}`](#{key.supporting_index})"
        elif key.unusable_partial_index:
            supported = f"**none** (the partial {_code(key.unusable_partial_index)} does not cover every row)"
        else:
            supported = "**none**"
        add(f"| `{key.table}` | {_code(key.definition)} | {supported} |")
    add("")

    _render_security(add, security, scoped_plans)

    add("## Views")
    add("")
    add("All views are `security_invoker`: they read with the caller's rights.")
    add("")
    for view, columns in views:
        add(f"### `{view}`")
        add("")
        add("| column | type |")
        add("|---|---|")
        for name, type_ in columns:
            add(f"| `{name}` | {type_} |")
        add("")
        plan = view_plans.get(view)
        if plan is None:
            continue
        add("```sql")
        add(VIEW_QUERIES[view])
        add("```")
        add("")
        scanned, prunes_nothing = _partitions_scanned(plan, partitions_of)
        add("Plan" + (f" ({scanned})" if scanned else "") + ":")
        add("")
        add("```")
        add(plan.text)
        add("```")
        add("")
        if prunes_nothing and "hour" in VIEW_QUERIES[view]:
            add(
                "> The filter on `hour` prunes no partition and uses no time index: `hour` is `date_trunc` of the "
                "partition column, which the planner does not turn back into a range on that column. For a time "
                "window, aggregate the table itself with a range on its time column (as the BRIN queries above do)."
            )
            add("")

    add("## SQL functions")
    add("")
    for name, arguments, result, language in functions:
        add(f"### `{name}`")
        add("")
        add("```sql")
        add(f"{name}({arguments})")
        add(f"RETURNS {result}")
        add(f"LANGUAGE {language}")
        add("```")
        add("")
        add(FUNCTIONS[name])
        add("")
    return "\n".join(out).rstrip() + "\n"


def _render_security(add: Any, security: Security, scoped_plans: list[tuple[ScopedQuery, Plan]]) -> None:
    add("## Row-level security and roles")
    add("")
    forced = (
        "no table forces it"
        if not security.forced
        else "except where a table forces it: " + ", ".join(f"`{name}`" for name in security.forced)
    )
    add(
        "The role the server connects as owns the tables and, like superusers, bypasses row-level security "
        f"({forced}): jobs, the ingest writer, the CLI and admin keys see every license. Three roles are limited to one:"
    )
    add("")
    add("| role | login | settings | used by |")
    add("|---|---|---|---|")
    for name, login, settings in security.roles:
        add(
            f"| `{name}` | {'yes' if login else 'no'} | {', '.join(_code(item) for item in settings) or '-'} | {_cell(ROLES[name])} |"
        )
    add("")
    add("Policies (none applies to the owner):")
    add("")
    add("| policy | to | command | using | with check | tables |")
    add("|---|---|---|---|---|---|")
    for policy in security.policies:
        add(
            f"| `{policy.name}` | {', '.join(f'`{role}`' for role in policy.roles)} | {policy.command} | "
            f"{_expression(policy.using)} | {_expression(policy.check) if policy.check != policy.using else 'the same'} | "
            + ", ".join(f"`{table}`" for table in policy.tables)
            + " |"
        )
    add("")
    add(
        f"`{READER_ROLE}` can read only "
        + ", ".join(f"`{name}`" for name in security.query_readable)
        + "; rows of other licenses, and rows with no license (platform-wide KPIs, for one), are invisible to it."
    )
    add("")
    add(
        f"`{TENANT_ROLE}` can read and write every table but "
        + ", ".join(f"`{name}`" for name in security.tenant_denied)
        + ". Of those, these have no row-level security, so a tenant session reads and writes all their rows: "
        + ", ".join(f"`{name}`" for name in security.tables_without_rls)
        + "."
    )
    add(
        f"Of the {security.partitions} daily partitions, {security.partitions_with_rls} have row-level security of their "
        f"own and the tenant role may read {security.partitions_tenant_reads} directly (the parent's policies apply only to "
        "queries through the parent)."
    )
    add("")
    add("How a policy shows in a plan, for the sample license " + str(SAMPLE["license_id"]) + ":")
    add("")
    for scoped, plan in scoped_plans:
        add(f"### {scoped.title}")
        add("")
        add("```sql")
        add(scoped.sql.format(**SAMPLE))
        add("```")
        add("")
        add("Plan" + (" (uses " + ", ".join(f"`{name}`" for name in plan.indexes_used) + ")" if plan.indexes_used else "") + ":")
        add("")
        add("```")
        add(plan.text)
        add("```")
        add("")


def _render_index(add: Any, report: IndexReport) -> None:
    index, plan = report.index, report.plan
    add(f"### {index.name}")
    add("")
    add(f"On `{index.table}`: {index.method}, {index.kind}.")
    add("")
    add("```sql")
    add(index.definition)
    add("```")
    add("")
    add(f"Serves: {report.query.pattern}.")
    add("")
    add("```sql")
    add(query_sql(index.name))
    add("```")
    add("")
    if report.used:
        others = [name for name in plan.indexes_used if name != index.name]
        add("The plan uses the index" + (f" (and {', '.join(f'`{n}`' for n in others)})" if others else "") + ":")
    else:
        add(
            "> **Warning: the plan does not use this index**: "
            + (f"it uses {', '.join(f'`{n}`' for n in plan.indexes_used)} instead." if plan.indexes_used else "it uses no index.")
            + ""
        )
        add("")
        add("Plan:")
    add("")
    add("```")
    add(plan.text)
    add("```")
    add("")
    if report.plan_without is not None:
        add(f"Without the index the plan would use: {_without(report)}.")
        add("")
        fallback = report.plan_without
        if fallback.indexes_used and not any(path.startswith("Seq Scan") for path in fallback.access_paths):
            add(
                "> The query stays indexed without it (through "
                + ", ".join(f"`{name}`" for name in fallback.indexes_used)
                + "): what this index saves over that, against what it costs at every write, is for the benchmarks to show."
            )
            add("")
    if report.query.note:
        add(report.query.note)
        add("")


def _without(report: IndexReport) -> str:
    if report.plan_without is None:
        return f"({report.index.kind})"
    return ", ".join(_code(path) for path in report.plan_without.access_paths)


def _partitions_scanned(plan: Plan, partitions_of: dict[str, list[str]]) -> tuple[str, bool]:
    """How many partitions of each partitioned table the plan reads, and whether it reads all of them."""
    parts, all_scanned = [], False
    for table, table_partitions in partitions_of.items():
        scanned = [relation for relation in plan.relations if relation in table_partitions]
        if scanned:
            parts.append(f"scans {len(scanned)} of the {len(table_partitions)} partitions of `{table}`")
            all_scanned = all_scanned or len(scanned) == len(table_partitions)
    return "; ".join(parts), all_scanned


def _check(definition: str) -> str:
    """``CHECK (col = ANY (ARRAY[...]))`` as "`col` is one of ..."; any other check as written."""
    match = re.fullmatch(r"CHECK \(\(\((\w+)\)::text = ANY \(\(ARRAY\[(.*)\]\)::text\[\]\)\)\)", definition)
    if not match:
        return _code(definition)
    values = re.findall(r"'([^']*)'::character varying", match.group(2))
    return f"`{match.group(1)}` is one of " + ", ".join(f"`{value}`" for value in values)


def _expression(text: str | None) -> str:
    """A catalog expression on one line, its pretty-printing's runs of spaces collapsed."""
    return _code(" ".join(text.split())) if text else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("\n", " ") + "`"


# -- entry point ----------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"schema_doc: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="a PostgreSQL server on which to create (and drop) a temporary database "
        "(default: $DATABASE_URL; without either, a throwaway embedded PostgreSQL 18)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"the file to write (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})",
    )
    args = parser.parse_args(argv)

    with scratch_database(args.database_url) as url:
        progress("migrating")
        migrate(url)
        with psycopg.connect(libpq_url(url), options="-c timezone=UTC", autocommit=True) as connection:
            indexes = read_indexes(connection)
            check_coverage(indexes)
            tables = read_tables(connection)
            column_doc = read_column_doc(tables)
            foreign_keys = read_foreign_keys(connection)
            views = read_views(connection)
            functions = read_functions(connection)
            security = read_security(connection)
        counts = load(url)
        progress("explaining")
        with psycopg.connect(libpq_url(url), options="-c timezone=UTC", autocommit=True) as connection:
            version = connection.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            settings = {
                name: connection.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]  # type: ignore[index]
                for name in ("random_page_cost", "effective_cache_size", "work_mem", "max_parallel_workers_per_gather")
            }
            names = Names.read(connection)
            reports = [
                IndexReport(
                    index,
                    INDEX_QUERIES[index.name],
                    explain(connection, query_sql(index.name), names),
                    explain(connection, query_sql(index.name), names, without=index.name) if index.droppable else None,
                )
                for index in indexes
            ]
            view_plans = {view: explain(connection, VIEW_QUERIES[view], names) for view, _ in views if view in VIEW_QUERIES}
            scoped_plans = [
                (scoped, explain(connection, scoped.sql.format(**SAMPLE), names, setup=scope_setup(scoped.role)))
                for scoped in SCOPED_QUERIES
            ]

    for report in reports:
        if not report.used:
            used = ", ".join(report.plan.indexes_used) or "no index"
            print(
                f"schema_doc: WARNING: the plan of the query {report.index.name} serves ({report.query.pattern}) "
                f"does not use it; it uses {used}",
                file=sys.stderr,
            )

    document = render(
        version=version.split(" ")[0],
        settings=settings,
        counts=counts,
        tables=tables,
        reports=reports,
        foreign_keys=foreign_keys,
        views=views,
        view_plans=view_plans,
        functions=functions,
        security=security,
        scoped_plans=scoped_plans,
        column_doc=column_doc,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document)
    progress(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
