"""``/api/v1/alerts`` and ``/api/v1/silences`` through the real app on committed data: filters and keyset
pages, acknowledge/assign/resolve with their history, field-level errors, and tenant scoping on every route
(a license key never reads or changes another license's alerts or silences: 404)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from fernando_telemetry.core.keys import hash_key
from fernando_telemetry.services import keys, platform
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import Alert, AlertDelivery, ApiKey
from tests.alert_fixtures import add_alert, add_rule
from tests.ingest_fixtures import Tenant, admin_key, make_tenant, new_token

NOW = datetime.now(UTC).replace(microsecond=0)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key_id(engine: Engine, token: str) -> int:
    with session_factory(engine)() as session:
        return session.scalars(select(ApiKey.api_key_id).where(ApiKey.key_hash == hash_key(token))).one()


@dataclass
class Seeded:
    tenant: Tenant
    rule_id: int
    other_rule_id: int
    alert_ids: list[int]
    """oldest first: active/warning/api, acknowledged/critical/api, active/critical/web, resolved/info/-"""


def seed(engine: Engine) -> Seeded:
    tenant = make_tenant(engine)
    with session_factory(engine).begin() as session:
        rule = add_rule(session, license_id=tenant.license_id, condition={"metric": "cpu", "threshold": 80})
        other = add_rule(session, license_id=tenant.license_id, condition={"metric": "mem", "threshold": 80})
        specs = [
            (rule, {"host": "a"}, "active", "warning", "api"),
            (rule, {"host": "b"}, "acknowledged", "critical", "api"),
            (other, {"host": "c"}, "active", "critical", "web"),
            (other, {"host": "d"}, "resolved", "info", None),
        ]
        ids = []
        for minutes, (owner, group, status, severity, service) in enumerate(specs):
            alert = add_alert(
                session, rule=owner, group_key=group, status=status, severity=severity, service=service,
                triggered_at=NOW - timedelta(minutes=60 - minutes),
            )  # fmt: skip
            ids.append(alert.alert_id)
    return Seeded(tenant, rule.rule_id, other.rule_id, ids)


@pytest.fixture()
def seeded(committed_engine: Engine) -> Seeded:
    return seed(committed_engine)


def listed(client: TestClient, token: str, **params: Any) -> list[int]:
    response = client.get("/api/v1/alerts", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return [alert["alert_id"] for alert in response.json()["alerts"]]


class TestList:
    def test_filters(self, client: TestClient, seeded: Seeded) -> None:
        """Newest first; status and severity lists, rule, service and the triggered_at range each narrow the list."""
        token, ids = seeded.tenant.read_key, seeded.alert_ids
        assert listed(client, token) == ids[::-1]
        assert listed(client, token, status="active") == [ids[2], ids[0]]
        assert listed(client, token, status="active,acknowledged", severity="critical") == [ids[2], ids[1]]
        assert listed(client, token, rule_id=seeded.rule_id) == [ids[1], ids[0]]
        assert listed(client, token, service="api") == [ids[1], ids[0]]
        start = (NOW - timedelta(minutes=59)).isoformat()
        end = (NOW - timedelta(minutes=57)).isoformat()
        assert listed(client, token, **{"from": start, "to": end}) == [ids[2], ids[1]]

    def test_keyset_pages(self, client: TestClient, seeded: Seeded) -> None:
        """limit=3 then the cursor: every alert once, in order; the cursor refuses other filters."""
        token = seeded.tenant.read_key
        first = client.get("/api/v1/alerts", params={"limit": 3}, headers=auth(token)).json()
        assert first["next_cursor"] is not None
        second = client.get("/api/v1/alerts", params={"limit": 3, "cursor": first["next_cursor"]}, headers=auth(token)).json()
        assert second["next_cursor"] is None
        assert [a["alert_id"] for a in first["alerts"] + second["alerts"]] == seeded.alert_ids[::-1]
        other = client.get("/api/v1/alerts", params={"status": "active", "cursor": first["next_cursor"]}, headers=auth(token))
        assert other.status_code == 400 and other.json()["error"]["details"][0]["field"] == "cursor"

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"status": "open"}, "status"),
            ({"severity": "huge"}, "severity"),
            ({"limit": "0"}, "limit"),
            ({"rule_id": "x"}, "rule_id"),
            ({"from": "yesterday"}, "from"),
            ({"colour": "red"}, "colour"),
            ({"cursor": "garbage"}, "cursor"),
        ],
    )
    def test_bad_parameters_are_400_naming_the_field(
        self, client: TestClient, seeded: Seeded, params: dict[str, str], field: str
    ) -> None:
        """Each bad parameter is a 400 whose details name it."""
        response = client.get("/api/v1/alerts", params=params, headers=auth(seeded.tenant.read_key))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"][0]["field"] == field

    def test_a_bad_status_lists_the_allowed_values(self, client: TestClient, seeded: Seeded) -> None:
        detail = client.get("/api/v1/alerts", params={"status": "open"}, headers=auth(seeded.tenant.read_key)).json()["error"][
            "details"
        ][0]
        assert detail["allowed"] == ["active", "acknowledged", "resolved", "suppressed"]

    def test_admin_keys_see_every_license_or_one(self, client: TestClient, committed_engine: Engine) -> None:
        """An admin key lists both tenants' alerts; license_id narrows to one; a license key asking for another is 403."""
        first, second = seed(committed_engine), seed(committed_engine)
        admin = admin_key(committed_engine)
        both = set(listed(client, admin, limit=500, **{"from": (NOW - timedelta(minutes=61)).isoformat()}))
        assert set(first.alert_ids) | set(second.alert_ids) <= both
        assert listed(client, admin, license_id=second.tenant.license_id) == second.alert_ids[::-1]
        response = client.get(
            "/api/v1/alerts", params={"license_id": second.tenant.license_id}, headers=auth(first.tenant.read_key)
        )
        assert response.status_code == 403


