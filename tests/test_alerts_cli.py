"""``fernando-telemetry alerts``: one evaluation pass with its transitions printed, list, history, ack,
assign and resolve, against a database of its own; expected failures are one line and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fernando_telemetry.cli import app
from fernando_telemetry.services import partitions, schema
from fernando_telemetry.storage.database import make_engine, session_factory
from fernando_telemetry.storage.models import Alert, AlertEvent
from tests.alert_fixtures import MINUTE, T0, add_license, add_rule, add_sample, unique


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own (what a user sees, errors included)."""
    env = {**os.environ, "DATABASE_URL": url}
    command = [sys.executable, "-m", "fernando_telemetry", "alerts", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def run_here(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command in this process (faster); for invocations expected to succeed."""
    result = CliRunner().invoke(app, ["alerts", *args], env={"DATABASE_URL": url}, terminal_width=200)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def cli_url(database_factory: Callable[[], str]) -> str:
    """A database of its own: ``alerts evaluate`` evaluates every due rule there is."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        with session_factory(engine).begin() as session:
            partitions.ensure_for_days(session, first_day=T0.date() - timedelta(days=1), last_day=T0.date() + timedelta(days=1))
    finally:
        engine.dispose()
    return url


def test_evaluate_list_ack_history_resolve(cli_url: str) -> None:
    """A pass fires the rule (printed), list shows it, ack and resolve change it, history shows the cli as actor."""
    engine = make_engine(cli_url, pool_size=1)
    metric = unique("cpu")
    try:
        with session_factory(engine).begin() as session:
            license_id = add_license(session)
            rule = add_rule(
                session,
                license_id=license_id,
                name=unique("High CPU"),
                condition={"metric": metric, "threshold": 80, "window_minutes": 1},
            )
            add_sample(session, metric=metric, at=T0 - timedelta(seconds=30), value=97.5, license_id=license_id)
            rule_id, rule_name = rule.rule_id, rule.name

        evaluated = run_here(cli_url, "evaluate", "--at", T0.isoformat())
        assert evaluated.returncode == 0, evaluated.stderr
        assert "fire" in evaluated.stdout and "97.5" in evaluated.stdout and rule_name in evaluated.stdout
        assert "evaluated 1 rule" in evaluated.stdout and "0 failed" in evaluated.stdout
        with session_factory(engine)() as session:
            alert_id = session.scalars(select(Alert.alert_id).where(Alert.rule_id == rule_id)).one()

        not_due = run_here(cli_url, "evaluate", "--at", (T0 + timedelta(seconds=10)).isoformat())
        assert "evaluated 0 rules" in not_due.stdout  # its 60 s interval has not elapsed

        listed = run_here(cli_url, "list", "--status", "active")
        assert listed.returncode == 0 and str(alert_id) in listed.stdout and rule_name in listed.stdout

        acked = run_here(cli_url, "ack", str(alert_id), "--note", "looking")
        assert acked.returncode == 0 and f"alert {alert_id} acknowledged" in acked.stdout
        twice = run(cli_url, "ack", str(alert_id))
        assert twice.returncode == 1 and "already acknowledged" in twice.stderr and len(twice.stderr.strip().splitlines()) == 1

        resolved = run_here(cli_url, "resolve", str(alert_id), "--note", "fixed")
        assert resolved.returncode == 0 and "resolved" in resolved.stdout
        history = run_here(cli_url, "history", str(alert_id))
        assert history.returncode == 0
        for expected in ("fire", "acknowledge", "resolve", "cli", "evaluator", "looking", "fixed"):
            assert expected in history.stdout
        with session_factory(engine)() as session:
            actors = session.scalars(
                select(AlertEvent.actor).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.event_id)
            ).all()
        assert actors == ["evaluator", "cli", "cli"]
    finally:
        engine.dispose()


def test_a_failing_rule_is_reported_and_the_others_still_run(cli_url: str) -> None:
    """--rule forces the named rules; a broken stored condition prints its error, the good rule still fires."""
    engine = make_engine(cli_url, pool_size=1)
    metric = unique("cpu")
    try:
        with session_factory(engine).begin() as session:
            license_id = add_license(session)
            good = add_rule(session, license_id=license_id, condition={"metric": metric, "threshold": 80, "window_minutes": 1})
            bad = add_rule(
                session, license_id=license_id, condition={"metric": metric, "operator": "=>", "threshold": 1}, validate=False
            )
            add_sample(session, metric=metric, at=T0 + 5 * MINUTE - timedelta(seconds=30), value=99.0, license_id=license_id)
            ids = (good.rule_id, bad.rule_id)
        result = run_here(
            cli_url, "evaluate", "--rule", str(ids[0]), "--rule", str(ids[1]), "--at", (T0 + 5 * MINUTE).isoformat()
        )
        assert result.returncode == 0, result.stderr
        assert "evaluated 2 rules" in result.stdout and "1 failed" in result.stdout
        assert f"rule {ids[1]}" in result.stderr and "operator" in result.stderr
        assert "fire" in result.stdout
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ack", "987654321"], "no alert 987654321"),
        (["resolve", "987654321"], "no alert 987654321"),
        (["list", "--status", "open"], "status"),
        (["evaluate", "--at", "tomorrow"], "--at"),
    ],
)
def test_expected_errors_are_one_line(cli_url: str, args: list[str], message: str) -> None:
    result = run(cli_url, *args)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
