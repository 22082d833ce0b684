"""Alert rules: create, list, get, change, delete (scoped to a license), and backtest a rule (saved or
draft) over stored history with the very query and state machine live evaluation uses, notifying nobody.

Rules hold no secrets: ``notification_channels`` names channels of the rule's license, whose secrets
live encrypted with the channel, or channel types (``"email"``: the license's default email channel).
``rule_name`` is accepted beside ``name`` (the seed's name for it). ``license_id`` arguments named ``scope`` are the license the caller may
see (None = every license, admin keys). Imports storage, core,
``services.notification_channels`` and ``services.quotas``; never commits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from fernando_telemetry.core.alert_condition import Condition, fingerprint, parse_condition
from fernando_telemetry.core.alert_state import GroupState, Phase, step_groups
from fernando_telemetry.core.enums import Severity
from fernando_telemetry.core.errors import Conflict, InvalidInput, NotFound
from fernando_telemetry.core.names import name_problem, normalize_name
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas
from fernando_telemetry.services import notification_channels
from fernando_telemetry.services import quotas as quota
from fernando_telemetry.services.notification_channels import CHANNEL_TYPES
from fernando_telemetry.storage import alert_queries, lookups
from fernando_telemetry.storage.models import AlertRule, License, NotificationChannel

__all__ = [
    "BACKTEST_TIMEOUT_MS",
    "DEFAULT_LIMIT",
    "FIELDS",
    "MAX_BACKTEST_GROUP_EVALUATIONS",
    "MAX_BACKTEST_INSTANTS",
    "MAX_LIMIT",
    "RULE_NAME_ALIAS",
    "Backtest",
    "BacktestAlert",
    "BacktestTransition",
    "RulePage",
    "RuleView",
    "backtest",
    "backtest_instants",
    "create",
    "delete",
    "draft_condition",
    "get",
    "get_rule",
    "list_rules",
    "set_enabled",
    "update",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_BACKTEST_INSTANTS = 20_000
BACKTEST_TIMEOUT_MS = 30_000
MAX_BACKTEST_GROUP_EVALUATIONS = 1_000_000
"""Most evaluations x groups one backtest may step through (its CPU work); beyond it the backtest is refused."""
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
FIELDS = (
    "name",
    "description",
    "condition_config",
    "severity",
    "notification_channels",
    "evaluation_interval_seconds",
    "repeat_interval_minutes",
    "enabled",
    "labels",
    "annotations",
    "owner_user_id",
)
RULE_NAME_ALIAS = "rule_name"
"""Accepted in a rule's fields as ``name`` (the seed's name for it; ``AlertRule.rule_name`` is its synonym)."""
_REQUIRED = ("name", "condition_config")
_DEFAULTS: dict[str, Any] = {
    "description": None,
    "severity": Severity.WARNING.value,
    "notification_channels": [],
    "evaluation_interval_seconds": 60,
    "repeat_interval_minutes": 240,
    "enabled": True,
    "labels": {},
    "annotations": {},
    "owner_user_id": None,
}
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
_MAX_CHANNELS = 20
_MAX_LABELS = 50
_MAX_NAME_CHARS = 200
_MAX_TEXT_CHARS = 4000


@dataclass(frozen=True)
class RuleView:
    rule_id: int
    license_id: int | None
    name: str
    description: str | None
    condition_config: dict[str, Any]
    condition_summary: str
    severity: str
    notification_channels: list[str]
    evaluation_interval_seconds: int
    evaluation_window_minutes: int
    pending_period_minutes: int
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


@dataclass(frozen=True)
class RulePage:
    rules: list[RuleView]
    next_offset: int | None


def _view(rule: AlertRule) -> RuleView:
    try:
        summary = parse_condition(rule.condition_config).describe()
    except InvalidInput:  # a row written by hand; show it, do not fail the listing
        summary = "(invalid condition)"
    return RuleView(
        rule_id=rule.rule_id,
        license_id=rule.license_id,
        name=rule.name,
        description=rule.description,
        condition_config=dict(rule.condition_config),
        condition_summary=summary,
        severity=str(rule.severity),
        notification_channels=[str(name) for name in rule.notification_channels],
        evaluation_interval_seconds=rule.evaluation_interval_seconds,
        evaluation_window_minutes=rule.evaluation_window_minutes,
        pending_period_minutes=rule.pending_period_minutes,
        repeat_interval_minutes=rule.repeat_interval_minutes,
        enabled=rule.enabled,
        labels=dict(rule.labels),
        annotations=dict(rule.annotations),
        owner_user_id=rule.owner_user_id,
        version=rule.version,
        last_evaluated_at=rule.last_evaluated_at,
        last_triggered_at=rule.last_triggered_at,
        last_evaluation_status=rule.last_evaluation_status,
        last_error=rule.last_error,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


# --- validation ---------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []

    def add(self, field: str, reason: str, **extra: Any) -> None:
        self.details.append({"field": field, "reason": reason, **extra})

    def raise_if_any(self, what: str = "the rule") -> None:
        if self.details:
            count = len(self.details)
            raise InvalidInput(
                f"{what} has {count} problem{'s' if count > 1 else ''}: "
                + "; ".join(f"{detail['field']} {detail['reason']}" for detail in self.details),
                details=self.details,
            )


@dataclass(frozen=True)
class _Checked:
    values: dict[str, Any]
    condition: Condition | None


def _named(fields: Mapping[str, Any], problems: _Problems) -> Mapping[str, Any]:
    """``fields`` with the seed's ``rule_name`` read as ``name`` (both given: they must agree)."""
    if RULE_NAME_ALIAS not in fields:
        return fields
    renamed = {key: value for key, value in fields.items() if key != RULE_NAME_ALIAS}
    alias = fields[RULE_NAME_ALIAS]
    if "name" in renamed and renamed["name"] != alias:
        problems.add(RULE_NAME_ALIAS, "is another name for name, and the two differ: give one of them")
    else:
        renamed["name"] = alias
    return renamed


