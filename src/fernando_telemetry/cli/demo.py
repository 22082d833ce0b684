"""``fernando-telemetry demo``: the server with a live demo shop, its shoppers, history and alerts (see ``demo``)."""

from __future__ import annotations

import logging

import typer

from fernando_telemetry.cli.common import console, err_console, note
from fernando_telemetry.settings import load_settings

__all__ = ["demo"]


def demo(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port to bind (default 8000)."),
    database_url: str | None = typer.Option(
        None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL; default: a private embedded PostgreSQL 18."
    ),
    otlp_grpc_port: int | None = typer.Option(
        None, "--otlp-grpc-port", min=0, max=65535, help="Port of the OTLP/gRPC receiver (default 4317; 0 turns it off)."
    ),
    traffic: bool = typer.Option(
        True, "--traffic/--no-traffic", help="Run the demo shop and its shoppers, or serve the stored data only."
    ),
    history_days: int = typer.Option(3, "--history-days", min=1, max=30, help="Days of history loaded on the first run."),
    history_events: int = typer.Option(150_000, "--history-events", min=0, help="Events in that history."),
    history_spans: int = typer.Option(100_000, "--history-spans", min=0, help="Spans in that history (traces of 4 spans)."),
    history_metrics: int = typer.Option(40_000, "--history-metrics", min=0, help="Metric samples in that history."),
    customers: int = typer.Option(
        200, "--customers", min=1, max=100_000, help="Shop customers (platform users) created on the first run."
    ),
    rate: float = typer.Option(6.0, "--rate", min=0.1, max=500, help="Requests per second the simulated shoppers send."),
    burst_after: float = typer.Option(
        60.0, "--burst-after", min=0, help="Seconds after the start when the payments error burst begins."
    ),
    burst_duration: float = typer.Option(90.0, "--burst-duration", min=0, help="Seconds the burst lasts (0: no burst)."),
    status_every: float = typer.Option(
        30.0, "--status-every", min=0, help="Seconds between traffic lines on the console (0: none)."
    ),
    evaluation_interval: int = typer.Option(
        10, "--evaluation-interval", min=10, max=3600, help="Evaluation interval of the demo's alert rules, in seconds."
    ),
) -> None:
    """Run the server with a live demo: history, a shop of four instrumented services, shoppers and alerts.

    Starts the embedded PostgreSQL (or uses DATABASE_URL), migrates, and serves the API and the dashboard with the scheduler. The first run creates the demo license "Fernando Demo Shop", its customers and a few days of history; later runs find and reuse them.

    Each run mints and prints a fresh read key (keys are stored hashed, so an earlier one cannot be shown again) and prints the dashboard URL.

    The shop's services (web -> api -> inventory, payments) send traces, events, metrics and business figures through the SDK. A minute in, payments fail for 90 s: the alert "Payments error rate" fires, and resolves a few minutes later.

    Ctrl-C or SIGTERM stops everything, and the embedded PostgreSQL if this command started it.

    A quick run (tests): --history-days 1 --history-events 2000 --history-spans 2000 --history-metrics 1000 --burst-after 5

    Example: fernando-telemetry demo --host 127.0.0.1 --port 8000
    """
    from fernando_telemetry.demo import DemoOptions, HistorySize, run

    settings = load_settings(host=host, port=port, database_url=database_url, otlp_grpc_port=otlp_grpc_port)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = DemoOptions(
        history=HistorySize(
            days=history_days, events=history_events, spans=history_spans, metrics=history_metrics, customers=customers
        ),
        traffic=traffic,
        rate_per_s=rate,
        burst_after_s=burst_after,
        burst_duration_s=burst_duration,
        status_every_s=status_every,
        evaluation_interval_s=evaluation_interval,
    )
    run(settings, options, note=note, say=lambda line: console.print(line, soft_wrap=True, markup=False), console=err_console)
