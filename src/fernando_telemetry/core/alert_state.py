"""The state machine of one rule and group key: inactive -> pending -> firing -> inactive (resolved),
with ``for``, ``keep_firing`` and the no-data policy; and ``step_groups``, one evaluation instant over
every group of a rule, shared by live evaluation and backtest so both make the same decisions.
Pure; imports only core.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from fernando_telemetry.core.alert_condition import Condition

__all__ = ["GroupState", "Phase", "Transition", "step", "step_groups"]

K = TypeVar("K", bound=Hashable)


class Phase(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class GroupState:
    """Where one group stands: its phase, when the condition turned true, when it last held, the last value."""

    phase: Phase
    active_since: datetime | None
    last_true_at: datetime | None
    last_value: float | None


@dataclass(frozen=True)
class Transition:
    """One change of phase at one evaluation instant, with the value seen and why."""

    from_phase: Phase
    to_phase: Phase
    at: datetime
    value: float | None
    reason: str


_INACTIVE = GroupState(Phase.INACTIVE, None, None, None)


def step(
    state: GroupState | None,
    *,
    holds: bool | None,
    value: float | None,
    now: datetime,
    for_minutes: int,
    keep_firing_minutes: int,
    no_data: str,
) -> tuple[GroupState, list[Transition]]:
    """Advance one group by one evaluation at ``now``; ``holds=None`` means no data for it.

    No data is treated as the rule says: ``ok`` as a false condition, ``alert`` as a true one (``for``
    still applies), ``keep`` leaves the phase (and ``keep_firing``'s clock) exactly as it was.
    A missing state is the same as an inactive one.
    """
    current = state or _INACTIVE
    reason_suffix = ""
    if holds is None:
        if no_data == "keep":
            return current, []
        holds = no_data == "alert"
        reason_suffix = " (no data)"

    if holds:
        return _held(current, value=value, now=now, for_minutes=for_minutes, suffix=reason_suffix)
    return _cleared(current, value=value, now=now, keep_firing_minutes=keep_firing_minutes, suffix=reason_suffix)


def _held(
    current: GroupState, *, value: float | None, now: datetime, for_minutes: int, suffix: str
) -> tuple[GroupState, list[Transition]]:
    pending_for = timedelta(minutes=for_minutes)
    match current.phase:
        case Phase.INACTIVE:
            if for_minutes == 0:
                state = GroupState(Phase.FIRING, now, now, value)
                return state, [Transition(Phase.INACTIVE, Phase.FIRING, now, value, "condition true" + suffix)]
            state = GroupState(Phase.PENDING, now, now, value)
            return state, [
                Transition(Phase.INACTIVE, Phase.PENDING, now, value, f"condition true, waiting {for_minutes} min" + suffix)
            ]
        case Phase.PENDING:
            since = current.active_since or now
            if now - since >= pending_for:
                state = GroupState(Phase.FIRING, since, now, value)
                return state, [
                    Transition(Phase.PENDING, Phase.FIRING, now, value, f"condition true for {for_minutes} min" + suffix)
                ]
            return replace(current, last_true_at=now, last_value=value), []
        case Phase.FIRING:
            return replace(current, last_true_at=now, last_value=value), []
    raise ValueError(f"unknown phase {current.phase}")  # pragma: no cover


def _cleared(
    current: GroupState, *, value: float | None, now: datetime, keep_firing_minutes: int, suffix: str
) -> tuple[GroupState, list[Transition]]:
    match current.phase:
        case Phase.INACTIVE:
            return replace(current, last_value=value), []
        case Phase.PENDING:
            state = GroupState(Phase.INACTIVE, None, current.last_true_at, value)
            return state, [Transition(Phase.PENDING, Phase.INACTIVE, now, value, "condition cleared before for elapsed" + suffix)]
        case Phase.FIRING:
            last_true_at = current.last_true_at or now
            if keep_firing_minutes and now - last_true_at < timedelta(minutes=keep_firing_minutes):
                return replace(current, last_value=value), []
            reason = "condition cleared" + (f" for {keep_firing_minutes} min" if keep_firing_minutes else "") + suffix
            state = GroupState(Phase.INACTIVE, None, current.last_true_at, value)
            return state, [Transition(Phase.FIRING, Phase.INACTIVE, now, value, reason)]
    raise ValueError(f"unknown phase {current.phase}")  # pragma: no cover


def step_groups(
    condition: Condition,
    states: Mapping[K, GroupState],
    observed: Mapping[K, tuple[float | None, int]],
    *,
    now: datetime,
) -> dict[K, tuple[GroupState, list[Transition]]]:
    """One evaluation instant of a rule: every observed group and every group with a known state.

    ``observed`` maps a group to its ``(value, points)``; a known group missing from it had no rows in
    the window, which is ``condition.empty_value`` (0 for counted events and spans, otherwise no data).
    Live evaluation and backtest both go through here, so they cannot disagree.
    """
    results: dict[K, tuple[GroupState, list[Transition]]] = {}
    for key in list(observed) + [key for key in states if key not in observed]:
        value, points = observed.get(key, (condition.empty_value, 0))
        results[key] = step(
            states.get(key),
            holds=condition.verdict(value, points),
            value=value,
            now=now,
            for_minutes=condition.for_minutes,
            keep_firing_minutes=condition.keep_firing_minutes,
            no_data=condition.no_data,
        )
    return results
