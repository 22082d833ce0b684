"""Values the database or the rollups cannot aggregate: refused at ingest (native JSON and OTLP) with the field
named, and a bad bucket that reaches the raw tables anyway (plain SQL) isolated by the rollup refresh, recorded,
shown in ``status``, while every other license's hours are rolled up and read."""

from __future__ import annotations

import io
import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest, ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)
from sqlalchemy import Engine, text

from fernando_telemetry.cli import main
from fernando_telemetry.services import rollups
from fernando_telemetry.services import status as status_service
from fernando_telemetry.storage.database import session_factory
from tests.ingest_fixtures import Tenant, make_tenant

HUGE = 1.7e308
"""Two of these overflow a double when added: what once stopped the rollups of every license."""


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database."""
    return committed_engine


@pytest.fixture()
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _rejected(client: TestClient, route: str, key: str, kind: str, items: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    response = client.post(route, json={kind: items}, headers=_auth(key))
    assert response.status_code == 200, response.text
    return {r["index"]: (r["field"], r["reason"]) for r in response.json()["rejected"]}


class TestNativeIngest:
    def test_event_durations_out_of_range_are_refused_by_field(self, client: TestClient, tenant: Tenant) -> None:
        """1.7e308 ms, or more than 1e12 ms, is refused naming duration_ms; a normal duration lands."""
        items = [
            {"event_name": "e", "duration_ms": HUGE},
            {"event_name": "e", "duration_ms": 2e12},
            {"event_name": "e", "duration_ms": 12.5},
        ]
        reasons = _rejected(client, "/api/v1/events", tenant.ingest_key, "events", items)
        assert sorted(reasons) == [0, 1]
        assert reasons[0][0] == "duration_ms" and "at most 1e+12" in reasons[0][1]
        assert reasons[1][0] == "duration_ms"

    @pytest.mark.parametrize(
        ("item", "field", "words"),
        [
            ({"value": HUGE}, "value", "at most 1e+250"),
            ({"value": -1e251}, "value", "at most 1e+250"),
            ({"value": 2**53 + 1}, "value", "beyond 2^53"),
            ({"metric_type": "histogram", "value": 1, "p99": 1e300}, "p99", "at most 1e+250"),
            ({"metric_type": "histogram", "value": 1, "min_value": 1e300}, "min_value", "at most 1e+250"),
            ({"metric_type": "histogram", "value": 3, "min_value": 5, "max_value": 1}, "min_value", "greater than max_value"),
            ({"metric_type": "histogram", "value": 3, "sample_count": 2**31}, "sample_count", "2147483647"),
            ({"metric_type": "histogram", "samples": [1, HUGE]}, "samples", "at most 1e+250"),
            (
                {"metric_type": "histogram", "value": 1, "buckets": {"bounds": [1e300], "counts": [1, 1]}},
                "buckets",
                "at most 1e+250",
            ),
            (
                {"metric_type": "histogram", "value": 1, "buckets": {"bounds": [1], "counts": [2**31, 1]}},
                "buckets",
                "at most 2147483647",
            ),
            (
                {
                    "metric_type": "histogram",
                    "value": 3,
                    "min_value": 5,
                    "max_value": 1,
                    "buckets": {"bounds": [1], "counts": [1, 1]},
                },
                "min_value",
                "greater than max_value",
            ),
        ],
    )
    def test_metric_values_out_of_range_are_refused_by_field(
        self, client: TestClient, tenant: Tenant, item: dict[str, Any], field: str, words: str
    ) -> None:
        """Values, percentiles, extremes, samples and bucket bounds beyond 1e250, integers a double would round,
        counts past the integer column and min above max are refused, naming the field."""
        reasons = _rejected(client, "/api/v1/system-metrics", tenant.ingest_key, "metrics", [{"metric_name": "m", **item}])
        assert list(reasons) == [0]
        assert reasons[0][0] == field and words in reasons[0][1], reasons

    def test_span_durations_out_of_range_are_refused(self, client: TestClient, tenant: Tenant) -> None:
        """A span of 1.7e308 ms, or ending 100 years after it starts, is refused; a normal one lands."""
        start = datetime.now(UTC) - timedelta(minutes=5)
        base = {"trace_id": uuid.uuid4().hex, "operation_name": "op", "service_name": "svc", "start_time": start.isoformat()}
        items = [
            {**base, "span_id": "00000000000000a1", "duration_ms": HUGE},
            {**base, "span_id": "00000000000000a2", "end_time": (start + timedelta(days=36_500)).isoformat()},
            {**base, "span_id": "00000000000000a3", "duration_ms": 3.0},
        ]
        reasons = _rejected(client, "/api/v1/spans", tenant.ingest_key, "spans", items)
        assert {index: field for index, (field, _) in reasons.items()} == {0: "duration_ms", 1: "end_time"}

    def test_business_values_out_of_range_are_refused(self, client: TestClient, tenant: Tenant) -> None:
        """A KPI value of 1e300 does not fit numeric(24, 6): refused naming metric_value."""
        item = {
            "metric_name": "mrr",
            "metric_category": "revenue",
            "period_type": "daily",
            "period_start": "2026-12-01T00:00:00Z",
        }
        reasons = _rejected(client, "/api/v1/business-metrics", tenant.ingest_key, "metrics", [{**item, "metric_value": 1e300}])
        assert reasons[0][0] == "metric_value" and "too large" in reasons[0][1]

    def test_big_integers_are_kept_exact_or_refused(self, client: TestClient, tenant: Tenant, engine: Engine) -> None:
        """Integers past 2^53 (and past 64 bits, which the JSON parser once turned into rounded floats) are stored
        digit for digit as user ids and in payloads, or refused naming the field; never rounded."""
        big, huge = 2**63 - 25, 2**64 + 7
        marker = uuid.uuid4().hex
        items = [
            {"event_name": marker, "user_id": huge, "payload": {"order": big}},
            {"event_name": marker, "payload": {"order": 2**70 + 1}},
        ]
        body = json.dumps({"events": items})
        response = client.post(
            "/api/v1/events", content=body, headers={**_auth(tenant.ingest_key), "Content-Type": "application/json"}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["accepted"] == 1 and [(r["index"], r["field"]) for r in answer["rejected"]] == [(1, "payload")], answer
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT user_id, payload->>'order' AS n FROM telemetry_events WHERE event_name = :m"), {"m": marker}
            ).one()
        assert (row.user_id, row.n) == (str(huge), str(big))
        metric = json.dumps({"metrics": [{"metric_name": "m", "value": 2**70 + 1}]})
        response = client.post(
            "/api/v1/system-metrics", content=metric, headers={**_auth(tenant.ingest_key), "Content-Type": "application/json"}
        )
        assert [(r["field"], "beyond 2^53" in r["reason"]) for r in response.json()["rejected"]] == [("value", True)]


def _point(**fields: Any) -> NumberDataPoint:
    return NumberDataPoint(time_unix_nano=int(datetime.now(UTC).timestamp() * 1e9), **fields)


def _histogram_point(**fields: Any) -> HistogramDataPoint:
    values: dict[str, Any] = {
        "time_unix_nano": int(datetime.now(UTC).timestamp() * 1e9),
        "count": 2,
        "sum": 3.0,
        "bucket_counts": [1, 1],
        "explicit_bounds": [1.0],
    }
    values.update(fields)
    return HistogramDataPoint(**values)


DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


class TestOtlpIngest:
    def test_metric_points_out_of_range_are_refused_per_point(self, live_server: str, tenant: Tenant, engine: Engine) -> None:
        """Over OTLP/HTTP: a 1.7e308 gauge, an int64 counter a double would round, a histogram with min above max,
        a count past 2^31-1, bucket counts adding up past it (beyond a bigint), a sum or a bound beyond 1e250 are each refused naming the field; a good point lands."""
        name = "otlp_" + uuid.uuid4().hex[:8]
        cases = [
            (Metric(name=name, gauge=Gauge(data_points=[_point(as_double=HUGE)])), "as_double: is out of range"),
            (Metric(name=name, sum=Sum(data_points=[_point(as_int=2**53 + 1)], aggregation_temporality=DELTA, is_monotonic=True)),
             "as_int: the integer 9007199254740993 is beyond 2^53"),
            (Metric(name=name, histogram=Histogram(aggregation_temporality=DELTA, data_points=[_histogram_point(min=5.0, max=1.0)])),
             "min: 5 is greater than max 1"),
            (Metric(name=name, histogram=Histogram(aggregation_temporality=DELTA, data_points=[
                _histogram_point(count=2**40, bucket_counts=[1, 1])])), "count: is 1099511627776"),
            (Metric(name=name, histogram=Histogram(aggregation_temporality=DELTA, data_points=[
                _histogram_point(count=1, bucket_counts=[2**63, 0])])), "bucket_counts: add up to 9223372036854775808"),
            (Metric(name=name, histogram=Histogram(aggregation_temporality=DELTA, data_points=[_histogram_point(sum=1e300)])),
             "sum: is out of range"),
            (Metric(name=name, histogram=Histogram(aggregation_temporality=DELTA, data_points=[_histogram_point(explicit_bounds=[1e300])])),
             "explicit_bounds: is out of range"),
            (Metric(name=name, gauge=Gauge(data_points=[_point(as_double=7.0)])), None),
        ]  # fmt: skip
        for pb2_metric, words in cases:
            request = ExportMetricsServiceRequest()
            request.resource_metrics.add().scope_metrics.add().metrics.append(pb2_metric)
            response = httpx.post(
                f"{live_server}/v1/metrics", content=request.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf", **_auth(tenant.ingest_key)},
            )  # fmt: skip
            assert response.status_code == 200, response.text
            answer = ExportMetricsServiceResponse.FromString(response.content)
            print(answer.partial_success.error_message)
            if words is None:
                assert answer.partial_success.rejected_data_points == 0
            else:
                assert answer.partial_success.rejected_data_points == 1 and words in answer.partial_success.error_message
        with engine.connect() as connection:
            stored = (
                connection.execute(text("SELECT value FROM system_metrics WHERE metric_name = :n"), {"n": name}).scalars().all()
            )
        assert stored == [7.0]

    def test_a_span_ending_at_the_end_of_u64_is_refused(self, live_server: str, tenant: Tenant) -> None:
        """A span whose end is u64 max (year 2554) is refused naming end_time_unix_nano, not stored."""
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = uuid.uuid4().bytes, b"\x00" * 7 + b"\x01", "forever"
        span.start_time_unix_nano, span.end_time_unix_nano = int(datetime.now(UTC).timestamp() * 1e9), 2**64 - 1
        response = httpx.post(
            f"{live_server}/v1/traces", content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", **_auth(tenant.ingest_key)},
        )  # fmt: skip
        answer = ExportTraceServiceResponse.FromString(response.content)
        assert answer.partial_success.rejected_spans == 1
        assert "end_time_unix_nano" in answer.partial_success.error_message


def _status_json(database_url: str) -> dict[str, Any]:
    """``fernando-telemetry status --json`` run in-process, its document."""
    out, err = io.StringIO(), io.StringIO()
    saved_url, saved_argv = os.environ.get("DATABASE_URL"), sys.argv
    os.environ["DATABASE_URL"], sys.argv = database_url, ["fernando-telemetry", "status", "--json"]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                assert not exc.code, err.getvalue()
    finally:
        sys.argv = saved_argv
        if saved_url is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = saved_url
    return json.loads(out.getvalue())


class TestRollupIsolation:
    @pytest.fixture()
    def poisoned(self, engine: Engine) -> Iterator[tuple[Tenant, Tenant, datetime, datetime, str]]:
        """License A gets two 1.7e308 metric samples and two 1.7e308 event durations written with plain SQL
        (as a restore or a manual fix could); license B gets normal rows in the same hour and in another."""
        a, b = make_tenant(engine), make_tenant(engine)
        now = datetime.now(UTC)
        bad_hour = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        good_hour = bad_hour - timedelta(hours=2)
        name = "iso_" + uuid.uuid4().hex[:8]
        with session_factory(engine).begin() as session:
            for license_id, value, hour in ((a.license_id, HUGE, bad_hour), (a.license_id, HUGE, bad_hour),
                                            (b.license_id, 5.0, bad_hour), (b.license_id, 7.0, good_hour)):  # fmt: skip
                session.execute(
                    text("INSERT INTO system_metrics (metric_name, metric_type, value, service_name, license_id, \"timestamp\") "
                         "VALUES (:n, 'gauge', :v, 'svc', :l, :t)"),
                    {"n": name, "v": value, "l": license_id, "t": hour + timedelta(minutes=10)},
                )  # fmt: skip
                session.execute(
                    text("INSERT INTO telemetry_events (event_type, event_name, license_id, duration_ms, event_timestamp) "
                         "VALUES ('user_action', :n, :l, :v, :t)"),
                    {"n": name, "l": license_id, "v": value, "t": hour + timedelta(minutes=10)},
                )  # fmt: skip
        try:
            yield a, b, bad_hour, good_hour, name
        finally:
            with session_factory(engine).begin() as session:
                session.execute(text("DELETE FROM system_metrics WHERE metric_name = :n"), {"n": name})
                session.execute(text("DELETE FROM telemetry_events WHERE event_name = :n"), {"n": name})
                rollups.rebuild(session, first_day=good_hour.date(), last_day=bad_hour.date())
                session.execute(text("DELETE FROM rollup_failures"))
            with session_factory(engine).begin() as session:
                rollups.refresh(session, now=datetime.now(UTC), safety_lag_s=0)

    def test_one_bad_bucket_stops_nobody_else(
        self, client: TestClient, engine: Engine, committed_url: str, poisoned: tuple[Tenant, Tenant, datetime, datetime, str]
    ) -> None:
        """The refresh finishes: B's hours are rolled up, the watermark moves, A's hour is recorded with its error
        and shown by ``status`` (service and CLI), it is not retried on every pass, it is given up (no longer
        dirty, so retention is not held behind it) at its third failure, and B's summaries and series answer 200."""
        a, b, bad_hour, good_hour, name = poisoned
        now = datetime.now(UTC)
        with session_factory(engine).begin() as session:
            step = rollups.refresh(session, now=now, safety_lag_s=0)
        assert step.done
        with engine.connect() as connection:
            hourly = connection.execute(
                text(
                    "SELECT bucket_start, license_id, value_sum FROM system_metrics_hourly WHERE metric_name = :n ORDER BY 1, 2"
                ),
                {"n": name},
            ).all()
            events = connection.execute(
                text("SELECT bucket_start, license_id, duration_sum FROM telemetry_events_hourly "
                     "WHERE license_id IN (:a, :b) ORDER BY 1, 2"), {"a": a.license_id, "b": b.license_id},
            ).all()  # fmt: skip
            watermark = connection.execute(
                text("SELECT watermark FROM rollup_state WHERE source_table = 'system_metrics'")
            ).scalar_one()
        assert [tuple(row) for row in hourly] == [(good_hour, b.license_id, 7.0)]  # A's hour failed, B's other hour is in
        # event duration sums clamp each value to 1e250: the hour of both licenses rolls up, B's figure exact
        assert (bad_hour, b.license_id, 5.0) in [tuple(row) for row in events]
        assert (bad_hour, a.license_id, 2e250) in [tuple(row) for row in events]
        assert watermark >= now - timedelta(seconds=5)

        with session_factory(engine)() as session:
            failures = [f for f in status_service.report(session, now=now).rollup_failures if f.bucket_start == bad_hour]
        assert [(f.table, f.grain, f.failures) for f in failures] == [("system_metrics", "hour", 1)]
        assert "out of range" in failures[0].error
        document = _status_json(committed_url)
        assert any(
            f["table"] == "system_metrics" and f["bucket_start"].startswith(bad_hour.isoformat()[:13])
            for f in document["rollup_failures"]
        ), document["rollup_failures"]

        with session_factory(engine).begin() as session:  # a second pass within the hour does not retry it
            assert rollups.refresh(session, now=now + timedelta(minutes=1), safety_lag_s=0).done
            assert [f.failures for f in rollups.failures(session) if f.bucket_start == bad_hour] == [1]

        for retry in (1, 2):  # retried once an hour; given up at the third failure so retention is not held back
            with session_factory(engine).begin() as session:
                rollups.refresh(session, now=now + timedelta(minutes=61 * retry), safety_lag_s=0)
        with session_factory(engine)() as session:
            assert [f.failures for f in rollups.failures(session) if f.bucket_start == bad_hour] == [3]
            still_dirty = session.execute(
                text("SELECT count(*) FROM rollup_dirty_buckets WHERE source_table = 'system_metrics' AND bucket_start = :h"),
                {"h": bad_hour},
            ).scalar_one()
        assert still_dirty == 0

        window = {"from": good_hour.isoformat(), "to": (bad_hour + timedelta(hours=1)).isoformat()}
        summary = client.get("/api/v1/summaries/services", params={**window, "service_name": "svc"}, headers=_auth(b.read_key))
        assert summary.status_code == 200, summary.text
        series = client.get(
            "/api/v1/metrics/series",
            params={**window, "metric_name": name, "step": "1h", "agg": "max"},
            headers=_auth(b.read_key),
        )
        assert series.status_code == 200, series.text
        values = [value for line in series.json()["series"] for _, value in line["points"] if value is not None]
        assert values == [7.0, 5.0]  # B's good hour from the rollup, B's share of the failed hour from raw rows