def _check(session: Session, fields: Mapping[str, Any], *, license_id: int | None, partial: bool) -> _Checked:
    """Every problem of ``fields`` at once; the values normalised (the condition with its defaults filled)."""
    problems = _Problems()
    values: dict[str, Any] = {}
    fields = _named(fields, problems)
    for name in fields:
        if name not in FIELDS and name not in ("version", "license_id"):
            problems.add(str(name), "is not a field of a rule", allowed=list(FIELDS))
    if not partial:
        for name in _REQUIRED:
            if fields.get(name) is None:
                problems.add(name, "is required")
    condition: Condition | None = None
    for name in FIELDS:
        if name not in fields:
            continue
        raw = fields[name]
        match name:
            case "name":
                if raw is not None:
                    # one spelling per name (NFC), so the unique constraint sees names that look the same as equal
                    normal = normalize_name(raw) if isinstance(raw, str) else ""
                    if not normal or len(normal) > _MAX_NAME_CHARS or "\x00" in normal:
                        problems.add(name, f"must be a non-empty string of at most {_MAX_NAME_CHARS} characters")
                    elif (problem := name_problem(normal)) is not None:
                        problems.add(name, problem)
                    else:
                        values[name] = normal
            case "description":
                if raw is not None and (not isinstance(raw, str) or len(raw) > _MAX_TEXT_CHARS or "\x00" in raw):
                    problems.add(name, f"must be a string of at most {_MAX_TEXT_CHARS} characters, or null")
                else:
                    values[name] = raw
            case "condition_config":
                if raw is not None:
                    try:
                        condition = parse_condition(raw)
                        values[name] = condition.to_config()
                    except InvalidInput as exc:
                        problems.details.extend(exc.details)
            case "severity":
                allowed = [member.value for member in Severity]
                if raw not in allowed:
                    problems.add(name, "is not a severity", allowed=allowed)
                else:
                    values[name] = raw
            case "notification_channels":
                channels = _check_channels(session, raw, license_id=license_id, problems=problems)
                if channels is not None:
                    values[name] = channels
            case "evaluation_interval_seconds":
                _integer(values, problems, name, raw, 10, 86_400)
            case "repeat_interval_minutes":
                _integer(values, problems, name, raw, 1, 43_200)
            case "enabled":
                if not isinstance(raw, bool):
                    problems.add(name, "must be true or false")
                else:
                    values[name] = raw
            case "labels" | "annotations":
                checked = _check_strings(name, raw, problems)
                if checked is not None:
                    values[name] = checked
            case "owner_user_id":
                if raw is not None and (not isinstance(raw, str) or not lookups.known_user(session, raw, license_id=license_id)):
                    problems.add(name, "is not a known user id" + ("" if license_id is None else f" of license {license_id}"))
                else:
                    values[name] = raw
    if "version" in fields and (isinstance(fields["version"], bool) or not isinstance(fields["version"], int)):
        problems.add("version", "must be the whole number the rule was read with")
    problems.raise_if_any()
    return _Checked(values, condition)


