"""Deadlines of many Deferreds sharing one delay, served by one timer.

``Deferred.addTimeout`` costs a ``callLater`` and, when the answer comes in time,
a ``cancel`` (both work on the reactor's heap of timers). An AMI session sends
several actions per call request, all with the same timeout and nearly all
answered within milliseconds; :class:`DeadlineQueue` keeps their deadlines in the
order they were set (the delay is the same, so that is the order they fall due)
and one timer, set for the oldest Deferred still waiting, expires the late ones.
Answered Deferreds are dropped from the front as new ones are added and when
the timer fires, so in steady state the timer is rescheduled about once per
delay, not once per action, and the queue stays about as long as what is in
flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: Called with the Deferred and its key when the deadline passes uncalled.
Expire = Callable[[Deferred[Any], str], None]


class DeadlineQueue:
    """Calls ``expire(deferred, key)`` for each Deferred not called within ``delay``.

    Exact like ``addTimeout``: a Deferred added at ``t`` expires at ``t + delay``
    (when the reactor runs timers then), unless it was called before.

    Args:
        clock: the timer source.
        delay: seconds from :meth:`add` to the deadline.
        expire: what to do with a late Deferred (typically: forget it, errback).
    """

    def __init__(self, clock: IReactorTime, delay: float, expire: Expire) -> None:
        self._clock = clock
        self._delay = delay
        self._expire = expire
        self._due: deque[tuple[float, Deferred[Any], str]] = deque()
        self._timer: IDelayedCall | None = None
        self._firing = False

    def add(self, deferred: Deferred[Any], key: str) -> None:
        """Expire ``deferred`` (under ``key``) unless it is called within the delay."""
        due = self._due
        # Answered ones leave from the front as new ones come, so the queue holds
        # about what is in flight and the timer never sweeps a long backlog.
        while due and due[0][1].called:
            due.popleft()
        due.append((self._clock.seconds() + self._delay, deferred, key))
        if self._timer is None and not self._firing:
            self._timer = self._clock.callLater(self._delay, self._fire)

    def __len__(self) -> int:
        """Entries kept (waiting ones and answered ones not yet dropped)."""
        return len(self._due)

    def prune(self) -> None:
        """Drop answered entries from the front; stop the timer when none is left."""
        due = self._due
        while due and due[0][1].called:
            due.popleft()
        if not due and self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def stop(self) -> None:
        """Forget every entry and stop the timer (nothing expires afterwards)."""
        self._due.clear()
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        due = self._due
        self._firing = True  # entries added by expire() wait for the reschedule
        try:
            while due:
                deadline, deferred, key = due[0]
                if deferred.called:
                    due.popleft()
                    continue
                if deadline > now:
                    break
                due.popleft()
                self._expire(deferred, key)
        finally:
            self._firing = False
            if due and self._timer is None:
                delay = max(due[0][0] - now, 0.0)
                self._timer = self._clock.callLater(delay, self._fire)


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
