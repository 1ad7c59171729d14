"""Intake: what a dropped visitor connection or a store outage must not lose."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.intake import LATE_OUTAGE_LOG_INTERVAL, Intake, RateLimited
from callnowd.limits.destination_policy import DestinationPolicy
from callnowd.limits.limiter import Limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import Reason
from callnowd.limits.ratelimit import StoreUnavailable as LimitStoreUnavailable
from callnowd.limits.settings import LimitSettings
from callnowd.models import CallRequest, RequestEvent, RequestSource, RequestState
from callnowd.store.errors import StoreUnavailable
from tests.fakes import MemoryStore
from tests.http.helpers import extension


class SlowStore(MemoryStore):
    """A store whose writes each wait for a gate of their own (``gates``)."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[Deferred[None]] = []

    def release(self, error: Exception | None = None) -> None:
        """Let every waiting write go on, or fail each with ``error``."""
        gates, self.gates = self.gates, []
        for gate in gates:
            if error is None:
                gate.callback(None)
            else:
                gate.errback(error)

    async def create_request(
        self,
        request: CallRequest,
        event: RequestEvent,
        *,
        dedupe_since: float | None = None,
    ) -> tuple[CallRequest, bool]:
        gate: Deferred[None] = Deferred()
        self.gates.append(gate)
        await gate
        return await super().create_request(request, event, dedupe_since=dedupe_since)


class ShieldTests(SynchronousTestCase):
    """Intake.submit and cancellation."""

    def test_cancelled_submit_still_stores_and_dispatches(self) -> None:
        """The visitor leaves mid-request: the request is stored and handed on anyway."""
        store = SlowStore()
        ext = extension(image_validation=False)
        self.successResultOf(Deferred.fromCoroutine(store.add_extension(ext)))
        intake = Intake(store, DestinationPolicy(home_region="US"), None, 600)
        handed: list[Any] = []
        intake.listeners.append(handed.append)
        submitted = Deferred.fromCoroutine(
            intake.submit(ext, "+12015550123", "Mary", RequestSource.FORM, 1000.0)
        )
        submitted.cancel()
        self.failureResultOf(submitted, CancelledError)
        self.assertEqual(handed, [])
        store.release()
        (request,) = store.requests.values()
        self.assertEqual(handed, [request])
        self.assertEqual(request.state, RequestState.RECEIVED)

    def test_dispatcher_gets_the_extension_it_was_taken_for(self) -> None:
        """The dispatcher is told each new request with its extension, once stored."""
        store = SlowStore()
        ext = extension(image_validation=False)
        self.successResultOf(Deferred.fromCoroutine(store.add_extension(ext)))
        intake = Intake(store, DestinationPolicy(home_region="US"), None, 600)
        handed: list[tuple[CallRequest, Any]] = []
        intake.dispatcher = lambda request, taken_for: handed.append(
            (request, taken_for)
        )
        submitted = Deferred.fromCoroutine(
            intake.submit(ext, "+12015550123", "Mary", RequestSource.FORM, 1000.0)
        )
        self.assertEqual(handed, [])
        store.release()
        self.successResultOf(submitted)
        (request,) = store.requests.values()
        self.assertEqual(handed, [(request, ext)])


