"""``fernando-telemetry rules``: list, create, show, update, delete, enable, disable and backtest alert
rules straight in the database (as an operator: every license; ``--license-id`` picks one)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fernando_telemetry.cli.common import DatabaseUrlOption, console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.core import rule_validation, time_range
from fernando_telemetry.core.alert_condition import parse_condition
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import alert_rules, rule_backtest
from fernando_telemetry.settings import load_settings, quotas_of
from fernando_telemetry.storage.database import session_factory

__all__ = ["app"]

app = typer.Typer(
    help="Alert rules: list, create, show, update, delete, enable, disable, backtest. "
    "Example: fernando-telemetry rules create --name 'High CPU Usage' "
    '--condition \'{"metric": "cpu_usage", "operator": ">", "threshold": 80}\'',
    no_args_is_help=True,
)

_CONDITION = typer.Option(None, "--condition", help='The condition as JSON, e.g. \'{"metric": "cpu_usage", "threshold": 80}\'.')
_FILE = typer.Option(
    None, "--file", help="A JSON file holding a rule (name, condition_config, severity, ...); options override it."
)
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _json_argument(text: str, *, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{option} is not valid JSON: {exc}") from None


def _file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{path} must hold a JSON object (a rule)")
    return document


def _pairs(values: list[str], *, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} takes key=value, not {item!r}")
        pairs[key] = value
    return pairs


def _fields(
    *,
    file: Path | None,
    name: str | None,
    condition: str | None,
    description: str | None,
    severity: str | None,
    channels: list[str],
    interval_seconds: int | None,
    labels: list[str],
    annotations: list[str],
) -> dict[str, Any]:
    fields = _file(file)
    if condition is not None:
        fields["condition_config"] = _json_argument(condition, option="--condition")
    for key, value in (
        ("name", name),
        ("description", description),
        ("severity", severity),
        ("evaluation_interval_seconds", interval_seconds),
    ):
        if value is not None:
            fields[key] = value
    if channels:
        fields["notification_channels"] = channels
    if labels:
        fields["labels"] = {**fields.get("labels", {}), **_pairs(labels, option="--label")}
    if annotations:
        fields["annotations"] = {**fields.get("annotations", {}), **_pairs(annotations, option="--annotation")}
    return fields


def _show(view: alert_rules.RuleView, *, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(_plain(view), default=str))
        return
    table = Table(box=None, show_header=False)
    for key, value in _plain(view).items():
        shown = json.dumps(value) if isinstance(value, dict | list) else ("-" if value is None else str(value))
        table.add_row(key, shown)
    console.print(table)


def _plain(view: alert_rules.RuleView) -> dict[str, Any]:
    return {key: getattr(view, key) for key in view.__dataclass_fields__}


@app.command("list")
def list_(
    license_id: int | None = typer.Option(None, "--license-id", help="Only this license's rules."),
    source: str | None = typer.Option(None, "--source", help="Only rules over this source (system_metrics, traces, ...)."),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled", help="Only enabled (or disabled) rules."),
    as_json: bool = _JSON,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """List alert rules by name.

    Example: fernando-telemetry rules list --license-id 3 --enabled
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine)() as session:
        page = alert_rules.list_rules(session, scope=license_id, source=source, enabled=enabled, limit=alert_rules.MAX_LIMIT)
    if as_json:
        console.print_json(json.dumps([_plain(view) for view in page.rules], default=str))
        return
    if not page.rules:
        console.print("no rules")
        return
    table = Table("id", "name", "license", "severity", "enabled", "condition", "channels", box=None)
    for view in page.rules:
        table.add_row(
            str(view.rule_id),
            view.name,
            "-" if view.license_id is None else str(view.license_id),
            view.severity,
            "yes" if view.enabled else "no",
            view.condition_summary,
            ", ".join(view.notification_channels) or "-",
        )
    console.print(table)


