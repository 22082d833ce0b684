"""Every setting of Fernando Telemetry, declared once.

Precedence: an explicit argument (CLI option) > environment (``FERNANDO_TELEMETRY_*``, and the
conventional ``DATABASE_URL``) > the default written here. Settings are built at an entry point
(CLI command, app factory, migrations env) and passed down as plain values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas

__all__ = ["Settings", "load_settings", "quotas_of"]


def _default_data_dir() -> Path:
    return platformdirs.user_data_path("fernando-telemetry", appauthor=False)


class Settings(BaseSettings):
    """Runtime configuration; every field reads ``FERNANDO_TELEMETRY_<NAME>`` unless noted."""

    model_config = SettingsConfigDict(env_prefix="FERNANDO_TELEMETRY_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "FERNANDO_TELEMETRY_DATABASE_URL"),
    )
    """PostgreSQL to use (``postgresql://`` or ``postgresql+psycopg://``); read from ``DATABASE_URL``.
    Unset: a private embedded PostgreSQL 18 under ``data_dir`` is started and kept between runs."""

    data_dir: Path = Field(default_factory=_default_data_dir)
    """Where the embedded PostgreSQL keeps its cluster (XDG data directory by default)."""

    embedded_host: str = "127.0.0.1"
    """Address the embedded PostgreSQL listens on."""

    embedded_port: int = 54329
    """TCP port of the embedded PostgreSQL; 0 picks a free port at each start."""

    embedded_database: str = "fernando_telemetry"
    """Database created inside the embedded cluster for the telemetry schema."""

    host: str = "127.0.0.1"
    """Address the HTTP server binds to."""

    port: int = 8000
    """Port the HTTP server binds to."""

    otlp_grpc_port: int = Field(default=4317, ge=0, le=65535)
    """Port of the OTLP/gRPC receiver (traces, metrics and logs on one port, bound to ``host``); 0 turns it off.
    Environment: ``FERNANDO_TELEMETRY_OTLP_GRPC_PORT``; ``serve --otlp-grpc-port``."""

    otlp_grpc_workers: int = Field(default=16, ge=1)
    """Threads that decode and store OTLP/gRPC requests; each waits for its rows to be committed."""

    otlp_grpc_max_concurrent_rpcs: int = Field(default=256, ge=1)
    """OTLP/gRPC calls accepted at once (running or waiting for a thread); past it gRPC answers RESOURCE_EXHAUSTED."""

    events_retention_days: int = Field(default=90, ge=1)
    """Raw ``telemetry_events`` older than this many days are removed by retention."""

    metrics_retention_days: int = Field(default=180, ge=1)
    """Raw ``system_metrics`` older than this many days are removed by retention."""

    traces_retention_days: int = Field(default=30, ge=1)
    """Raw ``traces`` spans older than this many days are removed by retention."""

    columnar_after_days: int = Field(default=2, ge=0)
    """Daily partitions of ``telemetry_events``, ``system_metrics`` and ``traces`` whose whole day ended this many
    days ago or earlier are rewritten as columnar (cold storage) by the ``columnar`` job, where the server has the
    ``citus_columnar`` extension (the job creates it when it is available); 0 turns cold storage off."""

    columnar_interval_s: float = Field(default=3600.0, gt=0)
    """Seconds between two runs of the ``columnar`` job (each converts the due partitions, one per transaction)."""

    partitions_days_ahead: int = Field(default=14, ge=7)
    """Daily partitions kept ready ahead of today (at least a week)."""

    partitions_days_back: int = Field(default=2, ge=0)
    """Daily partitions ensured behind today, for late data that is still accepted."""

    scheduler_enabled: bool = True
    """Run the background jobs inside the server process: partition upkeep, retention, host metrics, KPIs,
    rollup refresh, alert evaluation and notification dispatch (each of the last five only while its
    ``*_interval_s`` setting is above 0)."""

    partition_upkeep_interval_s: float = Field(default=3600.0, gt=0)
    """Seconds between two partition upkeep runs of the scheduler."""

    retention_interval_s: float = Field(default=6 * 3600.0, gt=0)
    """Seconds between two retention runs of the scheduler."""

    ingest_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest request body accepted, measured after gzip decompression (413 above it)."""

    ingest_max_items_per_request: int = Field(default=10_000, ge=1)
    """Most items in one native ingest request."""

    otlp_max_items_per_request: int = Field(default=50_000, ge=1)
    """Most spans, metric data points or log records in one OTLP request (413 above it, before decoding)."""

    ingest_max_histogram_bounds: int = Field(default=160, ge=1)
    """Most explicit bounds in one histogram point (OTLP ``explicit_bounds``, native ``buckets.bounds``); a point
    with more is rejected on its own, naming the field, before any bucket is read.
    Environment: ``FERNANDO_TELEMETRY_INGEST_MAX_HISTOGRAM_BOUNDS``."""

    ingest_max_exponential_buckets: int = Field(default=320, ge=1)
    """Most buckets on each side (``positive``, ``negative``) of one OTLP exponential-histogram point (the
    OpenTelemetry SDKs keep at most 160 by default); a point with more is rejected on its own, before any bucket is
    read. Environment: ``FERNANDO_TELEMETRY_INGEST_MAX_EXPONENTIAL_BUCKETS``."""

    ingest_max_samples: int = Field(default=10_000, ge=1)
    """Most raw values in the ``samples`` of one native metric item (rejected on its own above it).
    Environment: ``FERNANDO_TELEMETRY_INGEST_MAX_SAMPLES``."""

    ingest_max_json_chars: int = Field(default=64 * 1024, ge=1024)
    """Most characters of one JSON field of one item as stored (attributes, span events, payload, labels,
    dimensions); an item over it is rejected naming the field. Environment: ``FERNANDO_TELEMETRY_INGEST_MAX_JSON_CHARS``."""

    otlp_max_resource_chars: int = Field(default=8 * 1024, ge=64)
    """Most characters of an OTLP resource's attributes stored (as JSON, once per license in ``telemetry_resources``);
    attributes past it are dropped (service, host and environment keys kept first) and counted in
    ``fernando.dropped_attributes_count``.
    Environment: ``FERNANDO_TELEMETRY_OTLP_MAX_RESOURCE_CHARS``."""

    otlp_resource_budget_chars: int = Field(default=4 * 1024 * 1024, ge=0)
    """Resource characters one OTLP request may store over the rows that carry a copy of their resource, at least: the
    budget is the larger of this and 4 x the request's size, shared evenly by those rows. Spans carry no copy (each
    resource is stored once, ``storage.resources``), so no signal uses it now; it is still read so configurations
    that set it keep loading. Environment: ``FERNANDO_TELEMETRY_OTLP_RESOURCE_BUDGET_CHARS``."""

    ingest_max_rows_in_flight: int = Field(default=200_000, ge=1)
    """Rows accepted but not yet committed; past it ingest answers 503 with Retry-After."""

    ingest_fair_admission: bool = True
    """Share the write queue fairly among licenses: once more than half of ``ingest_max_rows_in_flight`` rows are
    waiting, a license already holding more than its fair share of them (the waiting rows divided by the licenses
    with rows waiting, at least two) is answered 429 with Retry-After while the others are still admitted.
    Environment: ``FERNANDO_TELEMETRY_INGEST_FAIR_ADMISSION``."""

    ingest_max_future_s: float = Field(default=3600.0, ge=0)
    """How far in the future a timestamp may be (client clock skew) before the item is rejected."""

    ingest_rate_limit_items_per_s: float = Field(default=0.0, ge=0)
    """Items per second one key may send (bursts up to 10 s worth); 0 turns the limit off. Over it: 429."""

    ingest_rate_limit_items_per_s_per_license: float = Field(default=0.0, ge=0)
    """Items per second all the keys of one license may send together (bursts up to 10 s worth), over native batches,
    OTLP/HTTP and OTLP/gRPC alike; 0 (the default) is unlimited. Over it: 429 with Retry-After (gRPC:
    RESOURCE_EXHAUSTED with RetryInfo). Admin keys belong to no license and have only the per-key rate.
    Environment: ``FERNANDO_TELEMETRY_INGEST_RATE_LIMIT_ITEMS_PER_S_PER_LICENSE``."""

    idempotency_window_hours: int = Field(default=24, ge=1)
    """How long the answer of a batch sent with an Idempotency-Key is kept for retries."""

    writer_max_batch_rows: int = Field(default=20_000, ge=1)
    """Most rows the group-commit writer puts in one transaction."""

    writer_linger_ms: float = Field(default=2.0, ge=0)
    """How long the writer waits for more requests to join a group before committing it."""

    host_metrics_interval_s: float = Field(default=15.0, ge=0)
    """Seconds between two readings of this server's CPU, memory, disk and network; 0 turns the collector off."""

    kpi_interval_s: float = Field(default=900.0, ge=0)
    """Seconds between two runs of the KPI job (current and previous day, week and month); 0 turns it off."""

    rollup_refresh_interval_s: float = Field(default=60.0, ge=0)
    """Seconds between two rollup refresh runs of the scheduler; 0 turns the job off (the views stay exact, and slow)."""

    rollup_safety_lag_s: float = Field(default=120.0, ge=0)
    """How far behind now a refresh stops: rows of transactions still in flight carry their start as ``created_at``."""

    rollup_batch_hours: int = Field(default=24, ge=1)
    """Dirty hours per raw table recomputed in one refresh transaction."""

    rollup_hourly_retention_days: int = Field(default=400, ge=1)
    """Hourly rollup rows older than this many days are removed by retention (never while their raw rows exist)."""

    rollup_daily_retention_days: int = Field(default=1825, ge=1)
    """Daily rollup rows older than this many days (about five years) are removed by retention."""

    archive_dir: Path | None = None
    """Where retention writes each expired partition as Parquet (zstd) with a manifest before dropping it.
    Unset: partitions are dropped without an archive."""

    webhook_allowed_networks: str = ""
    """Comma-separated CIDRs that outbound connections made for a tenant (webhooks, Slack URLs, a channel's own
    ``smtp_host``) may reach although they are loopback, private, link-local, shared or an IPv6 form embedding
    an IPv4 address (6to4, NAT64, Teredo) (for example ``10.20.0.0/16,127.0.0.1/32``); every other such address
    is refused. Public addresses are always allowed. The operator's own SMTP server (``smtp_host``) is not
    checked."""

    query_database_url: str | None = None
    """Connection for ``POST /api/v1/query`` as the ``fernando_telemetry_query`` role (give it a password in
    production and put it here). Unset: the database URL with that user and no password (trust/peer setups)."""

    query_timeout_ms: int = Field(default=5000, ge=100)
    """Statement timeout of ``POST /api/v1/query``."""

    query_row_cap: int = Field(default=10_000, ge=1)
    """Most rows ``POST /api/v1/query`` returns."""

    query_max_result_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Most bytes of JSON rows one ``POST /api/v1/query`` answer carries (``FERNANDO_TELEMETRY_QUERY_MAX_RESULT_BYTES``);
    a longer result is cut there and the answer says so (``truncated``, ``truncated_by: bytes``, ``message``)."""

    query_work_mem_kb: int = Field(default=16 * 1024, ge=64)
    """``work_mem`` of user SQL in KiB (``FERNANDO_TELEMETRY_QUERY_WORK_MEM_KB``): memory per sort or hash before
    it spills to temporary files (which ``temp_file_limit`` on the query role bounds, migration 0014)."""

    query_max_concurrent_per_key: int = Field(default=4, ge=1)
    """``POST /api/v1/query`` statements one API key may run at once in this server
    (``FERNANDO_TELEMETRY_QUERY_MAX_CONCURRENT_PER_KEY``); one more is answered 429 with ``Retry-After``."""

    query_retry_after_s: int = Field(default=1, ge=1)
    """``Retry-After`` of that 429, in seconds (``FERNANDO_TELEMETRY_QUERY_RETRY_AFTER_S``)."""

    alert_evaluation_interval_s: float = Field(default=10.0, ge=0)
    """Seconds between two passes of the alert evaluation job; each rule is still evaluated only when its own
    ``evaluation_interval_seconds`` has elapsed, so this is the most a rule runs late. 0 turns alerting off."""

    alert_evaluation_statement_timeout_s: float = Field(default=30.0, gt=0)
    """Longest one query of an evaluation pass may run; a rule whose query takes longer fails with an error
    recorded on the rule, and the other rules still run."""

    quota_rules_per_license: int = Field(default=DEFAULT_QUOTAS.rules, ge=0)
    """Most alert rules one license may hold (``FERNANDO_TELEMETRY_QUOTA_RULES_PER_LICENSE``); one more is a 409
    ``quota_exceeded`` naming the limit. Platform-wide rules (admin) are not counted."""

    quota_channels_per_license: int = Field(default=DEFAULT_QUOTAS.channels, ge=0)
    """Most notification channels one license may hold (``FERNANDO_TELEMETRY_QUOTA_CHANNELS_PER_LICENSE``)."""

    quota_silences_per_license: int = Field(default=DEFAULT_QUOTAS.silences, ge=0)
    """Most unexpired silences one license may hold (``FERNANDO_TELEMETRY_QUOTA_SILENCES_PER_LICENSE``)."""

    quota_keys_per_license: int = Field(default=DEFAULT_QUOTAS.keys, ge=0)
    """Most unrevoked API keys one license may hold (``FERNANDO_TELEMETRY_QUOTA_KEYS_PER_LICENSE``)."""

    alert_rule_timeout_s: float = Field(default=2.0, gt=0)
    """Time budget of one rule in an evaluation pass (``FERNANDO_TELEMETRY_ALERT_RULE_TIMEOUT_S``): its queries run
    under this ``statement_timeout`` (SET LOCAL in the rule's savepoint); a rule that runs out is recorded on the rule
    (``last_evaluation_status`` ``error``, ``last_error`` naming the timeout) and the pass goes on with the next rule."""

    alert_license_budget_s: float = Field(default=10.0, gt=0)
    """Most time one license's rules may take in one evaluation pass (``FERNANDO_TELEMETRY_ALERT_LICENSE_BUDGET_S``);
    rules beyond it wait for the next pass (they stay due and go first then). With rules interleaved by license,
    one license delays another's rule by at most one rule timeout per rule ahead of it in the round, and in total by
    at most this budget plus one rule timeout per pass."""

    alert_max_groups_per_rule: int = Field(default=100, ge=1)
    """Most alert groups one rule may track (``FERNANDO_TELEMETRY_ALERT_MAX_GROUPS_PER_RULE``); a rule whose
    condition yields more goes into the ``too_many_groups`` state with one alert and one notification saying so,
    not one per group."""

    secret_key: str | None = None
    """Key that signs dashboard sessions and encrypts notification channel secrets at rest. Unset: a random
    key is generated once and kept in ``<data_dir>/secret_key`` (mode 0600). Changing it signs everyone out
    and makes stored channel secrets unreadable (re-enter them)."""

    dashboard_sign_in_failures_per_minute: int = Field(default=10, ge=0)
    """Refused dashboard sign-ins one client address may have: this many at once, then this many a minute;
    past that, its sign-ins answer 429 with ``Retry-After`` (even with a valid key). 0: no limit.
    Environment: ``FERNANDO_TELEMETRY_DASHBOARD_SIGN_IN_FAILURES_PER_MINUTE``."""

    http_body_idle_timeout_s: float = Field(default=30.0, ge=0)
    """Seconds a request body may stall between two chunks before the request ends with 408 and its connection
    closes; 0: no bound. Environment: ``FERNANDO_TELEMETRY_HTTP_BODY_IDLE_TIMEOUT_S``."""

    http_response_timeout_s: float = Field(default=8.0, ge=0)
    """Seconds the server may take to start a response (counted from the request, or from the last chunk of its body;
    time waiting for the client's body is not counted) before it answers 503 with ``Retry-After`` itself; the route finishes on its own and its late answer is dropped.
    It bounds the wait on a database that hangs (no keepalive or statement timeout can end that wait) below the
    usual 10 s client timeouts; ``POST /api/v1/query`` gets at least its statement timeout plus 2 s. 0: no bound.
    Environment: ``FERNANDO_TELEMETRY_HTTP_RESPONSE_TIMEOUT_S``."""

    http_header_timeout_s: float = Field(default=10.0, ge=0)
    """Seconds a connection has to send a request's line and headers (from connecting, or from the previous
    response) before it is closed; 0: no bound. Environment: ``FERNANDO_TELEMETRY_HTTP_HEADER_TIMEOUT_S``."""

    http_keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    """Seconds an idle keep-alive connection stays open. Environment: ``FERNANDO_TELEMETRY_HTTP_KEEP_ALIVE_TIMEOUT_S``."""

    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Largest request line plus headers accepted; larger is a 400 and a closed connection.
    Environment: ``FERNANDO_TELEMETRY_HTTP_MAX_HEADER_BYTES``."""

    db_pool_size: int = Field(default=10, ge=1)
    """Connections the server keeps open to PostgreSQL."""

    db_connect_timeout_s: int = Field(default=5, ge=1)
    """Seconds to wait for a new database connection before giving up."""

    external_url: str | None = None
    """Base URL people reach this server at (``https://telemetry.example.com``), for the links in notifications
    and Alertmanager's ``externalURL``. Unset: ``http://<host>:<port>``."""

    notification_dispatch_interval_s: float = Field(default=5.0, ge=0)
    """Seconds between two runs of the notification dispatcher (sends what alerts queued); 0 turns it off."""

    notification_max_attempts: int = Field(default=5, ge=1)
    """Attempts per notification and channel, the first included; then it is abandoned (see the delivery log)."""

    notification_backoff_s: float = Field(default=30.0, ge=0)
    """Wait after the first failed attempt of a notification; doubled after each further failure."""

    notification_backoff_max_s: float = Field(default=3600.0, ge=0)
    """Longest wait between two attempts of a notification."""

    notification_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds an SMTP server or webhook receiver has to answer one send."""

    notification_batch_size: int = Field(default=50, ge=1)
    """Most notifications one dispatcher run sends."""

    smtp_host: str | None = None
    """SMTP server of email channels that name none of their own; unset: such channels fail with a clear error."""

    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    """Its port; unset: 25, 587 or 465 by ``smtp_security``."""

    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    """``none`` (plain), ``starttls`` (upgrade, refused if not offered) or ``tls`` (implicit TLS)."""

    smtp_username: str | None = None
    """User for SMTP AUTH; unset: no authentication."""

    smtp_password: str | None = None
    """Password for SMTP AUTH."""

    smtp_from: str = "fernando-telemetry@localhost"
    """Sender address of notification emails whose channel gives no ``from``."""


def quotas_of(settings: Settings) -> Quotas:
    """The per-license quotas ``settings`` name, as the plain value service calls take."""
    return Quotas(
        rules=settings.quota_rules_per_license,
        channels=settings.quota_channels_per_license,
        silences=settings.quota_silences_per_license,
        keys=settings.quota_keys_per_license,
    )


def load_settings(**overrides: object) -> Settings:
    """Build settings at an entry point; ``overrides`` are explicit arguments and win over the environment."""
    explicit: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**explicit)