class OutageStore(MemoryStore):
    """A store whose writes fail as a locked or full database does, while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def create_request(
        self,
        request: CallRequest,
        event: RequestEvent,
        *,
        dedupe_since: float | None = None,
    ) -> tuple[CallRequest, bool]:
        if self.down:
            raise StoreUnavailable("database is locked")
        return await super().create_request(request, event, dedupe_since=dedupe_since)


class BrokenRefunds(Limiter):
    """A limiter whose store cannot give anything back."""

    async def refund(
        self, client_ip: str, callnow_id: str, destination_e164: str, now: float
    ) -> None:
        raise LimitStoreUnavailable("Redis timed out")


class StoreOutageTests(SynchronousTestCase):
    """A request the store could not take costs the visitor no rate-limit permit."""

    def setUp(self) -> None:
        self.store = OutageStore()
        self.ext = extension(image_validation=False)
        self.successResultOf(Deferred.fromCoroutine(self.store.add_extension(self.ext)))

    def submit(self, intake: Intake, now: float) -> Deferred[Any]:
        return Deferred.fromCoroutine(
            intake.submit(
                self.ext, "+12015550123", "Mary", RequestSource.FORM, now, "192.0.2.7"
            )
        )

    def intake(
        self, store: MemoryStore | None = None, limiter_type: type[Limiter] = Limiter
    ) -> tuple[Intake, Limiter]:
        """An intake over ``store`` (the outage store by default), with limits."""
        if store is None:
            store = self.store
        else:
            self.successResultOf(Deferred.fromCoroutine(store.add_extension(self.ext)))
        limiter = limiter_type(MemoryRateLimitStore(), LimitSettings(), b"k" * 32)
        return Intake(store, DestinationPolicy(), None, 600, limiter), limiter

    def test_retries_during_an_outage_are_not_limited(self) -> None:
        """More attempts than the number's limit fail with the outage, then one goes through."""
        intake, limiter = self.intake()
        attempts = LimitSettings().destination_short_limit + 1
        for n in range(attempts):
            self.failureResultOf(self.submit(intake, 1000.0 + n), StoreUnavailable)
        self.assertEqual(limiter.refunded, attempts)
        self.store.down = False
        outcome = self.successResultOf(self.submit(intake, 1000.0 + attempts))
        self.assertTrue(outcome.created)
        self.assertEqual(list(self.store.requests), [outcome.request.id])

    def test_a_failed_refund_is_logged_and_the_outage_still_answered(self) -> None:
        """When the permit cannot be given back, the visitor still hears of the outage."""
        intake, limiter = self.intake(limiter_type=BrokenRefunds)
        self.failureResultOf(self.submit(intake, 1000.0), StoreUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(LimitStoreUnavailable)), 1)
        self.assertEqual(limiter.refunded, 0)

    def test_stored_requests_stay_charged(self) -> None:
        """Only a request the store could not take is given back."""
        intake, limiter = self.intake()
        self.store.down = False
        for n in range(LimitSettings().destination_short_limit):
            self.assertTrue(
                self.successResultOf(self.submit(intake, 1000.0 + n)).created
            )
        self.failureResultOf(self.submit(intake, 1010.0), RateLimited)
        self.assertEqual(limiter.refunded, 0)

    def test_the_clients_own_limit_stays_charged(self) -> None:
        """The number's permits come back, the client's do not: a flood is still shed."""
        intake, _ = self.intake()
        for n in range(LimitSettings().ip_limit):
            self.failureResultOf(self.submit(intake, 1000.0 + n), StoreUnavailable)
        self.store.down = False
        limited = self.failureResultOf(self.submit(intake, 1010.0), RateLimited)
        self.assertEqual(limited.value.verdict.reason, Reason.IP)

    def test_a_visitor_who_left_is_still_given_back(self) -> None:
        """The write fails after the visitor's connection dropped: refunded anyway."""
        store = SlowStore()
        intake, limiter = self.intake(store)
        submitted = self.submit(intake, 1000.0)
        submitted.cancel()
        self.failureResultOf(submitted, CancelledError)
        store.release(StoreUnavailable("database is locked"))
        self.assertEqual(limiter.refunded, 1)
        self.assertEqual(len(self.flushLoggedErrors(StoreUnavailable)), 1)

    def test_a_visitor_who_left_is_stored_and_stays_charged(self) -> None:
        """The visitor's connection dropped but the request was stored: no refund."""
        store = SlowStore()
        intake, limiter = self.intake(store)
        submitted = self.submit(intake, 1000.0)
        submitted.cancel()
        self.failureResultOf(submitted, CancelledError)
        store.release()
        self.assertEqual(len(store.requests), 1)
        self.assertEqual(limiter.refunded, 0)


class LateOutageLogTests(SynchronousTestCase):
    """Store outages met by visitors who had left: paced, without tracebacks."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = SlowStore()
        self.ext = extension(image_validation=False)
        self.successResultOf(Deferred.fromCoroutine(self.store.add_extension(self.ext)))
        self.intake = Intake(
            self.store, DestinationPolicy(), None, 600, None, self.clock
        )

    def leave(self, count: int, error: Exception) -> None:
        """``count`` visitors submit and leave; then each write fails with ``error``."""
        for n in range(count):
            submitted = Deferred.fromCoroutine(
                self.intake.submit(
                    self.ext, f"+1201555012{n}", "Mary", RequestSource.FORM, 1000.0
                )
            )
            submitted.cancel()
            self.failureResultOf(submitted, CancelledError)
        self.assertEqual(len(self.store.gates), count)
        self.store.release(error)

    def test_a_burst_is_one_line_then_a_count(self) -> None:
        """The first is logged at once, the rest counted at the end of the interval."""
        with capturedLogs() as events:
            self.leave(5, StoreUnavailable("database is locked"))
            self.assertEqual(len(events), 1)
            self.clock.advance(LATE_OUTAGE_LOG_INTERVAL)
        first, summary = events
        self.assertEqual(first["log_level"], LogLevel.error)
        self.assertIn("database is locked", formatEvent(first))
        self.assertNotIn("log_failure", first)
        self.assertEqual(summary["left_out"], 4)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_other_failures_keep_their_traceback(self) -> None:
        """Only the outage is paced: any other failure is logged in full, each time."""
        with capturedLogs() as events:
            self.leave(2, ValueError("a bug"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)
        self.assertEqual(sum("log_failure" in event for event in events), 2)
