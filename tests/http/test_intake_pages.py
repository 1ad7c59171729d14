"""The public pages with the rules engine, busy detection and destination policy."""

from __future__ import annotations

from datetime import time
from urllib.parse import urlencode

from twisted.internet.defer import Deferred

from callnowd.models import RequestState, Window
from callnowd.rules.callers import Action, NumberKind, NumberPattern, RuleSpec
from tests.http.helpers import PagesCase, extension


class DestinationTests(PagesCase):
    """Numbers the destination policy refuses."""

    def one_step(self, phone: str) -> tuple[int, dict[str, str], str]:
        query = urlencode({"call": "john", "myname": "Mary", "phone": phone})
        return self.get(f"/callnow/index.php?{query}")

    def test_refused_numbers_are_told_and_stored(self) -> None:
        """Premium, other-region, satellite and emergency numbers: 400, stored rejected."""
        self.add(extension(image_validation=False))
        cases = {
            "+19005551234": "number_type_refused:PREMIUM_RATE",
            "+18765551234": "region_not_allowed",
            "+881612345678": "non_geographic",
            "911": "emergency",
            "9111": "emergency",
            "+44 909 879 0000": "region_not_allowed",
        }
        for phone, reason in cases.items():
            code, _, body = self.one_step(phone)
            self.assertEqual(code, 400, phone)
            self.assertIn('id="phone-error"', body, phone)
            self.assertIn("cannot", body, phone)
            digits = ("+" if phone.startswith("+") else "") + "".join(
                c for c in phone if c.isdigit()
            )
            stored = [r for r in self.store.requests.values() if r.phone == digits]
            self.assertEqual(len(stored), 1, (phone, reason))
            self.assertEqual(stored[0].state, RequestState.REJECTED)
            self.assertEqual(stored[0].reason, "destination_refused")
            self.assertEqual(stored[0].decided_by, f"destination_policy:{reason}")
        self.assertEqual(
            {r.state for r in self.store.requests.values()}, {RequestState.REJECTED}
        )

    def test_not_a_number(self) -> None:
        """Something that is no phone number at all is a field error, not stored."""
        self.add(extension(image_validation=False))
        code, _, body = self.one_step("+1 212 555 01")
        self.assertEqual(code, 400)
        self.assertIn("not a valid phone number", body)
        self.assertEqual(self.store.requests, {})


class RulesTests(PagesCase):
    """Decisions of the rules engine on the request path."""

    url = "/callnow/index.php?call=john&myname=Mary&phone=%2B12015550123"

    def rule(self, spec: RuleSpec) -> None:
        number = next(iter(self.store.extensions))
        self.successResultOf(
            Deferred.fromCoroutine(self.store.add_rule(number, spec, 1.0))
        )

    def test_reject_rule(self) -> None:
        """A reject rule stores a rejected request with the rule; the visitor sees 404."""
        self.add(extension(image_validation=False))
        self.rule(
            RuleSpec(Action.REJECT, number=NumberPattern(NumberKind.PREFIX, "+1201"))
        )
        code, _, body = self.get(self.url)
        self.assertEqual(code, 404)
        self.assertIn("This link is not available", body)
        (request,) = self.store.requests.values()
        self.assertEqual(
            (request.state, request.reason), (RequestState.REJECTED, "caller_rule")
        )
        self.assertTrue((request.decided_by or "").startswith("rule:"))

    def test_accept_rule(self) -> None:
        """An accept rule decides "accept" (no confirmation) even when it is required."""
        self.add(extension(image_validation=False, confirmation_required=True))
        self.rule(RuleSpec(Action.ACCEPT, name_glob="mary*"))
        self.assertEqual(self.get(self.url)[0], 303)
        (request,) = self.store.requests.values()
        self.assertEqual(
            (request.state, request.decision), (RequestState.RECEIVED, "accept")
        )

    def test_busy_owner(self) -> None:
        """With "reject while on the phone", a busy owner means rejected (busy)."""
        self.add(extension(image_validation=False, reject_when_busy=True))
        self.presence.busy = True
        self.assertEqual(self.get(self.url)[0], 404)
        (request,) = self.store.requests.values()
        self.assertEqual(request.reason, "busy")
        self.assertEqual(self.presence.asked, ["PJSIP/001002"])

    def test_busy_not_asked_unless_enabled(self) -> None:
        """Without the preference the PBX is not even asked."""
        self.add(extension(image_validation=False))
        self.presence.busy = True
        self.assertEqual(self.get(self.url)[0], 303)
        self.assertEqual(self.presence.asked, [])


class HoursTests(PagesCase):
    """The owner's hours on the not-available page, when he shows them."""

    def test_hours_shown_only_when_enabled(self) -> None:
        """Outside hours the page lists them if the owner allows it, else stays uniform."""
        sunday = Window(frozenset({6}), time(10, 0), time(12, 0))
        self.add(
            extension(
                "shown", availability_enabled=True, windows=(sunday,), show_hours=True
            )
        )
        self.add(extension("hidden", availability_enabled=True, windows=(sunday,)))
        code, _, shown = self.get("/callnow/shown")
        self.assertEqual(code, 404)
        self.assertIn("Sun 10:00-12:00 (America/New_York time)", shown)
        self.assertIn("Next available: Sunday 29 November, 10:00", shown)
        code, _, hidden = self.get("/callnow/hidden")
        self.assertEqual(code, 404)
        self.assertNotIn("Sun 10:00", hidden)
        self.assertEqual(hidden, self.get("/callnow/nobody")[2])
