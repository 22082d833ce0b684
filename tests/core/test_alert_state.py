"""The group state machine: pending, firing, resolving, for, keep_firing, flapping, and no-data each way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fernando_telemetry.core.alert_condition import parse_condition
from fernando_telemetry.core.alert_state import GroupState, Phase, Transition, step, step_groups

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def run(
    holds_sequence: list[bool | None], *, for_minutes: int = 0, keep_firing_minutes: int = 0, no_data: str = "ok"
) -> tuple[list[Phase], list[Transition]]:
    """Step once a minute through ``holds_sequence``; the phase after each step and every transition."""
    state: GroupState | None = None
    phases: list[Phase] = []
    transitions: list[Transition] = []
    for minute, holds in enumerate(holds_sequence):
        state, changes = step(
            state,
            holds=holds,
            value=None if holds is None else float(minute),
            now=T0 + minute * MINUTE,
            for_minutes=for_minutes,
            keep_firing_minutes=keep_firing_minutes,
            no_data=no_data,
        )
        phases.append(state.phase)
        transitions.extend(changes)
    return phases, transitions


I, P, F = Phase.INACTIVE, Phase.PENDING, Phase.FIRING  # noqa: E741 (the phases read as a timeline)


class TestStep:
    def test_fires_at_once_without_for(self) -> None:
        """With for 0 the first true evaluation fires in one transition and the first false resolves."""
        phases, transitions = run([False, True, True, False])
        assert phases == [I, F, F, I]
        assert [(t.from_phase, t.to_phase, t.at) for t in transitions] == [(I, F, T0 + MINUTE), (F, I, T0 + 3 * MINUTE)]
        assert transitions[0].value == 1.0

    def test_pending_until_for_elapsed(self) -> None:
        """With for 3 the condition must hold at minute 0 and still at minute 3 to fire."""
        phases, transitions = run([True, True, True, True, True, False], for_minutes=3)
        assert phases == [P, P, P, F, F, I]
        assert [(t.from_phase, t.to_phase) for t in transitions] == [(I, P), (P, F), (F, I)]
        assert transitions[1].at == T0 + 3 * MINUTE

    def test_pending_that_clears_never_fires(self) -> None:
        """A condition true for less than for goes back to inactive without firing."""
        phases, transitions = run([True, True, False, True], for_minutes=3)
        assert phases == [P, P, I, P]
        assert F not in [t.to_phase for t in transitions]

    def test_keep_firing_holds_through_short_dips(self) -> None:
        """keep_firing 2: a one-minute dip does not resolve; two clear minutes after the last true do."""
        phases, transitions = run([True, False, True, False, False, False], keep_firing_minutes=2)
        assert phases == [F, F, F, F, I, I]
        assert [(t.from_phase, t.to_phase, t.at) for t in transitions] == [(I, F, T0), (F, I, T0 + 4 * MINUTE)]

    def test_flapping_without_keep_firing(self) -> None:
        """Each flap is a separate fire/resolve pair (the caller keeps one alert per fingerprint at a time)."""
        _, transitions = run([True, False, True, False])
        assert [(t.from_phase, t.to_phase) for t in transitions] == [(I, F), (F, I), (I, F), (F, I)]

    def test_active_since_and_last_true_at(self) -> None:
        """The state remembers when the condition turned true and when it last held."""
        state, _ = step(None, holds=True, value=1.0, now=T0, for_minutes=5, keep_firing_minutes=0, no_data="ok")
        state, _ = step(state, holds=True, value=2.0, now=T0 + MINUTE, for_minutes=5, keep_firing_minutes=0, no_data="ok")
        assert state == GroupState(P, T0, T0 + MINUTE, 2.0)


class TestNoData:
    def test_ok_resolves(self) -> None:
        """no_data ok: a firing group with no data resolves, marked as no data."""
        phases, transitions = run([True, None], no_data="ok")
        assert phases == [F, I]
        assert "no data" in transitions[-1].reason and transitions[-1].value is None

    def test_alert_fires(self) -> None:
        """no_data alert: missing data counts as true, and for still applies."""
        phases, transitions = run([None, None, None], for_minutes=2, no_data="alert")
        assert phases == [P, P, F]
        assert all("no data" in t.reason for t in transitions)

    def test_keep_changes_nothing(self) -> None:
        """no_data keep: the phase stays, and keep_firing's clock does not restart from the gap."""
        phases, transitions = run([True, None, None, False], no_data="keep", keep_firing_minutes=2)
        assert phases == [F, F, F, I]
        assert transitions[-1].at == T0 + 3 * MINUTE

    def test_keep_from_nothing_stays_inactive(self) -> None:
        """no_data keep with no state stays inactive without transitions."""
        phases, transitions = run([None, None], no_data="keep")
        assert phases == [I, I] and transitions == []

    def test_missing_state_equals_inactive(self) -> None:
        """A None state and an inactive one behave the same (inactive rows may be deleted)."""
        inactive = GroupState(I, None, None, None)
        for holds in (True, False, None):
            for policy in ("ok", "alert", "keep"):
                kwargs = dict(holds=holds, value=1.0, now=T0, for_minutes=1, keep_firing_minutes=0, no_data=policy)
                assert step(None, **kwargs)[1] == step(inactive, **kwargs)[1]  # type: ignore[arg-type]


class TestStepGroups:
    def test_known_group_without_rows_is_no_data_for_values(self) -> None:
        """A firing group that vanished from an avg condition's observations resolves under no_data ok."""
        condition = parse_condition({"metric": "cpu", "threshold": 80, "group_by": ["host_name"]})
        states = {"a": GroupState(F, T0, T0, 90.0)}
        result = step_groups(condition, states, {"b": (95.0, 3)}, now=T0 + MINUTE)
        assert result["a"][0].phase is I
        assert result["b"][0].phase is F

    def test_known_group_without_rows_counts_zero(self) -> None:
        """For counted events a group without rows is 0, which an '< 1' condition holds on."""
        condition = parse_condition(
            {"source": "telemetry_events", "operator": "<", "threshold": 1, "group_by": ["event_name"], "no_data": "keep"}
        )
        states = {"login": GroupState(I, None, None, 3.0)}
        result = step_groups(condition, states, {}, now=T0)
        assert result["login"][0].phase is F
        assert result["login"][1][0].value == 0.0

    @pytest.mark.parametrize("points", [1, 2])
    def test_min_points(self, points: int) -> None:
        """Under min_points the value is no data (resolves under ok); at min_points it is judged."""
        condition = parse_condition({"metric": "cpu", "threshold": 80, "min_points": 2})
        result = step_groups(condition, {"": GroupState(F, T0, T0, 90.0)}, {"": (99.0, points)}, now=T0 + MINUTE)
        assert result[""][0].phase is (I if points < 2 else F)