class TestTenantScoping:
    def test_another_license_s_alert_is_404_on_every_route_and_stays_untouched(
        self, client: TestClient, committed_engine: Engine
    ) -> None:
        """License A's key: GET, history, acknowledge, assign and resolve of B's alert are all 404; B's alert is unchanged."""
        a, b = seed(committed_engine), seed(committed_engine)
        target = b.alert_ids[0]
        token = a.tenant.ingest_key
        calls = [
            client.get(f"/api/v1/alerts/{target}", headers=auth(token)),
            client.get(f"/api/v1/alerts/{target}/history", headers=auth(token)),
            client.post(f"/api/v1/alerts/{target}/acknowledge", json={}, headers=auth(token)),
            client.post(f"/api/v1/alerts/{target}/assign", json={"user_id": a.tenant.user_id}, headers=auth(token)),
            client.post(f"/api/v1/alerts/{target}/resolve", json={"note": "not mine"}, headers=auth(token)),
        ]
        assert [response.status_code for response in calls] == [404] * 5
        assert {response.json()["error"]["code"] for response in calls} == {"not_found"}
        assert b.alert_ids[0] not in listed(client, token, limit=500)
        with session_factory(committed_engine)() as session:
            alert = session.get(Alert, target)
            assert alert is not None and (alert.status, alert.assigned_to, alert.resolved_at) == ("active", None, None)
        assert client.get(f"/api/v1/alerts/{target}", headers=auth(b.tenant.read_key)).status_code == 200

    def test_a_key_without_the_read_scope_is_403(self, client: TestClient, committed_engine: Engine) -> None:
        tenant = make_tenant(committed_engine)
        with session_factory(committed_engine).begin() as session:
            ingest_only = keys.create_key(session, license_id=tenant.license_id, scopes=["ingest"], new_token=new_token).token
        assert client.get("/api/v1/alerts", headers=auth(ingest_only)).status_code == 403
        assert client.get("/api/v1/alerts").status_code == 401


