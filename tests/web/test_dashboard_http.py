"""The dashboard over HTTP without a browser: sign-in and its cookie, CSRF on every form, security headers,
the local plotly.js bundle, tenant scoping of pages and data endpoints, and the changes the forms make."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import text

from fernando_telemetry.api import create_app
from fernando_telemetry.composition.wiring import Wiring
from fernando_telemetry.services import keys, schema
from fernando_telemetry.storage.database import make_engine, session_factory
from fernando_telemetry.web.session import COOKIE_NAME, SessionCodec, SessionData
from tests.ingest_fixtures import new_token
from tests.web.conftest import B_EVENT, B_METRIC, B_RULE, B_SERVICE, SECRET_KEY, DashboardWorld

PAGES = ("/", "/ui/services", "/ui/traces", "/ui/events", "/ui/metrics", "/ui/kpis", "/ui/alerts", "/ui/rules")
DATA = ("overview", "services", "traces", "events", "metrics", "kpis", "alerts", "rules")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, key: str, *, next_path: str = "/") -> None:
    token = csrf_of(client.get("/ui/login").text)
    response = client.post("/ui/login", data={"csrf_token": token, "api_key": key, "next": next_path}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == next_path


@pytest.fixture()
def client_a(web_client: TestClient, dashboard_world: DashboardWorld) -> TestClient:
    sign_in(web_client, dashboard_world.read_a)
    return web_client


def alert_status(world: DashboardWorld, alert_id: int) -> dict[str, object]:
    with session_factory(world.engine)() as session:
        row = session.execute(
            text("SELECT status, acknowledged_at, assigned_to, resolved_at, resolution_notes FROM alerts WHERE alert_id = :a"),
            {"a": alert_id},
        ).one()
    return dict(row._mapping)


def audit_actions(world: DashboardWorld, target_type: str, target_id: str) -> list[str]:
    """The audit log's actions on one target, oldest first, each by a key (as the API records them)."""
    with session_factory(world.engine)() as session:
        rows = session.execute(
            text("SELECT action, actor FROM audit_log WHERE target_type = :t AND target_id = :i ORDER BY entry_id"),
            {"t": target_type, "i": target_id},
        ).all()
    assert all(row.actor.startswith("key:") for row in rows)
    return [row.action for row in rows]


def _points(data: dict[str, Any]) -> int:
    """Values (not gaps) in every line of every chart of a data answer."""
    return sum(
        value is not None for figure in data["charts"].values() for trace in figure["data"] for value in trace.get("y", [])
    )


