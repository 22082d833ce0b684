"""The dashboard's pages, one module each: a ``build(PageRequest) -> Page`` over the read services."""

from fernando_telemetry.web.pages import alerts, common, events, kpis, metrics, overview, rules, services, traces

__all__ = ["alerts", "common", "events", "kpis", "metrics", "overview", "rules", "services", "traces"]
