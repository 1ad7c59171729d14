"""Attacks on the real daemon: call-bombing, toll-fraud destinations, range pumping.

Each test starts its own daemon and simulator (:class:`AttackCase`), plays the
attacker over HTTP with one client address per request (``X-Forwarded-For``),
and counts what reached the PBX: the Originate actions the simulator received.
Wire-level injection is in ``test_attacks_injection``; Redis outages and the
operator's blocks in ``test_attacks_limits``.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, gatherResults

from tests.integration.attack_case import Answer, AttackCase

VICTIM = "+13125550199"


class CallBombingTests(AttackCase):
    """One victim number, requested from many addresses at once."""

    async def test_fifty_addresses_one_victim(self) -> None:
        """Fifty clients get three requests through, 47 get 429 with Retry-After."""
        await self.start()
        answers: list[Answer] = await gatherResults(
            [
                Deferred.fromCoroutine(
                    self.one_step("victim", VICTIM, "Mary", f"198.51.100.{i}")
                )
                for i in range(1, 51)
            ]
        )
        codes = sorted(a.code for a in answers)
        self.assertEqual(codes, [303] * 3 + [429] * 47)
        for answer in answers:
            if answer.code == 429:
                retry = answer.header("retry-after")
                assert retry is not None
                self.assertGreater(int(retry), 0)
                self.assertIn("Too many call requests", answer.body)
        locations = {a.header("location") for a in answers if a.code == 303}
        for location in locations:
            assert location is not None
            await self.final(location)
        originates = self.originates()
        self.assertGreaterEqual(len(originates), 1)
        self.assertLessEqual(len(originates), 3)
        stored = self.stored("SELECT id FROM call_requests WHERE phone = ?", VICTIM)
        self.assertLessEqual(len(stored), 3)
        dialled = {
            v.removeprefix("CALLNOW_REQUEST=")
            for o in originates
            for v in o.get_all("Variable")
        }
        self.assertLessEqual(dialled, {row[0] for row in stored})


# Numbers the destination policy must refuse with home region US, and why.
REFUSED = {
    "+19005550123": "premium rate (+1 900)",
    "+19002001234": "premium rate (+1 900)",
    "+449090000000": "UK premium rate (+44 909)",
    "+881612345678": "satellite (+881, region 001)",
    "+18765551234": "Jamaica (+1 876): another region",
    "911": "emergency",
    "112": "emergency",
    "9111": "connects to emergency",
}


class DestinationPolicyTests(AttackCase):
    """Toll-fraud and emergency destinations are refused before any limit or dial."""

    async def test_refused_destinations(self) -> None:
        """Each is a 400 saying it cannot be called, stored rejected, never dialled."""
        await self.start()
        attempts = 0
        for number in REFUSED:
            for how in (self.one_step, self.form):
                attempts += 1
                answer = await how("victim", number, "Mary", f"203.0.113.{attempts}")
                self.assertEqual(answer.code, 400, (number, REFUSED[number]))
                self.assertRegex(
                    answer.body,
                    "cannot be called|cannot call emergency numbers",
                    number,
                )
        # A good request afterwards: once it is final, anything the refused ones
        # could have dialled would have been dialled before it.
        good = await self.one_step("victim", VICTIM, "Mary", "203.0.113.200")
        self.assertEqual(good.code, 303)
        location = good.header("location")
        assert location is not None
        await self.final(location)
        rows = self.stored(
            "SELECT id, phone, state, decided_by FROM call_requests ORDER BY created_at"
        )
        refused = [r for r in rows if r[1] != VICTIM]
        self.assertEqual(len(refused), attempts)
        self.assertEqual({r[2] for r in refused}, {"rejected"})
        self.assertTrue(
            all(str(r[3]).startswith("destination_policy:") for r in refused), rows
        )
        self.assertEqual({r[1] for r in refused}, set(REFUSED))
        originates = self.originates()
        good_id = next(r[0] for r in rows if r[1] == VICTIM)
        self.assertEqual(
            [o.get_all("Variable") for o in originates],
            [[f"CALLNOW_REQUEST={good_id}"]],
        )


class RangePumpingTests(AttackCase):
    """Sequential numbers of one range, each from its own address."""

    async def test_range_limit(self) -> None:
        """With range_limit 5, five of fifteen numbers in +1 212 555 pass; five dial."""
        # No in-flight cap below the range limit: every request let through dials.
        await self.start(
            limits={"range_limit": 5}, calls={"max_in_flight_per_extension": 20}
        )
        numbers = [f"+1212555{n:04d}" for n in range(100, 115)]
        answers: list[Answer] = await gatherResults(
            [
                Deferred.fromCoroutine(
                    self.one_step("victim", number, "Mary", f"192.0.2.{i}")
                )
                for i, number in enumerate(numbers, start=1)
            ]
        )
        codes = sorted(a.code for a in answers)
        self.assertEqual(codes, [303] * 5 + [429] * 10)
        self.assertTrue(all(a.header("retry-after") for a in answers if a.code == 429))
        for answer in answers:
            location = answer.header("location")
            if location is not None:
                await self.final(location)
        originates = self.originates()
        self.assertEqual(len(originates), 5)
        stored = self.stored(
            "SELECT phone FROM call_requests WHERE phone LIKE '+1212555%'"
        )
        self.assertEqual(len(stored), 5)
