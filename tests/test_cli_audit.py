"""Rule and channel changes made with ``fernando-telemetry rules`` and ``channels`` leave audit entries
(actor ``cli``), exactly as the same changes made through the API do."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fernando_telemetry.cli import app
from fernando_telemetry.services import keys
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import AuditEntry


def invoke(url: str, *args: str) -> str:
    """The command in this process; its stdout, after checking it succeeded."""
    env = {"DATABASE_URL": url, "FERNANDO_TELEMETRY_SECRET_KEY": "cli-audit-test-key-" + "x" * 32}
    result = CliRunner().invoke(app, list(args), env=env, terminal_width=200)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.stderr
    return result.stdout


def entries(engine: Engine, *, target_type: str, target_id: str) -> list[tuple[str, str, int | None, dict]]:
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == target_type, AuditEntry.target_id == target_id)
            .order_by(AuditEntry.entry_id)
        )
        return [(row.actor, row.action, row.license_id, dict(row.details)) for row in rows]


@pytest.fixture()
def license_id(committed_engine: Engine) -> int:
    with session_factory(committed_engine).begin() as session:
        return keys.create_license(session, name=f"cli-audit-{uuid.uuid4().hex[:6]}")


class TestCliChangesAreAudited:
    def test_rule_create_update_disable_enable_delete(
        self, committed_url: str, committed_engine: Engine, license_id: int
    ) -> None:
        """Each command that changes a rule writes one entry naming the operator (``cli``) and the rule's license."""
        created = invoke(
            committed_url, "rules", "create", "--name", "Audited CPU", "--license-id", str(license_id),
            "--condition", '{"metric": "cpu_usage", "threshold": 80}', "--json",
        )  # fmt: skip
        rule_id = str(json.loads(created)["rule_id"])
        invoke(committed_url, "rules", "update", rule_id, "--severity", "critical")
        invoke(committed_url, "rules", "disable", rule_id)
        invoke(committed_url, "rules", "enable", rule_id)
        invoke(committed_url, "rules", "delete", rule_id, "--yes")

        assert entries(committed_engine, target_type="alert_rule", target_id=rule_id) == [
            ("cli", "rule.create", license_id, {"name": "Audited CPU"}),
            ("cli", "rule.update", license_id, {"fields": ["severity"]}),
            ("cli", "rule.update", license_id, {"fields": ["enabled"]}),
            ("cli", "rule.update", license_id, {"fields": ["enabled"]}),
            ("cli", "rule.delete", license_id, {"name": "Audited CPU"}),
        ]

    def test_channel_create_and_delete(self, committed_url: str, committed_engine: Engine, license_id: int) -> None:
        """Creating and deleting a channel from the command line are in the audit log under ``cli``."""
        name = f"ops-{uuid.uuid4().hex[:6]}"
        invoke(
            committed_url, "channels", "create", "--license-id", str(license_id), "--name", name,
            "--type", "email", "--to", "ops@example.com",
        )  # fmt: skip
        invoke(committed_url, "channels", "delete", name, "--license-id", str(license_id))

        assert entries(committed_engine, target_type="notification_channel", target_id=name) == [
            ("cli", "channel.create", license_id, {"type": "email"}),
            ("cli", "channel.delete", license_id, {}),
        ]
