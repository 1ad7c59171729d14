"""The call flow over fake PBX ports and the in-memory store."""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.flow import CallFlow, FlowSettings
from callnowd.calls.ports import Choice, DialResult, OwnerOutcome, PbxError
from callnowd.calls.requests import new_request
from callnowd.calls.states import Reason
from callnowd.models import (
    CallRequest,
    RequestEvent,
    RequestSource,
)
from callnowd.models import RequestState as S
from callnowd.store.errors import StoreClosed
from tests.calls.flow_case import JOHN, FakeLeg, FlowCase


class FlowTests(FlowCase):
    """CallFlow."""

    def test_accept_path(self) -> None:
        """Answered, 1 pressed, visitor answered: received → … → completed."""
        request = self.request()
        dispatched = Deferred.fromCoroutine(self.flow.dispatch(request))
        self.assertEqual(
            self.pbx.originated, [(request.id, f"callnow-a1-{request.id}")]
        )
        self.assertEqual(self.state(request)[0], S.RINGING_OWNER)
        self.assertEqual(
            self.store.requests[request.id].channel_id, f"callnow-a1-{request.id}"
        )
        self.pbx.outcomes[0].callback(OwnerOutcome.ANSWERED)
        self.successResultOf(dispatched)
        leg = FakeLeg()
        self.wait(self.flow.owner_answered(request.id, leg))
        self.assertEqual(leg.confirmed, ["15555550123"])
        self.assertEqual(
            leg.dialled,
            [("+12125550100", "acct1", "PJSIP/+15555550123@trunk,30,L(1800000)")],
        )
        self.assertTrue(leg.finished)
        self.assertEqual(
            self.states(request),
            [S.RECEIVED, S.RINGING_OWNER, S.CALLING_VISITOR, S.CONNECTED, S.COMPLETED],
        )
        self.assertEqual(
            [e["State"] for e in self.pbx.events],
            ["ringing_owner", "calling_visitor", "connected", "completed"],
        )
        self.assertNotIn("VisitorNumber", self.pbx.events[0])
        self.assertEqual(self.flow.in_flight, 0)

    def test_accept_decision_skips_confirmation(self) -> None:
        """A request decided "accept" connects without asking the owner."""
        request = self.request(decision="accept")
        d = Deferred.fromCoroutine(self.flow.dispatch(request))
        self.pbx.outcomes[0].callback(OwnerOutcome.ANSWERED)
        self.successResultOf(d)
        leg = FakeLeg()
        self.wait(self.flow.owner_answered(request.id, leg))
        self.assertEqual(leg.confirmed, [])
        self.assertEqual(self.state(request), (S.COMPLETED, "normal"))

    def test_owner_choices(self) -> None:
        """2 declines (and the owner hears so); silence and hang-up are no answer."""
        cases = {
            Choice.DECLINE: (S.OWNER_DECLINED, "declined"),
            Choice.NO_RESPONSE: (S.OWNER_NO_ANSWER, "no_response"),
            Choice.HUNG_UP: (S.OWNER_NO_ANSWER, "hung_up"),
        }
        for choice, expected in cases.items():
            request = self.request(phone=f"+1555555{len(self.pbx.outcomes):04d}")
            d = Deferred.fromCoroutine(self.flow.dispatch(request))
            self.pbx.outcomes[-1].callback(OwnerOutcome.ANSWERED)
            self.successResultOf(d)
            leg = FakeLeg(choice=choice)
            self.wait(self.flow.owner_answered(request.id, leg))
            self.assertEqual(self.state(request), expected, choice)
            self.assertEqual(leg.dialled, [])
            self.assertEqual(leg.declined_said, choice is Choice.DECLINE)

    def test_owner_outcomes(self) -> None:
        """OriginateResponse outcomes map to owner end states."""
        cases = {
            OwnerOutcome.NO_ANSWER: (S.OWNER_NO_ANSWER, "no_answer"),
            OwnerOutcome.BUSY: (S.OWNER_BUSY, "busy"),
            OwnerOutcome.REJECTED: (S.OWNER_DECLINED, "rejected_on_phone"),
            OwnerOutcome.UNREACHABLE: (S.FAILED, "owner_unreachable"),
        }
        for outcome, expected in cases.items():
            request = self.request(phone=f"+1555555{len(self.pbx.outcomes):04d}")
            d = Deferred.fromCoroutine(self.flow.dispatch(request))
            self.pbx.outcomes[-1].callback(outcome)
            self.successResultOf(d)
            self.assertEqual(self.state(request), expected, outcome)
        self.assertEqual(self.flow.in_flight, 0)

    def test_visitor_outcomes(self) -> None:
        """DIALSTATUS maps to visitor end states."""
        cases = {
            "BUSY": (S.VISITOR_BUSY, "busy"),
            "NOANSWER": (S.VISITOR_NO_ANSWER, "no_answer"),
            "CANCEL": (S.FAILED, "owner_hung_up"),
            "CHANUNAVAIL": (S.FAILED, "visitor_unreachable"),
            "CONGESTION": (S.FAILED, "visitor_unreachable"),
        }
        for status, expected in cases.items():
            request = self.request(
                phone=f"+1555555{len(self.pbx.outcomes):04d}", decision="accept"
            )
            d = Deferred.fromCoroutine(self.flow.dispatch(request))
            self.pbx.outcomes[-1].callback(OwnerOutcome.ANSWERED)
            self.successResultOf(d)
            self.wait(
                self.flow.owner_answered(request.id, FakeLeg(dial=DialResult(status)))
            )
            self.assertEqual(self.state(request), expected, status)

    def test_pbx_unavailable(self) -> None:
        """No AMI session within the wait: failed, nothing dialled."""
        self.pbx.ready = False
        request = self.request()
        self.wait(self.flow.dispatch(request))
        self.assertEqual(self.state(request), (S.FAILED, "pbx_unavailable"))
        self.assertEqual(self.pbx.originated, [])

    def test_originate_refused(self) -> None:
        """An originate the PBX refuses fails the request with its reason."""
        self.pbx.refuse = PbxError("ami_error", "Permission denied")
        request = self.request()
        self.wait(self.flow.dispatch(request))
        self.assertEqual(self.state(request), (S.FAILED, "ami_error"))

    def test_dialled_at_most_once(self) -> None:
        """Dispatching a request twice, or one not in received, dials once."""
        request = self.request()
        Deferred.fromCoroutine(self.flow.dispatch(request))
        self.wait(self.flow.dispatch(self.store.requests[request.id]))
        self.wait(self.flow.dispatch(request))  # stale copy: the store refuses it
        self.assertEqual(len(self.pbx.originated), 1)

    def test_capacity(self) -> None:
        """Past the per-extension cap a request fails with capacity, not dialled."""
        first, second, third = (
            self.request(phone=f"+155555500{i:02d}") for i in range(3)
        )
        for r in (first, second, third):
            Deferred.fromCoroutine(self.flow.dispatch(r))
        self.assertEqual(len(self.pbx.originated), 2)
        self.assertEqual(self.state(third), (S.FAILED, "capacity"))

    def test_join(self) -> None:
        """While a request is open, the same visitor and extension join it."""
        request = self.request()
        d = Deferred.fromCoroutine(self.flow.dispatch(request))
        found = self.wait(self.flow.find_joinable(JOHN.number, request.phone))
        self.assertEqual(found, self.store.requests[request.id])
        self.assertIsNone(
            self.wait(self.flow.find_joinable(JOHN.number, "+15555559999"))
        )
        self.assertIsNone(self.wait(self.flow.find_joinable("other", request.phone)))
        self.pbx.outcomes[0].callback(OwnerOutcome.BUSY)
        self.successResultOf(d)
        # Once it ended, a new request is a new call.
        self.assertIsNone(
            self.wait(self.flow.find_joinable(JOHN.number, request.phone))
        )

    def test_reconcile_after_restart(self) -> None:
        """In-flight requests of this daemon: live channels kept, the rest failed."""
        alive, dead = (
            self.request(phone="+15555550001"),
            self.request(phone="+15555550002"),
        )
        for r in (alive, dead):
            Deferred.fromCoroutine(self.flow.dispatch(r))
        # A new daemon (same instance id) starts: nothing is tracked any more.
        fresh = CallFlow(
            self.store, self.pbx, lambda: self.now, FlowSettings(instance_id="a1")
        )
        self.pbx.live = frozenset({f"callnow-a1-{alive.id}"})
        self.assertEqual(self.wait(fresh.reconcile()), 1)
        self.assertEqual(self.state(alive)[0], S.RINGING_OWNER)
        self.assertEqual(self.state(dead), (S.FAILED, "interrupted"))
        # Its channel hangs up later, with no AGI session: failed too.
        self.wait(fresh.channel_gone(f"callnow-a1-{alive.id}"))
        self.assertEqual(self.state(alive), (S.FAILED, "interrupted"))

    def test_reconcile_skips_pending_and_other_daemons(self) -> None:
        """Requests awaiting their originate, or of another instance, are left alone."""
        request = self.request()
        Deferred.fromCoroutine(self.flow.dispatch(request))
        self.assertEqual(self.wait(self.flow.reconcile()), 0)
        other = CallFlow(
            self.store, self.pbx, lambda: self.now, FlowSettings(instance_id="b2")
        )
        self.assertEqual(self.wait(other.reconcile()), 0)
        self.assertEqual(self.state(request)[0], S.RINGING_OWNER)

    def test_unknown_outcome_then_reconcile(self) -> None:
        """An originate whose result was lost is settled by the next reconciliation."""
        request = self.request()
        d = Deferred.fromCoroutine(self.flow.dispatch(request))
        self.pbx.outcomes[0].callback(OwnerOutcome.UNKNOWN)
        self.successResultOf(d)
        self.assertEqual(self.state(request)[0], S.RINGING_OWNER)
        self.assertEqual(self.wait(self.flow.reconcile()), 1)
        self.assertEqual(self.state(request), (S.FAILED, "interrupted"))

    def test_visitor_answered_event(self) -> None:
        """A DialEnd ANSWER seen on AMI shows "connected" while the call lasts."""
        request = self.request(decision="accept")
        d = Deferred.fromCoroutine(self.flow.dispatch(request))
        self.pbx.outcomes[0].callback(OwnerOutcome.ANSWERED)
        self.successResultOf(d)
        self.wait(
            self.store.transition(
                request.id,
                (S.RINGING_OWNER,),
                RequestEvent(request.id, 1001.0, S.CALLING_VISITOR),
            )
        )
        self.wait(self.flow.visitor_answered(f"callnow-a1-{request.id}"))
        self.assertEqual(self.state(request)[0], S.CONNECTED)
        self.wait(self.flow.visitor_answered("callnow-zz-unknown"))

    def test_owner_leg_for_unknown_request(self) -> None:
        """An AGI session for a request not ringing is hung up at once."""
        leg = FakeLeg()
        self.wait(self.flow.owner_answered("nope", leg))
        self.assertTrue(leg.finished)
        self.assertEqual(leg.dialled, [])

    def test_visitor_details_only_when_enabled(self) -> None:
        """UserEvents carry the visitor's number and name only when enabled."""
        flow = CallFlow(
            self.store,
            self.pbx,
            lambda: self.now,
            FlowSettings(instance_id="a1", notify_visitor=True),
        )
        request = self.request()
        Deferred.fromCoroutine(flow.dispatch(request))
        self.assertEqual(self.pbx.events[0]["VisitorNumber"], "+15555550123")
        self.assertEqual(self.pbx.events[0]["VisitorName"], "Mary")

    def test_reconcile_resumes_received(self) -> None:
        """Requests stored but never dispatched are dispatched, or failed if stale."""
        old = self.request(phone="+15555550001")
        self.now += 400
        fresh = self.request(phone="+15555550002")
        restarted = CallFlow(
            self.store, self.pbx, lambda: self.now, FlowSettings(instance_id="a1")
        )
        Deferred.fromCoroutine(restarted.reconcile())
        self.assertEqual(self.state(old), (S.FAILED, "interrupted"))
        self.assertEqual(self.state(fresh)[0], S.RINGING_OWNER)
        self.assertEqual([r for r, _ in self.pbx.originated], [fresh.id])

    def test_stop_stores_no_outcome(self) -> None:
        """After stop, nothing is stored or logged as an error; one summary is logged."""
        first, second, late = (self.request(f"+155555500{i:02d}") for i in range(3))
        dispatches = [
            Deferred.fromCoroutine(self.flow.dispatch(r)) for r in (first, second)
        ]
        with capturedLogs() as events:
            self.flow.stop()
            # The store stays open here: only the flow keeps these from being stored.
            self.pbx.outcomes[0].callback(OwnerOutcome.NO_ANSWER)
            self.pbx.outcomes[1].errback(PbxError(Reason.PBX_UNAVAILABLE))
            self.wait(self.flow.dispatch(late))
            self.assertEqual(self.wait(self.flow.reconcile()), 0)
        for dispatched in dispatches:
            self.successResultOf(dispatched)
        self.assertEqual(
            [self.state(r)[0] for r in (first, second, late)],
            [S.RINGING_OWNER, S.RINGING_OWNER, S.RECEIVED],
        )
        self.assertEqual(len(self.pbx.originated), 2)
        self.assertEqual(
            [
                (e["log_level"], e.get("count"))
                for e in events
                if "Stopping" in e["log_format"]
            ],
            [(LogLevel.info, 2)],
        )
        self.assertEqual(
            [
                e
                for e in events
                if e["log_level"] in (LogLevel.error, LogLevel.critical)
            ],
            [],
        )

    def test_store_closed_while_running_is_an_error(self) -> None:
        """Only a stopping flow takes a closed store quietly; otherwise it is a bug."""
        request = self.request()

        async def closed(*args: object, **kwargs: object) -> CallRequest:
            raise StoreClosed("store: the store is closed")

        self.store.transition = closed  # type: ignore[method-assign]
        with capturedLogs() as events:
            dispatched = Deferred.fromCoroutine(self.flow.dispatch(request))
        # Raised to the caller (its background runner logs it), after dispatch
        # logged the failure and tried to mark the request failed.
        self.failureResultOf(dispatched, StoreClosed)
        self.assertEqual(len(self.flushLoggedErrors(StoreClosed)), 1)
        self.assertIn(
            "Dispatch of {request_id} failed",
            [e["log_format"] for e in events if e["log_level"] is LogLevel.critical],
        )
        self.assertEqual(self.pbx.originated, [])


class NewRequestTests(SynchronousTestCase):
    """new_request."""

    def test_decision_follows_confirmation_preference(self) -> None:
        """Confirmation required gives "confirm"; off gives "accept"."""
        request, event = new_request(
            JOHN, "+15555550123", "Mary", RequestSource.FORM, 5.0
        )
        self.assertEqual((request.decision, request.state), ("confirm", S.RECEIVED))
        self.assertEqual((event.state, event.at), (S.RECEIVED, 5.0))
        auto = attrs.evolve(
            JOHN,
            preferences=attrs.evolve(JOHN.preferences, confirmation_required=False),
        )
        request, _ = new_request(auto, "+15555550123", "Mary", RequestSource.FORM, 5.0)
        self.assertEqual(request.decision, "accept")
        self.assertRegex(request.id, r"^[0-9a-f]{16}$")
        self.assertGreaterEqual(len(request.token), 22)
