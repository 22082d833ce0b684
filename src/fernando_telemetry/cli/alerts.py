"""``fernando-telemetry alerts``: run one evaluation pass, list alerts, show one's history, acknowledge,
assign and resolve them. Changes made here are recorded with the actor ``cli``."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import typer
from rich.table import Table
from sqlalchemy import text

from fernando_telemetry.cli.common import DatabaseUrlOption, console, err_console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.core import cursor as cursors
from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.services import alert_evaluation, alerts
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory

__all__ = ["ACTOR", "app"]

ACTOR = "cli"
JOB_LOCK = "fernando_telemetry.job:alert_evaluation"  # the key jobs.alert_evaluation_run locks

app = typer.Typer(
    help="Alerts raised by the rules: evaluate, list, history, ack, assign, resolve. "
    "Example: fernando-telemetry alerts list --status active",
    no_args_is_help=True,
)


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _group(group_key: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(group_key.items())) or "-"


@app.command()
def evaluate(
    rule: list[int] = typer.Option([], "--rule", help="Only this rule id (repeatable); evaluated even if not due."),
    every: bool = typer.Option(False, "--all", help="Every enabled rule, whether or not its interval has elapsed."),
    at: str | None = typer.Option(
        None, "--at", help="Evaluate as of this ISO 8601 instant (default: now); for replays and tests."
    ),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Run one evaluation pass (what the scheduler's alert_evaluation job does) and print every transition.

    By default only rules whose evaluation interval has elapsed are evaluated. Notifications are queued,
    not sent: the server's dispatcher sends them after this commits. A rule that fails is reported and
    the others still run.

    Example: fernando-telemetry alerts evaluate --all
    """
    settings = load_settings(database_url=database_url)
    now = time_range.parse_instant(at, parameter="--at") or datetime.now(UTC)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        # the job's lock: a running pass finishes first, and the job skips its ticks while this holds it
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": JOB_LOCK})
        summary = alert_evaluation.evaluate_due(
            session,
            now=now,
            rule_ids=rule or None,
            force=every or bool(rule),
            statement_timeout_ms=int(settings.alert_evaluation_statement_timeout_s * 1000),
            rule_timeout_ms=int(settings.alert_rule_timeout_s * 1000),
            max_groups=settings.alert_max_groups_per_rule,
        )
    if summary.transitions:
        table = Table("rule", "group", "action", "from", "to", "value", "alert", box=None)
        for transition in summary.transitions:
            table.add_row(
                f"{transition.rule_id} {transition.rule_name or ''}".strip(),
                _group(transition.group_key),
                transition.action,
                transition.from_state,
                transition.to_state,
                _value(transition.value),
                "-" if transition.alert_id is None else str(transition.alert_id),
            )
        console.print(table)
    for failed in summary.errors:
        err_console.print(f"[red]rule {failed.rule_id} ({failed.rule_name}) failed:[/red] {failed.error}", soft_wrap=True)
    rules = len(summary.rules)
    console.print(
        f"evaluated {rules} rule{'s' if rules != 1 else ''} at {now.isoformat()}: {len(summary.transitions)} transitions, "
        f"{summary.notifications} notifications queued, {len(summary.errors)} failed"
    )


