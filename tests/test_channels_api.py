"""``/api/v1/notification-channels`` through the real app: validation with every problem at once, secrets
stored encrypted and only ever answered masked, edits that keep secrets, deletes guarded by rules, the test
send to a real receiver, and tenant scoping; plus ``fernando-telemetry channels`` against the database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fernando_telemetry.cli.main import app as cli_app
from fernando_telemetry.services.secret_box import SecretBox
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import AlertRule, NotificationChannel
from tests.ingest_fixtures import Tenant, admin_key, make_tenant
from tests.notify_fixtures import Receiver

SLACK_TOKEN = "T0123/B0456/sEcReTtOkEn789"
HOOK_TOKEN = "q-token-5f4dcc3b5aa765d61d83"
SIGNING = "signing-secret-0123456789abcdef"
PASSWORD = "smtp-pass-word-42"
API = "/api/v1/notification-channels"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def tenant(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


@pytest.fixture()
def other(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


@pytest.fixture(scope="module")
def admin(committed_engine: Engine) -> str:
    return admin_key(committed_engine)


def _create(client: TestClient, key: str, spec: dict[str, Any], **params: Any) -> Any:
    return client.post(API, json=spec, headers=_auth(key), params=params)


def _every_secret_hidden(text: str) -> None:
    for secret in (SLACK_TOKEN, HOOK_TOKEN, SIGNING, PASSWORD, "sEcReT"):
        assert secret not in text


class TestCreate:
    def test_email_channel_with_its_own_smtp_server(self, client: TestClient, tenant: Tenant) -> None:
        """201 with the channel; the SMTP password is answered as ****."""
        response = _create(
            client,
            tenant.read_key,
            {
                "name": "ops-email",
                "type": "email",
                "to": ["ops@example.com"],
                "from": "alerts@example.com",
                "smtp_host": "smtp.example.com",
                "smtp_port": 587,
                "smtp_security": "starttls",
                "smtp_username": "alerts@example.com",
                "smtp_password": PASSWORD,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["license_id"] == tenant.license_id and body["name"] == "ops-email" and body["type"] == "email"
        assert body["to"] == ["ops@example.com"] and body["smtp_password"] == "****"
        assert body["send_resolved"] is True and body["enabled"] is True
        _every_secret_hidden(response.text)

    def test_slack_and_webhook_secrets_are_masked_everywhere(self, client: TestClient, tenant: Tenant) -> None:
        """Create, get, list and patch answers never hold the Slack token, the URL token or the signing secret."""
        slack = _create(
            client,
            tenant.read_key,
            {"name": "slack", "type": "slack", "webhook_url": f"https://hooks.slack.com/services/{SLACK_TOKEN}"},
        )
        hook = _create(
            client,
            tenant.read_key,
            {
                "name": "pager",
                "type": "webhook",
                "url": f"https://example.com/hook?token={HOOK_TOKEN}",
                "secret": SIGNING,
                "format": "alertmanager",
                "headers": {"Authorization": f"Bearer {HOOK_TOKEN}"},
            },
        )
        assert (slack.status_code, hook.status_code) == (201, 201), (slack.text, hook.text)
        assert slack.json()["webhook_url"] == "https://hooks.slack.com/…****"
        assert hook.json()["url"] == "https://example.com/hook?token=****"
        assert hook.json()["secret"] == "****" and hook.json()["headers"] == {"Authorization": "****"}
        assert hook.json()["format"] == "alertmanager"
        answers = [
            slack,
            hook,
            client.get(f"{API}/slack", headers=_auth(tenant.read_key)),
            client.get(f"{API}/pager", headers=_auth(tenant.read_key)),
            client.get(API, headers=_auth(tenant.read_key)),
            client.patch(f"{API}/pager", json={"send_resolved": False}, headers=_auth(tenant.read_key)),
        ]
        for answer in answers:
            assert answer.status_code in (200, 201), answer.text
            _every_secret_hidden(answer.text)

    def test_secrets_are_stored_encrypted(self, client: TestClient, tenant: Tenant, committed_engine: Engine) -> None:
        """The database holds a Fernet token, not the secrets; config holds only masked forms."""
        _create(
            client,
            tenant.read_key,
            {"name": "pager", "type": "webhook", "url": f"https://example.com/h?token={HOOK_TOKEN}", "secret": SIGNING},
        )
        with session_factory(committed_engine)() as session:
            row = session.scalars(select(NotificationChannel).where(NotificationChannel.license_id == tenant.license_id)).one()
        assert row.secrets is not None and row.secrets.startswith("gAAAAA")  # Fernet version byte, base64
        _every_secret_hidden(row.secrets + json.dumps(row.config))
        opened = client.app.state.notifications.box.open(row.secrets)  # type: ignore[attr-defined]
        assert opened == {"url": f"https://example.com/h?token={HOOK_TOKEN}", "secret": SIGNING}
        with pytest.raises(Exception, match="cannot be decrypted"):
            SecretBox("another-key").open(row.secrets)

    def test_every_problem_is_reported_at_once(self, client: TestClient, tenant: Tenant) -> None:
        """400 with one detail per problem: field and reason, allowed values where there is a list."""
        response = _create(
            client,
            tenant.read_key,
            {
                "name": "bad name!",
                "type": "webhook",
                "url": "ftp://example.com",
                "secret": "short",
                "format": "xml",
                "webhookurl": "x",
                "headers": {"Content-Type": "text/plain"},
            },
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        fields = {detail["field"]: detail for detail in error["details"]}
        assert set(fields) == {"name", "url", "secret", "format", "webhookurl", "headers.Content-Type"}
        assert fields["format"]["allowed"] == ["native", "alertmanager"]
        assert "url must be an http:// or https:// URL" in error["message"]

    @pytest.mark.parametrize(
        ("spec", "field"),
        [
            ({"name": "e", "type": "email"}, "to"),
            ({"name": "e", "type": "email", "to": ["not-an-address"]}, "to[0]"),
            ({"name": "e", "type": "email", "to": ["a@example.com"], "smtp_port": 70000, "smtp_host": "h"}, "smtp_port"),
            ({"name": "e", "type": "email", "to": ["a@example.com"], "smtp_security": "ssl", "smtp_host": "h"}, "smtp_security"),
            ({"name": "e", "type": "email", "to": ["a@example.com"], "smtp_port": 25}, "smtp_host"),
            ({"name": "e", "type": "email", "to": ["a@example.com"], "smtp_host": "h", "smtp_password": "p"}, "smtp_password"),
            ({"name": "e", "type": "email", "to": ["a@example.com"], "smtp_host": "h", "ca_cert": "nope"}, "ca_cert"),
            ({"name": "s", "type": "slack"}, "webhook_url"),
            ({"name": "s", "type": "sms"}, "type"),
            ({"name": "s", "type": "slack", "webhook_url": "https://hooks.slack.com/x", "enabled": "yes"}, "enabled"),
            ({"type": "slack", "webhook_url": "https://hooks.slack.com/x"}, "name"),
        ],
    )
    def test_one_problem_names_its_field(self, client: TestClient, tenant: Tenant, spec: dict[str, Any], field: str) -> None:
        """Each kind of mistake is a 400 naming the field at fault."""
        response = _create(client, tenant.read_key, spec)
        assert response.status_code == 400, response.text
        assert field in [detail["field"] for detail in response.json()["error"]["details"]]

    def test_nul_characters_are_a_400_or_a_404_never_a_500(self, client: TestClient, tenant: Tenant) -> None:
        """PostgreSQL cannot store NUL: in a body it is a 400 naming the field, in a path a 404."""
        response = _create(client, tenant.read_key, {"name": "e", "type": "email", "to": ["a\x00@example.com"]})
        assert response.status_code == 400
        assert [d["field"] for d in response.json()["error"]["details"]] == ["to"]
        assert client.get(f"{API}/a%00b", headers=_auth(tenant.read_key)).status_code == 404
        assert client.patch(f"{API}/a%00b", json={}, headers=_auth(tenant.read_key)).status_code == 404

    def test_a_body_that_is_not_an_object_is_a_422(self, client: TestClient, tenant: Tenant) -> None:
        """A JSON list is refused by the schema, not a 500."""
        response = client.post(API, json=["x"], headers=_auth(tenant.read_key))
        assert response.status_code == 422

    def test_duplicate_name_is_a_conflict(self, client: TestClient, tenant: Tenant, other: Tenant) -> None:
        """A name is unique within a license; another license may use it too."""
        spec = {"name": "slack", "type": "slack", "webhook_url": "https://hooks.slack.com/services/x"}
        assert _create(client, tenant.read_key, spec).status_code == 201
        assert _create(client, tenant.read_key, spec).status_code == 409
        assert _create(client, other.read_key, spec).status_code == 201


class TestChange:
    def test_sending_back_the_masked_form_keeps_the_secret(self, client: TestClient, tenant: Tenant) -> None:
        """GET, edit, PATCH the whole thing back: secrets unchanged (the test send still reaches the token URL)."""
        with Receiver() as receiver:
            created = _create(
                client,
                tenant.read_key,
                {"name": "hook", "type": "webhook", "url": f"{receiver.url}/in?token={HOOK_TOKEN}", "secret": SIGNING},
            )
            whole = created.json()
            whole["send_resolved"] = False
            patched = client.patch(f"{API}/hook", json=whole, headers=_auth(tenant.read_key))
            assert patched.status_code == 200, patched.text
            assert patched.json()["send_resolved"] is False
            tested = client.post(f"{API}/hook/test", headers=_auth(tenant.read_key))
        assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
        (request,) = receiver.requests
        assert request.path == f"/in?token={HOOK_TOKEN}"
        assert "x-fernando-signature" in request.headers

    def test_null_removes_and_a_new_value_replaces(self, client: TestClient, tenant: Tenant) -> None:
        """secret: null drops signing; a new url replaces the old one."""
        _create(client, tenant.read_key, {"name": "hook", "type": "webhook", "url": "https://a.example.com/x", "secret": SIGNING})
        patched = client.patch(
            f"{API}/hook", json={"secret": None, "url": "https://b.example.com/y"}, headers=_auth(tenant.read_key)
        )
        assert patched.status_code == 200, patched.text
        assert "secret" not in patched.json() and patched.json()["url"] == "https://b.example.com/y"

    def test_name_and_type_cannot_change(self, client: TestClient, tenant: Tenant) -> None:
        """Rules refer to the name: renaming or retyping is a 400."""
        _create(client, tenant.read_key, {"name": "hook", "type": "webhook", "url": "https://a.example.com/x"})
        response = client.patch(f"{API}/hook", json={"name": "renamed", "type": "slack"}, headers=_auth(tenant.read_key))
        assert response.status_code == 400
        assert {d["field"] for d in response.json()["error"]["details"]} == {"name", "type"}

    def test_an_invalid_change_changes_nothing(self, client: TestClient, tenant: Tenant) -> None:
        """A PATCH with a bad value is refused whole."""
        _create(client, tenant.read_key, {"name": "hook", "type": "webhook", "url": "https://a.example.com/x"})
        assert (
            client.patch(f"{API}/hook", json={"format": "xml", "enabled": False}, headers=_auth(tenant.read_key)).status_code
            == 400
        )
        assert client.get(f"{API}/hook", headers=_auth(tenant.read_key)).json()["enabled"] is True


class TestDeleteAndTest:
    def test_delete_then_gone(self, client: TestClient, tenant: Tenant) -> None:
        """204, then 404."""
        _create(client, tenant.read_key, {"name": "hook", "type": "webhook", "url": "https://a.example.com/x"})
        assert client.delete(f"{API}/hook", headers=_auth(tenant.read_key)).status_code == 204
        assert client.get(f"{API}/hook", headers=_auth(tenant.read_key)).status_code == 404
        assert client.delete(f"{API}/hook", headers=_auth(tenant.read_key)).status_code == 404

    def test_delete_is_refused_while_a_rule_names_the_channel(
        self, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """409 naming the rule; after the rule drops it, the delete works."""
        _create(client, tenant.read_key, {"name": "email", "type": "email", "to": ["ops@example.com"]})
        with session_factory(committed_engine).begin() as session:
            rule = AlertRule(
                name="High CPU Usage",
                license_id=tenant.license_id,
                condition_config={"metric": "cpu_usage", "operator": ">", "threshold": 80},
                notification_channels=["email", "slack"],
            )
            session.add(rule)
        response = client.delete(f"{API}/email", headers=_auth(tenant.read_key))
        assert response.status_code == 409 and "High CPU Usage" in response.json()["error"]["message"]
        with session_factory(committed_engine).begin() as session:
            session.execute(AlertRule.__table__.delete().where(AlertRule.license_id == tenant.license_id))
        assert client.delete(f"{API}/email", headers=_auth(tenant.read_key)).status_code == 204

    def test_test_send_reports_a_failure_as_ok_false(self, client: TestClient, tenant: Tenant) -> None:
        """A receiver answering 500 gives 200 with ok false, its status and the error."""
        with Receiver([500], body=b"boom") as receiver:
            _create(
                client,
                tenant.read_key,
                {"name": "slack", "type": "slack", "webhook_url": f"{receiver.url}/services/{SLACK_TOKEN}"},
            )
            response = client.post(f"{API}/slack/test", headers=_auth(tenant.read_key))
        assert response.status_code == 200
        body = response.json()
        assert (body["ok"], body["http_status"], body["error"]) == (False, 500, "HTTP 500: boom")
        message = orjson.loads(receiver.requests[0].body)
        assert message["text"].startswith("[TEST] Test notification for channel slack")

    def test_test_send_of_an_unknown_channel_is_a_404(self, client: TestClient, tenant: Tenant) -> None:
        """No channel, no send."""
        assert client.post(f"{API}/nope/test", headers=_auth(tenant.read_key)).status_code == 404


class TestTenancy:
    def test_a_license_key_sees_and_changes_only_its_own(self, client: TestClient, tenant: Tenant, other: Tenant) -> None:
        """Another license's channel is a 404 to read, change, delete or test; lists hold only one's own."""
        _create(
            client, other.read_key, {"name": "theirs", "type": "webhook", "url": f"https://x.example.com/?token={HOOK_TOKEN}"}
        )
        _create(client, tenant.read_key, {"name": "mine", "type": "webhook", "url": "https://y.example.com/"})
        key = _auth(tenant.read_key)
        assert client.get(f"{API}/theirs", headers=key).status_code == 404
        assert client.patch(f"{API}/theirs", json={"enabled": False}, headers=key).status_code == 404
        assert client.delete(f"{API}/theirs", headers=key).status_code == 404
        assert client.post(f"{API}/theirs/test", headers=key).status_code == 404
        assert [c["name"] for c in client.get(API, headers=key).json()["notification_channels"]] == ["mine"]
        assert client.get(f"{API}/theirs", headers=_auth(other.read_key)).json()["enabled"] is True

    def test_a_license_key_cannot_name_another_license(self, client: TestClient, tenant: Tenant, other: Tenant) -> None:
        """license_id of another license is a 403, in the query or the body."""
        key = _auth(tenant.read_key)
        assert client.get(API, params={"license_id": other.license_id}, headers=key).status_code == 403
        spec = {"name": "x", "type": "webhook", "url": "https://y.example.com/", "license_id": other.license_id}
        assert client.post(API, json=spec, headers=key).status_code == 403

    def test_admin_keys_manage_any_license_and_the_platform(self, client: TestClient, tenant: Tenant, admin: str) -> None:
        """An admin creates a platform channel (no license) and a license's; lists every license or one."""
        name = f"platform-{uuid.uuid4().hex[:6]}"
        platform = _create(client, admin, {"name": name, "type": "webhook", "url": "https://p.example.com/"})
        assert platform.status_code == 201 and platform.json()["license_id"] is None
        for_tenant = _create(
            client, admin, {"name": "by-admin", "type": "webhook", "url": "https://t.example.com/"}, license_id=tenant.license_id
        )
        assert for_tenant.json()["license_id"] == tenant.license_id
        every = {(c["license_id"], c["name"]) for c in client.get(API, headers=_auth(admin)).json()["notification_channels"]}
        assert {(None, name), (tenant.license_id, "by-admin")} <= every
        one = client.get(API, params={"license_id": tenant.license_id}, headers=_auth(admin)).json()["notification_channels"]
        assert [c["name"] for c in one] == ["by-admin"]
        assert client.get(f"{API}/by-admin", headers=_auth(tenant.read_key)).status_code == 200
        assert client.get(f"{API}/{name}", headers=_auth(tenant.read_key)).status_code == 404
        assert client.delete(f"{API}/{name}", headers=_auth(admin)).status_code == 204

    def test_no_key_is_a_401(self, client: TestClient) -> None:
        """Every route needs a key."""
        assert client.get(API).status_code == 401
        assert client.post(API, json={}).status_code == 401


