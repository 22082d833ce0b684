"""Rules: the list, and the create/edit form whose fields show the rule language's validation messages, with
a backtest of the form's condition over the last days. Imports services and core.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fernando_telemetry.core import rule_validation
from fernando_telemetry.core.alert_condition import Source
from fernando_telemetry.core.enums import Severity
from fernando_telemetry.core.errors import Conflict, FernandoTelemetryError, InvalidInput
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import alert_rules, rule_backtest
from fernando_telemetry.services.alert_rules import RuleView
from fernando_telemetry.services.rule_backtest import Backtest
from fernando_telemetry.web import charts
from fernando_telemetry.web.page import Page, PageRequest

__all__ = [
    "BACKTEST_RANGES",
    "EXAMPLE_CONDITION",
    "RuleForm",
    "build",
    "build_form",
    "form_from_post",
    "form_from_rule",
    "record_problems",
    "run_backtest",
    "save",
]

BACKTEST_RANGES: dict[str, timedelta] = {"1d": timedelta(days=1), "3d": timedelta(days=3), "7d": timedelta(days=7)}
EXAMPLE_CONDITION = {"metric": "cpu_usage", "operator": ">", "threshold": 80}
_FORM_FIELDS = (
    "name",
    "description",
    "severity",
    "condition_config",
    "notification_channels",
    "evaluation_interval_seconds",
    "repeat_interval_minutes",
    "labels",
    "annotations",
    "owner_user_id",
    "license_id",
    "version",
)


@dataclass
class RuleForm:
    """The rule form as text, as typed, with the problems found per field."""

    rule_id: int | None = None
    values: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    message: str | None = None
    backtest_range: str = "3d"

    def value(self, name: str) -> str:
        return self.values.get(name, "")


def build(request: PageRequest) -> Page:
    scope = request.license_scope
    page = alert_rules.list_rules(request.session, scope=scope, limit=alert_rules.MAX_LIMIT)
    return Page(
        title="Alert rules",
        template="rules/page.html",
        context={"rules": page.rules, "more": page.next_offset is not None, "done": request.text("done")},
        fragments={"rules-table": "rules/_table.html"},
    )


def form_from_rule(rule: RuleView | None) -> RuleForm:
    if rule is None:
        return RuleForm(
            values={
                "severity": Severity.WARNING.value,
                "condition_config": json.dumps(EXAMPLE_CONDITION, indent=2),
                "evaluation_interval_seconds": "60",
                "repeat_interval_minutes": "240",
            }
        )
    return RuleForm(
        rule_id=rule.rule_id,
        values={
            "name": rule.name,
            "description": rule.description or "",
            "severity": rule.severity,
            "condition_config": json.dumps(rule.condition_config, indent=2),
            "notification_channels": ", ".join(rule.notification_channels),
            "evaluation_interval_seconds": str(rule.evaluation_interval_seconds),
            "repeat_interval_minutes": str(rule.repeat_interval_minutes),
            "labels": _lines(rule.labels),
            "annotations": _lines(rule.annotations),
            "owner_user_id": rule.owner_user_id or "",
            "license_id": "" if rule.license_id is None else str(rule.license_id),
            "version": str(rule.version),
        },
        enabled=rule.enabled,
    )


def form_from_post(rule_id: int | None, posted: Mapping[str, str]) -> RuleForm:
    form = RuleForm(rule_id=rule_id, values={name: str(posted.get(name) or "") for name in _FORM_FIELDS})
    form.enabled = posted.get("enabled") == "on"
    chosen = str(posted.get("backtest_range") or "3d")
    form.backtest_range = chosen if chosen in BACKTEST_RANGES else "3d"
    return form


def _lines(mapping: Mapping[str, Any]) -> str:
    return "\n".join(f"{key}={value}" for key, value in mapping.items())


def _pairs(form: RuleForm, name: str) -> dict[str, str] | None:
    pairs: dict[str, str] = {}
    for number, line in enumerate(form.value(name).splitlines(), start=1):
        if not line.strip():
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            form.errors[name].append(f"line {number} is not key=value")
            return None
        pairs[key.strip()] = value.strip()
    return pairs


def _whole(form: RuleForm, name: str) -> int | None:
    text = form.value(name).strip()
    if not text:
        return None
    if not text.lstrip("-").isdigit():
        form.errors[name].append("must be a whole number")
        return None
    return int(text)


def _fields(form: RuleForm) -> dict[str, Any] | None:
    """The service's fields from the form's text; None (with the form's errors set) when some text does not parse."""
    fields: dict[str, Any] = {
        "name": form.value("name").strip() or None,
        "description": form.value("description").strip() or None,
        "severity": form.value("severity") or Severity.WARNING.value,
        "notification_channels": [part.strip() for part in form.value("notification_channels").split(",") if part.strip()],
        "enabled": form.enabled,
        "owner_user_id": form.value("owner_user_id").strip() or None,
    }
    try:
        fields["condition_config"] = (
            json.loads(form.value("condition_config")) if form.value("condition_config").strip() else None
        )
    except ValueError as error:
        form.errors["condition_config"].append(f"is not valid JSON: {error}")
    for name in ("evaluation_interval_seconds", "repeat_interval_minutes"):
        number = _whole(form, name)
        if number is not None:
            fields[name] = number
    for name in ("labels", "annotations"):
        pairs = _pairs(form, name)
        if pairs is not None:
            fields[name] = pairs
    return None if form.errors else fields


def _field_of(detail_field: str) -> str:
    """The form field a service problem belongs to: ``condition_config.threshold`` -> ``condition_config``."""
    head = detail_field.removeprefix("rule.")
    for separator in (".", "["):
        head = head.split(separator, 1)[0]
    return head if head in _FORM_FIELDS or head == "enabled" else "form"


def _problem_text(detail_field: str, reason: str, allowed: Any = None) -> str:
    where = detail_field.removeprefix("rule.")
    head = _field_of(detail_field)
    label = where[len(head) :].lstrip(".") if where.startswith(head) and where != head else ""
    text = f"{label} {reason}".strip() if label else reason
    if allowed:
        text += f" (allowed: {', '.join(str(value) for value in allowed)})"
    return text


def record_problems(form: RuleForm, error: FernandoTelemetryError) -> None:
    """Put each problem of ``error`` next to its field; a message for the form as a whole."""
    form.message = error.message
    for detail in error.details:
        name = str(detail.get("field", "form"))
        form.errors[_field_of(name)].append(_problem_text(name, str(detail.get("reason", "")), detail.get("allowed")))


def _owner(principal: Principal, form: RuleForm) -> int | None:
    if not principal.is_admin:
        return principal.license_id
    text = form.value("license_id").strip()
    if not text:
        return None
    if not text.isdigit():
        form.errors["license_id"].append("must be a license id, or empty for a platform-wide rule")
        return None
    return int(text)


def save(request: PageRequest, form: RuleForm) -> RuleView | None:
    """Create or change the rule from the form; None with the form's errors set when it is refused."""
    owner = _owner(request.principal, form)
    fields = _fields(form)
    if fields is None:
        form.message = "the rule was not saved: correct the fields marked below"
        return None
    caller = request.caller
    try:
        if form.rule_id is None:
            view = alert_rules.create(request.session, caller=caller, license_id=owner, fields=fields, quotas=request.quotas)
        else:
            version = _whole(form, "version")
            if version is not None:
                fields["version"] = version
            view = alert_rules.update(
                request.session,
                caller=caller,
                rule_id=form.rule_id,
                scope=request.license_scope,
                fields=fields,
                replace=True,
            )
    except (InvalidInput, Conflict) as error:
        record_problems(form, error)
        return None
    return view


def run_backtest(request: PageRequest, form: RuleForm) -> Backtest | None:
    """What the form's condition would have done over the chosen range (nothing is saved or sent)."""
    fields = _fields(form)
    if fields is None:
        form.message = "the backtest did not run: correct the fields marked below"
        return None
    if form.rule_id is not None:
        license_id = alert_rules.get(request.session, rule_id=form.rule_id, scope=request.license_scope).license_id
    else:
        license_id = _owner(request.principal, form)
    span = BACKTEST_RANGES[form.backtest_range]
    interval = fields.get("evaluation_interval_seconds") or 60
    step = max(10, min(86_400, interval), math.ceil(span.total_seconds() / rule_backtest.MAX_BACKTEST_INSTANTS))
    try:
        condition, _ = rule_validation.draft_condition({"condition_config": fields.get("condition_config")})
        return rule_backtest.backtest(
            request.session,
            condition=condition,
            license_id=license_id,
            start=request.now - span,
            end=request.now,
            step_seconds=step,
            rule_id=form.rule_id,
        )
    except InvalidInput as error:
        record_problems(form, error)
        return None


def build_form(
    request: PageRequest, form: RuleForm, *, backtest: Backtest | None = None, status_code: int = 200, saved: bool = False
) -> Page:
    figures = {}
    if backtest is not None:
        figures["backtest"] = _backtest_chart(backtest)
    return Page(
        title="New alert rule" if form.rule_id is None else f"Alert rule {form.value('name') or form.rule_id}",
        template="rules/form.html",
        context={
            "form": form,
            "severities": [member.value for member in Severity],
            "sources": [member.value for member in Source],
            "backtest": backtest,
            "backtest_ranges": list(BACKTEST_RANGES),
            "saved": saved,
            "example": json.dumps(EXAMPLE_CONDITION),
        },
        charts=figures,
        status_code=status_code,
        refresh=False,
    )


def _backtest_chart(result: Backtest) -> dict[str, Any]:
    """The alerts the backtest would have raised, as bars from firing to resolving, one row per group."""
    rows: dict[str, int] = {}
    starts, durations_ms, ys, hover = [], [], [], []
    for alert in result.alerts:
        label = charts.plain(", ".join(f"{key}={value}" for key, value in sorted(alert.group_key.items())) or "(all)")
        rows.setdefault(label, len(rows))
        end = alert.resolved_at or result.end
        starts.append(charts.iso(alert.fired_at))
        durations_ms.append(max((end - alert.fired_at).total_seconds() * 1000, 60_000))
        ys.append(label)
        hover.append(
            f"{label}<br>fired {charts.iso(alert.fired_at)}<br>"
            + (f"resolved {charts.iso(alert.resolved_at)}" if alert.resolved_at else "still firing")
        )
    figure = {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "would have fired",
                "base": starts,
                "x": durations_ms,
                "y": ys,
                "hovertext": hover,
                "hoverinfo": "text",
                "marker": {"color": charts.ERROR_COLOUR},
            }
        ],
        "layout": {
            "title": {
                "text": f"Backtest: {len(result.alerts)} alert(s) over {result.evaluations} evaluations",
                "font": {"size": 14},
            },
            "height": max(200, 30 * len(rows) + 110),
            "margin": {"l": 20, "r": 16, "t": 40, "b": 40},
            "xaxis": {"type": "date", "range": [charts.iso(result.start), charts.iso(result.end)]},
            "yaxis": {"type": "category", "automargin": True},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "showlegend": False,
        },
    }
    return figure
