"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright against the app served by
uvicorn. Sign-in, every page with data and without console errors (screenshots to docs/images/), charts holding
data points, the trace waterfall's nesting, an acknowledgement reaching the database, a rule form's validation
message, a refused key and the page refreshing itself.

Outside CI these tests are skipped, with the reason, when /usr/bin/chromium is missing; with ``CI=true`` a
missing Chromium fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fernando_telemetry.core.enums import EventType
from fernando_telemetry.storage.database import session_factory
from tests.helpers import add_event
from tests.ingest_fixtures import new_token
from tests.web.conftest import DashboardWorld

CHROMIUM = Path("/usr/bin/chromium")
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
VIEWPORT = {"width": 1400, "height": 900}

# every value a chart holds: y of lines and bars, z of heatmaps, link values of the dependency graph
POINTS_JS = """
(element) => (element.data || []).reduce((count, trace) => {
  let values = trace.y || [];
  if (trace.type === 'heatmap') { values = trace.z.flat(); }
  if (trace.type === 'sankey') { values = trace.link.value; }
  return count + values.filter((value) => value !== null && value !== undefined).length;
}, 0)
"""


def require_chromium(path: Path, environment: Mapping[str, str]) -> None:
    """Return when ``path`` exists; otherwise fail under ``CI=true`` and skip, saying why, anywhere else."""
    if path.exists():
        return
    if environment.get("CI") == "true":
        pytest.fail(f"CI=true and {path} is missing: the browser tests must run in CI (apt-get install chromium)")
    pytest.skip(f"no Chromium at {path} (apt-get install chromium): the dashboard browser tests need it")


class TestChromiumRequirement:
    def test_missing_chromium_fails_in_ci(self, tmp_path: Path) -> None:
        """With CI=true a missing browser is a failure, not a skip."""
        with pytest.raises(pytest.fail.Exception, match="CI=true"):
            require_chromium(tmp_path / "chromium", {"CI": "true"})

    def test_missing_chromium_skips_elsewhere_with_the_reason(self, tmp_path: Path) -> None:
        """Outside CI the browser tests are skipped, naming the missing path."""
        with pytest.raises(pytest.skip.Exception, match="no Chromium at"):
            require_chromium(tmp_path / "chromium", {})

    def test_present_chromium_is_used(self, tmp_path: Path) -> None:
        """An existing executable lets the tests run."""
        (tmp_path / "chromium").touch()
        require_chromium(tmp_path / "chromium", {"CI": "true"})


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require_chromium(CHROMIUM, os.environ)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """A page of its own browser context, with the console errors it logged."""

    page: Any
    base_url: str
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        response = self.page.goto(self.base_url + path)
        assert response is not None and response.ok, f"{path}: HTTP {response.status if response else '?'}"
        self.page.wait_for_load_state("networkidle")

    def sign_in(self, key: str) -> None:
        self.page.goto(self.base_url + "/ui/login")
        self.page.fill("#api_key", key)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_load_state("networkidle")

    def charts(self) -> dict[str, int]:
        """Each chart of the page and how many data points it holds, once plotly has drawn them all."""
        self.page.wait_for_function("Array.from(document.querySelectorAll('[data-chart]')).every((e) => e.data)")
        return {
            element.get_attribute("data-chart"): element.evaluate(POINTS_JS)
            for element in self.page.query_selector_all("[data-chart]")
        }

    def screenshot(self, name: str) -> None:
        IMAGES.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(IMAGES / f"dashboard-{name}.png"), full_page=True)


def _tab(browser: Any, base_url: str) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    tab = Tab(page=page, base_url=base_url)
    page.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture()
def tab(browser: Any, dashboard_server: str) -> Iterator[Tab]:
    yield from _tab(browser, dashboard_server)


@pytest.fixture()
def signed_in(tab: Tab, dashboard_world: DashboardWorld) -> Tab:
    tab.sign_in(dashboard_world.read_a)
    assert tab.page.url == tab.base_url + "/", tab.page.url
    return tab


def _pages(world: DashboardWorld) -> list[tuple[str, str, list[str]]]:
    """(path, screenshot name, selectors that must show rows) of every page."""
    return [
        ("/", "overview", ["#top-events tbody tr", "#active-alerts tbody tr"]),
        ("/ui/services", "services", ["#services-health tbody tr", "#dependency-edges tbody tr"]),
        ("/ui/traces", "traces", ["#trace-results tbody tr"]),
        (f"/ui/traces/{world.trace_id}", "trace", ["#span-table tbody tr"]),
        ("/ui/events", "events", ["#event-list tbody tr"]),
        ("/ui/metrics?metric=cpu_usage&group_by=host_name&agg=max&step=1h&range=3d", "metrics", ["#metric-catalogue tbody tr"]),
        ("/ui/kpis", "kpis", ["#kpi-summary tbody tr"]),
        ("/ui/alerts", "alerts", ["#alert-list tbody tr"]),
        (f"/ui/alerts/{world.alert_ids[0]}", "alert", ["#alert-history tbody tr", "#delivery-log tbody tr"]),
        ("/ui/rules", "rules", ["#rule-list tbody tr"]),
        (f"/ui/rules/{world.rule_id}", "rule", ["#rule-form textarea"]),
    ]


