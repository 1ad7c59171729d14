"""Helpers shared by the test cases that run the simulator in the test process."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from callnowd.ami.codec import Message
from callnowd.ami.simulator import AsteriskSimulator


class SimulatorCase(TestCase):
    """A trial case with ``self.simulator``: waiting, and what reached the wire."""

    simulator: AsteriskSimulator

    async def until(self, predicate: Any, timeout: float = 20.0) -> None:
        """Wait for ``predicate()`` to hold, failing the test after ``timeout``."""
        waited = 0.0
        while not predicate():
            if waited > timeout:
                self.fail("condition not met in time")
            await deferLater(reactor, 0.05)
            waited += 0.05

    def actions(self, name: str) -> list[Message]:
        """Every AMI action called ``name`` that reached the simulator."""
        return [m for m in self.simulator.received_actions if m.action == name]

    def originates(self) -> list[Message]:
        """Every Originate that reached the simulator."""
        return self.actions("Originate")
