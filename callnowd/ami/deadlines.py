"""Fixed-delay timer queues: many items sharing one delay, served by one timer.

Items added with the same delay fall due in the order they were added, so a
queue keeps them in that order and one timer, set for the oldest item still
waiting, runs the due ones. :class:`DelayQueue` is the mechanism; the AMI
client's action and originate-result timeouts (:class:`DeadlineQueue`,
:class:`Deadlines`) and the call watcher's Hangup grace
(:class:`callnowd.ami.pbx.GraceQueue`) are built on it.

``Deferred.addTimeout`` costs a ``callLater`` and, when the answer comes in time,
a ``cancel`` (both work on the reactor's heap of timers). An AMI session sends
several actions per call request, all with the same timeout and nearly all
answered within milliseconds; answered Deferreds are dropped from the front as
new ones are added and when the timer fires, so in steady state the timer is
rescheduled about once per delay, not once per action, and the queue stays about
as long as what is in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

T = TypeVar("T")

#: Called with the Deferred and its key when the deadline passes uncalled.
Expire = Callable[[Deferred[Any], str], None]


class DelayQueue(Generic[T]):
    """Runs ``action(item)`` ``delay`` seconds after each item is pushed, in order.

    Exact like ``callLater``: an item pushed at ``t`` runs at ``t + delay`` (when the
    reactor runs timers then). Items for which ``done(item)`` is true by then are
    dropped without the action, from the front as new ones are pushed, when the
    timer fires, and on :meth:`prune`. Items pushed by the action wait for the
    reschedule at the end of the run (one timer at any time).

    Subclasses name their public ``add`` and call :meth:`_push`.

    Args:
        clock: the timer source.
        delay: seconds from a push to the item's turn.
        action: what to do with an item whose time has come.
        done: tells items that need no action any more (None: every item runs).
    """

    def __init__(
        self,
        clock: IReactorTime,
        delay: float,
        action: Callable[[T], object],
        done: Callable[[T], bool] | None = None,
    ) -> None:
        self._clock = clock
        self._delay = delay
        self._action = action
        self._done = done
        self._due: deque[tuple[float, T]] = deque()
        self._timer: IDelayedCall | None = None
        self._firing = False

    def _push(self, item: T) -> None:
        # Finished ones leave from the front as new ones come, so the queue
        # holds about what is in flight and the timer never sweeps a backlog.
        self._drop_done()
        self._due.append((self._clock.seconds() + self._delay, item))
        if self._timer is None and not self._firing:
            self._timer = self._clock.callLater(self._delay, self._fire)

    def _drop_done(self) -> None:
        due = self._due
        done = self._done
        if done is not None:
            while due and done(due[0][1]):
                due.popleft()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def __len__(self) -> int:
        """Entries kept (waiting ones and finished ones not yet dropped)."""
        return len(self._due)

    def prune(self) -> None:
        """Drop finished entries from the front; stop the timer when none is left."""
        self._drop_done()
        if not self._due:
            self._cancel_timer()

    def stop(self) -> None:
        """Forget every entry and stop the timer (nothing runs afterwards)."""
        self._due.clear()
        self._cancel_timer()

    def _fire(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        due = self._due
        done = self._done
        self._firing = True  # entries pushed by the action wait for the reschedule
        try:
            while due:
                deadline, item = due[0]
                if done is not None and done(item):
                    due.popleft()
                    continue
                if deadline > now:
                    break
                due.popleft()
                self._action(item)
        finally:
            self._firing = False
            if due and self._timer is None:
                delay = max(due[0][0] - now, 0.0)
                self._timer = self._clock.callLater(delay, self._fire)


def _answered(entry: tuple[Deferred[Any], str]) -> bool:
    return entry[0].called


class DeadlineQueue(DelayQueue[tuple[Deferred[Any], str]]):
    """Calls ``expire(deferred, key)`` for each Deferred not called within ``delay``.

    Exact like ``addTimeout``: a Deferred added at ``t`` expires at ``t + delay``
    (when the reactor runs timers then), unless it was called before.

    Args:
        clock: the timer source.
        delay: seconds from :meth:`add` to the deadline.
        expire: what to do with a late Deferred (typically: forget it, errback).
    """

    def __init__(self, clock: IReactorTime, delay: float, expire: Expire) -> None:
        super().__init__(clock, delay, lambda entry: expire(*entry), _answered)

    def add(self, deferred: Deferred[Any], key: str) -> None:
        """Expire ``deferred`` (under ``key``) unless it is called within the delay."""
        self._push((deferred, key))


class Deadlines:
    """One :class:`DeadlineQueue` per distinct delay, sharing one ``expire``."""

    def __init__(self, clock: IReactorTime, expire: Expire) -> None:
        self._clock = clock
        self._expire = expire
        self._queues: dict[float, DeadlineQueue] = {}

    def add(self, deferred: Deferred[Any], key: str, delay: float) -> None:
        """Expire ``deferred`` unless it is called within ``delay`` seconds."""
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = DeadlineQueue(
                self._clock, delay, self._expire
            )
        queue.add(deferred, key)

    def prune(self) -> None:
        """:meth:`DeadlineQueue.prune` on every queue."""
        for queue in self._queues.values():
            queue.prune()

    def stop(self) -> None:
        """:meth:`DeadlineQueue.stop` on every queue."""
        for queue in self._queues.values():
            queue.stop()
