"""new_request records the rules' decision; rejected requests start rejected."""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.requests import (
    new_id_and_token,
    new_request,
    new_request_id,
    new_token,
)
from callnowd.models import Extension, Preferences, RequestSource, RequestState
from callnowd.rules.callers import (
    Action,
    CallerRule,
    NumberKind,
    NumberPattern,
    RuleSpec,
)
from callnowd.rules.engine import decide_for_request
from tests.fakes import MemoryStore

S = RequestState
JOHN = Extension(
    number="100",
    display_name="John",
    external_number="+12125550100",
    dial_string="PJSIP/100",
    timezone="Europe/London",
    preferences=Preferences(callnow_id="john"),
)
REJECT_UK = CallerRule(
    5, 1, RuleSpec(Action.REJECT, NumberPattern(NumberKind.PREFIX, "+44")), 0.0
)
ACCEPT_MARY = CallerRule(6, 2, RuleSpec(Action.ACCEPT, name_glob="mary"), 0.0)


class NewRequestDecisionTests(SynchronousTestCase):
    """new_request with a Decision from decide_for_request."""

    def test_rule_accept(self) -> None:
        """An accept rule gives decision accept, decided by the rule, state received."""
        decision = decide_for_request(
            JOHN, (REJECT_UK, ACCEPT_MARY), "+15555550123", "Mary", False, 10.0
        )
        request, event = new_request(
            JOHN, "+15555550123", "Mary", RequestSource.API, 10.0, decision=decision
        )
        self.assertEqual(
            (request.state, request.decision, request.decided_by, request.reason),
            (S.RECEIVED, "accept", "rule:6", None),
        )
        self.assertEqual(
            (event.state, event.reason, event.detail), (S.RECEIVED, None, "api")
        )

    def test_rule_reject_starts_rejected_with_reason(self) -> None:
        """A reject rule gives a request created rejected, reason and rule recorded."""
        decision = decide_for_request(
            JOHN, (REJECT_UK, ACCEPT_MARY), "+442079460000", "Mary", False, 10.0
        )
        request, event = new_request(
            JOHN, "+442079460000", "Mary", RequestSource.FORM, 10.0, decision=decision
        )
        self.assertEqual(
            (request.state, request.decision, request.decided_by, request.reason),
            (S.REJECTED, "reject", "rule:5", "caller_rule"),
        )
        self.assertEqual(
            (event.state, event.reason, event.at, event.request_id),
            (S.REJECTED, "caller_rule", 10.0, request.id),
        )

    def test_busy_reject_is_stored_and_never_dispatchable(self) -> None:
        """A busy rejection is stored with one rejected event and is not received."""
        busy_john = attrs.evolve(
            JOHN, preferences=attrs.evolve(JOHN.preferences, reject_when_busy=True)
        )
        decision = decide_for_request(busy_john, (), "+15555550123", "Mary", True, 10.0)
        request, event = new_request(
            busy_john,
            "+15555550123",
            "Mary",
            RequestSource.FORM,
            10.0,
            decision=decision,
        )
        store = MemoryStore()
        Deferred.fromCoroutine(store.add_extension(busy_john))
        stored, created = self.successResultOf(
            Deferred.fromCoroutine(store.create_request(request, event))
        )
        self.assertTrue(created)
        self.assertEqual((stored.state, stored.reason), (S.REJECTED, "busy"))
        self.assertEqual(store.events, [event])
        received = self.successResultOf(
            Deferred.fromCoroutine(store.list_requests(states=(S.RECEIVED,)))
        )
        self.assertEqual(received, [])

    def test_without_decision_preferences_decide(self) -> None:
        """With no decision given, the preferences alone decide (name required here)."""
        request, event = new_request(
            JOHN, "+15555550123", None, RequestSource.FORM, 1.0
        )
        self.assertEqual(
            (request.state, request.reason, request.decided_by),
            (S.REJECTED, "name_required", "ask_name"),
        )
        self.assertEqual(event.reason, "name_required")


class IdentifierTests(SynchronousTestCase):
    """Request ids and status tokens: their shape, and unrelated to each other."""

    def test_id_and_token_have_the_shapes_of_their_functions(self) -> None:
        """16 hex digits (AMI/AGI-safe), and 22 URL-safe characters (128 bits)."""
        for _ in range(50):
            request_id, token = new_id_and_token()
            self.assertRegex(request_id, r"\A[0-9a-f]{16}\Z")
            self.assertRegex(token, r"\A[A-Za-z0-9_-]{22}\Z")
            self.assertRegex(new_request_id(), r"\A[0-9a-f]{16}\Z")
            self.assertRegex(new_token(), r"\A[A-Za-z0-9_-]{22}\Z")

    def test_new_requests_get_distinct_ids_and_tokens(self) -> None:
        """Every new request has its own id and token."""
        made = [
            new_request(JOHN, "+15555550123", None, RequestSource.FORM, 0.0)[0]
            for _ in range(200)
        ]
        self.assertEqual(len({r.id for r in made}), 200)
        self.assertEqual(len({r.token for r in made}), 200)
