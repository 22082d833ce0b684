"""Alert rules: create, list, get, change, delete (scoped to a license), each change audited by its caller.
Validation is ``core.rule_validation``; backtests are ``services.rule_backtest``.

Rules hold no secrets: ``notification_channels`` names channels of the rule's license, whose secrets
live encrypted with the channel, or channel types (``"email"``: the license's default email channel).
``rule_name`` is accepted beside ``name`` (the seed's name for it). ``license_id`` arguments named ``scope`` are the license the caller may
see (None = every license, admin keys). Imports storage, core,
``services.notification_channels`` and ``services.quotas``. The session-level functions never commit; the use
cases at the end (taking ``sessions`` and a ``Caller``) own their transaction and scope check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import rule_validation
from fernando_telemetry.core.alert_condition import parse_condition
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Conflict, FieldProblems, Forbidden, InvalidInput, NotFound, field_problem
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas
from fernando_telemetry.core.rule_validation import CheckedRule
from fernando_telemetry.services import audit, notification_channels
from fernando_telemetry.services import quotas as quota
from fernando_telemetry.services.channel_validation import CHANNEL_TYPES
from fernando_telemetry.storage import lookups
from fernando_telemetry.storage.models import AlertRule, License, NotificationChannel

__all__ = [
    "DEFAULT_LIMIT",
    "FIELDS",
    "MAX_LIMIT",
    "RULE_NAME_ALIAS",
    "RulePage",
    "RuleView",
    "change_rule",
    "create",
    "create_rule",
    "delete",
    "delete_rule",
    "get",
    "get_rule",
    "list_rules",
    "read_rule",
    "read_rules",
    "set_enabled",
    "update",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
FIELDS = rule_validation.FIELDS
RULE_NAME_ALIAS = rule_validation.RULE_NAME_ALIAS


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


# --- validation: core.rule_validation, with the license's channels and users from the database ---------


def _check(session: Session, fields: Mapping[str, Any], *, license_id: int | None, partial: bool) -> CheckedRule:
    return rule_validation.check_rule(
        fields,
        license_id=license_id,
        partial=partial,
        check_channels=lambda raw, names, problems: _channel_problems(
            session, raw, names, license_id=license_id, problems=problems
        ),
        known_user=lambda user_id: lookups.known_user(session, user_id, license_id=license_id),
    )


def _channel_problems(
    session: Session, raw: Sequence[Any], names: list[str], *, license_id: int | None, problems: FieldProblems
) -> None:
    """A problem for each of ``names`` that is neither a channel of the license nor a type it has a channel of."""
    resolved = notification_channels.resolve_for_rule(session, license_id=license_id, entries=names)
    known = sorted(
        session.scalars(select(NotificationChannel.name).where(NotificationChannel.license_id.is_not_distinct_from(license_id)))
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


# --- CRUD ---------------------------------------------------------------------------------------


def create(
    session: Session, *, caller: Caller, license_id: int | None, fields: Mapping[str, Any], quotas: Quotas = DEFAULT_QUOTAS
) -> RuleView:
    """A new rule of ``license_id`` (None: platform-wide, over every license's data); at most ``quotas.rules``
    per license (``QuotaExceeded``). Audited as ``rule.create`` by ``caller``."""
    now = caller.now()
    if license_id is not None and session.get(License, license_id) is None:
        raise InvalidInput(f"no license {license_id}", details=[field_problem("license_id", "no such license")])
    checked = _check(session, fields, license_id=license_id, partial=False)
    values = {**rule_validation.DEFAULTS, **checked.values}
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
    view = _view(rule)
    _audit(session, caller, "rule.create", view, now=now, details={"name": view.name})
    return view


def _audit(session: Session, caller: Caller, action: str, view: RuleView, *, now: datetime, details: Mapping[str, Any]) -> None:
    # inside the change's transaction, so the API, the dashboard and the CLI all leave the same entry
    audit.record(
        session,
        actor=caller.actor,
        action=action,
        target_type="alert_rule",
        target_id=view.rule_id,
        license_id=view.license_id,
        now=now,
        details=details,
    )


def _name_free(session: Session, *, name: str, license_id: int | None, rule_id: int | None) -> None:
    query = select(AlertRule.rule_id).where(AlertRule.name == name)
    query = query.where(AlertRule.license_id.is_(None) if license_id is None else AlertRule.license_id == license_id)
    if rule_id is not None:
        query = query.where(AlertRule.rule_id != rule_id)
    if session.scalars(query).first() is not None:
        raise Conflict(
            f"a rule named {name!r} already exists" + ("" if license_id is None else f" in license {license_id}"),
            details=[field_problem("name", "already used by another rule of this license")],
        )


def _flush(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if "uq_alert_rules_license_id_name" not in str(exc.orig):
            raise
        # a concurrent create took the name between the check and the insert
        raise Conflict(f"a rule named {name!r} already exists", details=[field_problem("name", "already used")]) from None


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
    session: Session, *, caller: Caller, rule_id: int, scope: int | None, fields: Mapping[str, Any], replace: bool
) -> RuleView:
    """Change a rule: ``replace`` (PUT) sets every field (missing ones to their defaults), otherwise (PATCH)
    only the fields given. A ``version`` field must equal the stored one (else ``Conflict``). Audited as
    ``rule.update`` (with the names of the fields given) by ``caller``."""
    now = caller.now()
    rule = _find(session, rule_id=rule_id, scope=scope, lock=True)
    if "license_id" in fields and fields["license_id"] != rule.license_id:
        raise InvalidInput("a rule cannot move to another license", details=[field_problem("license_id", "cannot be changed")])
    checked = _check(session, fields, license_id=rule.license_id, partial=not replace)
    expected = fields.get("version")
    if expected is not None and expected != rule.version:
        raise Conflict(
            f"rule {rule_id} changed since it was read (version {rule.version}, not {expected}); read it again",
            details=[field_problem("version", f"stale: the rule is at version {rule.version}")],
        )
    values = {**rule_validation.DEFAULTS, **checked.values} if replace else checked.values
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
    view = _view(rule)
    _audit(session, caller, "rule.update", view, now=now, details={"fields": sorted(fields)})
    return view


def set_enabled(session: Session, *, caller: Caller, rule_id: int, scope: int | None, enabled: bool) -> RuleView:
    """Switch a rule on or off: an update of ``enabled`` alone (audited as such)."""
    return update(session, caller=caller, rule_id=rule_id, scope=scope, fields={"enabled": enabled}, replace=False)


def delete(session: Session, *, caller: Caller, rule_id: int, scope: int | None) -> None:
    """Delete a rule; its group states go with it, its alerts and their history stay (rule_id set to null).
    Audited as ``rule.delete`` by ``caller``."""
    rule = _find(session, rule_id=rule_id, scope=scope, lock=True)
    view = _view(rule)
    session.delete(rule)
    session.flush()
    _audit(session, caller, "rule.delete", view, now=caller.now(), details={"name": view.name})


def create_rule(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None,
    fields: Mapping[str, Any],
    quotas: Quotas = DEFAULT_QUOTAS,
) -> RuleView:
    """The use case behind ``POST /api/v1/alert-rules``: a license key creates rules for its own license only,
    admin keys for any license (or platform-wide, ``license_id`` None)."""
    if not caller.is_admin:
        if license_id is not None and license_id != caller.license_id:
            raise Forbidden(f"this key belongs to license {caller.license_id} and cannot create rules for license {license_id}")
        license_id = caller.license_id
    with sessions.begin() as session:
        return create(session, caller=caller, license_id=license_id, fields=fields, quotas=quotas)


def read_rules(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None = None,
    enabled: bool | None = None,
    severity: str | None = None,
    source: str | None = None,
    name_contains: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> RulePage:
    """The use case behind ``GET /api/v1/alert-rules``: ``license_id`` is the license asked for."""
    scope = caller.visible_license(license_id)
    with sessions() as session:
        return list_rules(
            session,
            scope=scope,
            enabled=enabled,
            severity=severity,
            source=source,
            name_contains=name_contains,
            limit=limit,
            offset=offset,
        )


def read_rule(sessions: sessionmaker[Session], *, caller: Caller, rule_id: int, license_id: int | None = None) -> RuleView:
    """The use case behind ``GET /api/v1/alert-rules/{id}``."""
    scope = caller.visible_license(license_id)
    with sessions() as session:
        return get(session, rule_id=rule_id, scope=scope)


def change_rule(
    sessions: sessionmaker[Session], *, caller: Caller, rule_id: int, fields: Mapping[str, Any], replace: bool
) -> RuleView:
    """The use case behind ``PUT`` (``replace``) and ``PATCH /api/v1/alert-rules/{id}``."""
    scope = caller.visible_license()
    with sessions.begin() as session:
        return update(session, caller=caller, rule_id=rule_id, scope=scope, fields=fields, replace=replace)


def delete_rule(sessions: sessionmaker[Session], *, caller: Caller, rule_id: int) -> None:
    """The use case behind ``DELETE /api/v1/alert-rules/{id}``."""
    scope = caller.visible_license()
    with sessions.begin() as session:
        delete(session, caller=caller, rule_id=rule_id, scope=scope)