class TestChanges:
    def test_acknowledge_assign_resolve_and_the_history(
        self, client: TestClient, seeded: Seeded, committed_engine: Engine
    ) -> None:
        """Each change answers the new alert and lands in the history with the key as actor; deliveries are listed too."""
        token, alert_id, tenant = seeded.tenant.read_key, seeded.alert_ids[0], seeded.tenant
        actor = f"key:{key_id(committed_engine, token)}"
        acked = client.post(
            f"/api/v1/alerts/{alert_id}/acknowledge", json={"user_id": tenant.user_id, "note": "mine"}, headers=auth(token)
        )
        assert acked.status_code == 200, acked.text
        assert (acked.json()["status"], acked.json()["acknowledged_by"]) == ("acknowledged", tenant.user_id)
        again = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=auth(token))
        assert again.status_code == 409
        assigned = client.post(f"/api/v1/alerts/{alert_id}/assign", json={"user_id": tenant.user_id}, headers=auth(token))
        assert assigned.json()["assigned_to"] == tenant.user_id
        with session_factory(committed_engine).begin() as session:
            session.add(
                AlertDelivery(
                    alert_id=alert_id, license_id=tenant.license_id, channel_name="ops", channel_type="webhook", kind="firing",
                    attempt=1, outcome="failed", http_status=500, error="server error", latency_ms=12.5, attempted_at=NOW,
                )
            )  # fmt: skip
        resolved = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "fixed the cron"}, headers=auth(token))
        assert resolved.status_code == 200
        assert (resolved.json()["status"], resolved.json()["resolution_notes"]) == ("resolved", "fixed the cron")
        # error_count counts the dispatcher's failed attempts (this delivery was written by hand); the row's times
        assert resolved.json()["error_count"] == 0
        assert datetime.fromisoformat(resolved.json()["updated_at"]) > datetime.fromisoformat(acked.json()["updated_at"])
        assert client.post(f"/api/v1/alerts/{alert_id}/resolve", headers=auth(token)).status_code == 409
        assert client.post(f"/api/v1/alerts/{alert_id}/assign", json={"user_id": None}, headers=auth(token)).status_code == 409

        history = client.get(f"/api/v1/alerts/{alert_id}/history", headers=auth(token)).json()
        assert history["alert"]["status"] == "resolved"
        assert [(e["details"]["action"], e["from_state"], e["to_state"], e["actor"], e["note"]) for e in history["events"]] == [
            ("acknowledge", "active", "acknowledged", actor, "mine"),
            ("assign", "acknowledged", "acknowledged", actor, None),
            ("resolve", "acknowledged", "resolved", actor, "fixed the cron"),
        ]
        assert [(d["channel_name"], d["attempt"], d["outcome"], d["http_status"]) for d in history["deliveries"]] == [
            ("ops", 1, "failed", 500)
        ]

    def test_users_of_another_license_cannot_be_named(self, client: TestClient, committed_engine: Engine) -> None:
        """assign or acknowledge naming a user of another license (or no user) is a 400 on user_id."""
        a, b = seed(committed_engine), seed(committed_engine)
        for body in ({"user_id": b.tenant.user_id}, {"user_id": f"ghost-{uuid.uuid4().hex[:6]}"}):
            response = client.post(f"/api/v1/alerts/{a.alert_ids[0]}/assign", json=body, headers=auth(a.tenant.read_key))
            assert response.status_code == 400 and response.json()["error"]["details"][0]["field"] == "user_id"
        with session_factory(committed_engine).begin() as session:
            shared = f"shared-{uuid.uuid4().hex[:6]}"
            # a user of the alert's license may be named, also one registered by ingest after the platform's
            platform.upsert_user(session, license_id=a.tenant.license_id, user_id=shared, fields={}, now=NOW)
        ok = client.post(
            f"/api/v1/alerts/{a.alert_ids[0]}/acknowledge", json={"user_id": shared}, headers=auth(a.tenant.read_key)
        )
        assert ok.status_code == 200

    @pytest.mark.parametrize(
        ("path", "body", "status"),
        [
            ("/api/v1/alerts/abc/acknowledge", {}, 422),
            (f"/api/v1/alerts/{2**63}/acknowledge", {}, 422),
            ("/api/v1/alerts/{id}/acknowledge", {"note": "x", "mood": "calm"}, 422),
            ("/api/v1/alerts/{id}/assign", {}, 422),
            ("/api/v1/alerts/{id}/resolve", {"note": "x" * 5000}, 422),
            ("/api/v1/alerts/{id}/resolve", {"note": "nul\u0000"}, 400),
        ],
    )
    def test_bad_requests_are_4xx_never_500(
        self, client: TestClient, seeded: Seeded, path: str, body: dict[str, Any], status: int
    ) -> None:
        response = client.post(path.replace("{id}", str(seeded.alert_ids[0])), json=body, headers=auth(seeded.tenant.read_key))
        assert response.status_code == status, response.text


