"""Backtests: what a rule (saved or draft) would have done over stored history, with the very query and state
machine live evaluation uses, starting from no state, writing nothing and notifying nobody. Bounded in
instants, group evaluations and time. ``run_backtest`` is the use case (its own read transaction and the caller's
scope). Imports storage, core and ``services.alert_rules`` (a saved rule); never commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core import rule_validation
from fernando_telemetry.core.alert_condition import Condition, fingerprint, parse_condition
from fernando_telemetry.core.alert_state import GroupState, Phase, step_groups
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import FieldProblems, InvalidInput, field_problem
from fernando_telemetry.services import alert_rules
from fernando_telemetry.storage import alert_queries

__all__ = [
    "BACKTEST_TIMEOUT_MS",
    "DEFAULT_BACKTEST_SPAN",
    "MAX_BACKTEST_GROUP_EVALUATIONS",
    "MAX_BACKTEST_INSTANTS",
    "MAX_BACKTEST_SPAN",
    "Backtest",
    "BacktestAlert",
    "BacktestTransition",
    "backtest",
    "backtest_instants",
    "run_backtest",
]

MAX_BACKTEST_INSTANTS = 20_000
BACKTEST_TIMEOUT_MS = 30_000
MAX_BACKTEST_GROUP_EVALUATIONS = 1_000_000
MAX_BACKTEST_SPAN = timedelta(days=31)
DEFAULT_BACKTEST_SPAN = timedelta(days=1)
"""Most evaluations x groups one backtest may step through (its CPU work); beyond it the backtest is refused."""
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


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
    problems = FieldProblems()
    for name, moment in (("from", start), ("to", end)):
        if moment.tzinfo is None:
            problems.add(name, "has no time zone; send UTC (Z) or an offset")
        elif not _EARLIEST <= moment <= _LATEST:
            problems.add(name, f"must be between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d}")
    if isinstance(step_seconds, bool) or not isinstance(step_seconds, int) or not 10 <= step_seconds <= 86_400:
        problems.add("step_seconds", "must be a whole number from 10 to 86400")
    problems.raise_if_any("the backtest")
    if end <= start:
        raise InvalidInput("the backtest's to must be after from", details=[field_problem("to", "not after from")])
    count = int((end - start).total_seconds() // step_seconds)
    if count > MAX_BACKTEST_INSTANTS:
        raise InvalidInput(
            f"the backtest would evaluate {count} instants; at most {MAX_BACKTEST_INSTANTS}: use a larger step or a shorter range",
            details=[field_problem("step_seconds", f"{count} evaluations, at most {MAX_BACKTEST_INSTANTS}")],
        )
    if count == 0:
        raise InvalidInput(
            "the backtest range is shorter than one step", details=[field_problem("to", "less than one step after from")]
        )
    step = timedelta(seconds=step_seconds)
    return [start + step * k for k in range(1, count + 1)]


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
                details=[field_problem("to", "range too large to backtest in time")],
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
            field_problem("step_seconds", "too many evaluations x groups", evaluations=evaluations, groups=groups, limit=bound)
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
                details=[field_problem("to", "range too large to backtest in time")],
            ) from None
        raise
    session.execute(text("SELECT set_config('statement_timeout', :timeout, true)"), {"timeout": previous})
    return observed_at


def run_backtest(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    rule_id: int | None = None,
    draft: Any = None,
    license_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    step_seconds: int | None = None,
) -> Backtest:
    """The use case behind ``POST /api/v1/alert-rules/backtest``: a saved rule (``rule_id``, read in the caller's
    scope, over its own license's data) or a draft (``draft``, its condition; over ``license_id`` checked against the
    caller's scope). ``end`` defaults to now, ``start`` to a day before ``end``; the range is at most 31 days; the step
    defaults to the rule's evaluation interval (60 s for a draft that gives none)."""
    end = end or caller.now()
    start = start or end - DEFAULT_BACKTEST_SPAN
    if end - start > MAX_BACKTEST_SPAN:
        raise InvalidInput("a backtest covers at most 31 days", details=[field_problem("from", "range over 31 days")])
    with sessions() as session:
        if rule_id is not None:
            rule = alert_rules.get_rule(session, rule_id=rule_id, scope=caller.visible_license())
            condition = parse_condition(rule.condition_config)
            license_id, interval = rule.license_id, rule.evaluation_interval_seconds
        else:
            condition, draft_interval = rule_validation.draft_condition(draft)
            license_id = caller.visible_license(license_id)
            interval = draft_interval or 60
        return backtest(
            session,
            condition=condition,
            license_id=license_id,
            start=start,
            end=end,
            step_seconds=interval if step_seconds is None else step_seconds,
            rule_id=rule_id,
        )