class TestDashboardInTheBrowser:
    def test_sign_in_then_every_page_loads_with_data_and_no_console_errors(
        self, signed_in: Tab, dashboard_world: DashboardWorld
    ) -> None:
        """Each page shows rows, every chart on it holds data points, and the console stays free of errors."""
        for path, name, selectors in _pages(dashboard_world):
            signed_in.open(path)
            for selector in selectors:
                assert signed_in.page.locator(selector).count() > 0, (path, selector)
            charts = signed_in.charts()
            assert all(points > 0 for points in charts.values()), (path, charts)
            signed_in.screenshot(name)
            assert signed_in.errors == [], (path, signed_in.errors)
        expected_charts = {"/": 2, "/ui/services": 4, "/ui/kpis": 3}
        for path, count in expected_charts.items():
            signed_in.open(path)
            assert len(signed_in.charts()) == count, path

    def test_charts_hold_the_data_of_the_page(self, signed_in: Tab) -> None:
        """The overview's events chart has one bar series per event type; the metric chart one line per host."""
        signed_in.open("/")
        names = signed_in.page.eval_on_selector('[data-chart="events-by-type"]', "(e) => e.data.map((t) => t.name)")
        assert set(names) <= {member.value for member in EventType} and {"user_action", "api_event"} <= set(names)
        total = signed_in.page.eval_on_selector(
            '[data-chart="events-by-type"]', "(e) => e.data.flatMap((t) => t.y).reduce((a, b) => a + b, 0)"
        )
        shown = int(signed_in.page.inner_text("#stat-events").replace(",", ""))
        assert total == shown > 0
        signed_in.open("/ui/metrics?metric=cpu_usage&group_by=host_name&agg=max&step=1h&range=3d")
        lines = signed_in.page.eval_on_selector('[data-chart="metric-series"]', "(e) => e.data.map((t) => t.name)")
        assert sorted(lines) == [f"host_name={host}" for host in ("api-1", "api-2", "web-1", "web-2", "worker-1")]
        assert signed_in.errors == []

    def test_the_trace_waterfall_shows_nested_spans(self, signed_in: Tab, dashboard_world: DashboardWorld) -> None:
        """Bars start at each span's offset, names are indented by depth, and the span table nests the same way."""
        signed_in.open(f"/ui/traces/{dashboard_world.trace_id}")
        figure = signed_in.page.eval_on_selector('[data-chart="trace-waterfall"]', "(e) => ({bars: e.data[0], names: e.data[1]})")
        # web > api > payments.charge > (postgres, payments.retry): both last spans are children of the charge
        assert figure["bars"]["customdata"] == [0, 1, 2, 3, 3]
        assert figure["bars"]["base"] == [0, 5, 10, 12, 30]
        assert figure["bars"]["x"] == [120, 100, 60, 8, 35]
        assert figure["names"]["x"] == [0, 1, 2, 3, 3]
        assert figure["names"]["text"][3] == "postgres · SELECT payment_methods"
        assert figure["names"]["text"][4] == "⚠ payments · payments.retry"
        depths = signed_in.page.eval_on_selector_all("#span-table tbody tr", "(rows) => rows.map((r) => Number(r.dataset.depth))")
        assert depths == [0, 1, 2, 3, 3]
        charge = signed_in.page.locator("#span-table tbody tr").nth(2)
        charge.locator("summary").click()
        assert "card processor timed out" in charge.inner_text()
        assert '"payment.provider": "acme-pay"' in charge.locator("pre.span-attributes").inner_text()
        assert signed_in.errors == []

    def test_acknowledging_an_alert_in_the_page_changes_it_in_the_database(
        self, signed_in: Tab, dashboard_world: DashboardWorld
    ) -> None:
        """The Acknowledge button of an alert's row stores the acknowledgement, by the signed-in key, in the history."""
        alert_id = dashboard_world.alert_ids[0]
        signed_in.open("/ui/alerts")
        row = signed_in.page.locator(f'tr.alert-row[data-alert-id="{alert_id}"]')
        assert row.locator("[data-status]").inner_text() == "active"
        row.locator('button[data-action="acknowledge"]').click()
        signed_in.page.wait_for_load_state("networkidle")
        assert signed_in.page.locator(".banner.ok").inner_text() == "The alert is acknowledged."
        assert signed_in.page.locator(f'tr.alert-row[data-alert-id="{alert_id}"] [data-status]').inner_text() == "acknowledged"
        with session_factory(dashboard_world.engine)() as session:
            status, acknowledged_at = session.execute(
                text("SELECT status, acknowledged_at FROM alerts WHERE alert_id = :a"), {"a": alert_id}
            ).one()
            actors = (
                session.execute(
                    text("SELECT actor FROM alert_events WHERE alert_id = :a AND to_state = 'acknowledged'"), {"a": alert_id}
                )
                .scalars()
                .all()
            )
            key_id = session.execute(
                text("SELECT api_key_id FROM api_keys WHERE key_prefix = :p AND license_id = :l"),
                {"p": dashboard_world.read_a[:9], "l": dashboard_world.license_a},
            ).scalar_one()
        assert status == "acknowledged" and acknowledged_at is not None
        assert actors == [f"key:{key_id}"]
        assert signed_in.errors == []

    def test_a_rule_form_shows_the_validation_message_next_to_the_field(
        self, signed_in: Tab, dashboard_world: DashboardWorld
    ) -> None:
        """Saving a rule whose condition breaks the rule language shows why under the condition, and saves nothing."""
        signed_in.open("/ui/rules/new")
        signed_in.page.fill("input[name=name]", "Broken in the browser")
        signed_in.page.fill("#condition_config", '{"metric": "cpu_usage", "operator": ">", "threshold": "eighty"}')
        signed_in.page.click("#save-rule")
        signed_in.page.wait_for_load_state("networkidle")
        message = signed_in.page.locator('#condition-field .field-error[data-field="condition_config"]')
        assert message.count() == 1
        assert "threshold must be a finite number" in message.inner_text()
        assert signed_in.page.locator("#condition-field").get_attribute("class") == "has-error"
        assert signed_in.page.input_value("input[name=name]") == "Broken in the browser"
        with session_factory(dashboard_world.engine)() as session:
            assert (
                session.execute(text("SELECT count(*) FROM alert_rules WHERE name = 'Broken in the browser'")).scalar_one() == 0
            )
        # the refused form comes back as a 400, which Chromium logs; nothing else may be logged
        assert signed_in.errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]

    def test_the_backtest_button_shows_what_the_rule_would_have_done(
        self, signed_in: Tab, dashboard_world: DashboardWorld
    ) -> None:
        """Backtest on a saved rule draws the alerts it would have raised over the last days."""
        signed_in.open(f"/ui/rules/{dashboard_world.rule_id}")
        signed_in.page.click("#backtest-rule")
        signed_in.page.wait_for_load_state("networkidle")
        assert signed_in.page.locator("#backtest-result").count() == 1
        charts = signed_in.charts()
        assert charts["backtest"] > 0
        signed_in.screenshot("rule-backtest")
        assert signed_in.errors == []

    def test_a_bad_key_is_refused(self, tab: Tab) -> None:
        """An unknown key stays on the sign-in form with the reason; pages still send to the form."""
        tab.sign_in(new_token())
        assert tab.page.url.startswith(tab.base_url + "/ui/login")
        assert tab.page.locator("#login-error").inner_text() == "Sign-in refused: this API key is not valid."
        tab.screenshot("sign-in-refused")
        tab.open("/ui/events")
        assert tab.page.url.startswith(tab.base_url + "/ui/login?next=")
        assert [error for error in tab.errors if "401" not in error] == []

    def test_an_open_page_refreshes_itself_with_new_data(self, signed_in: Tab, dashboard_world: DashboardWorld) -> None:
        """The page's script fetches its /ui/data endpoint and puts new rows in place without a reload."""
        signed_in.open("/ui/events?range=1h")
        marker = f"fresh-{uuid.uuid4().hex[:8]}"
        assert marker not in signed_in.page.inner_text("#event-list")
        with session_factory(dashboard_world.engine).begin() as session:
            add_event(session, at=datetime.now(UTC), event_name=marker, license_id=dashboard_world.license_a, payload={"n": 1})
        with signed_in.page.expect_response(lambda response: "/ui/data/events" in response.url):
            assert signed_in.page.evaluate("window.fernandoDashboard.refresh()") is True
        assert marker in signed_in.page.inner_text("#event-list")
        assert signed_in.page.evaluate("window.fernandoDashboard.state.refreshes") == 1
        interval = signed_in.page.get_attribute("#main", "data-refresh-interval")
        assert interval == "30"
        assert signed_in.errors == []
