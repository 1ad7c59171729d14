"""Tests for callnowd.log_throttle."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from callnowd.log_throttle import LogThrottle


class LogThrottleTests(SynchronousTestCase):
    def test_one_per_interval_with_the_count_left_out(self) -> None:
        """The first event passes; the next pass carries how many were left out."""
        clock = Clock()
        throttle = LogThrottle(clock, 10.0)
        self.assertEqual(throttle.allow(), 0)
        self.assertEqual([throttle.allow() for _ in range(3)], [None] * 3)
        clock.advance(9.9)
        self.assertIsNone(throttle.allow())
        clock.advance(0.1)
        self.assertEqual(throttle.allow(), 4)
        self.assertIsNone(throttle.allow())

    def test_summary_of_a_burst_that_stops(self) -> None:
        """With a summary, the left-out count is reported one interval later."""
        clock = Clock()
        counts: list[int] = []
        throttle = LogThrottle(clock, 10.0, counts.append)
        throttle.allow()
        throttle.allow()
        throttle.allow()
        clock.advance(10.0)
        self.assertEqual(counts, [2])
        self.assertEqual(throttle.allow(), 0)  # already counted by the summary
        clock.advance(30.0)
        self.assertEqual(counts, [2])
