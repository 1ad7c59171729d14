"""Originate over AMI: the action's headers, its handle and its correlated result.

This module owns what an asynchronous ``Originate`` looks like on the wire and
how an ``OriginateResponse`` event (matched by ActionID) becomes an
:class:`OriginateResult`.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred

from callnowd.ami.codec import Message

#: Extra time after the originate's own ``Timeout`` before its result is given up.
DEFAULT_RESULT_MARGIN = 15.0

#: ``Reason`` of ``OriginateResponse`` (``pbx_dial_reason``) to an outcome name.
REASONS: dict[int, str] = {
    0: "failed",
    1: "hangup",
    3: "no_answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}

_UNKNOWN_UNIQUEIDS = frozenset({"", "<unknown>", "<null>"})


class OriginateTimeout(Exception):
    """No ``OriginateResponse`` arrived in time; the call's outcome is unknown."""


@attrs.frozen
class OriginateResult:
    """The outcome of an asynchronous originate, from its ``OriginateResponse``.

    Attributes:
        response: ``Success`` or ``Failure``.
        reason: Asterisk's reason code (4 answered, 3 no answer, 5 busy, 8
            congestion, 1 hangup, 0 other failure).
        channel: the channel name, or the dial string when no channel was made.
        uniqueid: the channel's Uniqueid; None when Asterisk says ``<unknown>``.
        event: the whole event.
    """

    response: str
    reason: int
    channel: str
    uniqueid: str | None
    event: Message

    @property
    def answered(self) -> bool:
        """True when the call was answered."""
        return self.response.lower() == "success"

    @property
    def outcome(self) -> str:
        """``answered``, ``no_answer``, ``busy``, ``congestion``, ``hangup`` or ``failed``."""
        if self.answered:
            return "answered"
        outcome = REASONS.get(self.reason, "failed")
        return "failed" if outcome == "answered" else outcome

    @classmethod
    def from_event(cls, event: Message) -> OriginateResult:
        """Build the result from an ``OriginateResponse`` event.

        Args:
            event: the event.

        Returns:
            The result; an unparsable ``Reason`` becomes 0 (failure).
        """
        try:
            reason = int(event.get("Reason") or "0")
        except ValueError:
            reason = 0
        uniqueid = event.get("Uniqueid")
        return cls(
            response=event.get("Response") or "Failure",
            reason=reason,
            channel=event.get("Channel") or "",
            uniqueid=None if uniqueid in _UNKNOWN_UNIQUEIDS else uniqueid,
            event=event,
        )


@attrs.frozen
class OriginateHandle:
    """What :meth:`AmiClient.originate` returns.

    Attributes:
        action_id: the ActionID the result will be correlated by.
        queued: fires with the ``Originate successfully queued`` response; fails
            with ``AmiActionError`` (and then ``result`` fails the same way).
        result: fires with the :class:`OriginateResult`; fails with
            :class:`OriginateTimeout` or ``AmiConnectionLost``.
    """

    action_id: str
    queued: Deferred[Message]
    result: Deferred[OriginateResult]


def originate_headers(
    *,
    channel: str,
    context: str | None,
    exten: str | None,
    priority: int | None,
    application: str | None,
    data: str | None,
    timeout_ms: int,
    caller_id: str | None,
    channel_id: str | None,
    account: str | None,
) -> list[tuple[str, str]]:
    """Return the headers of an asynchronous ``Originate`` (without variables).

    Raises:
        ValueError: neither or both of context/exten/priority and application
            were given, or the timeout is not positive.
    """
    dialplan = (context, exten, priority)
    if application is None and None in dialplan:
        raise ValueError("originate needs context, exten and priority, or application")
    if application is not None and any(part is not None for part in dialplan):
        raise ValueError(
            "originate takes context/exten/priority or application, not both"
        )
    if timeout_ms <= 0:
        raise ValueError("timeout_ms must be positive")
    headers: list[tuple[str, str]] = [("Channel", channel)]
    if application is not None:
        headers.append(("Application", application))
        if data is not None:
            headers.append(("Data", data))
    else:
        headers += [
            ("Context", str(context)),
            ("Exten", str(exten)),
            ("Priority", str(priority)),
        ]
    headers.append(("Timeout", str(timeout_ms)))
    optional: Sequence[tuple[str, str | None]] = (
        ("CallerID", caller_id),
        ("Account", account),
        ("ChannelId", channel_id),
    )
    headers += [(name, value) for name, value in optional if value is not None]
    headers.append(("Async", "true"))
    return headers
