"""Deadlines of many Deferreds served by one timer (callnowd.ami.deadlines)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.deadlines import DeadlineQueue, Deadlines
from callnowd.ami.protocol import AmiProtocol


class Recorder:
    def __init__(self) -> None:
        self.expired: list[tuple[str, float]] = []
        self.clock = Clock()

    def expire(self, deferred: Deferred[Any], key: str) -> None:
        self.expired.append((key, self.clock.seconds()))
        deferred.callback(key)


class DeadlineQueueTests(SynchronousTestCase):
    def test_expires_at_the_deadline(self) -> None:
        """An uncalled Deferred expires exactly ``delay`` after it was added."""
        r = Recorder()
        queue = DeadlineQueue(r.clock, 3.0, r.expire)
        d: Deferred[None] = Deferred()
        queue.add(d, "a")
        r.clock.advance(2.9)
        self.assertEqual(r.expired, [])
        r.clock.advance(0.1)
        self.assertEqual(r.expired, [("a", 3.0)])
        self.assertEqual(self.successResultOf(d), "a")
        self.assertEqual(r.clock.getDelayedCalls(), [])

    def test_answered_never_expire_and_share_one_timer(self) -> None:
        """Many Deferreds use one timer; those called in time are never expired."""
        r = Recorder()
        queue = DeadlineQueue(r.clock, 10.0, r.expire)
        deferreds: list[Deferred[None]] = []
        for i in range(100):
            d: Deferred[None] = Deferred()
            queue.add(d, str(i))
            deferreds.append(d)
            r.clock.advance(0.01)
        self.assertEqual(len(r.clock.getDelayedCalls()), 1)
        for d in deferreds:
            d.callback(None)
        r.clock.advance(20)
        self.assertEqual(r.expired, [])
        self.assertEqual(len(queue), 0)
        self.assertEqual(r.clock.getDelayedCalls(), [])

    def test_answered_leave_as_new_come(self) -> None:
        """Answered entries at the front are dropped by the next add."""
        r = Recorder()
        queue = DeadlineQueue(r.clock, 10.0, r.expire)
        for i in range(1000):
            d: Deferred[None] = Deferred()
            queue.add(d, str(i))
            d.callback(None)
        self.assertEqual(len(queue), 1)

    def test_late_one_behind_answered_ones(self) -> None:
        """A waiting Deferred behind answered ones expires at its own deadline."""
        r = Recorder()
        queue = DeadlineQueue(r.clock, 5.0, r.expire)
        first: Deferred[None] = Deferred()
        queue.add(first, "first")
        r.clock.advance(1)
        late: Deferred[None] = Deferred()
        queue.add(late, "late")
        first.callback(None)
        r.clock.advance(4)  # first's deadline: nothing to expire
        self.assertEqual(r.expired, [])
        r.clock.advance(0.5)
        self.assertEqual(r.expired, [])
        r.clock.advance(0.5)
        self.assertEqual(r.expired, [("late", 6.0)])

    def test_several_due_in_order(self) -> None:
        """Deferreds fall due in the order they were added, each at its deadline."""
        r = Recorder()
        queue = DeadlineQueue(r.clock, 2.0, r.expire)
        for key in "abc":
            queue.add(Deferred(), key)
            r.clock.advance(0.5)
        r.clock.pump([0.5] * 10)
        self.assertEqual(r.expired, [("a", 2.0), ("b", 2.5), ("c", 3.0)])

    def test_added_while_expiring(self) -> None:
        """A Deferred added by an expiry gets its full delay; the rest keep theirs."""
        r = Recorder()
        queue = DeadlineQueue(r.clock, 2.0, lambda d, key: expire(d, key))

        def expire(deferred: Deferred[Any], key: str) -> None:
            r.expire(deferred, key)
            if key == "a":
                queue.add(Deferred(), "again")

        queue.add(Deferred(), "a")
        r.clock.advance(1)
        queue.add(Deferred(), "b")
        r.clock.advance(1)  # a expires at 2, adds "again" due at 4
        r.clock.advance(1)  # b at 3
        r.clock.advance(1)  # again at 4
        self.assertEqual(r.expired, [("a", 2.0), ("b", 3.0), ("again", 4.0)])

    def test_prune_and_stop(self) -> None:
        """Prune stops the timer once all were answered; stop forgets the rest."""
        r = Recorder()
        queue = DeadlineQueue(r.clock, 5.0, r.expire)
        d: Deferred[None] = Deferred()
        queue.add(d, "a")
        d.callback(None)
        queue.prune()
        self.assertEqual(r.clock.getDelayedCalls(), [])
        queue.add(Deferred(), "b")
        queue.stop()
        r.clock.advance(10)
        self.assertEqual(r.expired, [])
        self.assertEqual(r.clock.getDelayedCalls(), [])

    def test_per_delay_queues(self) -> None:
        """Deadlines keeps one queue per delay; each expires at its own time."""
        r = Recorder()
        deadlines = Deadlines(r.clock, r.expire)
        deadlines.add(Deferred(), "long", 10.0)
        deadlines.add(Deferred(), "short", 1.0)
        r.clock.pump([1.0] * 11)
        self.assertEqual(r.expired, [("short", 1.0), ("long", 10.0)])


class ProtocolTimeoutTests(SynchronousTestCase):
    def test_answered_actions_share_one_timer(self) -> None:
        """Answered actions leave no timer per action: one serves them all."""
        clock = Clock()

        class Owner:
            def session_lost(self, *args: object) -> None:
                pass

            def event_filter(self) -> None:
                return None

        protocol = AmiProtocol(clock, Owner(), "t-1")  # type: ignore[arg-type]
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(b"Asterisk Call Manager/5.0.1\r\n")
        results = [protocol.send("UserEvent", timeout=10) for _ in range(50)]
        for n in range(1, 51):
            protocol.dataReceived(
                f"Response: Success\r\nActionID: t-1-{n}\r\n\r\n".encode()
            )
        for d in results:
            self.assertEqual(self.successResultOf(d)["Response"], "Success")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(10)
        self.assertEqual(clock.getDelayedCalls(), [])
