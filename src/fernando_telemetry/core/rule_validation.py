"""Validation of an alert rule's fields and of a draft rule's condition: every problem of a rule at once,
per field, and its values normalised. Pure: what needs the database (the license's channels and users) is
passed in as functions by ``services.alert_rules``. Imports only core.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fernando_telemetry.core.alert_condition import Condition, parse_condition
from fernando_telemetry.core.enums import Severity
from fernando_telemetry.core.errors import FieldProblems, InvalidInput, field_problem
from fernando_telemetry.core.names import name_problem, normalize_name

__all__ = ["DEFAULTS", "FIELDS", "RULE_NAME_ALIAS", "ChannelCheck", "CheckedRule", "check_rule", "draft_condition"]

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
DEFAULTS: dict[str, Any] = {
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
"""What a field left out of a new (or replaced) rule is."""
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
_MAX_CHANNELS = 20
_MAX_LABELS = 50
_MAX_NAME_CHARS = 200
_MAX_TEXT_CHARS = 4000

ChannelCheck = Callable[[Sequence[Any], list[str], FieldProblems], None]
"""``(raw list, well-formed names, problems)``: adds a problem for each name the rule's license cannot send to."""


@dataclass(frozen=True)
class CheckedRule:
    """A rule's fields, normalised (the condition with its defaults filled), and its parsed condition."""

    values: dict[str, Any]
    condition: Condition | None


def _named(fields: Mapping[str, Any], problems: FieldProblems) -> Mapping[str, Any]:
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


def check_rule(
    fields: Mapping[str, Any],
    *,
    license_id: int | None,
    partial: bool,
    check_channels: ChannelCheck,
    known_user: Callable[[str], bool],
) -> CheckedRule:
    """Every problem of ``fields`` at once (``InvalidInput``); the values normalised (the condition with its
    defaults filled). ``partial``: only the fields given (a PATCH); otherwise the required ones must be there.

    What needs the database comes in as functions: ``check_channels`` adds the problems of channel names the
    rule's license does not have, ``known_user`` says whether a user id belongs to it."""
    problems = FieldProblems()
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
                channels = _channel_names(raw, problems)
                if channels is not None:
                    if channels:
                        check_channels(raw, channels, problems)
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
                if raw is not None and (not isinstance(raw, str) or not known_user(raw)):
                    problems.add(name, "is not a known user id" + ("" if license_id is None else f" of license {license_id}"))
                else:
                    values[name] = raw
    if "version" in fields and (isinstance(fields["version"], bool) or not isinstance(fields["version"], int)):
        problems.add("version", "must be the whole number the rule was read with")
    problems.raise_if_any("the rule")
    return CheckedRule(values, condition)


def _integer(values: dict[str, Any], problems: FieldProblems, name: str, raw: Any, low: int, high: int) -> None:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        problems.add(name, f"must be a whole number from {low} to {high}")
    else:
        values[name] = raw


def _check_strings(name: str, raw: Any, problems: FieldProblems) -> dict[str, str] | None:
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


def _channel_names(raw: Any, problems: FieldProblems) -> list[str] | None:
    """The well-formed, distinct channel names of ``raw``; whether the license has them is checked by the caller."""
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
    return names


def draft_condition(draft: Any) -> tuple[Condition, int | None]:
    """A draft rule's condition and its evaluation interval (if it names one); nothing else of it matters."""
    if not isinstance(draft, Mapping):
        raise InvalidInput("the draft rule must be a JSON object", details=[field_problem("rule", "not an object")])
    problems = FieldProblems()
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
