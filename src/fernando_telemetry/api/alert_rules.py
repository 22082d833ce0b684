"""Alert rule routes: ``/api/v1/alert-rules`` CRUD and ``POST /api/v1/alert-rules/backtest``.

Bodies are read as JSON objects and validated by ``services.alert_rules`` so that one 400 lists every
problem (field, reason, what is allowed). A license key sees and changes its license's rules only; an
admin key sees every rule, may narrow with ``license_id``, and may create platform-wide rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, Field

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import check_names, integer
from fernando_telemetry.core import time_range
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.services import alert_rules, rule_backtest

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/alert-rules", tags=["alerting"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "An invalid field: `details` lists every problem with its field, reason and allowed values"},
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or names another license"},
    422: {"description": "The body is not a JSON object"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such rule visible to this key"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The name is taken in this license, or `version` is stale"}}
_LICENSE = Query(None, description="Admin keys: only this license's rules")
_JsonObject = Annotated[dict[str, Any], Body()]
_RULE_ID = Path(ge=1, le=2**62, description="The rule's id")
_MAX_ID = 2**62
_SEED_EXAMPLE = {
    "name": "High CPU Usage",
    "description": "CPU over 80% for 5 minutes",
    "condition_config": {"metric": "cpu_usage", "operator": ">", "threshold": 80, "for_minutes": 5, "group_by": ["host_name"]},
    "severity": "warning",
    "notification_channels": ["email", "slack"],
    "evaluation_interval_seconds": 60,
    "labels": {"team": "infra"},
    "annotations": {"summary": "CPU high on {{host_name}}", "runbook_url": "https://runbooks.example.com/cpu"},
}

_RuleBody = Annotated[dict[str, Any], Body(examples=[_SEED_EXAMPLE])]


class RuleIn(BaseModel):
    """A rule as sent to POST and PUT (PATCH: any subset). Validated by the service, all problems at once."""

    name: str | None = Field(None, description="Unique within the license; required on create (or as rule_name)", max_length=200)
    rule_name: str | None = Field(None, description="The seed's name for `name`: give either (both: they must agree)")
    description: str | None = None
    condition_config: dict[str, Any] = Field(
        description="The condition language (see docs/ALERTING.md, Rule language); defaults fill what is left out",
        examples=[{"metric": "cpu_usage", "operator": ">", "threshold": 80}],
    )
    severity: str = Field("warning", description="info, warning, error or critical")
    notification_channels: list[str] = Field(
        [],
        description="Names of channels of this license (/api/v1/notification-channels), or channel types "
        "(email, slack, webhook): the license's default channel of that type, its oldest enabled one",
    )
    evaluation_interval_seconds: int = Field(60, ge=10, le=86_400)
    repeat_interval_minutes: int = Field(
        240, ge=1, le=43_200, description="Notify a firing, unacknowledged alert again after this"
    )
    enabled: bool = True
    labels: dict[str, str] = {}
    annotations: dict[str, str] = Field({}, description="summary, description, runbook_url (http/https) or any other text")
    owner_user_id: str | None = None
    license_id: int | None = Field(None, description="Admin keys on create: the owning license; omitted = platform-wide")
    version: int | None = Field(None, description="PUT/PATCH: the version read; a stale one is a 409")


class RuleOut(BaseModel):
    rule_id: int
    license_id: int | None = Field(description="null: a platform-wide rule over every license's data")
    name: str
    description: str | None
    condition_config: dict[str, Any] = Field(description="Normalised: every field of the language, defaults filled")
    condition_summary: str = Field(examples=["avg(cpu_usage) over 5m > 80"])
    severity: str
    notification_channels: list[str]
    evaluation_interval_seconds: int
    evaluation_window_minutes: int = Field(description="condition_config.window_minutes")
    pending_period_minutes: int = Field(description="condition_config.for_minutes")
    repeat_interval_minutes: int
    enabled: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    owner_user_id: str | None
    version: int
    last_evaluated_at: datetime | None
    last_triggered_at: datetime | None
    last_evaluation_status: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class RulePageOut(BaseModel):
    rules: list[RuleOut] = Field(description="By name, then id")
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page")


class BacktestIn(BaseModel):
    """Exactly one of ``rule_id`` (a saved rule) and ``rule`` (a draft: at least ``condition_config``)."""

    rule_id: int | None = None
    rule: dict[str, Any] | None = Field(
        None, examples=[{"condition_config": {"metric": "cpu_usage", "operator": ">", "threshold": 80}}]
    )
    from_: str | None = Field(None, alias="from", description="ISO 8601; default: 24 hours before `to`")
    to: str | None = Field(None, description="ISO 8601; default: now. At most 31 days after `from`")
    step_seconds: int | None = Field(None, description="Time between evaluations; default: the rule's evaluation interval")
    license_id: int | None = Field(None, description="Admin keys, draft rules: whose data (omitted: every license)")


class TransitionOut(BaseModel):
    group_key: dict[str, str]
    fingerprint: str
    from_state: str = Field(description="inactive, pending or firing")
    to_state: str
    at: datetime
    value: float | None
    reason: str


class BacktestAlertOut(BaseModel):
    group_key: dict[str, str]
    fingerprint: str
    fired_at: datetime
    resolved_at: datetime | None = Field(description="null: still firing at `to`")
    value_at_fire: float | None


class BacktestOut(BaseModel):
    rule_id: int | None
    license_id: int | None
    condition_config: dict[str, Any]
    from_: datetime = Field(alias="from")
    to: datetime
    step_seconds: int
    evaluations: int
    groups_seen: int
    transitions: list[TransitionOut] = Field(description="In time order")
    alerts: list[BacktestAlertOut] = Field(description="The alerts it would have raised, by firing time")


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}}}
    }


def _id(body: dict[str, Any], name: str) -> int | None:
    """An id field of a body: absent, or a whole number a bigint holds."""
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ID):
        raise InvalidInput(f"{name} must be a positive whole number", details=[field_problem(name, "not an id")])
    return value


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name != "license_id"}


def _out(view: alert_rules.RuleView) -> RuleOut:
    return RuleOut.model_validate(view, from_attributes=True)


@router.post(
    "",
    status_code=201,
    response_model=RuleOut,
    responses={**_ERRORS, **_CONFLICT},
    summary="Create an alert rule",
    description=(
        "The condition is validated and stored normalised (defaults filled); `notification_channels` must name channels "
        "of the rule's license, or channel types (`email`, `slack`, `webhook`: the license's default channel of that type, "
        "its oldest enabled one; a type with none is a 400 naming it). `rule_name` is accepted for `name`. "
        "Secrets never go in a rule: put addresses and webhook URLs in a channel. "
        'The seed\'s `{"metric": "cpu_usage", "operator": ">", "threshold": 80}` is a valid condition.'
    ),
    openapi_extra=_schema(RuleIn),
)
def create_rule(request: Request, caller: ReadCaller, body: _RuleBody) -> RuleOut:
    view = alert_rules.create_rule(
        request.app.state.sessions,
        caller=caller,
        license_id=_id(body, "license_id"),
        fields=_fields(body),
        quotas=request.app.state.quotas,
    )
    return _out(view)


@router.get(
    "",
    response_model=RulePageOut,
    responses=_ERRORS,
    summary="List alert rules",
    description="Filters: `enabled`, `severity`, `source` (of the condition), `name` (substring, any case). Offset pages.",
)
def list_rules(
    request: Request,
    caller: ReadCaller,
    enabled: str | None = Query(None, description="true or false"),
    severity: str | None = Query(None, examples=["critical"]),
    source: str | None = Query(None, examples=["traces"]),
    name: str | None = Query(None, description="Part of the name, any case"),
    limit: str | None = Query(None, description=f"1 to {alert_rules.MAX_LIMIT} (default {alert_rules.DEFAULT_LIMIT})"),
    offset: str | None = Query(None),
    license_id: str | None = _LICENSE,
) -> RulePageOut:
    check_names(request, allowed={"enabled", "severity", "source", "name", "limit", "offset", "license_id"})
    page = alert_rules.read_rules(
        request.app.state.sessions,
        caller=caller,
        license_id=integer(license_id, parameter="license_id", minimum=1),
        enabled=_flag(enabled, parameter="enabled"),
        severity=severity,
        source=source,
        name_contains=name,
        limit=integer(limit, parameter="limit", default=alert_rules.DEFAULT_LIMIT, minimum=1, maximum=alert_rules.MAX_LIMIT),
        offset=integer(offset, parameter="offset", default=0, minimum=0, maximum=10_000_000),
    )
    return RulePageOut(rules=[_out(view) for view in page.rules], next_offset=page.next_offset)


def _flag(text: str | None, *, parameter: str) -> bool | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{parameter}: {text[:40]!r} is not true or false", details=[field_problem(parameter, "not a boolean")])


@router.post(
    "/backtest",
    response_model=BacktestOut,
    response_model_by_alias=True,
    responses={**_ERRORS, **_NOT_FOUND},
    summary="Backtest a rule over stored history",
    description=(
        "Evaluates a saved rule (`rule_id`) or a draft (`rule`, at least its `condition_config`) at every `step_seconds` "
        "after `from` up to `to`, with the same query and state machine as live evaluation, starting from no state, and "
        "returns the transitions it would have produced and the alerts it would have raised. Nothing is stored and nobody "
        "is notified. A saved rule reads its own license's data; a draft reads the caller's license."
    ),
    openapi_extra=_schema(BacktestIn),
)
def backtest_rule(request: Request, caller: ReadCaller, body: _JsonObject) -> BacktestOut:
    known = {"rule_id", "rule", "from", "to", "step_seconds", "license_id"}
    unknown = sorted(str(name) for name in body if name not in known)
    if unknown:
        raise InvalidInput(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
            details=[field_problem(name, "not a field of a backtest", allowed=sorted(known)) for name in unknown],
        )
    if (body.get("rule_id") is None) == (body.get("rule") is None):
        raise InvalidInput(
            "give either rule_id (a saved rule) or rule (a draft)",
            details=[field_problem("rule_id", "exactly one of rule_id and rule is required")],
        )
    result = rule_backtest.run_backtest(
        request.app.state.sessions,
        caller=caller,
        rule_id=_id(body, "rule_id"),
        draft=body.get("rule"),
        license_id=_id(body, "license_id") if body.get("rule_id") is None else None,
        start=_instant(body.get("from"), "from"),
        end=_instant(body.get("to"), "to"),
        step_seconds=body.get("step_seconds"),
    )
    return BacktestOut.model_validate(
        {
            "rule_id": result.rule_id,
            "license_id": result.license_id,
            "condition_config": result.condition_config,
            "from": result.start,
            "to": result.end,
            "step_seconds": result.step_seconds,
            "evaluations": result.evaluations,
            "groups_seen": result.groups_seen,
            "transitions": [TransitionOut.model_validate(t, from_attributes=True) for t in result.transitions],
            "alerts": [BacktestAlertOut.model_validate(a, from_attributes=True) for a in result.alerts],
        }
    )


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an ISO 8601 string", details=[field_problem(name, "not a string")])
    return time_range.parse_instant(value, parameter=name)


@router.get("/{rule_id}", response_model=RuleOut, responses={**_ERRORS, **_NOT_FOUND}, summary="Get one alert rule")
def get_rule(request: Request, caller: ReadCaller, rule_id: int = _RULE_ID, license_id: str | None = _LICENSE) -> RuleOut:
    license_id_value = integer(license_id, parameter="license_id", minimum=1)
    return _out(alert_rules.read_rule(request.app.state.sessions, caller=caller, rule_id=rule_id, license_id=license_id_value))


def _change(request: Request, caller: Caller, rule_id: int, body: dict[str, Any], *, replace: bool) -> RuleOut:
    view = alert_rules.change_rule(request.app.state.sessions, caller=caller, rule_id=rule_id, fields=body, replace=replace)
    return _out(view)


@router.put(
    "/{rule_id}",
    response_model=RuleOut,
    responses={**_ERRORS, **_NOT_FOUND, **_CONFLICT},
    summary="Replace an alert rule",
    description="Every field is set: the ones left out go back to their defaults. `name` and `condition_config` are required.",
    openapi_extra=_schema(RuleIn),
)
def put_rule(request: Request, caller: ReadCaller, body: _JsonObject, rule_id: int = _RULE_ID) -> RuleOut:
    return _change(request, caller, rule_id, body, replace=True)


@router.patch(
    "/{rule_id}",
    response_model=RuleOut,
    responses={**_ERRORS, **_NOT_FOUND, **_CONFLICT},
    summary="Change some fields of an alert rule",
    description='Only the fields given change (for example `{"enabled": false}`); `condition_config`, when given, is replaced whole.',
    openapi_extra=_schema(RuleIn),
)
def patch_rule(request: Request, caller: ReadCaller, body: _JsonObject, rule_id: int = _RULE_ID) -> RuleOut:
    return _change(request, caller, rule_id, body, replace=False)


@router.delete(
    "/{rule_id}",
    status_code=204,
    response_class=Response,
    responses={**_ERRORS, **_NOT_FOUND},
    summary="Delete an alert rule",
    description="Its alerts and their history stay (their rule_id becomes null).",
)
def delete_rule(request: Request, caller: ReadCaller, rule_id: int = _RULE_ID) -> Response:
    alert_rules.delete_rule(request.app.state.sessions, caller=caller, rule_id=rule_id)
    return Response(status_code=204)
