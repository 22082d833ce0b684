"""The audit log: key and license actions from the CLI and the admin API are recorded and readable by admins."""

from __future__ import annotations

import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.ingest_fixtures import admin_key, make_tenant


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_key_and_license_actions_are_audited(committed_url: str, committed_engine: Engine) -> None:
    created = _cli(committed_url, "licenses", "create", "--name", "Audited Ltd")
    assert created.returncode == 0, created.stderr
    license_id = int(created.stdout.strip().splitlines()[-1])
    key = _cli(committed_url, "keys", "create", "--license-id", str(license_id), "--scope", "read", "--name", "audited")
    assert key.returncode == 0, key.stderr
    token = key.stdout.strip().splitlines()[-1]
    with committed_engine.connect() as connection:
        key_id = connection.execute(text("SELECT api_key_id FROM api_keys WHERE license_id = :l"), {"l": license_id}).scalar_one()
    revoked = _cli(committed_url, "keys", "revoke", str(key_id))
    assert revoked.returncode == 0, revoked.stderr
    with committed_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT actor, action, target_id, details::text FROM audit_log WHERE license_id = :l ORDER BY entry_id"),
            {"l": license_id},
        ).all()
    assert [(actor, action, target) for actor, action, target, _ in rows] == [
        ("cli", "license.create", str(license_id)),
        ("cli", "key.create", str(key_id)),
        ("cli", "key.revoke", str(key_id)),
    ]
    assert token not in " ".join(details for *_, details in rows)  # never the key itself


def test_admin_api_changes_are_audited_and_readable_by_admins_only(client: TestClient, committed_engine: Engine) -> None:
    token = admin_key(committed_engine)
    tenant = make_tenant(committed_engine)
    with committed_engine.connect() as connection:
        admin_id = connection.execute(text("SELECT max(api_key_id) FROM api_keys WHERE license_id IS NULL")).scalar_one()
    response = client.put(
        f"/api/v1/admin/licenses/{tenant.license_id}",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": "Renamed", "plan": "pro"},
    )
    assert response.status_code in (200, 201), response.text
    audit = client.get(
        "/api/v1/admin/audit", params={"license_id": tenant.license_id}, headers={"Authorization": f"Bearer {token}"}
    )
    assert audit.status_code == 200
    entries = audit.json()
    assert entries[0]["action"] == "license.update"
    assert entries[0]["actor"] == f"key:{admin_id}"
    assert entries[0]["target_id"] == str(tenant.license_id)
    refused = client.get("/api/v1/admin/audit", headers={"Authorization": f"Bearer {tenant.read_key}"})
    assert refused.status_code == 403


def test_rule_and_channel_changes_are_audited_with_their_license(client: TestClient, committed_engine: Engine) -> None:
    tenant = make_tenant(committed_engine)
    headers = {"Authorization": f"Bearer {tenant.read_key}"}
    channel = client.post(
        "/api/v1/notification-channels",
        headers=headers,
        json={
            "name": "audited-hook",
            "type": "webhook",
            "url": "http://127.0.0.1:9/hook",
            "secret": "s3cret-value-0123456789abcdef",
        },
    )
    assert channel.status_code == 201, channel.text
    rule = client.post(
        "/api/v1/alert-rules",
        headers=headers,
        json={"name": "audited", "condition_config": {"metric": "cpu_usage", "operator": ">", "threshold": 80}},
    )
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["rule_id"]
    assert client.patch(f"/api/v1/alert-rules/{rule_id}", headers=headers, json={"enabled": False}).status_code == 200
    assert client.delete(f"/api/v1/alert-rules/{rule_id}", headers=headers).status_code == 204
    assert client.delete("/api/v1/notification-channels/audited-hook", headers=headers).status_code == 204
    with committed_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT action, target_id, details::text FROM audit_log WHERE license_id = :l ORDER BY entry_id"),
            {"l": tenant.license_id},
        ).all()
    assert [(action, target) for action, target, _ in rows] == [
        ("channel.create", "audited-hook"),
        ("rule.create", str(rule_id)),
        ("rule.update", str(rule_id)),
        ("rule.delete", str(rule_id)),
        ("channel.delete", "audited-hook"),
    ]
    assert "s3cret-value-0123456789abcdef" not in " ".join(details for *_, details in rows)


def test_silence_changes_are_audited(client: TestClient, committed_engine: Engine) -> None:
    tenant = make_tenant(committed_engine)
    headers = {"Authorization": f"Bearer {tenant.read_key}"}
    created = client.post(
        "/api/v1/silences",
        headers=headers,
        json={
            "matchers": [{"name": "alertname", "value": "High CPU Usage", "op": "="}],
            "duration_minutes": 60,
            "comment": "deploy",
        },
    )
    assert created.status_code == 201, created.text
    silence_id = created.json()["silence_id"]
    assert client.post(f"/api/v1/silences/{silence_id}/expire", headers=headers).status_code == 200
    with committed_engine.connect() as connection:
        actions = (
            connection.execute(
                text("SELECT action FROM audit_log WHERE license_id = :l AND target_type = 'silence' ORDER BY entry_id"),
                {"l": tenant.license_id},
            )
            .scalars()
            .all()
        )
    assert actions == ["silence.create", "silence.expire"]
