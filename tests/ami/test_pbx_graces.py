"""The Hangup grace of ``watch_calls``: one timer for every pending Hangup, in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.client import AmiActionError, AmiConnectionLost
from callnowd.ami.codec import AmiEncodingError, Message
from callnowd.ami.originate import OriginateHandle, OriginateResult
from callnowd.ami.pbx import (
    NOTIFY_LOG_INTERVAL,
    AmiPbx,
    GraceQueue,
    OwnerDialplan,
    watch_calls,
)
from callnowd.calls.ports import OwnerOutcome, PbxError
from tests.store.builders import make_extension, make_request


class GraceQueueTests(SynchronousTestCase):
    """Keys come out ``grace`` seconds after they went in, in order."""

    def test_each_key_runs_after_its_grace(self) -> None:
        """Keys added at different times run each at its own time, in order."""
        clock = Clock()
        ran: list[tuple[float, str]] = []
        queue = GraceQueue(clock, 2.0, lambda key: ran.append((clock.seconds(), key)))
        queue.add("a")
        clock.advance(0.5)
        queue.add("b")
        queue.add("c")
        clock.advance(1.4)
        self.assertEqual(ran, [])
        clock.advance(0.1)
        self.assertEqual(ran, [(2.0, "a")])
        clock.advance(0.5)
        self.assertEqual(ran, [(2.0, "a"), (2.5, "b"), (2.5, "c")])
        self.assertEqual(len(queue), 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_one_timer_for_many_keys(self) -> None:
        """However many keys wait, at most one timer is pending."""
        clock = Clock()
        queue = GraceQueue(clock, 2.0, lambda key: None)
        for n in range(100):
            queue.add(str(n))
            clock.advance(0.01)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(3.0)
        self.assertEqual(len(queue), 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_queue_restarts_after_running_empty(self) -> None:
        """A key added after the queue ran empty gets a timer again."""
        clock = Clock()
        ran: list[str] = []
        queue = GraceQueue(clock, 1.0, ran.append)
        queue.add("a")
        clock.advance(1.0)
        queue.add("b")
        clock.advance(1.0)
        self.assertEqual(ran, ["a", "b"])

    def test_key_added_by_the_action(self) -> None:
        """A key added while keys run waits its full grace on the one timer."""
        clock = Clock()
        ran: list[tuple[float, str]] = []

        def action(key: str) -> None:
            ran.append((clock.seconds(), key))
            if key == "a":
                queue.add("again")

        queue = GraceQueue(clock, 1.0, action)
        queue.add("a")
        clock.advance(0.5)
        queue.add("b")
        clock.advance(0.5)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.pump([0.5] * 4)
        self.assertEqual(ran, [(1.0, "a"), (1.5, "b"), (2.0, "again")])
        self.assertEqual(clock.getDelayedCalls(), [])


class _Client:
    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Message], None]] = {}

    def subscribe(self, name: str, handler: Callable[[Message], None]) -> None:
        self.handlers[name] = handler

    def on_ready(self, callback: Callable[[], None]) -> None:
        pass


class _Flow:
    channel_prefix = "callnow-x-"

    def __init__(self) -> None:
        self.gone: list[str] = []
        self.settled: set[str] = set()

    def may_settle(self, channel_id: str) -> bool:
        return channel_id not in self.settled

    async def channel_gone(self, channel_id: str) -> None:
        self.gone.append(channel_id)


class WatchHangupTests(SynchronousTestCase):
    """A Hangup of one of our channels reaches the flow after the grace."""

    def test_hangup_reaches_flow_after_grace(self) -> None:
        """Only our channels, and only after ``grace`` seconds."""
        clock, client, flow = Clock(), _Client(), _Flow()
        graces = watch_calls(cast(Any, client), cast(Any, flow), clock, grace=2.0)
        hangup = client.handlers["Hangup"]
        hangup(Message.of(("Event", "Hangup"), ("Uniqueid", "callnow-x-0123")))
        hangup(Message.of(("Event", "Hangup"), ("Uniqueid", "1700000000.12")))
        clock.advance(1.9)
        self.assertEqual(flow.gone, [])
        self.assertEqual(len(graces), 1)
        clock.advance(0.1)
        self.assertEqual(flow.gone, ["callnow-x-0123"])

    def test_hangup_of_ended_request_skips_flow(self) -> None:
        """A Hangup whose request the flow has ended needs no channel_gone."""
        clock, client, flow = Clock(), _Client(), _Flow()
        watch_calls(cast(Any, client), cast(Any, flow), clock, grace=2.0)
        flow.settled.add("callnow-x-done")
        hangup = client.handlers["Hangup"]
        hangup(Message.of(("Event", "Hangup"), ("Uniqueid", "callnow-x-done")))
        hangup(Message.of(("Event", "Hangup"), ("Uniqueid", "callnow-x-open")))
        clock.advance(2.0)
        self.assertEqual(flow.gone, ["callnow-x-open"])


class _NotifyClient:
    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.sent: list[tuple[str, list[tuple[str, str]]]] = []
        self.answers: list[Deferred[Message]] = []

    def post_user_event(
        self, name: str, headers: Sequence[tuple[str, str]]
    ) -> Deferred[Message]:
        if any("\n" in v for _, v in headers):
            raise AmiEncodingError("CR/LF in a value")
        self.sent.append((name, list(headers)))
        answer: Deferred[Message] = Deferred()
        self.answers.append(answer)
        return answer


class NotifyTests(SynchronousTestCase):
    """UserEvents are sent without waiting; failures are logged, never raised."""

    def setUp(self) -> None:
        self.clock = Clock()

    def pbx(self, client: _NotifyClient) -> AmiPbx:
        return AmiPbx(cast(Any, client), OwnerDialplan(agi_url="agi://x"), self.clock)

    def logged(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return events

    def test_sent_in_order_without_waiting(self) -> None:
        """Each notify sends its UserEvent at once, in call order."""
        client = _NotifyClient()
        pbx = self.pbx(client)
        pbx.notify([("State", "ringing_owner")])
        pbx.notify([("State", "owner_no_answer")])
        self.assertEqual(
            client.sent,
            [
                ("CallNow", [("State", "ringing_owner")]),
                ("CallNow", [("State", "owner_no_answer")]),
            ],
        )
        client.answers[0].callback(Message.of(("Response", "Success")))

    def test_failures_are_logged(self) -> None:
        """An Error answer or a refused header is logged at error level."""
        client = _NotifyClient()
        pbx = self.pbx(client)
        events = self.logged()
        pbx.notify([("State", "failed")])
        client.answers[0].errback(
            AmiActionError(Message.of(("Response", "Error"), ("Message", "no")))
        )
        self.clock.advance(NOTIFY_LOG_INTERVAL)
        pbx.notify([("Reason", "bad\nvalue")])
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(len(failures), 2)
        self.assertTrue(all(e["log_level"] is LogLevel.error for e in failures))
        self.assertEqual([e["suppressed"] for e in failures], [0, 0])
        self.flushLoggedErrors(AmiActionError, AmiEncodingError)

    def test_a_burst_of_failures_is_logged_once_per_interval(self) -> None:
        """Failing UserEvents (an overloaded PBX) log once per interval, with a count."""
        client = _NotifyClient()
        pbx = self.pbx(client)
        events = self.logged()
        for _ in range(5):
            pbx.notify([("State", "failed")])
            client.answers[-1].errback(TimeoutError("late"))
        self.clock.advance(NOTIFY_LOG_INTERVAL)  # the summary of the 4 left out
        pbx.notify([("State", "failed")])
        client.answers[-1].errback(TimeoutError("late"))
        self.assertEqual(
            [("log_failure" in e, e["suppressed"]) for e in events],
            [(True, 0), (False, 4), (True, 0)],
        )
        self.flushLoggedErrors(TimeoutError)

    def test_left_out_failures_are_counted_once(self) -> None:
        """An event let through counts what was left out; the summary then has none."""
        client = _NotifyClient()
        pbx = self.pbx(client)
        events = self.logged()
        clock = self.clock
        pbx.notify([("State", "failed")])
        client.answers[-1].errback(TimeoutError("late"))
        clock.advance(NOTIFY_LOG_INTERVAL / 2)
        pbx.notify([("State", "failed")])  # left out; its summary is due at 1.5 x
        client.answers[-1].errback(TimeoutError("late"))
        clock.advance(NOTIFY_LOG_INTERVAL / 2)
        pbx.notify([("State", "failed")])  # let through, counting the one before
        client.answers[-1].errback(TimeoutError("late"))
        clock.advance(NOTIFY_LOG_INTERVAL)
        self.assertEqual([e["suppressed"] for e in events], [0, 1])
        self.flushLoggedErrors(TimeoutError)

    def test_the_count_of_a_burst_that_stops_is_reported(self) -> None:
        """Failures left out and never followed by another are summed up later."""
        client = _NotifyClient()
        pbx = self.pbx(client)
        events = self.logged()
        for _ in range(3):
            pbx.notify([("State", "failed")])
            client.answers[-1].errback(TimeoutError("late"))
        self.clock.advance(NOTIFY_LOG_INTERVAL)
        self.assertEqual(
            [(e["log_level"], e["suppressed"]) for e in events],
            [(LogLevel.error, 0), (LogLevel.error, 2)],
        )
        self.assertIn("more failed", events[1]["log_format"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.flushLoggedErrors(TimeoutError)

    def test_not_sent_while_down_is_logged_once_per_interval(self) -> None:
        """During an outage the lost UserEvents are reported once per interval."""
        client = _NotifyClient(connected=False)
        pbx = self.pbx(client)
        events = self.logged()
        for _ in range(3):
            pbx.notify([("State", "failed")])
        self.clock.advance(NOTIFY_LOG_INTERVAL - 1)
        pbx.notify([("State", "failed")])  # still quiet: left out too
        self.clock.advance(1)  # the summary: 3 left out
        self.clock.advance(NOTIFY_LOG_INTERVAL)
        pbx.notify([("State", "failed")])
        warnings = [e for e in events if e.get("log_level") is LogLevel.warn]
        self.assertEqual([e["suppressed"] for e in warnings], [0, 3, 0])
        self.assertIn("more not sent", warnings[1]["log_format"])
        self.assertEqual(client.sent, [])

    def test_not_sent_while_down(self) -> None:
        """Without a session nothing is sent; a warning says what was lost."""
        client = _NotifyClient(connected=False)
        self.pbx(client).notify([("State", "failed")])
        self.assertEqual(client.sent, [])


class _OriginateClient:
    """Originates whose queueing fails as ``error``, and the result with it."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.results: list[Deferred[OriginateResult]] = []

    def originate(self, **_: object) -> OriginateHandle:
        queued: Deferred[Message] = Deferred()
        result: Deferred[OriginateResult] = Deferred()
        self.results.append(result)

        def not_queued(failure: Failure) -> Failure:
            result.errback(failure)  # as AmiClient.originate does
            return failure

        queued.addErrback(not_queued)
        queued.errback(self.error)
        return OriginateHandle("a-1", queued, result)


class OriginateOwnerTests(SynchronousTestCase):
    def test_a_failed_queue_leaves_no_unhandled_result(self) -> None:
        """Connection lost or refused: the result's failure is handled, not left over."""
        refused = AmiActionError(Message.of(("Response", "Error"), ("Message", "no")))
        for error in (AmiConnectionLost("gone"), refused):
            client = _OriginateClient(error)
            pbx = AmiPbx(cast(Any, client), OwnerDialplan(agi_url="agi://x"), Clock())
            done = Deferred.fromCoroutine(
                pbx.originate_owner(make_request(), make_extension(), "callnow-x-1")
            )
            if error is refused:
                self.failureResultOf(done, PbxError)
            else:
                self.assertIs(self.successResultOf(done), OwnerOutcome.UNKNOWN)
            # Handled: an errback took the failure (a Deferred left failed keeps
            # it as its result, and logs it as unhandled when collected).
            [result] = client.results
            self.assertIsNone(result.result, error)
