"""What the demo tells its console while it runs: alerts of the demo license as they fire and resolve,
the planned error burst as it starts and ends, and a periodic line of traffic figures.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import cursor as cursors
from fernando_telemetry.demo.incidents import Incidents
from fernando_telemetry.demo.traffic import Traffic, TrafficCounts
from fernando_telemetry.services import alerts

_CURSOR_KEY = cursors.derive_key(secrets.token_urlsafe(32))
"""The monitor reads first pages only: its cursors are never handed out."""

__all__ = ["Monitor"]


@dataclass
class Monitor:
    sessions: sessionmaker[Session]
    license_id: int
    say: Callable[[str], None]
    traffic: Traffic | None = None
    incidents: Incidents | None = None
    _statuses: dict[int, str] = field(default_factory=dict)
    _phase: str | None = None
    _last_counts: TrafficCounts = field(default_factory=lambda: TrafficCounts(0, 0, 0))

    def baseline(self) -> None:
        """Remember the alerts as they are now, so only changes from here on are told."""
        self._statuses = {alert.alert_id: alert.status for alert in self._alerts()}

    def _alerts(self) -> list[alerts.AlertView]:
        with self.sessions.begin() as session:
            page = alerts.list_alerts(
                session, filters=alerts.AlertFilters(license_id=self.license_id, limit=50), cursor_key=_CURSOR_KEY
            )
        return page.alerts

    def check_alerts(self) -> None:
        for alert in reversed(self._alerts()):
            before = self._statuses.get(alert.alert_id)
            if before == alert.status:
                continue
            self._statuses[alert.alert_id] = alert.status
            figures = []
            if alert.observed_value is not None:
                figures.append(f"value {alert.observed_value:.3g}")
            if alert.threshold_value is not None:
                figures.append(f"threshold {alert.threshold_value:.3g}")
            value = f" ({', '.join(figures)})" if figures else ""
            self.say(f"alert #{alert.alert_id} {alert.title!r} [{alert.severity}] is {alert.status}{value}")

    def check_burst(self) -> None:
        if self.incidents is None or self.traffic is None:
            return
        phase = self.incidents.phase()
        if phase != self._phase:
            if phase == "burst":
                self.say(f"injecting an error burst into payments for {self.incidents.burst_duration_s:.0f} s")
            elif phase == "after" and self._phase == "burst":
                self.say("the payments error burst is over")
            self._phase = phase

    def traffic_line(self) -> None:
        if self.traffic is None:
            return
        counts = self.traffic.counts()
        sent = counts.sent - self._last_counts.sent
        errors = counts.server_errors - self._last_counts.server_errors
        failed = counts.failed - self._last_counts.failed
        self._last_counts = counts
        unanswered = f", {failed} unanswered" if failed else ""
        self.say(f"traffic: {sent} requests since the last line, {errors} server errors{unanswered}")
