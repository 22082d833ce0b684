"""The alert lifecycle as one table: (state, action) -> the new state, the history entry's action word and
the notification it queues. ``core.alert_state`` decides *when* a group's condition fires or clears (``for``,
``keep_firing``, no data); this table decides *what* that, a person or a silence does to the alert.
Applied by ``services.alert_lifecycle.apply``, the only code that sets an alert's status. Pure; imports only core.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fernando_telemetry.core.enums import AlertStatus
from fernando_telemetry.core.errors import Conflict

__all__ = ["OPEN_STATES", "TABLE", "Action", "Notify", "State", "Step", "alert_status", "transition"]


class State(StrEnum):
    """Where a rule's group stands: before it has an alert (inactive, pending), then its alert's status.

    The words are the ``from_state`` / ``to_state`` of ``alert_events``."""

    INACTIVE = "inactive"
    PENDING = "pending"
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    SUPPRESSED = "suppressed"
    RESOLVED = "resolved"


class Action(StrEnum):
    """What happens to a group or its alert."""

    PEND = "pend"
    """evaluation: the condition turned true and ``for`` has not elapsed yet"""
    CLEAR = "clear"
    """evaluation: the condition cleared (or no data counted as false) before ``for`` elapsed"""
    FIRE = "fire"
    """evaluation: the condition held for ``for`` (at once when ``for`` is 0), or no data counted as true"""
    FIRE_SILENCED = "fire_silenced"
    """evaluation: as ``FIRE``, while a silence in force covers the new alert"""
    RESOLVE = "resolve"
    """evaluation: the condition cleared and ``keep_firing`` elapsed, or the group is gone"""
    RESOLVE_BY_HAND = "resolve_by_hand"
    """a person closed the alert"""
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    SILENCE = "silence"
    """a silence in force now covers the alert"""
    RESILENCE = "resilence"
    """another silence took over a suppressed alert"""
    UNSILENCE = "unsilence"
    """no silence covers the alert any more and nobody acknowledged it"""
    UNSILENCE_ACKNOWLEDGED = "unsilence_acknowledged"
    """no silence covers the alert any more; someone acknowledged it while it was silenced"""


class Notify(StrEnum):
    """Which notification a step queues."""

    NONE = "none"
    FIRING = "firing"
    RESOLVED_IF_ANNOUNCED = "resolved_if_announced"
    """a resolve is only announced to channels that heard the alert fire"""
    FIRING_IF_UNANNOUNCED = "firing_if_unannounced"
    """an alert that fired while silenced is announced when the silence ends"""


@dataclass(frozen=True, slots=True)
class Step:
    """One row of the table: the state after the action, the ``details.action`` of its history entry, and
    the notification it queues."""

    to_state: State
    event: str
    notify: Notify = Notify.NONE


OPEN_STATES = (State.ACTIVE, State.ACKNOWLEDGED, State.SUPPRESSED)
_BEFORE_ALERT = (State.INACTIVE, State.PENDING)


def _table() -> dict[tuple[State, Action], Step]:
    table: dict[tuple[State, Action], Step] = {
        (State.INACTIVE, Action.PEND): Step(State.PENDING, "pending"),
        (State.PENDING, Action.CLEAR): Step(State.INACTIVE, "clear"),
        (State.ACTIVE, Action.ACKNOWLEDGE): Step(State.ACKNOWLEDGED, "acknowledge"),
        # a silenced alert stays silenced; it comes back acknowledged when the silence ends
        (State.SUPPRESSED, Action.ACKNOWLEDGE): Step(State.SUPPRESSED, "acknowledge"),
        (State.ACTIVE, Action.SILENCE): Step(State.SUPPRESSED, "suppress"),
        (State.ACKNOWLEDGED, Action.SILENCE): Step(State.SUPPRESSED, "suppress"),
        (State.SUPPRESSED, Action.RESILENCE): Step(State.SUPPRESSED, "resilence"),
        (State.SUPPRESSED, Action.UNSILENCE): Step(State.ACTIVE, "unsuppress", Notify.FIRING_IF_UNANNOUNCED),
        (State.SUPPRESSED, Action.UNSILENCE_ACKNOWLEDGED): Step(State.ACKNOWLEDGED, "unsuppress"),
    }
    for state in _BEFORE_ALERT:
        table[(state, Action.FIRE)] = Step(State.ACTIVE, "fire", Notify.FIRING)
        table[(state, Action.FIRE_SILENCED)] = Step(State.SUPPRESSED, "fire")
    for state in OPEN_STATES:
        table[(state, Action.RESOLVE)] = Step(State.RESOLVED, "resolve", Notify.RESOLVED_IF_ANNOUNCED)
        table[(state, Action.RESOLVE_BY_HAND)] = Step(State.RESOLVED, "resolve", Notify.RESOLVED_IF_ANNOUNCED)
        table[(state, Action.ASSIGN)] = Step(state, "assign")
    return table


TABLE: dict[tuple[State, Action], Step] = _table()
"""Every allowed (state, action); anything else is refused."""


def transition(state: State | str, action: Action) -> Step:
    """The step ``action`` takes from ``state``; ``Conflict`` when the table has none (e.g. anything on a
    resolved alert, or acknowledging one twice)."""
    step = TABLE.get((State(state), action))
    if step is None:
        raise Conflict(f"an alert that is {State(state).value} cannot take the action {action.value}")
    return step


def alert_status(state: State) -> AlertStatus:
    """The ``alerts.status`` of a state an alert can be in (not inactive or pending: those have no alert)."""
    if state in _BEFORE_ALERT:
        raise ValueError(f"{state.value} is not the state of an alert")
    return AlertStatus(state.value)
