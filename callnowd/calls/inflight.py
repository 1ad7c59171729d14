"""The call flow's memory of its requests: those it carries now, and those it saw end.

``InFlight`` owns the in-process bookkeeping of :class:`callnowd.calls.flow.CallFlow`,
none of which is ever stored: which requests this daemon is carrying (and how many
per extension, for the capacity check), the newest copy of each (what its last
transition returned, so the next one needs no read), the open request a twin joins
for each (extension, visitor number), and the requests seen ending, remembered a
while so that the Hangup of their channel, seen a grace period later, needs no read.

It decides nothing about states and never reads the store: the flow tells it what
happened, and asks it. Every method is O(1) (amortized for the memory of ended
requests, pruned oldest first as new ones are added): the flow consults it for
every request.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Set

from callnowd.models import CallRequest


class InFlight:
    """The requests a call flow carries, and those it saw end.

    Args:
        now: the clock, as POSIX seconds.
        max_in_flight: how many requests the flow may carry at once.
        max_per_extension: how many of them may be for one extension.
        finished_memory: how long, in seconds, an ended request is remembered.
    """

    def __init__(
        self,
        now: Callable[[], float],
        max_in_flight: int,
        max_per_extension: int,
        finished_memory: float,
    ) -> None:
        self._now = now
        self._max_in_flight = max_in_flight
        self._max_per_extension = max_per_extension
        self._finished_memory = finished_memory
        self._live: dict[str, str] = {}  # request id -> extension
        self._per_extension: Counter[str] = Counter()
        # The newest copy of each live request (what its last transition returned).
        self._latest: dict[str, CallRequest] = {}
        # (extension, visitor number) -> the open request a new one joins.
        self._open: dict[tuple[str, str], str] = {}
        self._finished: set[str] = set()
        self._finished_order: deque[tuple[float, str]] = deque()  # oldest first
        # Read-only view, tested with a bare ``in``: a Hangup of an ended request
        # is answered without a call into this class.
        self.finished: Set[str] = self._finished

    def __len__(self) -> int:
        """How many requests are carried now."""
        return len(self._live)

    def __contains__(self, request_id: object) -> bool:
        """Whether the request ``request_id`` is carried now."""
        return request_id in self._live

    def full_for(self, extension: str) -> bool:
        """Whether one more request for ``extension`` would exceed a capacity.

        Args:
            extension: the new request's extension number.

        Returns:
            True when the flow carries its maximum overall, or for that extension.
        """
        return (
            len(self._live) >= self._max_in_flight
            or self._per_extension[extension] >= self._max_per_extension
        )

    def track(self, request: CallRequest) -> None:
        """Carry ``request`` (a no-op if already carried), its copy as given."""
        if request.id not in self._live:
            self._live[request.id] = request.extension
            self._per_extension[request.extension] += 1
            self._latest[request.id] = request

    def latest(self, request_id: str) -> CallRequest | None:
        """The newest copy of a carried request, None if it is not carried."""
        return self._latest.get(request_id)

    def update(self, request: CallRequest) -> None:
        """Keep ``request`` (just returned by a transition) as its newest copy.

        Ignored for a request not carried: only carried ones are remembered.
        """
        if request.id in self._live:
            self._latest[request.id] = request

    def mark_open(self, request: CallRequest) -> None:
        """Let a twin of ``request`` (same extension, same visitor) join it.

        The first open request for the pair keeps that role until it is forgotten.
        """
        self._open.setdefault((request.extension, request.phone), request.id)

    def joinable(self, extension: str, phone: str) -> str | None:
        """The id of the open request a new one for this pair would join, if any."""
        return self._open.get((extension, phone))

    def forget(self, request_id: str, current: CallRequest | None) -> None:
        """Drop a request that ended, or that the store no longer has.

        Args:
            request_id: the request.
            current: its final copy, or None if the store has no such request
                (then it is only no longer carried: there is nothing to remember).
        """
        self._latest.pop(request_id, None)
        extension = self._live.pop(request_id, None)
        if extension is not None:
            self._per_extension[extension] -= 1
            if self._per_extension[extension] <= 0:
                del self._per_extension[extension]
        if current is not None:
            key = (current.extension, current.phone)
            if self._open.get(key) == request_id:
                del self._open[key]
            self.remember_finished(request_id)

    def remember_finished(self, request_id: str) -> None:
        """Remember that ``request_id`` ended; forget those ended too long ago."""
        now = self._now()
        order = self._finished_order
        while order and order[0][0] < now - self._finished_memory:
            self._finished.discard(order.popleft()[1])
        if request_id not in self._finished:
            self._finished.add(request_id)
            order.append((now, request_id))
