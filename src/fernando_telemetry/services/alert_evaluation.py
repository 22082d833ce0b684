"""Alert evaluation: each due rule's condition observed at ``now``, every group key stepped through
inactive -> pending -> firing -> resolved, and the ``alerts`` rows, history and outbox kept in step.

One alert per rule and group key at a time (``uq_alerts_rule_id_fingerprint_open``): a group that fires
again while its alert is open (flapping inside ``keep_firing``) keeps that alert. Silences in force make
alerts ``suppressed`` (they still resolve); acknowledged alerts still resolve by themselves. Firing,
resolved and repeat notifications are only queued here (``alert_notifications.enqueue``); they are sent
after the caller commits. Each rule runs in its own SAVEPOINT, so one rule's failure is recorded on it
(``last_evaluation_status`` ``error``, ``last_error``) and the others still run.

Fairness: each rule's statements run under its own ``statement_timeout`` (``rule_timeout_ms``, set LOCAL
inside its savepoint); the due rules are interleaved by license (round-robin: one rule of each license in
turn), and a license whose rules have used ``license_budget_ms`` in this pass has its remaining rules
deferred to the next pass (they stay due, and go first then). So another license's rule waits, per license
ahead of it, at most ``min(k * rule_timeout, license_budget + rule_timeout)`` plus the Python work of those
rules, where ``k`` is its place among its own license's rules. A rule whose condition yields more than
``max_groups`` groups is put in the ``too_many_groups`` state: one alert (and one notification per channel)
says so, instead of one per group; its groups' states are left as they were until it is back under the cap.
Imports storage, core and the alert services; never commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from fernando_telemetry.core import alert_lifecycle as lifecycle
from fernando_telemetry.core.alert_condition import Condition, fingerprint, parse_condition
from fernando_telemetry.core.alert_lifecycle import Action, State
from fernando_telemetry.core.alert_state import GroupState, Phase, step_groups
from fernando_telemetry.core.enums import AlertStatus, Severity
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import alert_lifecycle, alert_notifications, silences
from fernando_telemetry.services.silences import ActiveSilence
from fernando_telemetry.storage import alert_queries
from fernando_telemetry.storage.models import Alert, AlertEvent, AlertNotification, AlertRule, AlertRuleState

__all__ = [
    "ACTOR",
    "MAX_ERROR_CHARS",
    "TOO_MANY_GROUPS",
    "TOO_MANY_GROUPS_KEY",
    "interleave_by_license",
    "EvaluationSummary",
    "GroupTransition",
    "RuleEvaluation",
    "due_rules",
    "evaluate_due",
    "evaluate_rule",
    "rule_condition",
]

logger = logging.getLogger(__name__)

ACTOR = "evaluator"
MAX_ERROR_CHARS = 2000
TOO_MANY_GROUPS = "too_many_groups"
"""``last_evaluation_status`` of a rule whose condition yields more groups than the cap."""
TOO_MANY_GROUPS_KEY = {"alertstate": TOO_MANY_GROUPS}
"""Group key of the one alert that stands for a rule over its group cap."""
_QUERY_CANCELED = "57014"


@dataclass(frozen=True)
class GroupTransition:
    """One change the evaluation made: ``pending``, ``clear`` (back to inactive before firing), ``fire``,
    ``resolve``, ``suppress``, ``unsuppress`` or ``repeat`` (a repeat notification queued)."""

    rule_id: int | None
    rule_name: str | None
    fingerprint: str
    group_key: dict[str, str]
    action: str
    from_state: str
    to_state: str
    value: float | None
    at: datetime
    alert_id: int | None
    reason: str = ""


@dataclass(frozen=True)
class RuleEvaluation:
    """What evaluating one rule did; ``status`` ``ok``, ``error`` (then ``error`` says why; a rule that ran out of
    its time budget is an ``error`` with ``timed_out``), ``too_many_groups`` or ``deferred`` (its license used its
    budget of this pass: not evaluated, still due)."""

    rule_id: int
    rule_name: str
    status: str
    error: str | None = None
    groups: int = 0
    transitions: list[GroupTransition] = field(default_factory=list)
    notifications: int = 0
    timed_out: bool = False
    license_id: int | None = None


@dataclass(frozen=True)
class EvaluationSummary:
    """One pass: the rules evaluated, plus changes to alerts of rules not evaluated in it (silences that
    started or ended, alerts of deleted rules resolved)."""

    evaluated_at: datetime
    rules: list[RuleEvaluation] = field(default_factory=list)
    other_transitions: list[GroupTransition] = field(default_factory=list)

    @property
    def transitions(self) -> list[GroupTransition]:
        return [transition for rule in self.rules for transition in rule.transitions] + self.other_transitions

    @property
    def errors(self) -> list[RuleEvaluation]:
        return [rule for rule in self.rules if rule.status == "error"]

    @property
    def deferred(self) -> list[RuleEvaluation]:
        return [rule for rule in self.rules if rule.status == "deferred"]

    @property
    def timed_out(self) -> list[RuleEvaluation]:
        return [rule for rule in self.rules if rule.timed_out]

    @property
    def notifications(self) -> int:
        return sum(rule.notifications for rule in self.rules)


# --- a pass ----------------------------------------------------------------------------------------------------


def due_rules(
    session: Session, *, now: datetime, rule_ids: Collection[int] | None = None, force: bool = False
) -> list[AlertRule]:
    """Enabled rules whose own ``evaluation_interval_seconds`` has elapsed since they were last evaluated
    (all enabled ones with ``force``), never evaluated first (``ix_alert_rules_enabled_last_evaluated_at``)."""
    query = select(AlertRule).where(AlertRule.enabled)
    if rule_ids is not None:
        query = query.where(AlertRule.rule_id.in_(list(rule_ids)))
    if not force:
        query = query.where(
            or_(
                AlertRule.last_evaluated_at.is_(None),
                AlertRule.last_evaluated_at + func.make_interval(0, 0, 0, 0, 0, 0, AlertRule.evaluation_interval_seconds) <= now,
            )
        )
    return list(session.scalars(query.order_by(AlertRule.last_evaluated_at.asc().nulls_first(), AlertRule.rule_id)).all())


def interleave_by_license(rules: Sequence[AlertRule]) -> list[AlertRule]:
    """``rules`` reordered round-robin by license (one of each license in turn, licenses in the order their first
    rule comes), each license's own rules kept in their order: no license's rules all run before another's."""
    queues: dict[int | None, list[AlertRule]] = {}
    for rule in rules:
        queues.setdefault(rule.license_id, []).append(rule)
    ordered: list[AlertRule] = []
    depth = 0
    while len(ordered) < len(rules):
        ordered.extend(queue[depth] for queue in queues.values() if depth < len(queue))
        depth += 1
    return ordered


