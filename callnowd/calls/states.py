"""The request state machine (DESIGN §5): which transitions exist, and end reasons.

Pure data and one check; the store applies transitions atomically
(``Store.transition`` with the states a transition may start from).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from callnowd.models import RequestState

S = RequestState

TRANSITIONS: Mapping[RequestState, frozenset[RequestState]] = {
    S.RECEIVED: frozenset({S.REJECTED, S.RINGING_OWNER, S.FAILED, S.CANCELLED}),
    S.RINGING_OWNER: frozenset(
        {
            S.OWNER_DECLINED,
            S.OWNER_NO_ANSWER,
            S.OWNER_BUSY,
            S.FAILED,
            S.CALLING_VISITOR,
            S.CANCELLED,
        }
    ),
    S.CALLING_VISITOR: frozenset(
        {S.VISITOR_NO_ANSWER, S.VISITOR_BUSY, S.CONNECTED, S.FAILED, S.CANCELLED}
    ),
    S.CONNECTED: frozenset({S.COMPLETED}),
}

FINAL: frozenset[RequestState] = frozenset(S) - frozenset(TRANSITIONS)
IN_FLIGHT: frozenset[RequestState] = frozenset(
    {S.RINGING_OWNER, S.CALLING_VISITOR, S.CONNECTED}
)


def sources_of(target: RequestState) -> tuple[RequestState, ...]:
    """Every state from which ``target`` may be entered, in a stable order."""
    return tuple(s for s in S if target in TRANSITIONS.get(s, frozenset()))


@attrs.frozen
class IllegalTransition(Exception):
    """A transition the state machine does not have."""

    source: RequestState
    target: RequestState


def check(source: RequestState, target: RequestState) -> None:
    """Raise :class:`IllegalTransition` unless ``source -> target`` exists."""
    if target not in TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(source, target)


class Reason:
    """Machine-readable reasons stored with end states (and shown to integrators)."""

    # failed(...)
    PBX_UNAVAILABLE = "pbx_unavailable"
    AMI_ERROR = "ami_error"
    OWNER_UNREACHABLE = "owner_unreachable"
    VISITOR_UNREACHABLE = "visitor_unreachable"
    INTERRUPTED = "interrupted"
    CAPACITY = "capacity"
    OWNER_HUNG_UP = "owner_hung_up"
    # owner_no_answer(...)
    NO_ANSWER = "no_answer"
    NO_RESPONSE = "no_response"
    HUNG_UP = "hung_up"
    # owner_declined(...)
    DECLINED = "declined"
    REJECTED_ON_PHONE = "rejected_on_phone"
    # owner_busy / visitor_*
    BUSY = "busy"
    # completed
    NORMAL = "normal"