def _integer(values: dict[str, Any], problems: _Problems, name: str, raw: Any, low: int, high: int) -> None:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        problems.add(name, f"must be a whole number from {low} to {high}")
    else:
        values[name] = raw


def _check_strings(name: str, raw: Any, problems: _Problems) -> dict[str, str] | None:
    if not isinstance(raw, Mapping):
        problems.add(name, "must be an object of string values", example={"team": "payments"})
        return None
    if len(raw) > _MAX_LABELS:
        problems.add(name, f"holds at most {_MAX_LABELS} entries")
        return None
    checked: dict[str, str] = {}
    for key, value in raw.items():
        where = f"{name}.{key}"
        if not isinstance(key, str) or not _LABEL_NAME.match(key):
            problems.add(where, "is not a valid name: a letter or _, then letters, digits, _, . or -, at most 100")
        elif not isinstance(value, str) or len(value) > _MAX_TEXT_CHARS or "\x00" in value:
            problems.add(where, f"must be a string of at most {_MAX_TEXT_CHARS} characters")
        elif key == "runbook_url" and not _is_http_url(value):
            problems.add(where, "must be an http(s) URL")
        else:
            checked[key] = value
    return checked


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_channels(session: Session, raw: Any, *, license_id: int | None, problems: _Problems) -> list[str] | None:
    if not isinstance(raw, list):
        problems.add("notification_channels", "must be a list of channel names", example=["ops-email"])
        return None
    if len(raw) > _MAX_CHANNELS:
        problems.add("notification_channels", f"holds at most {_MAX_CHANNELS} channels")
        return None
    names: list[str] = []
    for index, name in enumerate(raw):
        where = f"notification_channels[{index}]"
        if not isinstance(name, str) or not _CHANNEL_NAME.match(name):
            problems.add(
                where,
                "must be the name of a channel (addresses, webhook URLs and secrets belong in a channel: "
                "create one at /api/v1/notification-channels)",
            )
        elif name in names:
            problems.add(where, f"{name} is listed twice")
        else:
            names.append(name)
    if names:
        resolved = notification_channels.resolve_for_rule(session, license_id=license_id, entries=names)
        known = sorted(
            session.scalars(
                select(NotificationChannel.name).where(NotificationChannel.license_id.is_not_distinct_from(license_id))
            )
        )
        owner = "platform-wide" if license_id is None else f"license {license_id}"
        for index, name in enumerate(raw):
            if not isinstance(name, str) or name not in names:
                continue
            if name in resolved.missing_types:
                problems.add(
                    f"notification_channels[{index}]",
                    notification_channels.missing_type_message(name, license_id=license_id),
                    missing_type=name,
                    allowed=known,
                )
            elif name in resolved.unknown:
                problems.add(
                    f"notification_channels[{index}]",
                    f"no channel named {name} exists for {owner} (a channel type, {', '.join(CHANNEL_TYPES)}, "
                    "means the default channel of that type)",
                    allowed=known,
                )
    return names


