"""The call flow moves the requests it carries without reading them back."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from callnowd.calls.flow import FlowSettings
from callnowd.calls.ports import OwnerOutcome
from callnowd.models import CallRequest, Extension, RequestEvent
from callnowd.models import RequestState as S
from tests.calls.flow_case import JOHN, FlowCase


class FlowReadsTests(FlowCase):
    """The flow moves the requests it carries without reading them back."""

    def count_reads(self) -> list[str]:
        reads: list[str] = []
        read = self.store.get_request

        async def counting(request_id: str) -> CallRequest | None:
            reads.append(request_id)
            return await read(request_id)

        self.store.get_request = counting  # type: ignore[method-assign]
        return reads

    def test_unanswered_request_is_never_read_back(self) -> None:
        """Ring, no answer, forget, Hangup after the grace: no request is read."""
        request = self.request()
        reads = self.count_reads()
        d = Deferred.fromCoroutine(self.flow.dispatch(request))
        self.pbx.outcomes[0].callback(OwnerOutcome.NO_ANSWER)
        self.successResultOf(d)
        self.assertEqual(self.state(request), (S.OWNER_NO_ANSWER, "no_answer"))
        self.assertEqual(self.flow.in_flight, 0)
        self.wait(self.flow.channel_gone(f"callnow-a1-{request.id}"))
        self.assertEqual(reads, [])
        self.assertEqual(
            self.states(request), [S.RECEIVED, S.RINGING_OWNER, S.OWNER_NO_ANSWER]
        )

    def test_request_moved_elsewhere_is_read_and_left(self) -> None:
        """Cancelled by another process while ringing: the outcome does not move it."""
        request = self.request()
        d = Deferred.fromCoroutine(self.flow.dispatch(request))
        self.wait(
            self.store.transition(
                request.id,
                (S.RINGING_OWNER,),
                RequestEvent(request.id, self.now, S.CANCELLED, "operator"),
            )
        )
        reads = self.count_reads()
        self.pbx.outcomes[0].callback(OwnerOutcome.NO_ANSWER)
        self.successResultOf(d)
        self.assertEqual(self.state(request), (S.CANCELLED, "operator"))
        self.assertEqual(
            self.states(request), [S.RECEIVED, S.RINGING_OWNER, S.CANCELLED]
        )
        self.assertIn(request.id, reads)
        self.assertEqual(self.flow.in_flight, 0)

    def test_finished_requests_are_forgotten_after_a_while(self) -> None:
        """The memory of ended requests is pruned as time passes."""
        first = self.request("+15555550001")
        d = Deferred.fromCoroutine(self.flow.dispatch(first))
        self.pbx.outcomes[0].callback(OwnerOutcome.BUSY)
        self.successResultOf(d)
        self.assertIn(first.id, self.flow._inflight.finished)
        self.now += FlowSettings(instance_id="x").finished_memory + 1
        second = self.request("+15555550002")
        d = Deferred.fromCoroutine(self.flow.dispatch(second))
        self.pbx.outcomes[1].callback(OwnerOutcome.BUSY)
        self.successResultOf(d)
        self.assertEqual(self.flow._inflight.finished, {second.id})
        # A Hangup for the forgotten one reads the store, which says it ended.
        reads = self.count_reads()
        self.wait(self.flow.channel_gone(f"callnow-a1-{first.id}"))
        self.assertEqual(reads, [first.id])
        self.assertEqual(self.state(first), (S.OWNER_BUSY, "busy"))

    def test_extension_given_to_dispatch_is_not_read_again(self) -> None:
        """Dispatch with the intake's extension reads neither it nor the request."""
        request = self.request()
        looked_up: list[str] = []
        get_extension = self.store.get_extension

        async def counting(number: str) -> Extension | None:
            looked_up.append(number)
            return await get_extension(number)

        self.store.get_extension = counting  # type: ignore[method-assign]
        d = Deferred.fromCoroutine(self.flow.dispatch(request, JOHN))
        self.pbx.outcomes[0].callback(OwnerOutcome.NO_ANSWER)
        self.successResultOf(d)
        self.assertEqual(looked_up, [])
        self.assertEqual(self.state(request), (S.OWNER_NO_ANSWER, "no_answer"))
        other = self.request("+15555550999")
        d = Deferred.fromCoroutine(self.flow.dispatch(other))
        self.pbx.outcomes[1].callback(OwnerOutcome.NO_ANSWER)
        self.successResultOf(d)
        self.assertEqual(looked_up, [JOHN.number])