class TestSignIn:
    def test_a_page_without_a_session_redirects_to_the_sign_in_form(self, web_client: TestClient) -> None:
        """Every page sends a signed-out visitor to the sign-in form, remembering where they were going."""
        for path in PAGES:
            response = web_client.get(path + "?range=6h" if path == "/" else path, follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/ui/login?next=")

    def test_the_data_endpoints_answer_401_without_a_session(self, web_client: TestClient) -> None:
        """A refresh without a session gets a JSON 401 (the page script then goes to the sign-in form)."""
        for name in DATA:
            response = web_client.get(f"/ui/data/{name}")
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "signed_out"

    def test_a_read_key_signs_in_with_a_signed_http_only_same_site_cookie(
        self, web_client: TestClient, dashboard_world: DashboardWorld
    ) -> None:
        """The session cookie is HttpOnly, SameSite=Lax, for the whole site, not Secure over plain HTTP; signed."""
        token = csrf_of(web_client.get("/ui/login").text)
        response = web_client.post(
            "/ui/login",
            data={"csrf_token": token, "api_key": dashboard_world.read_a, "next": "/ui/events"},
            follow_redirects=False,
        )
        assert response.status_code == 303 and response.headers["location"] == "/ui/events"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path=/", "samesite=lax"} <= flags
        assert "secure" not in flags
        value = cookie.split(";")[0].split("=", 1)[1]
        assert SessionCodec(SECRET_KEY).loads(value).api_key == dashboard_world.read_a
        # what anyone holding the cookie can read: the payload, without the key
        _, payload = URLSafeTimedSerializer("any key").loads_unsafe(value)
        assert set(payload) == {"c", "k", "s"} and dashboard_world.read_a not in str(payload)
        assert SessionCodec("another-secret").loads(value) is None
        page = web_client.get("/ui/events")
        assert page.status_code == 200
        assert f"license {dashboard_world.license_a}" in page.text

    def test_the_cookie_is_secure_over_https(self, dashboard_wiring: Wiring, dashboard_world: DashboardWorld) -> None:
        """Served over HTTPS, the session cookie is marked Secure."""
        with TestClient(dashboard_wiring.app, base_url="https://testserver") as client:
            response = client.get("/ui/login")
            assert "secure" in {part.strip().lower() for part in response.headers["set-cookie"].split(";")}

    def test_a_bad_key_is_refused_with_a_clear_message(self, web_client: TestClient) -> None:
        """An unknown key gets the form back with a 401 and a message; it is not signed in afterwards."""
        token = csrf_of(web_client.get("/ui/login").text)
        response = web_client.post("/ui/login", data={"csrf_token": token, "api_key": new_token(), "next": "/"})
        assert response.status_code == 401
        assert "Sign-in refused: this API key is not valid." in response.text
        assert web_client.get("/", follow_redirects=False).status_code == 303

    def test_a_key_without_the_read_scope_is_refused(self, web_client: TestClient, dashboard_world: DashboardWorld) -> None:
        """An ingest-only key cannot sign in: 403 naming the missing scope."""
        token = csrf_of(web_client.get("/ui/login").text)
        response = web_client.post("/ui/login", data={"csrf_token": token, "api_key": dashboard_world.ingest_only_a})
        assert response.status_code == 403
        assert "lacks the &#39;read&#39; scope" in response.text

    def test_revoking_the_key_signs_the_session_out_at_once(
        self, web_client: TestClient, dashboard_world: DashboardWorld
    ) -> None:
        """The key in the cookie is checked on every request: once revoked, the next page goes to the sign-in form."""
        with session_factory(dashboard_world.engine).begin() as session:
            created = keys.create_key(session, license_id=dashboard_world.license_a, scopes=["read"], new_token=new_token)
        sign_in(web_client, created.token)
        assert web_client.get("/ui/kpis").status_code == 200
        with session_factory(dashboard_world.engine).begin() as session:
            keys.revoke(session, api_key_id=created.api_key_id, now=datetime.now(UTC))
        response = web_client.get("/ui/kpis", follow_redirects=False)
        assert response.status_code == 303
        assert "reason=revoked" in response.headers["location"]
        assert "has been revoked" in web_client.get(response.headers["location"]).text

    def test_a_forged_cookie_is_not_a_session(self, web_client: TestClient, dashboard_world: DashboardWorld) -> None:
        """A cookie signed with another key, or altered, counts as no session."""
        forged = SessionCodec("not-the-server-key").dumps(SessionData(csrf_token="x", api_key=dashboard_world.read_a))
        web_client.cookies.set(COOKIE_NAME, forged)
        assert web_client.get("/", follow_redirects=False).status_code == 303

    @pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"])
    def test_sign_in_never_redirects_off_site(self, web_client: TestClient, dashboard_world: DashboardWorld, target: str) -> None:
        """The ``next`` of the sign-in form only leads to a path on this site."""
        token = csrf_of(web_client.get("/ui/login").text)
        response = web_client.post(
            "/ui/login", data={"csrf_token": token, "api_key": dashboard_world.read_a, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/"

    def test_signing_out_ends_the_session(self, client_a: TestClient) -> None:
        """Sign-out (a CSRF-checked form) replaces the session with an anonymous one."""
        token = csrf_of(client_a.get("/").text)
        response = client_a.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303
        assert client_a.get("/", follow_redirects=False).status_code == 303


class TestCsrf:
    def test_sign_in_without_the_token_is_refused(self, web_client: TestClient, dashboard_world: DashboardWorld) -> None:
        """The sign-in form is protected too: no token, 403, no session."""
        web_client.get("/ui/login")
        response = web_client.post("/ui/login", data={"api_key": dashboard_world.read_a}, follow_redirects=False)
        assert response.status_code == 403
        assert "security token" in response.text
        assert web_client.get("/", follow_redirects=False).status_code == 303

    def test_a_token_of_another_session_is_refused(
        self, web_client: TestClient, dashboard_wiring: Wiring, dashboard_world: DashboardWorld
    ) -> None:
        """The token must be the one in this browser's session cookie."""
        with TestClient(dashboard_wiring.app) as other:
            foreign = csrf_of(other.get("/ui/login").text)
        web_client.get("/ui/login")
        response = web_client.post(
            "/ui/login", data={"csrf_token": foreign, "api_key": dashboard_world.read_a}, follow_redirects=False
        )
        assert response.status_code == 403

    def test_an_alert_action_without_the_token_changes_nothing(
        self, client_a: TestClient, dashboard_world: DashboardWorld
    ) -> None:
        """A forged acknowledge (no token, or a wrong one) is a 403 and the alert stays as it was."""
        alert_id = dashboard_world.alert_ids[4]
        before = alert_status(dashboard_world, alert_id)
        assert client_a.post(f"/ui/alerts/{alert_id}/acknowledge", data={}).status_code == 403
        assert client_a.post(f"/ui/alerts/{alert_id}/acknowledge", data={"csrf_token": "guess"}).status_code == 403
        assert alert_status(dashboard_world, alert_id) == before

    def test_a_form_posted_from_another_origin_is_refused(self, client_a: TestClient, dashboard_world: DashboardWorld) -> None:
        """Even with the token, an Origin header of another site is refused."""
        token = csrf_of(client_a.get("/ui/alerts").text)
        alert_id = dashboard_world.alert_ids[4]
        response = client_a.post(
            f"/ui/alerts/{alert_id}/acknowledge", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 403
        assert alert_status(dashboard_world, alert_id)["status"] == "active"

    def test_sign_out_needs_the_token(self, client_a: TestClient) -> None:
        """A cross-site sign-out is refused."""
        assert client_a.post("/ui/logout", data={}).status_code == 403
        assert client_a.get("/", follow_redirects=False).status_code == 200


class TestHeaders:
    def test_every_dashboard_page_carries_the_security_headers(self, client_a: TestClient) -> None:
        """CSP without inline script, no framing, no sniffing, a referrer policy, no caching of pages."""
        for path in (*PAGES, "/ui/login", "/ui/data/overview"):
            response = client_a.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            directives = {part.split()[0]: part.split()[1:] for part in policy.split("; ")}
            assert directives["script-src"] == ["'self'"], path
            assert directives["frame-ancestors"] == ["'none'"]
            assert directives["object-src"] == ["'none'"]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "same-origin"
            assert response.headers["cache-control"] == "no-store"

    def test_pages_hold_no_inline_script(self, client_a: TestClient, dashboard_world: DashboardWorld) -> None:
        """Every script element loads a local file; no event-handler attributes."""
        for path in (
            *PAGES,
            f"/ui/traces/{dashboard_world.trace_id}",
            f"/ui/alerts/{dashboard_world.alert_ids[0]}",
            "/ui/rules/new",
        ):
            html = client_a.get(path).text
            scripts = re.findall(r"<script\b[^>]*>", html)
            assert scripts, path
            for tag in scripts:
                assert re.search(r'src="/ui/(static|vendor)/[\w.]+\.js"', tag), (path, tag)
            assert not re.search(r"\son(click|load|submit|error)=", html), path

    def test_the_api_keeps_its_own_headers(self, web_client: TestClient) -> None:
        """The dashboard's CSP is not put on the JSON API."""
        response = web_client.get("/healthz")
        assert "content-security-policy" not in response.headers

    def test_plotly_js_is_served_locally_from_the_plotly_package(self, web_client: TestClient) -> None:
        """The chart library comes from the installed plotly package, gzipped when asked, cacheable with an ETag."""
        plain = web_client.get("/ui/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["content-type"].startswith("text/javascript")
        assert plain.text.lstrip().startswith("/**\n* plotly.js v")
        assert len(plain.content) > 1_000_000
        zipped = web_client.get("/ui/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.content == plain.content  # httpx decodes it
        again = web_client.get("/ui/vendor/plotly.min.js", headers={"If-None-Match": plain.headers["etag"]})
        assert again.status_code == 304


class TestTenantScoping:
    def test_a_license_key_sees_none_of_another_license_in_pages_or_data(
        self, web_client: TestClient, dashboard_wiring: Wiring, dashboard_world: DashboardWorld
    ) -> None:
        """A's pages and data endpoints never name B's event, service, metric or rule; B's do (so this can fail)."""
        secrets_of_b = (B_EVENT, B_SERVICE, B_METRIC, B_RULE)
        sign_in(web_client, dashboard_world.read_a)
        for name in DATA:
            body = web_client.get(f"/ui/data/{name}?range=1h").text
            assert not [secret for secret in secrets_of_b if secret in body], name
        for path in ("/ui/events?range=1h", "/ui/services?range=1h", "/ui/metrics", "/ui/alerts?status=all"):
            assert not [secret for secret in secrets_of_b if secret in web_client.get(path).text], path
        assert _points(web_client.get(f"/ui/data/metrics?metric={B_METRIC}&range=1h").json()) == 0
        with TestClient(dashboard_wiring.app) as client_b:
            sign_in(client_b, dashboard_world.read_b)
            assert B_EVENT in client_b.get("/ui/data/events?range=1h").text
            assert B_SERVICE in client_b.get("/ui/data/services?range=1h").text
            assert B_RULE in client_b.get("/ui/data/alerts?status=all").text
            assert "High CPU Usage" not in client_b.get("/ui/data/alerts?status=all").text
            assert _points(client_b.get(f"/ui/data/metrics?metric={B_METRIC}&range=1h").json()) > 0

    def test_an_admin_key_sees_every_license(self, web_client: TestClient, dashboard_world: DashboardWorld) -> None:
        """An admin key's dashboard covers all licenses."""
        sign_in(web_client, dashboard_world.admin)
        events = web_client.get("/ui/data/events?range=1h&limit=200&event_name=" + B_EVENT).text
        assert B_EVENT in events
        alerts_page = web_client.get("/ui/data/alerts?status=all").text
        assert B_RULE in alerts_page and "High CPU Usage" in alerts_page

    def test_another_license_s_alert_and_trace_are_not_found(self, client_a: TestClient, dashboard_world: DashboardWorld) -> None:
        """A's key gets 404 for B's alert, cannot act on it, and B's key cannot open A's trace."""
        assert client_a.get(f"/ui/alerts/{dashboard_world.b_alert_id}").status_code == 404
        token = csrf_of(client_a.get("/ui/alerts").text)
        response = client_a.post(f"/ui/alerts/{dashboard_world.b_alert_id}/resolve", data={"csrf_token": token})
        assert response.status_code == 404
        assert alert_status(dashboard_world, dashboard_world.b_alert_id)["status"] == "active"
        sign_in(client_a, dashboard_world.read_b)
        assert client_a.get(f"/ui/traces/{dashboard_world.trace_id}").status_code == 404


class TestPages:
    def test_every_page_and_data_endpoint_answers(self, client_a: TestClient, dashboard_world: DashboardWorld) -> None:
        """Each page renders with the signed-in key; each data endpoint returns its charts and fragments."""
        for path in PAGES:
            assert client_a.get(path).status_code == 200, path
        for name in DATA:
            body = client_a.get(f"/ui/data/{name}").json()
            assert set(body) == {"generated_at", "charts", "fragments"}
        overview = client_a.get("/ui/data/overview").json()
        assert set(overview["charts"]) == {"events-by-type", "error-rate"}
        assert "High CPU Usage" in overview["fragments"]["overview-alerts"]

    def test_the_metrics_page_says_when_its_last_point_is_partial(self, client_a: TestClient) -> None:
        """A range ending now holds an unfinished bucket: the summary names it, and for rate says it is per elapsed second;
        a range that ended an hour ago has none."""
        now_page = client_a.get("/ui/data/metrics?metric=cpu_usage&range=1h&agg=rate").json()
        summary = now_page["fragments"]["metrics-summary"]
        assert "is partial" in summary and "its rate is per second of those" in summary
        assert "last point partial" in html.unescape(json.dumps(now_page["charts"]))
        ended = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        params = {"metric": "cpu_usage", "agg": "rate", "from": (ended - timedelta(hours=1)).isoformat(), "to": ended.isoformat()}
        past = client_a.get("/ui/data/metrics", params=params)
        assert past.status_code == 200 and "is partial" not in past.json()["fragments"]["metrics-summary"]

    def test_a_bad_filter_is_a_400_page_with_the_message(self, client_a: TestClient) -> None:
        """Bad filters are explained on the page, never a server error."""
        cases = {
            "/ui/events?event_type=nope": "event_type",
            "/ui/traces?min_duration_ms=abc": "min_duration_ms",
            "/ui/metrics?agg=median": "not an aggregation",
            "/ui/events?from=yesterday": "ISO 8601",
            "/ui/services?range=2y": "range",
            "/ui/events?payload=plan": "key=value",
        }
        for path, expected in cases.items():
            response = client_a.get(path)
            assert response.status_code == 400, path
            assert expected in response.text, path
        assert client_a.get("/ui/data/events?event_type=nope").status_code == 400

    def test_events_filter_by_payload_and_page_by_cursor(self, client_a: TestClient) -> None:
        """The payload box filters by containment; the older-events link continues where the page ended."""
        page = client_a.get("/ui/events?event_type=business_event&payload=currency%3DEUR&limit=25&range=3d")
        assert page.status_code == 200
        assert page.text.count('class="event-row"') == 25
        shown = html.unescape(page.text)
        assert shown.count('"currency": "EUR"') == 25 and '"currency": "USD"' not in shown
        older = re.search(r'id="older-events" href="([^"]+)"', page.text)
        assert older
        second = client_a.get(older.group(1).replace("&amp;", "&"))
        assert second.status_code == 200
        first_ids = set(re.findall(r'data-event-id="([^"]+)"', page.text))
        second_ids = set(re.findall(r'data-event-id="([^"]+)"', second.text))
        assert second_ids and not first_ids & second_ids

    def test_resolving_an_alert_from_the_page_stores_it(self, client_a: TestClient, dashboard_world: DashboardWorld) -> None:
        """The resolve form resolves the alert with its note, recorded as done by the signed-in key."""
        alert_id = dashboard_world.alert_ids[1]
        token = csrf_of(client_a.get("/ui/alerts").text)
        response = client_a.post(
            f"/ui/alerts/{alert_id}/resolve",
            data={"csrf_token": token, "note": "scaled out", "return_to": "/ui/alerts?status=open"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/alerts?status=open&done=resolve"
        stored = alert_status(dashboard_world, alert_id)
        assert stored["status"] == "resolved" and stored["resolution_notes"] == "scaled out"
        again = client_a.post(f"/ui/alerts/{alert_id}/resolve", data={"csrf_token": token})
        assert again.status_code == 409
        assert "is resolved" in again.text

    def test_silencing_an_alert_from_the_page_suppresses_it(self, client_a: TestClient, dashboard_world: DashboardWorld) -> None:
        """The silence form creates a silence on the alert's rule and group; the alert is suppressed; ending it brings it back."""
        alert_id = dashboard_world.alert_ids[2]
        token = csrf_of(client_a.get("/ui/alerts").text)
        client_a.post(f"/ui/alerts/{alert_id}/silence", data={"csrf_token": token, "duration": "4h"})
        assert alert_status(dashboard_world, alert_id)["status"] == "suppressed"
        others = [alert_status(dashboard_world, other)["status"] for other in dashboard_world.alert_ids[3:]]
        assert "suppressed" not in others
        listing = client_a.get("/ui/alerts").text
        silence_id = re.search(r'data-silence-id="(\d+)"', listing)
        assert silence_id and f'rule_id="{dashboard_world.rule_id}"' in html.unescape(listing)
        client_a.post(f"/ui/silences/{silence_id.group(1)}/expire", data={"csrf_token": token})
        assert alert_status(dashboard_world, alert_id)["status"] == "active"
        assert audit_actions(dashboard_world, "silence", silence_id.group(1)) == ["silence.create", "silence.expire"]

    def test_assigning_to_an_unknown_user_shows_the_reason(self, client_a: TestClient, dashboard_world: DashboardWorld) -> None:
        """Assign names a user of the alert's license; another name is explained on the alert's page."""
        alert_id = dashboard_world.alert_ids[3]
        token = csrf_of(client_a.get("/ui/alerts").text)
        response = client_a.post(f"/ui/alerts/{alert_id}/assign", data={"csrf_token": token, "user_id": "nobody-here"})
        assert response.status_code == 400
        assert "no user" in response.text and "nobody-here" in response.text
        assert alert_status(dashboard_world, alert_id)["assigned_to"] is None

    def test_the_rule_form_puts_each_problem_next_to_its_field(
        self, client_a: TestClient, dashboard_world: DashboardWorld
    ) -> None:
        """Condition problems go under the condition, interval problems under the interval; nothing is saved."""
        token = csrf_of(client_a.get("/ui/rules/new").text)
        response = client_a.post(
            "/ui/rules/new",
            data={
                "csrf_token": token,
                "action": "save",
                "name": "Broken rule",
                "severity": "warning",
                "condition_config": '{"metric": "cpu_usage", "operator": ">>", "threshold": "high"}',
                "evaluation_interval_seconds": "5",
                "repeat_interval_minutes": "240",
            },
        )
        assert response.status_code == 400
        condition_errors = re.findall(r'<div class="field-error" data-field="condition_config">([^<]+)</div>', response.text)
        assert any("threshold must be a finite number" in error for error in condition_errors), condition_errors
        assert any("operator" in error and "allowed: &gt;" in error for error in condition_errors), condition_errors
        assert re.search(r'data-field="evaluation_interval_seconds">[^<]*from 10', response.text)
        with session_factory(dashboard_world.engine)() as session:
            assert session.execute(text("SELECT count(*) FROM alert_rules WHERE name = 'Broken rule'")).scalar_one() == 0

    def test_a_rule_is_created_edited_and_backtested_from_the_form(
        self, client_a: TestClient, dashboard_world: DashboardWorld
    ) -> None:
        """Save creates the rule in A's license; editing keeps its id and bumps its version; backtest saves nothing."""
        token = csrf_of(client_a.get("/ui/rules/new").text)
        fields = {
            "csrf_token": token,
            "name": "Hot hosts",
            "severity": "error",
            "condition_config": '{"metric": "cpu_usage", "aggregation": "max", "operator": ">", "threshold": 60, "group_by": ["host_name"]}',
            "evaluation_interval_seconds": "300",
            "repeat_interval_minutes": "60",
            "labels": "team=platform",
            "enabled": "on",
        }
        created = client_a.post("/ui/rules/new", data={**fields, "action": "save"}, follow_redirects=False)
        assert created.status_code == 303
        rule_id = int(created.headers["location"].split("/")[-1].split("?")[0])
        with session_factory(dashboard_world.engine)() as session:
            row = session.execute(
                text("SELECT license_id, version, labels FROM alert_rules WHERE rule_id = :r"), {"r": rule_id}
            ).one()
        assert row.license_id == dashboard_world.license_a and row.version == 1 and row.labels == {"team": "platform"}
        edited = client_a.post(
            f"/ui/rules/{rule_id}",
            data={**fields, "action": "save", "name": "Hot hosts (edited)", "version": "1"},
            follow_redirects=False,
        )
        assert edited.headers["location"] == f"/ui/rules/{rule_id}?done=saved"
        stale = client_a.post(f"/ui/rules/{rule_id}", data={**fields, "action": "save", "version": "1"})
        assert stale.status_code == 409 and "changed since it was read" in stale.text
        backtest = client_a.post(f"/ui/rules/{rule_id}", data={**fields, "action": "backtest", "backtest_range": "3d"})
        assert backtest.status_code == 200
        assert 'id="backtest-result"' in backtest.text
        assert re.search(r"(\d+) alert\(s\)", backtest.text) and "chart-backtest" in backtest.text
        with session_factory(dashboard_world.engine)() as session:
            row = session.execute(text("SELECT name, version FROM alert_rules WHERE rule_id = :r"), {"r": rule_id}).one()
        assert row.name == "Hot hosts (edited)" and row.version == 2
        assert audit_actions(dashboard_world, "alert_rule", str(rule_id)) == ["rule.create", "rule.update"]


class TestEmptyDatabase:
    def test_every_page_renders_on_a_fresh_database(self, database_factory: Callable[[], str]) -> None:
        """With no telemetry, rules or KPIs yet, each page and data endpoint answers 200 with its empty states."""
        engine = make_engine(database_factory(), pool_size=2)
        try:
            schema.upgrade(engine)
            with session_factory(engine).begin() as session:
                license_id = keys.create_license(session, name="empty")
                token = keys.create_key(session, license_id=license_id, scopes=["read"], new_token=new_token).token
            with TestClient(create_app(engine=engine, secret_key=SECRET_KEY)) as client:
                sign_in(client, token)
                for path in PAGES:
                    response = client.get(path)
                    assert response.status_code == 200, path
                for name in DATA:
                    assert client.get(f"/ui/data/{name}").status_code == 200, name
                assert "No events in this range." in client.get("/").text
                assert "No active alerts." in client.get("/").text
                assert "No alert rule yet." in client.get("/ui/rules").text
                assert "No KPI has been computed yet" in client.get("/ui/kpis").text
                assert "No metric has samples in the last 24 hours." in client.get("/ui/metrics").text
        finally:
            engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_cookies(web_client: TestClient) -> Iterator[None]:
    web_client.cookies.clear()
    yield
