"""The dashboard's pages, one module each: a ``build(PageRequest) -> Page`` over the read services."""

from fernando_telemetry.web.pages import common, events, kpis, metrics, overview, services, traces

__all__ = ["common", "events", "kpis", "metrics", "overview", "services", "traces"]
