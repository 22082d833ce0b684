"""Composition of the running server: engine, sessions, the group-commit writer, the ingestor and the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from sqlalchemy import Engine

from fernando_telemetry.api import create_app
from fernando_telemetry.api.app import ApiLimits
from fernando_telemetry.composition import notification_wiring
from fernando_telemetry.core.ids import uuid7_factory
from fernando_telemetry.core.ingest.common import IngestBounds
from fernando_telemetry.services.ingest import IngestLimits, Ingestor
from fernando_telemetry.services.user_query import QueryLimits
from fernando_telemetry.settings import Settings, quotas_of
from fernando_telemetry.storage.database import libpq_url, session_factory
from fernando_telemetry.storage.writer import GroupCommitWriter

__all__ = ["Wiring", "build", "dump_json"]


def dump_json(value: Any) -> str:
    # sorted keys: equal objects give equal text, which the natural-key deduplication relies on
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class Wiring:
    app: FastAPI
    writer: GroupCommitWriter
    ingestor: Ingestor

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()


def build(settings: Settings, *, engine: Engine, secret_key: str | None = None) -> Wiring:
    """The server's parts; ``secret_key`` signs dashboard sessions (the entry point passes ``runtime.secret_key``)."""
    sessions = session_factory(engine)
    writer = GroupCommitWriter(
        libpq_url(engine.url.render_as_string(hide_password=False)),
        max_rows_in_flight=settings.ingest_max_rows_in_flight,
        max_batch_rows=settings.writer_max_batch_rows,
        linger_s=settings.writer_linger_ms / 1000.0,
        fair_admission=settings.ingest_fair_admission,
    )
    ingestor = Ingestor(
        sessions,
        writer,
        limits=IngestLimits(
            events_retention_days=settings.events_retention_days,
            metrics_retention_days=settings.metrics_retention_days,
            traces_retention_days=settings.traces_retention_days,
            max_future_s=settings.ingest_max_future_s,
            max_items_per_request=settings.ingest_max_items_per_request,
            otlp_max_items_per_request=settings.otlp_max_items_per_request,
            rate_limit_items_per_s=settings.ingest_rate_limit_items_per_s,
            rate_limit_items_per_s_per_license=settings.ingest_rate_limit_items_per_s_per_license,
            bounds=IngestBounds(
                max_histogram_bounds=settings.ingest_max_histogram_bounds,
                max_exponential_buckets=settings.ingest_max_exponential_buckets,
                max_samples=settings.ingest_max_samples,
                max_json_chars=settings.ingest_max_json_chars,
                max_resource_chars=settings.otlp_max_resource_chars,
            ),
            otlp_resource_budget_chars=settings.otlp_resource_budget_chars,
        ),
        new_id=uuid7_factory(),
        dump_json=dump_json,
    )
    app = create_app(
        engine=engine,
        query_url=settings.query_database_url,
        query_limits=QueryLimits(
            timeout_ms=settings.query_timeout_ms,
            row_cap=settings.query_row_cap,
            byte_cap=settings.query_max_result_bytes,
            work_mem_kb=settings.query_work_mem_kb,
            max_concurrent_per_key=settings.query_max_concurrent_per_key,
            retry_after_s=settings.query_retry_after_s,
        ),
        ingestor=ingestor,
        limits=ApiLimits(
            max_body_bytes=settings.ingest_max_body_bytes,
            body_idle_timeout_s=settings.http_body_idle_timeout_s,
            response_timeout_s=settings.http_response_timeout_s,
            sign_in_failures_per_minute=settings.dashboard_sign_in_failures_per_minute,
        ),
        secret_key=secret_key,
        notifications=notification_wiring.setup(settings, secret_key=secret_key),
        quotas=quotas_of(settings),
    )
    return Wiring(app=app, writer=writer, ingestor=ingestor)
