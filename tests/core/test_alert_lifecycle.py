"""The alert lifecycle table: every allowed (state, action) and what it does, and every other pair refused."""

from __future__ import annotations

import pytest

from fernando_telemetry.core.alert_lifecycle import TABLE, Action, Notify, State, Step, alert_status, transition
from fernando_telemetry.core.enums import AlertStatus
from fernando_telemetry.core.errors import Conflict

A, K, S, R = State.ACTIVE, State.ACKNOWLEDGED, State.SUPPRESSED, State.RESOLVED

# (from, action) -> (to, history action word, notification): the whole table, written out
EXPECTED: dict[tuple[State, Action], tuple[State, str, Notify]] = {
    (State.INACTIVE, Action.PEND): (State.PENDING, "pending", Notify.NONE),
    (State.PENDING, Action.CLEAR): (State.INACTIVE, "clear", Notify.NONE),
    (State.INACTIVE, Action.FIRE): (A, "fire", Notify.FIRING),
    (State.PENDING, Action.FIRE): (A, "fire", Notify.FIRING),
    (State.INACTIVE, Action.FIRE_SILENCED): (S, "fire", Notify.NONE),
    (State.PENDING, Action.FIRE_SILENCED): (S, "fire", Notify.NONE),
    (A, Action.RESOLVE): (R, "resolve", Notify.RESOLVED_IF_ANNOUNCED),
    (K, Action.RESOLVE): (R, "resolve", Notify.RESOLVED_IF_ANNOUNCED),
    (S, Action.RESOLVE): (R, "resolve", Notify.RESOLVED_IF_ANNOUNCED),
    (A, Action.RESOLVE_BY_HAND): (R, "resolve", Notify.RESOLVED_IF_ANNOUNCED),
    (K, Action.RESOLVE_BY_HAND): (R, "resolve", Notify.RESOLVED_IF_ANNOUNCED),
    (S, Action.RESOLVE_BY_HAND): (R, "resolve", Notify.RESOLVED_IF_ANNOUNCED),
    (A, Action.ACKNOWLEDGE): (K, "acknowledge", Notify.NONE),
    (S, Action.ACKNOWLEDGE): (S, "acknowledge", Notify.NONE),
    (A, Action.ASSIGN): (A, "assign", Notify.NONE),
    (K, Action.ASSIGN): (K, "assign", Notify.NONE),
    (S, Action.ASSIGN): (S, "assign", Notify.NONE),
    (A, Action.SILENCE): (S, "suppress", Notify.NONE),
    (K, Action.SILENCE): (S, "suppress", Notify.NONE),
    (S, Action.RESILENCE): (S, "resilence", Notify.NONE),
    (S, Action.UNSILENCE): (A, "unsuppress", Notify.FIRING_IF_UNANNOUNCED),
    (S, Action.UNSILENCE_ACKNOWLEDGED): (K, "unsuppress", Notify.NONE),
}


class TestTransition:
    @pytest.mark.parametrize(("state", "action"), sorted(EXPECTED))
    def test_allowed_steps(self, state: State, action: Action) -> None:
        """Each allowed pair gives the state, history entry and notification written out above."""
        to_state, event, notify = EXPECTED[(state, action)]
        assert transition(state, action) == Step(to_state, event, notify)

    @pytest.mark.parametrize(
        ("state", "action"), [(state, action) for state in State for action in Action if (state, action) not in EXPECTED]
    )
    def test_every_other_pair_is_refused(self, state: State, action: Action) -> None:
        """Anything the table does not allow (on a resolved alert, a second acknowledge, ...) is a Conflict."""
        with pytest.raises(Conflict, match=f"cannot take the action {action.value}"):
            transition(state, action)

    def test_the_table_holds_exactly_the_expected_pairs(self) -> None:
        """No step is added or lost without this list changing with it."""
        assert set(TABLE) == set(EXPECTED)

    @pytest.mark.parametrize("action", list(Action))
    def test_a_resolved_alert_takes_no_action(self, action: Action) -> None:
        """Resolved is final: a new episode is a new alert."""
        with pytest.raises(Conflict):
            transition("resolved", action)

    def test_accepts_the_stored_words(self) -> None:
        """The ``alerts.status`` and ``alert_events`` words are accepted as states."""
        assert transition("suppressed", Action.UNSILENCE).to_state is State.ACTIVE


class TestAlertStatus:
    @pytest.mark.parametrize("state", [A, K, S, R])
    def test_states_of_an_alert_are_its_status(self, state: State) -> None:
        """An alert's state and its ``alerts.status`` are the same word."""
        assert alert_status(state) == AlertStatus(state.value)

    @pytest.mark.parametrize("state", [State.INACTIVE, State.PENDING])
    def test_states_before_an_alert_have_no_status(self, state: State) -> None:
        """Inactive and pending groups have no alert row, so no status to store."""
        with pytest.raises(ValueError):
            alert_status(state)