# --- CRUD ---------------------------------------------------------------------------------------


def create(
    session: Session, *, license_id: int | None, fields: Mapping[str, Any], now: datetime, quotas: Quotas = DEFAULT_QUOTAS
) -> RuleView:
    """A new rule of ``license_id`` (None: platform-wide, over every license's data); at most ``quotas.rules``
    per license (``QuotaExceeded``)."""
    if license_id is not None and session.get(License, license_id) is None:
        raise InvalidInput(f"no license {license_id}", details=[{"field": "license_id", "reason": "no such license"}])
    checked = _check(session, fields, license_id=license_id, partial=False)
    values = {**_DEFAULTS, **checked.values}
    assert checked.condition is not None
    rule = AlertRule(
        license_id=license_id,
        **values,
        evaluation_window_minutes=checked.condition.window_minutes,
        pending_period_minutes=checked.condition.for_minutes,
        version=1,
        created_at=now,
        updated_at=now,
    )
    _name_free(session, name=values["name"], license_id=license_id, rule_id=None)
    quota.ensure_room(session, kind="rules", license_id=license_id, limit=quotas.rules)
    session.add(rule)
    _flush(session, values["name"])
    return _view(rule)


def _name_free(session: Session, *, name: str, license_id: int | None, rule_id: int | None) -> None:
    query = select(AlertRule.rule_id).where(AlertRule.name == name)
    query = query.where(AlertRule.license_id.is_(None) if license_id is None else AlertRule.license_id == license_id)
    if rule_id is not None:
        query = query.where(AlertRule.rule_id != rule_id)
    if session.scalars(query).first() is not None:
        raise Conflict(
            f"a rule named {name!r} already exists" + ("" if license_id is None else f" in license {license_id}"),
            details=[{"field": "name", "reason": "already used by another rule of this license"}],
        )


