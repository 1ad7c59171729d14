"""What the simulated calls need from the simulator, and its timer bookkeeping.

This module owns the :class:`SimHost` seam between the call/AGI/Dial state
machines and :class:`~callnowd.ami.simulator.AsteriskSimulator` (events, clock,
settings, the FastAGI connector, the test-hook recorders) and :class:`Timers`,
which keeps every pending ``callLater`` of the simulator so ``stop()`` can
cancel them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IProtocol, IReactorTime

from callnowd.ami.sim_channels import ChannelRegistry, EventSink
from callnowd.ami.sim_config import SimulatorSettings
from callnowd.ami.sim_dialplan import AgiTarget


class SimHost(EventSink, Protocol):
    """The simulator as seen by one simulated call."""

    @property
    def clock(self) -> IReactorTime:
        """The reactor's clock."""

    @property
    def settings(self) -> SimulatorSettings:
        """The simulator settings."""

    @property
    def registry(self) -> ChannelRegistry:
        """Live channels and id allocation."""

    @property
    def timers(self) -> Timers:
        """All pending delayed calls."""

    def record_agi_command(self, words: list[str]) -> None:
        """Remember one AGI command line as it reached the simulator."""

    def connect_agi(self, target: AgiTarget, protocol: IProtocol) -> Deferred[None]:
        """Connect ``protocol`` to the FastAGI server of ``target``.

        The Deferred fails when the server cannot be reached in time.
        """


class Timers:
    """Delayed calls of the simulator; all cancelled at once by :meth:`cancel_all`."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._pending: set[IDelayedCall] = set()
        self.closed = False

    def call_later(
        self, delay: float, function: Callable[[], None]
    ) -> IDelayedCall | None:
        """Run ``function`` after ``delay`` seconds (never after :meth:`cancel_all`).

        Returns:
            The delayed call, or None once the timers are closed.
        """
        if self.closed:
            return None
        # The delayed call's argument holds the function and the call itself
        # until it fires, and is emptied then: a timer leaves no reference cycle
        # behind (one per simulated call would make the collector's pauses grow
        # with the call rate). A cancelled call drops its arguments itself.
        slot: list[Any] = [function]
        call = self._clock.callLater(max(delay, 0.0), self._fire, slot)
        slot.append(call)
        self._pending.add(call)
        return call

    def _fire(self, slot: list[Any]) -> None:
        function, call = slot
        slot.clear()
        self._pending.discard(call)
        function()

    def cancel(self, call: IDelayedCall | None) -> None:
        """Cancel ``call`` if it is still pending."""
        if call is not None and call in self._pending:
            self._pending.discard(call)
            call.cancel()

    def cancel_all(self) -> None:
        """Cancel everything and refuse new timers."""
        self.closed = True
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()
