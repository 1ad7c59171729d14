"""Pacing for log events that can come in floods: at most one per interval, counted."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime


class LogThrottle:
    """Lets at most one log event through per ``interval`` seconds.

    For messages a peer can repeat at will, such as answers to ActionIDs we do
    not own, or failures that come in floods: logging each one would cost more
    than handling it. The event let through carries the number left out before
    it in a ``suppressed`` field. With ``summary``, the first event left out also
    schedules a call one interval later with the number left out and not yet
    counted by an event let through since, so the count of a burst that then
    stops is never lost.

    Args:
        clock: what ``interval`` is measured on.
        interval: seconds between two events let through.
        summary: called with a nonzero count of events left out (see above).
    """

    def __init__(
        self,
        clock: IReactorTime,
        interval: float = 1.0,
        summary: Callable[[int], object] | None = None,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._summary = summary
        self._quiet_until = float("-inf")
        self._suppressed = 0
        self._summary_due = False

    def allow(self) -> int | None:
        """Return how many were left out since the last event let through; None: leave this one out."""
        now = self._clock.seconds()
        if now < self._quiet_until:
            self._suppressed += 1
            if self._summary is not None and not self._summary_due:
                self._summary_due = True
                self._clock.callLater(self._interval, self._summarize)
            return None
        self._quiet_until = now + self._interval
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed

    def _summarize(self) -> None:
        self._summary_due = False
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed and self._summary is not None:
            self._summary(suppressed)