class TestCli:
    @pytest.fixture()
    def env(self, committed_url: str, tmp_path: Any) -> Iterator[dict[str, str]]:
        yield {
            "DATABASE_URL": committed_url,
            "FERNANDO_TELEMETRY_SECRET_KEY": "cli-secret-key-for-tests",
            "FERNANDO_TELEMETRY_DATA_DIR": str(tmp_path),
            "FERNANDO_TELEMETRY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        }

    def _run(self, env: dict[str, str], *args: str) -> Any:
        return CliRunner().invoke(cli_app, list(args), env=env, terminal_width=200)

    def test_create_list_test_delete(self, env: dict[str, str], tenant: Tenant) -> None:
        """The CLI creates a channel (secret masked in its output), lists it, test-sends to a real receiver, deletes it."""
        license_id = str(tenant.license_id)
        with Receiver() as receiver:
            created = self._run(
                env,
                "channels",
                "create",
                "--license-id",
                license_id,
                "--name",
                "hook",
                "--type",
                "webhook",
                "--url",
                f"{receiver.url}/x?token={HOOK_TOKEN}",
                "--secret",
                SIGNING,
                "--format",
                "alertmanager",
            )
            assert created.exit_code == 0, created.output
            _every_secret_hidden(created.output)
            listed = self._run(env, "channels", "list", "--license-id", license_id)
            assert listed.exit_code == 0 and "hook" in listed.output and "alertmanager, signed" in listed.output
            tested = self._run(env, "channels", "test", "hook", "--license-id", license_id)
            assert tested.exit_code == 0, tested.output
            assert "HTTP 200" in tested.output
        body = orjson.loads(receiver.requests[0].body)
        assert body["version"] == "4" and body["alerts"][0]["labels"]["alertname"] == "Test notification"
        deleted = self._run(env, "channels", "delete", "hook", "--license-id", license_id)
        assert deleted.exit_code == 0, deleted.output
        as_json = self._run(env, "channels", "list", "--license-id", license_id, "--json")
        assert json.loads(as_json.stdout) == []

    def test_a_failed_test_send_exits_1(self, env: dict[str, str], tenant: Tenant) -> None:
        """A receiver that is not there: one error line, exit 1."""
        license_id = str(tenant.license_id)
        spec = json.dumps({"name": "dead", "type": "webhook", "url": "http://127.0.0.1:9/"})
        assert self._run(env, "channels", "create", "--license-id", license_id, "--json", spec).exit_code == 0
        result = self._run(env, "channels", "test", "dead", "--license-id", license_id)
        assert result.exit_code == 1
        assert "test message to 'dead' failed" in result.output