@app.command()
def create(
    name: str | None = typer.Option(None, "--name", help="The rule's name (unique within its license)."),
    condition: str | None = _CONDITION,
    file: Path | None = _FILE,
    license_id: int | None = typer.Option(None, "--license-id", help="The owning license; omitted: a platform-wide rule."),
    description: str | None = typer.Option(None, "--description"),
    severity: str | None = typer.Option(None, "--severity", help="info, warning (default), error or critical."),
    channel: list[str] = typer.Option([], "--channel", help="A notification channel's name (repeatable)."),
    interval_seconds: int | None = typer.Option(
        None, "--interval-seconds", help="Evaluate every this many seconds (default 60)."
    ),
    label: list[str] = typer.Option([], "--label", help="key=value (repeatable)."),
    annotation: list[str] = typer.Option([], "--annotation", help="key=value, e.g. runbook_url=https://... (repeatable)."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    as_json: bool = _JSON,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Create an alert rule from --condition (JSON) or --file (a JSON rule); every problem is listed at once.

    Example: fernando-telemetry rules create --name 'High CPU Usage' --license-id 3 --channel email
    --condition '{"metric": "cpu_usage", "operator": ">", "threshold": 80, "for_minutes": 5}'
    """
    fields = _fields(
        file=file,
        name=name,
        condition=condition,
        description=description,
        severity=severity,
        channels=channel,
        interval_seconds=interval_seconds,
        labels=label,
        annotations=annotation,
    )
    if disabled:
        fields["enabled"] = False
    owner = license_id if license_id is not None else fields.pop("license_id", None)
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        view = alert_rules.create(session, caller=Caller.for_cli(), license_id=owner, fields=fields, quotas=quotas_of(settings))
    note(f"created rule {view.rule_id}")
    _show(view, as_json=as_json)


@app.command()
def show(
    rule_id: int = typer.Argument(..., help="The rule's id."),
    as_json: bool = _JSON,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Show one rule with its normalised condition.

    Example: fernando-telemetry rules show 12 --json
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine)() as session:
        view = alert_rules.get(session, rule_id=rule_id, scope=None)
    _show(view, as_json=as_json)


@app.command()
def update(
    rule_id: int = typer.Argument(..., help="The rule's id."),
    name: str | None = typer.Option(None, "--name"),
    condition: str | None = _CONDITION,
    file: Path | None = _FILE,
    description: str | None = typer.Option(None, "--description"),
    severity: str | None = typer.Option(None, "--severity"),
    channel: list[str] = typer.Option([], "--channel", help="Replaces the channels (repeatable)."),
    interval_seconds: int | None = typer.Option(None, "--interval-seconds"),
    label: list[str] = typer.Option([], "--label", help="key=value; replaces the labels (repeatable)."),
    annotation: list[str] = typer.Option([], "--annotation", help="key=value; replaces the annotations (repeatable)."),
    as_json: bool = _JSON,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Change the fields given (the others stay); a new --condition replaces the whole condition.

    Example: fernando-telemetry rules update 12 --severity critical --condition '{"metric": "cpu_usage", "threshold": 90}'
    """
    fields = _fields(
        file=file,
        name=name,
        condition=condition,
        description=description,
        severity=severity,
        channels=channel,
        interval_seconds=interval_seconds,
        labels=label,
        annotations=annotation,
    )
    if not fields:
        raise InvalidInput("nothing to change: give --name, --condition, --file, --severity, ...")
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        view = alert_rules.update(session, caller=Caller.for_cli(), rule_id=rule_id, scope=None, fields=fields, replace=False)
    note(f"rule {rule_id} is at version {view.version}")
    _show(view, as_json=as_json)


def _set_enabled(rule_id: int, enabled: bool, database_url: str | None) -> None:
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        view = alert_rules.set_enabled(session, caller=Caller.for_cli(), rule_id=rule_id, scope=None, enabled=enabled)
    console.print(f"rule {view.rule_id} ({view.name}) {'enabled' if view.enabled else 'disabled'}")


@app.command()
def enable(rule_id: int = typer.Argument(..., help="The rule's id."), database_url: str | None = DatabaseUrlOption) -> None:
    """Enable a rule: the scheduler evaluates it again.

    Example: fernando-telemetry rules enable 12
    """
    _set_enabled(rule_id, True, database_url)


@app.command()
def disable(rule_id: int = typer.Argument(..., help="The rule's id."), database_url: str | None = DatabaseUrlOption) -> None:
    """Disable a rule: it is no longer evaluated (its open alerts stay as they are).

    Example: fernando-telemetry rules disable 12
    """
    _set_enabled(rule_id, False, database_url)


@app.command()
def delete(
    rule_id: int = typer.Argument(..., help="The rule's id."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Delete a rule; its alerts and their history stay.

    Example: fernando-telemetry rules delete 12 --yes
    """
    if not yes and not typer.confirm(f"delete rule {rule_id}?"):
        raise typer.Abort()
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine).begin() as session:
        alert_rules.delete(session, caller=Caller.for_cli(), rule_id=rule_id, scope=None)
    console.print(f"deleted rule {rule_id}")


@app.command()
def backtest(
    rule_id: int | None = typer.Argument(None, help="A saved rule's id (or give --condition / --file for a draft)."),
    condition: str | None = _CONDITION,
    file: Path | None = _FILE,
    license_id: int | None = typer.Option(None, "--license-id", help="Draft rules: whose data (omitted: every license)."),
    from_: str | None = typer.Option(None, "--from", help="ISO 8601 start (default: 24 hours before --to)."),
    to: str | None = typer.Option(None, "--to", help="ISO 8601 end (default: now)."),
    step_seconds: int | None = typer.Option(
        None, "--step-seconds", help="Between evaluations (default: the rule's interval, or 60)."
    ),
    as_json: bool = _JSON,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Replay a rule over stored data: the transitions and alerts it would have produced. Nothing is stored or sent.

    Example: fernando-telemetry rules backtest 12 --from 2026-03-01T00:00:00Z --to 2026-03-02T00:00:00Z
    """
    draft = _fields(
        file=file,
        name=None,
        condition=condition,
        description=None,
        severity=None,
        channels=[],
        interval_seconds=None,
        labels=[],
        annotations=[],
    )
    if (rule_id is None) == (not draft):
        raise InvalidInput("give a saved rule's id, or a draft with --condition or --file (not both)")
    end = time_range.parse_instant(to, parameter="--to") or datetime.now(UTC)
    start = time_range.parse_instant(from_, parameter="--from") or end - timedelta(days=1)
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine, session_factory(engine)() as session:
        if rule_id is not None:
            rule = alert_rules.get_rule(session, rule_id=rule_id, scope=None)
            parsed, owner, interval = parse_condition(rule.condition_config), rule.license_id, rule.evaluation_interval_seconds
        else:
            parsed, draft_interval = rule_validation.draft_condition(draft)
            owner, interval = license_id if license_id is not None else draft.get("license_id"), draft_interval or 60
        result = rule_backtest.backtest(
            session,
            condition=parsed,
            license_id=owner,
            start=start,
            end=end,
            step_seconds=step_seconds or interval,
            rule_id=rule_id,
        )
    if as_json:
        console.print_json(json.dumps({key: getattr(result, key) for key in result.__dataclass_fields__}, default=_jsonable))
        return
    if result.transitions:
        table = Table("at", "group", "from", "to", "value", "reason", box=None)
        for transition in result.transitions:
            table.add_row(
                transition.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                ", ".join(f"{k}={v}" for k, v in sorted(transition.group_key.items())) or "-",
                transition.from_state,
                transition.to_state,
                "-" if transition.value is None else f"{transition.value:g}",
                transition.reason,
            )
        console.print(table)
    console.print(
        f"{result.evaluations} evaluations every {result.step_seconds} s from {start.isoformat()} to {end.isoformat()}: "
        f"{_count(len(result.transitions), 'transition')}, {_count(len(result.alerts), 'alert')}, "
        f"{_count(result.groups_seen, 'group')}; "
        "nothing was stored or sent"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {key: getattr(value, key) for key in value.__dataclass_fields__}
    return str(value)
