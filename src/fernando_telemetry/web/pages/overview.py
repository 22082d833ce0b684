"""Overview: events per hour by type, error rates, active users, top events and the open alerts.
Imports services and core.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from fernando_telemetry.core.enums import EventType
from fernando_telemetry.services import event_search, summaries
from fernando_telemetry.services.event_search import EventFilters
from fernando_telemetry.web import charts
from fernando_telemetry.web.page import Page, PageRequest
from fernando_telemetry.web.pages.alerts import active_alerts
from fernando_telemetry.web.pages.common import active_users, hour_key, hours_between, summary_rows

__all__ = ["TOP_EVENTS_SAMPLE", "build"]

TOP_EVENTS_SAMPLE = 1000
"""Top events are counted over the newest this-many events of the range (one bounded, index-ordered read)."""
_FRAGMENTS = {
    "overview-stats": "overview/_stats.html",
    "overview-top": "overview/_top_events.html",
    "overview-alerts": "overview/_alerts.html",
}


def build(request: PageRequest) -> Page:
    window = request.window(default_range="24h", max_span=timedelta(days=7))
    event_rows, events_partial = summary_rows(request, summaries.events_hourly, window)
    span_rows, spans_partial = summary_rows(request, summaries.traces, window)

    hours = hours_between(window.start, window.end)
    by_type: dict[str, dict[datetime, float]] = defaultdict(lambda: dict.fromkeys(hours, 0.0))
    events_per_hour: dict[datetime, float] = dict.fromkeys(hours, 0.0)
    error_events_per_hour: dict[datetime, float] = dict.fromkeys(hours, 0.0)
    server_span_errors = 0
    for row in event_rows:
        hour = hour_key(row["hour"])
        if hour not in events_per_hour:
            continue
        by_type[row["event_type"]][hour] += row["events"]
        events_per_hour[hour] += row["events"]
        error_events_per_hour[hour] += row["errors"]
        server_span_errors += row["server_span_errors"]
    spans_per_hour: dict[datetime, float] = dict.fromkeys(hours, 0.0)
    span_errors_per_hour: dict[datetime, float] = dict.fromkeys(hours, 0.0)
    for row in span_rows:
        hour = hour_key(row["hour"])
        if hour in spans_per_hour:
            spans_per_hour[hour] += row["spans"]
            span_errors_per_hour[hour] += row["errors"]

    ordered_types = [t.value for t in EventType if t.value in by_type]
    events_chart = charts.bars(
        "Events per hour by type",
        {name: sorted(by_type[name].items()) for name in ordered_types},
        y_title="events",
    )
    error_chart = charts.lines(
        "Error rate per hour",
        {
            "spans with status error": [(h, _ratio(span_errors_per_hour[h], spans_per_hour[h])) for h in hours],
            "failed events / all events": [(h, _ratio(error_events_per_hour[h], events_per_hour[h])) for h in hours],
        },
        y_title="share",
        y_format=".1%",
    )

    total_events = sum(events_per_hour.values())
    total_spans = sum(spans_per_hour.values())
    users = active_users(request.session, request.principal)
    top = _top_events(request, window.start, window.end)
    open_alerts, active_count, more = active_alerts(request)
    context = {
        "window": window,
        "stats": {
            "events": total_events,
            # failed events by the one rule (telemetry_event_is_error: failed requests of the middleware included),
            # and failed server spans beside them (the same failures seen from the traces, so not added together)
            "error_events": sum(error_events_per_hour.values()),
            "server_span_errors": server_span_errors,
            "spans": total_spans,
            "span_error_rate": _ratio(sum(span_errors_per_hour.values()), total_spans),
            "dau": users["daily"],
            "wau": users["weekly"],
            "mau": users["monthly"],
        },
        "partial": events_partial or spans_partial,
        "top_events": top,
        "top_sample": TOP_EVENTS_SAMPLE,
        "active_alerts": open_alerts,
        "active_alert_count": f"{active_count}+" if more else str(active_count),
    }
    return Page(
        title="Overview",
        template="overview/page.html",
        context=context,
        charts={"events-by-type": events_chart, "error-rate": error_chart},
        fragments=_FRAGMENTS,
    )


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _top_events(request: PageRequest, start: datetime, end: datetime) -> list[dict[str, object]]:
    page = event_search.search(
        request.session,
        principal=request.principal,
        filters=EventFilters(start=start, end=end, limit=TOP_EVENTS_SAMPLE),
        now=request.now,
        cursor_key=request.cursor_key,
    )
    counted = Counter((event["event_type"], event["event_name"]) for event in page.events)
    total = sum(counted.values())
    return [
        {"event_type": str(event_type), "event_name": name, "count": count, "share": count / total}
        for (event_type, name), count in counted.most_common(10)
    ]
