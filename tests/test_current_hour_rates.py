"""Rates over an hour that has not ended divide by the time elapsed in it, and say so: the summaries' rows,
the services page's "Requests per second" chart and the services' RED figures, each read at an injected ``now``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from fernando_telemetry.core.enums import EventType
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import summaries, traces
from fernando_telemetry.services.summaries import SummaryFilters
from fernando_telemetry.storage.models import TelemetryEvent, Trace
from fernando_telemetry.web import charts
from fernando_telemetry.web.page import PageRequest
from fernando_telemetry.web.pages import services as services_page

ADMIN = Principal(api_key_id=0, license_id=None, scopes=frozenset({"admin"}))
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
NOW = HOUR + timedelta(minutes=10)
"""Ten minutes into the current hour."""


def _spans(service: str, start: datetime, count: int, every: timedelta) -> list[Trace]:
    trace_id = uuid.uuid4().hex
    return [
        Trace(
            trace_id=trace_id,
            span_id=f"{n + 1:016x}",
            operation_name="GET /",
            service_name=service,
            span_kind="server",
            start_time=start + n * every,
            end_time=start + n * every + timedelta(milliseconds=5),
            duration_ms=5.0,
        )  # fmt: skip
        for n in range(count)
    ]


@pytest.fixture()
def service(session: Session) -> str:
    """A service with 360 requests in the hour before NOW's (0.1/s) and 60 in NOW's first ten minutes (0.1/s)."""
    name = "rate-" + uuid.uuid4().hex[:8]
    session.add_all(_spans(name, HOUR - timedelta(hours=1), 360, timedelta(seconds=10)))
    session.add_all(_spans(name, HOUR, 60, timedelta(seconds=10)))
    session.flush()
    return name


class TestSummaryRates:
    def test_span_rows_divide_the_current_hour_by_its_elapsed_seconds(self, session: Session, service: str) -> None:
        """The ended hour's rate is spans / 3600; the current hour's spans / 600, with elapsed_s saying so."""
        page = summaries.traces(
            session,
            principal=ADMIN,
            filters=SummaryFilters(start=HOUR - timedelta(hours=1), end=NOW, equals={"service_name": service}),
            now=NOW,
        )
        rows = {row["hour"]: row for row in page.rows}
        ended, current = rows[HOUR - timedelta(hours=1)], rows[HOUR]
        assert (ended["spans"], ended["elapsed_s"], ended["spans_per_s"]) == (360, 3600.0, pytest.approx(0.1))
        assert (current["spans"], current["elapsed_s"], current["spans_per_s"]) == (60, 600.0, pytest.approx(0.1))

    def test_event_rows_carry_the_same_rate(self, session: Session) -> None:
        """events_per_s of the current hour is events / (now - hour); an hour not begun has no rate."""
        name = "rate-" + uuid.uuid4().hex[:8]
        session.add_all(
            TelemetryEvent(
                event_id=uuid.uuid4(),
                event_type=EventType.BUSINESS_EVENT,
                event_name=name,
                payload={},
                event_timestamp=HOUR + timedelta(seconds=5 * n),
            )  # fmt: skip
            for n in range(30)
        )
        session.flush()
        page = summaries.events_hourly(
            session,
            principal=ADMIN,
            filters=SummaryFilters(start=HOUR, end=NOW, equals={"event_type": "business_event"}),
            now=NOW,
        )
        [row] = [row for row in page.rows if row["hour"] == HOUR]
        assert (row["events"], row["elapsed_s"], row["events_per_s"]) == (30, 600.0, pytest.approx(0.05))
        assert summaries.elapsed_s(HOUR + timedelta(hours=1), now=NOW) == 0.0


class TestServicesPage:
    def test_the_request_rate_chart_divides_the_current_hour_by_its_elapsed_time(self, session: Session, service: str) -> None:
        """The chart's last point is 60 / 600 s, not 60 / 3600 s, and the chart carries a note saying so."""
        page = services_page.build(PageRequest(session, ADMIN, NOW, (("range", "6h"), ("service", service))))
        figure = page.charts["service-rate"]
        [line] = [trace for trace in figure["data"] if trace["name"] == service]
        points = dict(zip(line["x"], line["y"], strict=True))
        assert points[charts.iso(HOUR)] == pytest.approx(0.1)
        assert points[charts.iso(HOUR - timedelta(hours=1))] == pytest.approx(0.1)
        [note] = figure["layout"]["annotations"]
        assert "10 min elapsed" in note["text"]


class TestServicesHealth:
    def test_a_window_reaching_past_now_is_measured_up_to_now(self, session: Session, service: str) -> None:
        """A window of the whole current hour read ten minutes in: the rate is over the 600 s that passed."""
        health = traces.services_health(
            session, principal=ADMIN, now=NOW, start=HOUR, end=HOUR + timedelta(hours=1), service_name=service
        )
        [figure] = health.services
        assert (figure.requests, figure.rate_seconds) == (60, 600.0)
        assert figure.request_rate_per_s == pytest.approx(0.1)
