"""The request state machine: every transition, and every illegal one refused."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.states import (
    FINAL,
    IN_FLIGHT,
    TRANSITIONS,
    IllegalTransition,
    check,
    sources_of,
)
from callnowd.models import RequestState as S

LEGAL = {
    (S.RECEIVED, S.REJECTED),
    (S.RECEIVED, S.RINGING_OWNER),
    (S.RECEIVED, S.FAILED),
    (S.RECEIVED, S.CANCELLED),
    (S.RINGING_OWNER, S.OWNER_DECLINED),
    (S.RINGING_OWNER, S.OWNER_NO_ANSWER),
    (S.RINGING_OWNER, S.OWNER_BUSY),
    (S.RINGING_OWNER, S.FAILED),
    (S.RINGING_OWNER, S.CALLING_VISITOR),
    (S.RINGING_OWNER, S.CANCELLED),
    (S.CALLING_VISITOR, S.VISITOR_NO_ANSWER),
    (S.CALLING_VISITOR, S.VISITOR_BUSY),
    (S.CALLING_VISITOR, S.CONNECTED),
    (S.CALLING_VISITOR, S.FAILED),
    (S.CALLING_VISITOR, S.CANCELLED),
    (S.CONNECTED, S.COMPLETED),
}


class StateMachineTests(SynchronousTestCase):
    """TRANSITIONS, check and the derived sets."""

    def test_every_pair(self) -> None:
        """Exactly the transitions of DESIGN §5 pass; every other pair is refused."""
        for source in S:
            for target in S:
                if (source, target) in LEGAL:
                    check(source, target)
                else:
                    error = self.assertRaises(IllegalTransition, check, source, target)
                    self.assertEqual((error.source, error.target), (source, target))

    def test_final_states_have_no_exit(self) -> None:
        """Final states are exactly those without outgoing transitions."""
        self.assertEqual(
            FINAL,
            {
                S.REJECTED,
                S.OWNER_DECLINED,
                S.OWNER_NO_ANSWER,
                S.OWNER_BUSY,
                S.FAILED,
                S.VISITOR_NO_ANSWER,
                S.VISITOR_BUSY,
                S.COMPLETED,
                S.CANCELLED,
            },
        )
        self.assertFalse(FINAL & set(TRANSITIONS))

    def test_every_state_reachable(self) -> None:
        """Every state but received can be entered from somewhere."""
        for state in S:
            self.assertEqual(bool(sources_of(state)), state is not S.RECEIVED, state)

    def test_in_flight(self) -> None:
        """Calls in flight are those a PBX channel may belong to."""
        self.assertEqual(IN_FLIGHT, {S.RINGING_OWNER, S.CALLING_VISITOR, S.CONNECTED})
        self.assertEqual(sources_of(S.COMPLETED), (S.CONNECTED,))