def _flush(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if "uq_alert_rules_license_id_name" not in str(exc.orig):
            raise
        # a concurrent create took the name between the check and the insert
        raise Conflict(f"a rule named {name!r} already exists", details=[{"field": "name", "reason": "already used"}]) from None


def _find(session: Session, *, rule_id: int, scope: int | None, lock: bool = False) -> AlertRule:
    query = select(AlertRule).where(AlertRule.rule_id == rule_id)
    if scope is not None:
        query = query.where(AlertRule.license_id == scope)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    rule = session.scalars(query).one_or_none()
    if rule is None:
        raise NotFound(f"no alert rule {rule_id}" + ("" if scope is None else f" in license {scope}"))
    return rule


def get(session: Session, *, rule_id: int, scope: int | None) -> RuleView:
    return _view(_find(session, rule_id=rule_id, scope=scope))


def get_rule(session: Session, *, rule_id: int, scope: int | None) -> AlertRule:
    """The ORM row (for services that evaluate it)."""
    return _find(session, rule_id=rule_id, scope=scope)


def list_rules(
    session: Session,
    *,
    scope: int | None,
    enabled: bool | None = None,
    severity: str | None = None,
    source: str | None = None,
    name_contains: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> RulePage:
    """Rules visible in ``scope``, by name then id; ``source`` filters on the condition's source."""
    query = select(AlertRule)
    if scope is not None:
        query = query.where(AlertRule.license_id == scope)
    if enabled is not None:
        query = query.where(AlertRule.enabled.is_(enabled))
    if severity is not None:
        query = query.where(AlertRule.severity == severity)
    if source is not None:
        query = query.where(AlertRule.condition_config["source"].astext == source)
    if name_contains:
        query = query.where(func.strpos(func.lower(AlertRule.name), name_contains.lower()) > 0)
    rows = list(session.scalars(query.order_by(AlertRule.name, AlertRule.rule_id).offset(offset).limit(limit + 1)))
    next_offset = offset + limit if len(rows) > limit else None
    return RulePage([_view(rule) for rule in rows[:limit]], next_offset)


def update(
    session: Session, *, rule_id: int, scope: int | None, fields: Mapping[str, Any], replace: bool, now: datetime
) -> RuleView:
    """Change a rule: ``replace`` (PUT) sets every field (missing ones to their defaults), otherwise (PATCH)
    only the fields given. A ``version`` field must equal the stored one (else ``Conflict``)."""
    rule = _find(session, rule_id=rule_id, scope=scope, lock=True)
    if "license_id" in fields and fields["license_id"] != rule.license_id:
        raise InvalidInput(
            "a rule cannot move to another license", details=[{"field": "license_id", "reason": "cannot be changed"}]
        )
    checked = _check(session, fields, license_id=rule.license_id, partial=not replace)
    expected = fields.get("version")
    if expected is not None and expected != rule.version:
        raise Conflict(
            f"rule {rule_id} changed since it was read (version {rule.version}, not {expected}); read it again",
            details=[{"field": "version", "reason": f"stale: the rule is at version {rule.version}"}],
        )
    values = {**_DEFAULTS, **checked.values} if replace else checked.values
    if "name" in values:
        _name_free(session, name=values["name"], license_id=rule.license_id, rule_id=rule.rule_id)
    for name, value in values.items():
        setattr(rule, name, value)
    if checked.condition is not None:
        rule.evaluation_window_minutes = checked.condition.window_minutes
        rule.pending_period_minutes = checked.condition.for_minutes
        # a changed condition starts its groups over: pending timers of the old condition do not count for
        # the new one (firing groups keep their alert until the new condition clears it)
        session.execute(
            text("DELETE FROM alert_rule_states WHERE rule_id = :rule_id AND state <> 'firing'"), {"rule_id": rule.rule_id}
        )
    rule.version = rule.version + 1
    rule.updated_at = now
    _flush(session, rule.name)
    return _view(rule)


def set_enabled(session: Session, *, rule_id: int, scope: int | None, enabled: bool, now: datetime) -> RuleView:
    return update(session, rule_id=rule_id, scope=scope, fields={"enabled": enabled}, replace=False, now=now)


def delete(session: Session, *, rule_id: int, scope: int | None) -> None:
    """Delete a rule; its group states go with it, its alerts and their history stay (rule_id set to null)."""
    rule = _find(session, rule_id=rule_id, scope=scope, lock=True)
    session.delete(rule)
    session.flush()


# --- backtest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BacktestTransition:
    group_key: dict[str, str]
    fingerprint: str
    from_state: str
    to_state: str
    at: datetime
    value: float | None
    reason: str


@dataclass(frozen=True)
class BacktestAlert:
    """An alert the rule would have raised: when it fired, when it resolved (None: still firing at ``end``)."""

    group_key: dict[str, str]
    fingerprint: str
    fired_at: datetime
    resolved_at: datetime | None
    value_at_fire: float | None


@dataclass(frozen=True)
class Backtest:
    rule_id: int | None
    license_id: int | None
    condition_config: dict[str, Any]
    start: datetime
    end: datetime
    step_seconds: int
    evaluations: int
    transitions: list[BacktestTransition]
    alerts: list[BacktestAlert]
    groups_seen: int


def backtest_instants(*, start: datetime, end: datetime, step_seconds: int) -> list[datetime]:
    """The evaluation instants of a backtest: ``start + k * step`` for k >= 1 up to ``end`` inclusive
    (the first evaluation is one step after ``start``, as a rule created at ``start`` would run)."""
    problems = _Problems()
    for name, moment in (("from", start), ("to", end)):
        if moment.tzinfo is None:
            problems.add(name, "has no time zone; send UTC (Z) or an offset")
        elif not _EARLIEST <= moment <= _LATEST:
            problems.add(name, f"must be between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d}")
    if isinstance(step_seconds, bool) or not isinstance(step_seconds, int) or not 10 <= step_seconds <= 86_400:
        problems.add("step_seconds", "must be a whole number from 10 to 86400")
    problems.raise_if_any("the backtest")
    if end <= start:
        raise InvalidInput("the backtest's to must be after from", details=[{"field": "to", "reason": "not after from"}])
    count = int((end - start).total_seconds() // step_seconds)
    if count > MAX_BACKTEST_INSTANTS:
        raise InvalidInput(
            f"the backtest would evaluate {count} instants; at most {MAX_BACKTEST_INSTANTS}: use a larger step or a shorter range",
            details=[{"field": "step_seconds", "reason": f"{count} evaluations, at most {MAX_BACKTEST_INSTANTS}"}],
        )
    if count == 0:
        raise InvalidInput(
            "the backtest range is shorter than one step", details=[{"field": "to", "reason": "less than one step after from"}]
        )
    step = timedelta(seconds=step_seconds)
    return [start + step * k for k in range(1, count + 1)]


def draft_condition(draft: Any) -> tuple[Condition, int | None]:
    """A draft rule's condition and its evaluation interval (if it names one); nothing else of it matters."""
    if not isinstance(draft, Mapping):
        raise InvalidInput("the draft rule must be a JSON object", details=[{"field": "rule", "reason": "not an object"}])
    problems = _Problems()
    for name in draft:
        if name not in FIELDS and name not in ("version", "license_id", "rule_id", RULE_NAME_ALIAS):
            problems.add(f"rule.{name}", "is not a field of a rule", allowed=list(FIELDS))
    condition: Condition | None = None
    if draft.get("condition_config") is None:
        problems.add("rule.condition_config", "is required")
    else:
        try:
            condition = parse_condition(draft["condition_config"], field="rule.condition_config")
        except InvalidInput as exc:
            problems.details.extend(exc.details)
    interval = draft.get("evaluation_interval_seconds")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or not 10 <= interval <= 86_400):
        problems.add("rule.evaluation_interval_seconds", "must be a whole number from 10 to 86400")
    problems.raise_if_any("the draft rule")
    assert condition is not None
    return condition, interval


def backtest(
    session: Session,
    *,
    condition: Condition,
    license_id: int | None,
    start: datetime,
    end: datetime,
    step_seconds: int,
    rule_id: int | None = None,
    timeout_ms: int = BACKTEST_TIMEOUT_MS,
    max_group_evaluations: int = MAX_BACKTEST_GROUP_EVALUATIONS,
    clock: Callable[[], float] = time.monotonic,
) -> Backtest:
    """What ``condition`` would have done at each instant of ``backtest_instants`` over stored data.

    The same ``observe`` query and ``step_groups`` state machine as live evaluation, starting from no
    state; nothing is written and nobody is notified. Fingerprints use ``rule_id`` (0 for a draft).

    Bounded: evaluations x groups at most ``max_group_evaluations`` (the groups at ``end`` are counted first,
    then the groups actually seen, both before any stepping: more is a 400), its SQL by ``timeout_ms`` and its
    stepping by the same wall time (``clock``, seconds, checked at every instant).
    """
    deadline = clock() + timeout_ms / 1000
    ordered = backtest_instants(start=start, end=end, step_seconds=step_seconds)
    if condition.group_by:
        probe = _observe_bounded(session, condition, license_id=license_id, at=[ordered[-1]], timeout_ms=timeout_ms)
        _check_work(len(ordered), len(probe[ordered[-1]]), max_group_evaluations, expected=True)
    observed_at = _observe_bounded(session, condition, license_id=license_id, at=ordered, timeout_ms=timeout_ms)
    seen = {fingerprint(0, observation.group_key) for observations in observed_at.values() for observation in observations}
    _check_work(len(ordered), len(seen), max_group_evaluations, expected=False)
    key_of = rule_id or 0
    states: dict[str, GroupState] = {}
    groups: dict[str, dict[str, str]] = {}
    transitions: list[BacktestTransition] = []
    open_alerts: dict[str, BacktestAlert] = {}
    alerts: list[BacktestAlert] = []
    for instant in ordered:
        if clock() > deadline:
            raise InvalidInput(
                f"the backtest ran longer than {timeout_ms / 1000:g} s: use a shorter range or a larger step",
                details=[{"field": "to", "reason": "range too large to backtest in time"}],
            )
        observed: dict[str, tuple[float | None, int]] = {}
        for observation in observed_at[instant]:
            group_fingerprint = fingerprint(key_of, observation.group_key)
            groups.setdefault(group_fingerprint, observation.group_key)
            observed[group_fingerprint] = (observation.value, observation.points)
        for group_fingerprint, (state, steps) in step_groups(condition, states, observed, now=instant).items():
            states[group_fingerprint] = state
            for transition in steps:
                group_key = groups[group_fingerprint]
                transitions.append(
                    BacktestTransition(
                        group_key=group_key,
                        fingerprint=group_fingerprint,
                        from_state=transition.from_phase.value,
                        to_state=transition.to_phase.value,
                        at=transition.at,
                        value=transition.value,
                        reason=transition.reason,
                    )
                )
                if transition.to_phase is Phase.FIRING:
                    open_alerts[group_fingerprint] = BacktestAlert(
                        group_key, group_fingerprint, transition.at, None, transition.value
                    )
                elif transition.from_phase is Phase.FIRING and group_fingerprint in open_alerts:
                    fired = open_alerts.pop(group_fingerprint)
                    alerts.append(
                        BacktestAlert(fired.group_key, fired.fingerprint, fired.fired_at, transition.at, fired.value_at_fire)
                    )
    alerts.extend(open_alerts.values())
    alerts.sort(key=lambda alert: (alert.fired_at, alert.fingerprint))
    return Backtest(
        rule_id=rule_id,
        license_id=license_id,
        condition_config=condition.to_config(),
        start=start,
        end=end,
        step_seconds=step_seconds,
        evaluations=len(ordered),
        transitions=transitions,
        alerts=alerts,
        groups_seen=len(groups),
    )


def _check_work(evaluations: int, groups: int, bound: int, *, expected: bool) -> None:
    if evaluations * max(groups, 1) <= bound:
        return
    what = f"{groups} groups at its end" if expected else f"{groups} groups"
    raise InvalidInput(
        f"the backtest would step {evaluations} evaluations x {what} = {evaluations * groups} group evaluations; "
        f"at most {bound}: use a larger step, a shorter range, or fewer groups (filters)",
        details=[
            {
                "field": "step_seconds",
                "reason": "too many evaluations x groups",
                "evaluations": evaluations,
                "groups": groups,
                "limit": bound,
            }
        ],
    )


def _observe_bounded(
    session: Session, condition: Condition, *, license_id: int | None, at: list[datetime], timeout_ms: int
) -> dict[datetime, list[alert_queries.Observation]]:
    # a runaway backtest is cancelled rather than left running; the caller's timeout is put back after
    previous = session.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
    session.execute(text("SELECT set_config('statement_timeout', :timeout, true)"), {"timeout": f"{int(timeout_ms)}ms"})
    try:
        observed_at = alert_queries.observe(session, condition, license_id=license_id, at=at)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "57014":  # query_canceled: the statement timeout
            raise InvalidInput(
                f"the backtest ran longer than {timeout_ms / 1000:g} s: use a shorter range or a larger step",
                details=[{"field": "to", "reason": "range too large to backtest in time"}],
            ) from None
        raise
    session.execute(text("SELECT set_config('statement_timeout', :timeout, true)"), {"timeout": previous})
    return observed_at