def evaluate_due(
    session: Session,
    *,
    now: datetime,
    rule_ids: Collection[int] | None = None,
    force: bool = False,
    statement_timeout_ms: int | None = None,
    rule_timeout_ms: int | None = None,
    license_budget_ms: int | None = None,
    max_groups: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> EvaluationSummary:
    """Evaluate every due rule (see ``due_rules``), interleaved by license, each in a SAVEPOINT under its own
    ``statement_timeout`` of ``rule_timeout_ms``; a license whose rules took ``license_budget_ms`` of this pass
    (measured with ``clock``, seconds) has the rest deferred. Then apply silences that started or ended to the
    open alerts of every rule. ``statement_timeout_ms`` bounds each query of the pass outside the rules."""
    if statement_timeout_ms is not None:
        session.execute(text("SELECT set_config('statement_timeout', :value, true)"), {"value": f"{int(statement_timeout_ms)}ms"})
    pass_timeout = session.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
    in_force = silences.in_force(session, now=now)
    results: list[RuleEvaluation] = []
    spent: dict[int | None, float] = {}
    for rule in interleave_by_license(due_rules(session, now=now, rule_ids=rule_ids, force=force)):
        rule_id, rule_name, license_id = rule.rule_id, rule.name, rule.license_id
        if license_budget_ms is not None and spent.get(license_id, 0.0) * 1000 >= license_budget_ms:
            results.append(RuleEvaluation(rule_id=rule_id, rule_name=rule_name, status="deferred", license_id=license_id))
            continue
        started = clock()
        savepoint = session.begin_nested()
        try:
            if rule_timeout_ms is not None:
                session.execute(
                    text("SELECT set_config('statement_timeout', :value, true)"), {"value": f"{int(rule_timeout_ms)}ms"}
                )
            result = evaluate_rule(session, rule, now=now, silences_in_force=in_force, max_groups=max_groups)
            savepoint.commit()
        except Exception as exc:  # one rule's failure (a bad stored condition, a query error) must not stop the others
            savepoint.rollback()
            timed_out = getattr(getattr(exc, "orig", None), "sqlstate", None) == _QUERY_CANCELED
            message = _error_text(exc, rule_timeout_ms if timed_out else None)
            logger.warning("alert rule %s (%s) failed to evaluate: %s", rule_id, rule_name, message)
            session.execute(
                update(AlertRule)
                .where(AlertRule.rule_id == rule_id)
                .values(last_evaluated_at=now, last_evaluation_status="error", last_error=message)
            )
            result = RuleEvaluation(
                rule_id=rule_id, rule_name=rule_name, status="error", error=message, timed_out=timed_out, license_id=license_id
            )
        finally:
            spent[license_id] = spent.get(license_id, 0.0) + (clock() - started)
        results.append(result)
    session.execute(text("SELECT set_config('statement_timeout', :value, true)"), {"value": pass_timeout})
    other: list[GroupTransition] = []
    still_open = []
    for alert in _open_alerts(session):
        if alert.rule_id is not None:
            still_open.append(alert)
            continue
        # its rule was deleted: nothing would ever clear it, and no rule names channels to tell
        reason = "its rule was deleted"
        applied = alert_lifecycle.apply(
            session, alert, Action.RESOLVE, actor=ACTOR, now=now, details={"reason": reason}, rule=None
        )
        before = applied.from_state
        other.append(
            GroupTransition(
                rule_id=None,
                rule_name=alert.labels.get("alertname"),
                fingerprint=alert.fingerprint,
                group_key=dict(alert.group_key or {}),
                action="resolve",
                from_state=before,
                to_state="resolved",
                value=alert.observed_value,
                at=now,
                alert_id=alert.alert_id,
                reason=reason,
            )
        )
    # silences that started or ended since the last pass, on alerts of rules not evaluated in this one
    swept = silences.reconcile(session, still_open, now=now, actor=ACTOR, silences=in_force)
    session.flush()
    return EvaluationSummary(
        evaluated_at=now, rules=results, other_transitions=other + [_silence_transition(change, now) for change in swept]
    )


def _error_text(exc: Exception, timeout_ms: int | None = None) -> str:
    if timeout_ms is not None:
        text_ = (
            f"timed out: the rule's queries ran longer than its budget of {timeout_ms / 1000:g} s "
            "(FERNANDO_TELEMETRY_ALERT_RULE_TIMEOUT_S): shorten its window or narrow its filters"
        )
    elif isinstance(exc, InvalidInput):
        text_ = f"stored condition is not valid: {exc.message}"
    else:
        original = getattr(exc, "orig", None)
        text_ = f"{type(exc).__name__}: {str(original if original is not None else exc).strip()}"
    return text_[:MAX_ERROR_CHARS]


def _open_alerts(session: Session, rule_id: int | None = None) -> list[Alert]:
    query = select(Alert).where(Alert.status != AlertStatus.RESOLVED)
    if rule_id is not None:
        query = query.where(Alert.rule_id == rule_id)
    return list(session.scalars(query.order_by(Alert.alert_id).with_for_update().execution_options(populate_existing=True)).all())


def _silence_transition(change: silences.SilenceChange, now: datetime) -> GroupTransition:
    alert = change.alert
    return GroupTransition(
        rule_id=alert.rule_id,
        rule_name=alert.labels.get("alertname") if alert.labels else None,
        fingerprint=alert.fingerprint,
        group_key=dict(alert.group_key or {}),
        action="suppress" if change.to_status == "suppressed" else "unsuppress",
        from_state=change.from_status,
        to_state=change.to_status,
        value=alert.observed_value,
        at=now,
        alert_id=alert.alert_id,
        reason=f"silence {change.silence_id}",
    )


# --- one rule -------------------------------------------------------------------------------------------------


def evaluate_rule(
    session: Session,
    rule: AlertRule,
    *,
    now: datetime,
    silences_in_force: Sequence[ActiveSilence] | None = None,
    max_groups: int | None = None,
) -> RuleEvaluation:
    """Observe ``rule`` at ``now`` and apply what every group's state machine decides; raises on failure
    (``evaluate_due`` turns that into the rule's error status). More than ``max_groups`` groups: the rule's
    one ``too_many_groups`` alert instead (see the module's note)."""
    condition = rule_condition(rule)
    active_silences = silences.in_force(session, now=now) if silences_in_force is None else silences_in_force
    run = _RuleRun(session, rule, condition, now, active_silences, max_groups)
    run.evaluate()
    rule.last_evaluated_at = now
    if run.overflow is None:
        status, rule.last_error = "ok", None
    else:
        status, rule.last_error = TOO_MANY_GROUPS, _too_many_text(run.overflow, max_groups or 0)
    rule.last_evaluation_status = status
    session.flush()
    return RuleEvaluation(
        rule_id=rule.rule_id,
        rule_name=rule.name,
        status=status,
        error=rule.last_error,
        license_id=rule.license_id,
        groups=run.groups,
        transitions=run.transitions,
        notifications=run.notifications,
    )


def rule_condition(rule: AlertRule) -> Condition:
    """The rule's condition with the window and pending period of its columns: the columns are what the rule
    says (the trigger ``alert_rules_sync_condition`` keeps ``condition_config`` equal to them once written)."""
    config = rule.condition_config
    if not isinstance(config, Mapping):
        return parse_condition(config)  # refused, with the condition language's own message
    return parse_condition(
        {**config, "window_minutes": rule.evaluation_window_minutes, "for_minutes": rule.pending_period_minutes}
    )


class _RuleRun:
    """The work of one rule at one instant; holds the locked state rows and open alerts while it applies."""

    def __init__(
        self,
        session: Session,
        rule: AlertRule,
        condition: Condition,
        now: datetime,
        active_silences: Sequence[ActiveSilence],
        max_groups: int | None = None,
    ) -> None:
        self.session, self.rule, self.condition, self.now = session, rule, condition, now
        self.active_silences = active_silences
        self.max_groups = max_groups
        self.overflow: int | None = None
        self.transitions: list[GroupTransition] = []
        self.notifications = 0
        self.groups = 0

    def evaluate(self) -> None:
        session, rule, now = self.session, self.rule, self.now
        observations = alert_queries.observe(session, self.condition, license_id=rule.license_id, at=[now])[now]
        if self.max_groups is not None and len(observations) > self.max_groups:
            self._too_many_groups(len(observations))
            return
        # lock order (the same as a manual resolve): the rule's state rows, then its open alerts
        rows = {
            row.fingerprint: row
            for row in session.scalars(
                select(AlertRuleState)
                .where(AlertRuleState.rule_id == rule.rule_id)
                .order_by(AlertRuleState.fingerprint)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        open_alerts = {alert.fingerprint: alert for alert in _open_alerts(session, rule.rule_id)}
        group_keys: dict[str, dict[str, str]] = {
            fp: {str(k): str(v) for k, v in row.group_key.items()} for fp, row in rows.items()
        }
        observed: dict[str, tuple[float | None, int]] = {}
        for observation in observations:
            fp = fingerprint(rule.rule_id, observation.group_key)
            group_keys[fp] = dict(observation.group_key)
            observed[fp] = (observation.value, observation.points)
        states = {fp: _group_state(row) for fp, row in rows.items()}
        for fp, row in rows.items():
            if row.state == Phase.FIRING.value and fp not in open_alerts:
                # its alert was resolved by hand (or deleted): the group starts over, and fires again after
                # `for` if the condition still holds
                states[fp] = GroupState(Phase.INACTIVE, None, row.last_true_at, row.last_value)
        results = step_groups(self.condition, states, observed, now=now)
        self.groups = len(results)
        for fp in sorted(results):
            new_state, steps = results[fp]
            value = observed.get(fp, (None, 0))[0]
            alert = self._apply(fp, group_keys[fp], new_state, steps, open_alerts.get(fp), value)
            self._store_state(fp, group_keys[fp], new_state, rows.get(fp), alert, observed=fp in observed)
        # an open alert whose group the rule no longer knows (its state row was removed, e.g. by a change of
        # the rule's grouping) would stay open forever: nothing fires it any more, so it is resolved
        overflow_fp = fingerprint(rule.rule_id, TOO_MANY_GROUPS_KEY)
        for fp, alert in open_alerts.items():
            if fp == overflow_fp:
                self._resolve(alert, None, f"back under the cap of {self.max_groups} groups")
            elif fp not in results:
                self._resolve(alert, None, "the rule no longer evaluates this group")

    def _too_many_groups(self, count: int) -> None:
        """One alert for the whole rule, fired once (and one notification per channel), kept while it stays
        over the cap; the groups' own states and alerts are left as they were."""
        session, rule, now = self.session, self.rule, self.now
        self.overflow = self.groups = count
        fp = fingerprint(rule.rule_id, TOO_MANY_GROUPS_KEY)
        alert = next((alert for alert in _open_alerts(session, rule.rule_id) if alert.fingerprint == fp), None)
        if alert is not None:
            alert.observed_value = float(count)
            alert.last_evaluated_at = now
            self._reconcile_silence(alert)
            self._maybe_repeat(alert)
            return
        group_key = dict(TOO_MANY_GROUPS_KEY)
        reason = _too_many_text(count, self.max_groups or 0)
        alert = Alert(
            rule_id=rule.rule_id,
            severity=rule.severity,
            title=f"{rule.name}: too many groups ({count} > {self.max_groups})"[:300],
            message=reason,
            fingerprint=fp,
            group_key=group_key,
            observed_value=float(count),
            threshold_value=float(self.max_groups or 0),
            triggered_at=now,
            affected_service=None,
            license_id=rule.license_id,
            labels=_labels(rule, group_key),
            annotations=dict(rule.annotations or {}),
            last_evaluated_at=now,
        )
        covering = next((silence for silence in self.active_silences if silence.covers(alert)), None)
        applied = alert_lifecycle.apply(
            session,
            alert,
            Action.FIRE if covering is None else Action.FIRE_SILENCED,
            actor=ACTOR,
            now=now,
            value=float(count),
            silence_id=None if covering is None else covering.silence_id,
            details={"reason": reason, "groups": count, "cap": self.max_groups},
            rule=rule,
        )
        rule.last_triggered_at = now
        self._note(fp, group_key, "fire", "inactive", applied.step.to_state.value, float(count), alert.alert_id, reason)
        self.notifications += applied.queued

    # the decisions of one group

    def _apply(
        self,
        fp: str,
        group_key: dict[str, str],
        new_state: GroupState,
        steps: Sequence[Any],
        alert: Alert | None,
        value: float | None,
    ) -> Alert | None:
        reason = steps[-1].reason if steps else ""
        for transition in steps:
            if transition.to_phase == Phase.PENDING:
                self._group_event(fp, group_key, State.INACTIVE, Action.PEND, transition.value, transition.reason)
            elif transition.from_phase == Phase.PENDING and transition.to_phase == Phase.INACTIVE:
                self._group_event(fp, group_key, State.PENDING, Action.CLEAR, transition.value, transition.reason)
        firing = new_state.phase == Phase.FIRING
        if firing and alert is None:
            came_from = steps[-1].from_phase.value if steps else "inactive"
            return self._fire(fp, group_key, new_state, came_from, reason or "firing")
        if not firing and alert is not None:
            self._resolve(alert, value, reason or "condition cleared")
            return None
        if alert is not None:
            if value is not None:
                alert.observed_value = value
            alert.last_evaluated_at = self.now
            self._reconcile_silence(alert)
            self._maybe_repeat(alert)
        return alert

    def _group_event(
        self, fp: str, group_key: dict[str, str], before: State, action: Action, value: float | None, reason: str
    ) -> None:
        """A step of a group that has no alert (pending, clear): only its history row, as the lifecycle table says."""
        step = lifecycle.transition(before, action)
        alert_lifecycle.record_event(
            self.session,
            alert=None,
            rule_id=self.rule.rule_id,
            license_id=self.rule.license_id,
            fingerprint=fp,
            group_key=group_key,
            from_state=before.value,
            to_state=step.to_state.value,
            actor=ACTOR,
            now=self.now,
            action=step.event,
            value=value,
            details={"reason": reason},
        )
        self._note(fp, group_key, step.event, before.value, step.to_state.value, value, None, reason)

    def _note(
        self,
        fp: str,
        group_key: dict[str, str],
        action: str,
        from_state: str,
        to_state: str,
        value: float | None,
        alert_id: int | None,
        reason: str,
    ) -> None:
        self.transitions.append(
            GroupTransition(
                rule_id=self.rule.rule_id,
                rule_name=self.rule.name,
                fingerprint=fp,
                group_key=dict(group_key),
                action=action,
                from_state=from_state,
                to_state=to_state,
                value=value,
                at=self.now,
                alert_id=alert_id,
                reason=reason,
            )
        )

    def _fire(self, fp: str, group_key: dict[str, str], state: GroupState, came_from: str, reason: str) -> Alert:
        session, rule, now = self.session, self.rule, self.now
        value = state.last_value
        alert = Alert(
            rule_id=rule.rule_id,
            severity=rule.severity,
            title=_title(rule.name, group_key),
            message=_message(rule, self.condition, value),
            fingerprint=fp,
            group_key=dict(group_key),
            observed_value=value,
            threshold_value=self.condition.threshold,
            triggered_at=now,
            affected_service=_service(group_key, self.condition),
            license_id=_license(rule, group_key),
            labels=_labels(rule, group_key),
            annotations=dict(rule.annotations or {}),
            last_evaluated_at=now,
        )
        covering = next((silence for silence in self.active_silences if silence.covers(alert)), None)
        details: dict[str, Any] = {"reason": reason, "threshold": self.condition.threshold}
        if covering is not None:
            details["silence_id"] = covering.silence_id
        applied = alert_lifecycle.apply(
            session,
            alert,
            Action.FIRE if covering is None else Action.FIRE_SILENCED,
            actor=ACTOR,
            now=now,
            group_state=State(came_from),
            value=value,
            silence_id=None if covering is None else covering.silence_id,
            details=details,
            rule=rule,
        )
        # the pending steps of this episode belong to the alert's history too
        if state.active_since is not None:
            session.execute(
                update(AlertEvent)
                .where(
                    AlertEvent.rule_id == rule.rule_id,
                    AlertEvent.fingerprint == fp,
                    AlertEvent.alert_id.is_(None),
                    AlertEvent.occurred_at >= state.active_since,
                )
                .values(alert_id=alert.alert_id)
            )
        rule.last_triggered_at = now
        self._note(fp, group_key, "fire", came_from, applied.step.to_state.value, value, alert.alert_id, reason)
        self.notifications += applied.queued
        return alert

    def _resolve(self, alert: Alert, value: float | None, reason: str) -> None:
        session, now = self.session, self.now
        alert.last_evaluated_at = now
        if value is not None:
            alert.observed_value = value
        applied = alert_lifecycle.apply(
            session, alert, Action.RESOLVE, actor=ACTOR, now=now, value=value, details={"reason": reason}, rule=self.rule
        )
        self._note(
            alert.fingerprint, dict(alert.group_key), "resolve", applied.from_state, "resolved", value, alert.alert_id, reason
        )
        self.notifications += applied.queued

    def _reconcile_silence(self, alert: Alert) -> None:
        for change in silences.reconcile(self.session, [alert], now=self.now, actor=ACTOR, silences=self.active_silences):
            self.transitions.append(_silence_transition(change, self.now))

    def _maybe_repeat(self, alert: Alert) -> None:
        """Queue a repeat for a firing alert nobody acknowledged and no silence covers, once per repeat interval
        counted from its last notification (sent, or a repeat queued), or from when it fired."""
        if alert.status != AlertStatus.ACTIVE or self.rule.repeat_interval_minutes <= 0:
            return
        session, now = self.session, self.now
        last_repeat = session.scalar(
            select(func.max(AlertEvent.occurred_at)).where(
                AlertEvent.alert_id == alert.alert_id, AlertEvent.details["action"].astext == "repeat"
            )
        )
        reference = max(moment for moment in (alert.triggered_at, alert.last_notified_at, last_repeat) if moment is not None)
        if now - reference < timedelta(minutes=self.rule.repeat_interval_minutes):
            return
        waiting = session.scalar(
            select(func.count()).where(AlertNotification.alert_id == alert.alert_id, AlertNotification.status == "pending")
        )
        if waiting:
            return  # the channels have not had the last one yet
        queued = alert_notifications.enqueue(session, alert=alert, rule=self.rule, kind="repeat", now=now)
        if queued:
            state = alert_lifecycle.state_name(alert.status)
            alert_lifecycle.record_event(
                session,
                alert=alert,
                from_state=state,
                to_state=state,
                actor=ACTOR,
                now=now,
                action="repeat",
                value=alert.observed_value,
                details={"queued": queued, "since": reference.isoformat()},
            )
            self.notifications += queued
            self._note(
                alert.fingerprint,
                dict(alert.group_key),
                "repeat",
                state,
                state,
                alert.observed_value,
                alert.alert_id,
                f"{queued} notification(s) queued",
            )

    def _store_state(
        self,
        fp: str,
        group_key: dict[str, str],
        state: GroupState,
        row: AlertRuleState | None,
        alert: Alert | None,
        *,
        observed: bool,
    ) -> None:
        if state.phase == Phase.INACTIVE and not observed:
            if row is not None:  # settled and gone: nothing left to remember
                self.session.delete(row)
            return
        if row is None:
            row = AlertRuleState(rule_id=self.rule.rule_id, fingerprint=fp)
            self.session.add(row)
        row.group_key = dict(group_key)
        row.state = state.phase.value
        row.active_since = state.active_since
        row.last_true_at = state.last_true_at
        row.last_value = state.last_value
        row.last_evaluated_at = self.now
        row.alert_id = alert.alert_id if alert is not None else None


def _too_many_text(count: int, cap: int) -> str:
    return (
        f"too many groups: the condition yields {count} groups, more than the cap of {cap} "
        "(FERNANDO_TELEMETRY_ALERT_MAX_GROUPS_PER_RULE); per-group alerts wait until it is back under the cap: "
        "group by a field with fewer values, or add filters"
    )


def _group_state(row: AlertRuleState) -> GroupState:
    return GroupState(
        phase=Phase(row.state), active_since=row.active_since, last_true_at=row.last_true_at, last_value=row.last_value
    )


def _title(name: str, group_key: Mapping[str, str]) -> str:
    if not group_key:
        return name[:300]
    return f"{name} ({', '.join(f'{key}={value}' for key, value in sorted(group_key.items()))})"[:300]


def _message(rule: AlertRule, condition: Condition, value: float | None) -> str:
    seen = "no data" if value is None else f"{value:g}"
    summary = (rule.annotations or {}).get("summary")
    line = f"{condition.describe()}: observed {seen}"
    return f"{summary} -- {line}" if isinstance(summary, str) and summary else line


def _service(group_key: Mapping[str, str], condition: Condition) -> str | None:
    """The one service the alert is about: the group's ``service_name``, else the service the condition is
    restricted to (``filters.service_name`` equal to one value, or ``in`` a list of one); None when several."""
    service = group_key.get("service_name")
    if service:
        return service[:100]
    ops = condition.filters.get("service_name")
    if not isinstance(ops, Mapping):
        return None
    if isinstance(ops.get("eq"), str):
        return ops["eq"][:100]
    values = ops.get("in")
    if isinstance(values, list | tuple) and len(values) == 1 and isinstance(values[0], str) and len(ops) == 1:
        return values[0][:100]
    return None


def _license(rule: AlertRule, group_key: Mapping[str, str]) -> int | None:
    """The rule's license; for a platform-wide rule grouped by license, the group's license."""
    if rule.license_id is not None:
        return rule.license_id
    value = group_key.get("license_id", "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _labels(rule: AlertRule, group_key: Mapping[str, str]) -> dict[str, str]:
    labels = {str(key): _label_text(value) for key, value in (rule.labels or {}).items()}
    labels.update(group_key)
    labels["alertname"] = rule.name
    labels["severity"] = str(Severity(rule.severity).value)
    labels["rule_id"] = str(rule.rule_id)
    return labels


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
