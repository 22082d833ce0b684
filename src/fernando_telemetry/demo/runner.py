"""``demo``: the server as ``serve`` starts it, the demo tenant and its history, alert rules, the shop and its
shoppers, until Ctrl-C or SIGTERM; then everything stops in reverse order and the process exits 0.

Order on the way up: bind the port (a taken port fails before anything starts), start the database,
migrations, scheduler and writer (``server.started``), find or create the demo tenant and its history,
mint keys, serve the API, start the shop, set up alert rules through the API, start the traffic. On the
way down: traffic, shop (its telemetry clients flush into the still running server), API, scheduler,
writer, pool, and an embedded PostgreSQL started here.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from fernando_telemetry.composition import server
from fernando_telemetry.demo import history, hosting, rules, tenant
from fernando_telemetry.demo.history import HistorySize
from fernando_telemetry.demo.incidents import Incidents
from fernando_telemetry.demo.monitor import Monitor
from fernando_telemetry.demo.shop import Shop, ShopConfig
from fernando_telemetry.demo.traffic import Traffic
from fernando_telemetry.settings import Settings

__all__ = ["DEMO_INTERVALS", "DemoOptions", "StopFlag", "demo_settings", "run"]

DEMO_INTERVALS: dict[str, float] = {
    "host_metrics_interval_s": 5.0,
    "kpi_interval_s": 60.0,
    "rollup_refresh_interval_s": 30.0,
    "alert_evaluation_interval_s": 5.0,
    "notification_dispatch_interval_s": 2.0,
}
"""Scheduler intervals of the demo, shorter than a production server's so the pages move while you watch;
a ``FERNANDO_TELEMETRY_<NAME>`` environment variable still wins."""

SHOP_NETWORK = "127.0.0.1/32"
"""The shop listens on loopback ports; its webhook receiver is there."""

ALERT_CHECK_EVERY_S = 5.0


@dataclass(frozen=True)
class DemoOptions:
    history: HistorySize
    traffic: bool = True
    rate_per_s: float = 6.0
    burst_after_s: float = 60.0
    burst_duration_s: float = 90.0
    status_every_s: float = 30.0
    evaluation_interval_s: int = 10


def demo_settings(settings: Settings) -> Settings:
    """``settings`` with the demo's scheduler intervals (except where the environment sets one), and webhooks
    allowed to reach the shop's receiver on the loopback address (``SHOP_NETWORK``)."""
    changes: dict[str, object] = {
        name: value for name, value in DEMO_INTERVALS.items() if f"FERNANDO_TELEMETRY_{name.upper()}" not in os.environ
    }
    networks = [network.strip() for network in settings.webhook_allowed_networks.split(",") if network.strip()]
    if SHOP_NETWORK not in networks:
        changes["webhook_allowed_networks"] = ",".join([*networks, SHOP_NETWORK])
    return settings.model_copy(update=changes)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StopFlag:
    """Set by Ctrl-C or SIGTERM; the demo checks it at safe points (between steps, between COPY chunks, once a
    second while it runs) and unwinds from there. No exception is thrown into the middle of a database call,
    and more signals while it stops change nothing, so the cleanup is never cut short."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def handle(self, signum: int, frame: Any) -> None:
        self.event.set()

    def check(self) -> None:
        if self.event.is_set():
            raise server.StopRequested

    def wait(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``; unwind at once if a stop was asked for."""
        self.event.wait(timeout_s)
        self.check()

    def install(self) -> StopFlag:
        """Take over SIGINT and SIGTERM. They stay taken until the process exits: a second Ctrl-C arriving just
        after the cleanup must not turn into a KeyboardInterrupt during interpreter shutdown."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handle)
        return self


def run(settings: Settings, options: DemoOptions, *, note: Callable[[str], None], say: Callable[[str], None],
        console: Console) -> None:  # fmt: skip
    """Run the demo until Ctrl-C or SIGTERM, then stop everything in order and return."""
    stop = StopFlag().install()
    try:
        _run(demo_settings(settings), options, stop=stop, note=note, say=say, console=console)
    except server.StopRequested:
        pass
    note("stopped")


def _run(settings: Settings, options: DemoOptions, *, stop: StopFlag, note: Callable[[str], None],
         say: Callable[[str], None], console: Console) -> None:  # fmt: skip
    listener = hosting.bind(settings.host, settings.port)
    try:
        with server.started(settings, note=note) as running, ExitStack() as stack:
            try:
                stop.check()
                demo = _tenant(running, settings, options, stop=stop, note=note, console=console)
                with running.sessions.begin() as session:
                    keys = tenant.mint_keys(session, license_id=demo.license_id, now=_utc_now())
                stop.check()
                api = stack.enter_context(hosting.ServerThread(running.wiring.app, sock=listener, name="telemetry"))
                incidents = Incidents(options.burst_after_s, options.burst_duration_s)
                shop = traffic = None
                if options.traffic:
                    config = ShopConfig(telemetry_url=api.url, ingest_key=keys.ingest, license_id=demo.license_id,
                                        incidents=incidents, on_webhook=_webhook_note(note))  # fmt: skip
                    shop = stack.enter_context(Shop(config))
                    stop.check()
                    _set_up_rules(api.url, keys, demo.license_id, shop, options, note=note)
                with running.sessions.begin() as session:  # the admin key was for the setup only
                    tenant.revoke_key(session, api_key_id=keys.admin_key_id, now=_utc_now())
                stop.check()
                if shop is not None:
                    traffic = stack.enter_context(
                        Traffic(shop.web_url, customers=demo.customer_ids, rate_per_s=options.rate_per_s)
                    )
                    incidents.begin()
                monitor = Monitor(running.sessions, demo.license_id, say=say, traffic=traffic, incidents=incidents)
                monitor.baseline()
                _banner(say, api.url, keys.read, shop, options, customers=len(demo.customer_ids),
                        otlp_grpc=_otlp_grpc_endpoint(running, settings))  # fmt: skip
                _watch(monitor, options, stop=stop, note=note)
            except BaseException:
                note("stopping")
                raise
    finally:
        listener.close()


def _tenant(running: server.RunningServer, settings: Settings, options: DemoOptions, *, stop: StopFlag,
            note: Callable[[str], None], console: Console) -> tenant.DemoTenant:  # fmt: skip
    """The demo tenant of an earlier run, or a new one with its history."""
    with running.sessions.begin() as session:
        found = tenant.find_tenant(session)
    if found is not None:
        note(f"reusing the demo data of an earlier run (license {found.license_id}); no history is loaded")
        return found
    size = options.history
    note(f"loading {size.days} days of demo history for {size.customers} customers (once; later runs reuse it)")
    demo, loaded = history.load(
        running.sessions, size=size, now=_utc_now(), events_retention_days=settings.events_retention_days,
        console=console, check=stop.check,
    )  # fmt: skip
    note(f"loaded {loaded.events:,} events, {loaded.spans:,} spans and {loaded.metrics:,} metric samples, "
         f"{loaded.first_day} to {loaded.last_day}")  # fmt: skip
    return demo


def _set_up_rules(url: str, keys: tenant.DemoKeys, license_id: int, shop: Shop, options: DemoOptions, *,
                  note: Callable[[str], None]) -> None:  # fmt: skip
    try:
        outcome = rules.ensure(
            url, keys.admin, license_id=license_id, webhook_url=f"{shop.web_url}/hooks/alerts",
            evaluation_interval_s=options.evaluation_interval_s, note=note,
        )  # fmt: skip
    except rules.SetupFailed as exc:
        note(escape(f"warning: the demo's alert rules could not be set up: {exc}"))
        return
    if outcome.available:
        made = f"created {', '.join(outcome.created)}" if outcome.created else "all there already"
        note(f"alert rules: {made}; notifications go to the webhook channel {outcome.channel or '(none)'}")


def _webhook_note(note: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    def received(payload: dict[str, Any]) -> None:
        nested = payload.get("alert")
        alert: dict[str, Any] = nested if isinstance(nested, dict) else payload
        title = alert.get("title") or alert.get("rule_name") or alert.get("name") or "an alert"
        status = payload.get("kind") or payload.get("status") or alert.get("status") or "an update"
        note(escape(f"the shop's webhook received a notification: {title} ({status})"))

    return received


def _otlp_grpc_endpoint(running: server.RunningServer, settings: Settings) -> str | None:
    """The OTLP/gRPC endpoint as exporters take it (``http://host:port``), or None when the receiver is off."""
    if running.otlp_grpc is None:
        return None
    host = hosting.connect_host(settings.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{running.otlp_grpc.port}"


def _banner(say: Callable[[str], None], url: str, read_key: str, shop: Shop | None, options: DemoOptions, *,
            customers: int, otlp_grpc: str | None) -> None:  # fmt: skip
    say("")
    say("Fernando Telemetry demo is running")
    say(f"  dashboard:  {url}/")
    say(f"  read key:   {read_key}")
    say("              (minted for this run: keys are stored hashed, so each run prints a new one)")
    say(f"  API docs:   {url}/docs")
    say(f"  OTLP/HTTP:  {url} (/v1/traces, /v1/metrics, /v1/logs)")
    say(f"  OTLP/gRPC:  {otlp_grpc}" if otlp_grpc else "  OTLP/gRPC:  off (--otlp-grpc-port 0)")
    if shop is None:
        say("  traffic:    none (--no-traffic): serving the stored data only")
    else:
        say(f"  shop:       {shop.web_url} (web -> api -> inventory, payments), "
            f"{options.rate_per_s:g} requests/s from {customers} customers")  # fmt: skip
        if options.burst_duration_s > 0:
            say(f"  incident:   payments fail from {options.burst_after_s:.0f} s for {options.burst_duration_s:.0f} s; "
                f"the alert '{rules.FIRING_RULE}' fires, then resolves a few minutes later")  # fmt: skip
    say("Press Ctrl-C to stop.")
    say("")


def _watch(monitor: Monitor, options: DemoOptions, *, stop: StopFlag, note: Callable[[str], None]) -> None:
    """Tell what happens, until a stop is asked for."""
    next_alerts = next_status = time.monotonic()
    next_status += options.status_every_s
    while True:
        stop.wait(1.0)
        monitor.check_burst()
        now = time.monotonic()
        if now >= next_alerts:
            next_alerts = now + ALERT_CHECK_EVERY_S
            try:
                monitor.check_alerts()
            except Exception as exc:  # a database hiccup: say so and keep serving
                reason = str(exc).splitlines()[0] if str(exc) else ""
                note(escape(f"could not read the alerts: {exc.__class__.__name__}: {reason}"))
        if options.status_every_s > 0 and now >= next_status:
            next_status = now + options.status_every_s
            monitor.traffic_line()
