"""Intake: what a dropped visitor connection must not lose."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.intake import Intake
from callnowd.limits.destination_policy import DestinationPolicy
from callnowd.models import CallRequest, RequestEvent, RequestSource, RequestState
from tests.fakes import MemoryStore
from tests.http.helpers import extension


class SlowStore(MemoryStore):
    """A store whose writes finish when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: Deferred[None] = Deferred()

    async def create_request(
        self,
        request: CallRequest,
        event: RequestEvent,
        *,
        dedupe_since: float | None = None,
    ) -> tuple[CallRequest, bool]:
        await self.gate
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
        store.gate.callback(None)
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
        store.gate.callback(None)
        self.successResultOf(submitted)
        (request,) = store.requests.values()
        self.assertEqual(handed, [(request, ext)])