@app.command("list")
def list_(
    status: str | None = typer.Option(None, "--status", help="active, acknowledged, suppressed, resolved (comma-separated)."),
    severity: str | None = typer.Option(None, "--severity", help="info, warning, error, critical (comma-separated)."),
    rule: int | None = typer.Option(None, "--rule", help="Only this rule id."),
    license_id: int | None = typer.Option(None, "--license-id", help="Only this license's alerts."),
    limit: int = typer.Option(50, "--limit", help=f"At most this many (1 to {alerts.MAX_LIMIT})."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """List alerts, newest first.

    Example: fernando-telemetry alerts list --status active,acknowledged --severity critical
    """
    filters = alerts.AlertFilters(
        license_id=license_id,
        statuses=[part.strip() for part in (status or "").split(",") if part.strip()],
        severities=[part.strip() for part in (severity or "").split(",") if part.strip()],
        rule_id=rule,
        limit=limit,
    )
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine)() as session:
        # the command shows one page and hands out no cursor: a key of its own serves
        page = alerts.list_alerts(session, filters=filters, cursor_key=cursors.derive_key(secrets.token_urlsafe(32)))
    if not page.alerts:
        console.print("no alerts")
        return
    table = Table("id", "status", "severity", "title", "value", "triggered", "license", box=None)
    for view in page.alerts:
        table.add_row(
            str(view.alert_id),
            view.status,
            view.severity,
            view.title,
            _value(view.observed_value),
            view.triggered_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "-" if view.license_id is None else str(view.license_id),
        )
    console.print(table)
    if page.next_cursor is not None:
        note(f"more than {limit}: narrow the filters or raise --limit")


@app.command()
def history(
    alert_id: int = typer.Argument(..., help="The alert's id."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Show an alert's transitions and notification attempts, oldest first.

    Example: fernando-telemetry alerts history 42
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine)() as session:
        found = alerts.history(session, alert_id=alert_id, license_id=None)
    console.print(f"alert {found.alert.alert_id}: {found.alert.title} [{found.alert.status}]")
    table = Table("when", "from", "to", "action", "actor", "value", "note", box=None)
    for event in found.events:
        table.add_row(
            event.occurred_at.astimezone(UTC).isoformat(),
            event.from_state,
            event.to_state,
            str(event.details.get("action", "")),
            event.actor,
            _value(event.observed_value),
            event.note or "",
        )
    console.print(table)
    if found.deliveries:
        deliveries = Table("when", "channel", "kind", "attempt", "outcome", "status", "error", box=None)
        for delivery in found.deliveries:
            deliveries.add_row(
                delivery.attempted_at.astimezone(UTC).isoformat(),
                delivery.channel_name,
                delivery.kind,
                str(delivery.attempt),
                delivery.outcome,
                str(delivery.http_status or delivery.smtp_reply or ""),
                delivery.error or "",
            )
        console.print(deliveries)


@app.command()
def ack(
    alert_id: int = typer.Argument(..., help="The alert's id."),
    user: str | None = typer.Option(None, "--user", help="The user who acknowledges (a user of the alert's license)."),
    note_text: str | None = typer.Option(None, "--note", help="A note kept in the alert's history."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Acknowledge an alert: no more repeat notifications; it still resolves by itself when the condition clears.

    Example: fernando-telemetry alerts ack 42 --user alice --note "looking at it"
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        view = alerts.acknowledge(
            session, caller=Caller.for_cli(), alert_id=alert_id, license_id=None, user_id=user, note=note_text
        )
    console.print(f"alert {view.alert_id} {view.status}" + (f" by {view.acknowledged_by}" if view.acknowledged_by else ""))


@app.command()
def assign(
    alert_id: int = typer.Argument(..., help="The alert's id."),
    user: str | None = typer.Option(None, "--user", help="The assignee; leave out to unassign."),
    note_text: str | None = typer.Option(None, "--note", help="A note kept in the alert's history."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Assign an alert to a user of its license, or unassign it.

    Example: fernando-telemetry alerts assign 42 --user bob
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        view = alerts.assign(session, caller=Caller.for_cli(), alert_id=alert_id, license_id=None, assignee=user, note=note_text)
    console.print(f"alert {view.alert_id} " + (f"assigned to {view.assigned_to}" if view.assigned_to else "unassigned"))


@app.command()
def resolve(
    alert_id: int = typer.Argument(..., help="The alert's id."),
    user: str | None = typer.Option(None, "--user", help="The user who resolves (a user of the alert's license)."),
    note_text: str | None = typer.Option(None, "--note", help="Resolution notes."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Resolve an alert by hand. If the condition still holds, a new alert fires after the rule's for_minutes.

    Example: fernando-telemetry alerts resolve 42 --note "disk cleaned up"
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        view = alerts.resolve(session, caller=Caller.for_cli(), alert_id=alert_id, license_id=None, user_id=user, note=note_text)
    console.print(f"alert {view.alert_id} resolved")
