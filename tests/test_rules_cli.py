"""``fernando-telemetry rules``: create from --condition and --file, list, show, update, enable/disable,
backtest and delete against a real database; expected failures are one line and exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fernando_telemetry.cli import app
from fernando_telemetry.services import keys
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import AlertRule, NotificationChannel, SystemMetric


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own (what a user sees, errors included)."""
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", "rules", *args], env=env, capture_output=True, text=True, timeout=120
    )


def run_here(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command in this process (faster); for invocations expected to succeed."""
    result = CliRunner().invoke(app, ["rules", *args], env={"DATABASE_URL": url}, terminal_width=200)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture()
def license_id(committed_engine: Engine) -> int:
    with session_factory(committed_engine).begin() as session:
        license_id = keys.create_license(session, name=f"cli-{uuid.uuid4().hex[:6]}")
        session.add(NotificationChannel(license_id=license_id, name="email", type="email", config={"to": ["ops@example.com"]}))
    return license_id


def test_create_list_show_update_toggle_delete(
    committed_url: str, committed_engine: Engine, license_id: int, tmp_path: Path
) -> None:
    """The seed rule from --condition, a traces rule from --file, then each command changes what the next one sees."""
    created = run_here(
        committed_url,
        "create",
        "--name", "High CPU Usage",
        "--license-id", str(license_id),
        "--channel", "email",
        "--label", "team=infra",
        "--annotation", "runbook_url=https://runbooks.example.com/cpu",
        "--condition", '{"metric": "cpu_usage", "operator": ">", "threshold": 80}',
        "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    rule = json.loads(created.stdout)
    assert rule["condition_config"]["aggregation"] == "avg" and rule["notification_channels"] == ["email"]
    assert rule["labels"] == {"team": "infra"} and rule["license_id"] == license_id

    file = tmp_path / "rule.json"
    file.write_text(
        json.dumps(
            {
                "name": "Checkout errors",
                "severity": "critical",
                "condition_config": {
                    "source": "traces",
                    "aggregation": "error_rate",
                    "filters": {"service_name": "checkout"},
                    "threshold": 0.05,
                },
            }
        )
    )
    from_file = run_here(
        committed_url, "create", "--file", str(file), "--license-id", str(license_id), "--severity", "error", "--json"
    )
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["severity"] == "error"  # the option overrides the file

    listed = run_here(committed_url, "list", "--license-id", str(license_id))
    assert "High CPU Usage" in listed.stdout and "error_rate(duration_ms) over 5m > 0.05" in listed.stdout
    assert (
        json.loads(run_here(committed_url, "list", "--license-id", str(license_id), "--source", "traces", "--json").stdout)[0][
            "name"
        ]
        == "Checkout errors"
    )

    rule_id = str(rule["rule_id"])
    shown = run_here(committed_url, "show", rule_id)
    assert "avg(cpu_usage) over 5m > 80" in shown.stdout

    updated = run_here(
        committed_url,
        "update",
        rule_id,
        "--severity",
        "critical",
        "--condition",
        '{"metric": "cpu_usage", "threshold": 95}',
        "--json",
    )
    assert updated.returncode == 0, updated.stderr
    after = json.loads(updated.stdout)
    assert (after["severity"], after["condition_config"]["threshold"], after["version"], after["labels"]) == (
        "critical",
        95.0,
        2,
        {"team": "infra"},
    )

    assert "disabled" in run_here(committed_url, "disable", rule_id).stdout
    disabled = run_here(committed_url, "list", "--license-id", str(license_id), "--disabled", "--json")
    assert [item["rule_id"] for item in json.loads(disabled.stdout)] == [rule["rule_id"]]
    assert "enabled" in run_here(committed_url, "enable", rule_id).stdout

    assert run_here(committed_url, "delete", rule_id, "--yes").returncode == 0
    with session_factory(committed_engine)() as session:
        assert session.scalar(select(AlertRule).where(AlertRule.rule_id == rule["rule_id"])) is None


def test_backtest_saved_and_draft(committed_url: str, committed_engine: Engine, license_id: int) -> None:
    """backtest prints the transitions of a saved rule, and of a draft with --condition, over stored samples."""
    name = f"cpu_{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    with session_factory(committed_engine).begin() as session:
        for minute, value in enumerate([10.0, 10.0, 95.0, 95.0, 95.0, 10.0, 10.0]):
            session.add(
                SystemMetric(
                    metric_name=name,
                    metric_type="gauge",
                    value=value,
                    timestamp=start + timedelta(minutes=minute),
                    license_id=license_id,
                )
            )
    condition = json.dumps({"metric": name, "threshold": 80, "window_minutes": 1})
    created = run_here(
        committed_url, "create", "--name", name, "--license-id", str(license_id), "--condition", condition, "--json"
    )
    rule_id = json.loads(created.stdout)["rule_id"]
    window = ["--from", start.isoformat(), "--to", (start + timedelta(minutes=7)).isoformat(), "--step-seconds", "60"]

    saved = run_here(committed_url, "backtest", str(rule_id), *window, "--json")
    assert saved.returncode == 0, saved.stderr
    result = json.loads(saved.stdout)
    assert [(t["from_state"], t["to_state"], t["at"]) for t in result["transitions"]] == [
        ("inactive", "firing", (start + timedelta(minutes=2)).isoformat()),
        ("firing", "inactive", (start + timedelta(minutes=5)).isoformat()),
    ]
    draft = run_here(committed_url, "backtest", "--condition", condition, "--license-id", str(license_id), *window)
    assert draft.returncode == 0, draft.stderr
    assert "7 evaluations every 60 s" in draft.stdout and "2 transitions, 1 alert, 1 group" in draft.stdout
    assert "firing" in draft.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "x", "--condition", '{"metric": "cpu", "operator": "=>"}'], "condition_config.operator"),
        (["create", "--name", "x", "--condition", "{not json"], "--condition is not valid JSON"),
        (["create", "--file", "/nonexistent/rule.json"], "cannot read /nonexistent/rule.json"),
        (
            ["create", "--name", "x", "--condition", '{"metric": "cpu", "threshold": 1}', "--channel", "nope"],
            "no channel named nope",
        ),
        (
            ["create", "--name", "x", "--condition", '{"metric": "cpu", "threshold": 1}', "--label", "novalue"],
            "--label takes key=value",
        ),
        (["show", "999999999"], "no alert rule 999999999"),
        (["update", "999999999"], "nothing to change"),
        (["backtest"], "give a saved rule's id"),
        (["backtest", "--condition", '{"metric": "cpu", "threshold": 1}', "--from", "tomorrow"], "--from"),
    ],
)
def test_expected_failures_are_one_line(committed_url: str, args: list[str], message: str) -> None:
    """Bad input is one line on stderr naming the problem, exit code 1, no traceback."""
    result = run(committed_url, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