class TestSilencesApi:
    def test_create_suppresses_then_expire_releases(self, client: TestClient, seeded: Seeded) -> None:
        """POST suppresses the matching open alert at once; GET lists it active; POST .../expire ends it and the alert is active again."""
        token, target = seeded.tenant.read_key, seeded.alert_ids[0]
        body = {
            "matchers": [{"name": "host", "value": "a"}, {"name": "rule_id", "value": str(seeded.rule_id)}],
            "duration_minutes": 30,
            "comment": "maintenance",
        }
        created = client.post("/api/v1/silences", json=body, headers=auth(token))
        assert created.status_code == 201, created.text
        silence = created.json()
        assert (silence["state"], silence["alerts_changed"], silence["license_id"]) == ("active", 1, seeded.tenant.license_id)
        alert = client.get(f"/api/v1/alerts/{target}", headers=auth(token)).json()
        assert (alert["status"], alert["silenced_by"]) == ("suppressed", silence["silence_id"])
        active = client.get("/api/v1/silences", params={"state": "active"}, headers=auth(token)).json()["silences"]
        assert [s["silence_id"] for s in active] == [silence["silence_id"]]
        patched = client.patch(
            f"/api/v1/silences/{silence['silence_id']}", json={"comment": "longer maintenance"}, headers=auth(token)
        )
        assert patched.json()["comment"] == "longer maintenance"
        expired = client.post(f"/api/v1/silences/{silence['silence_id']}/expire", headers=auth(token))
        assert (expired.status_code, expired.json()["state"]) == (200, "expired")
        assert client.get(f"/api/v1/alerts/{target}", headers=auth(token)).json()["status"] == "active"
        assert client.delete(f"/api/v1/silences/{silence['silence_id']}", headers=auth(token)).status_code == 409
        actions = [
            e["details"]["action"] for e in client.get(f"/api/v1/alerts/{target}/history", headers=auth(token)).json()["events"]
        ]
        assert actions == ["suppress", "unsuppress"]

    def test_field_level_errors(self, client: TestClient, seeded: Seeded) -> None:
        """Bad matchers and times in one 400, each named; both ends_at and duration is a 400; an unknown field is a 422."""
        token = seeded.tenant.read_key
        response = client.post(
            "/api/v1/silences",
            json={"matchers": [{"name": "a", "op": "=~", "value": "("}, {"op": "="}], "ends_at": "2000-01-01T00:00:00Z"},
            headers=auth(token),
        )
        assert response.status_code == 400
        fields = [detail["field"] for detail in response.json()["error"]["details"]]
        assert fields == ["matchers[0].value", "matchers[1].name", "matchers[1].value", "ends_at"]
        both = client.post(
            "/api/v1/silences",
            json={"matchers": [{"name": "a", "value": "1"}], "ends_at": "2199-01-01T00:00:00Z", "duration_minutes": 5},
            headers=auth(token),
        )
        assert both.status_code == 400 and both.json()["error"]["details"][0]["field"] == "duration_minutes"
        assert client.post("/api/v1/silences", json={"matchers": [], "until": "x"}, headers=auth(token)).status_code == 422
        assert client.get("/api/v1/silences", params={"state": "sleeping"}, headers=auth(token)).status_code == 400

    def test_out_of_range_values_are_400_not_500(self, client: TestClient, committed_engine: Engine) -> None:
        """An admin naming a license that does not exist, or a start in year 9999: 400 on the field."""
        admin = admin_key(committed_engine)
        matchers = [{"name": "a", "value": "1"}]
        unknown = client.post(
            "/api/v1/silences", json={"matchers": matchers, "duration_minutes": 5, "license_id": 2**62}, headers=auth(admin)
        )
        assert unknown.status_code == 400 and unknown.json()["error"]["details"][0]["field"] == "license_id"
        late = client.post(
            "/api/v1/silences",
            json={"matchers": matchers, "starts_at": "9999-12-31T23:00:00Z", "duration_minutes": 120},
            headers=auth(admin),
        )
        assert late.status_code == 400 and late.json()["error"]["details"][0] == {"field": "starts_at", "reason": "out of range"}

    def test_silences_are_scoped_to_their_license(self, client: TestClient, committed_engine: Engine) -> None:
        """B's key: A's silence is 404 to get, patch, expire and delete, and absent from B's list; naming A's license is 403."""
        a, b = seed(committed_engine), seed(committed_engine)
        body = {"matchers": [{"name": "host", "value": "zzz"}], "duration_minutes": 5}
        made = client.post("/api/v1/silences", json=body, headers=auth(a.tenant.read_key)).json()
        path = f"/api/v1/silences/{made['silence_id']}"
        token = b.tenant.read_key
        calls = [
            client.get(path, headers=auth(token)),
            client.patch(path, json={"comment": "x"}, headers=auth(token)),
            client.post(f"{path}/expire", headers=auth(token)),
            client.delete(path, headers=auth(token)),
        ]
        assert [response.status_code for response in calls] == [404] * 4
        assert made["silence_id"] not in [
            s["silence_id"] for s in client.get("/api/v1/silences", headers=auth(token)).json()["silences"]
        ]
        forged = client.post("/api/v1/silences", json={**body, "license_id": a.tenant.license_id}, headers=auth(token))
        assert forged.status_code == 403
        assert client.get(path, headers=auth(a.tenant.read_key)).json()["state"] == "active"

    def test_admin_platform_wide_silence(self, client: TestClient, committed_engine: Engine) -> None:
        """An admin silence without license_id covers alerts of every license; license keys do not see it."""
        a, b = seed(committed_engine), seed(committed_engine)
        admin = admin_key(committed_engine)
        marker = uuid.uuid4().hex[:8]
        with session_factory(committed_engine).begin() as session:
            ids = []
            for tenant in (a, b):
                rule = add_rule(
                    session,
                    license_id=tenant.tenant.license_id,
                    condition={"metric": "cpu", "threshold": 1},
                    labels={"run": marker},
                )
                ids.append(add_alert(session, rule=rule, group_key={"marker": marker}).alert_id)
        made = client.post(
            "/api/v1/silences",
            json={"matchers": [{"name": "marker", "value": marker}], "duration_minutes": 5},
            headers=auth(admin),
        )
        assert made.status_code == 201 and made.json()["license_id"] is None and made.json()["alerts_changed"] == 2
        assert client.get(f"/api/v1/alerts/{ids[0]}", headers=auth(a.tenant.read_key)).json()["status"] == "suppressed"
        assert client.get(f"/api/v1/silences/{made.json()['silence_id']}", headers=auth(a.tenant.read_key)).status_code == 404
        # A's key expiring its own silences cannot release an alert a platform-wide silence holds
        own = client.post(
            "/api/v1/silences",
            json={"matchers": [{"name": "marker", "value": marker}], "duration_minutes": 5},
            headers=auth(a.tenant.read_key),
        ).json()
        client.post(f"/api/v1/silences/{own['silence_id']}/expire", headers=auth(a.tenant.read_key))
        assert client.get(f"/api/v1/alerts/{ids[0]}", headers=auth(a.tenant.read_key)).json()["status"] == "suppressed"
        client.delete(f"/api/v1/silences/{made.json()['silence_id']}", headers=auth(admin))
        assert client.get(f"/api/v1/alerts/{ids[1]}", headers=auth(b.tenant.read_key)).json()["status"] == "active"
