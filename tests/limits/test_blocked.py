"""Remembered "blocked" answers: exact in one process, bounded in time with Redis."""

from __future__ import annotations

from typing import Any

import attrs
from prometheus_client import CollectorRegistry
from twisted.trial.unittest import SynchronousTestCase

from callnowd.limits.blocked import BlockedAnswers
from callnowd.limits.limiter import Limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import KeyKind, LimitKey, Outcome, Plan, Reason, Verdict
from callnowd.limits.settings import LimitSettings
from tests.limits.test_limiter import LOOSE, NUMBER, SECRET, T0, run

IP = "203.0.113.66"
BLOCKED = Verdict(False, Reason.BLOCKED, 100.0, "ip:ab")


def blocked_at(verdict: Verdict, later: float) -> Verdict:
    """``verdict`` as it reads ``later`` seconds after it was given."""
    assert verdict.retry_after is not None
    return attrs.evolve(verdict, retry_after=verdict.retry_after - later)


class CountingStore(MemoryRateLimitStore):
    """The in-process store, counting the evaluations it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.evaluations = 0

    async def evaluate(self, plan: Plan, now: float) -> Outcome:
        self.evaluations += 1
        return await super().evaluate(plan, now)


class BlockedAnswersTests(SynchronousTestCase):
    def test_a_block_is_answered_until_it_ends(self) -> None:
        """The verdict comes back with the wait left, and not once the block ended."""
        answers = BlockedAnswers(ttl=None)
        answers.remember("r", BLOCKED, T0)
        self.assertEqual(
            answers.get("r", T0 + 40), Verdict(False, Reason.BLOCKED, 60.0, "ip:ab")
        )
        self.assertIsNone(answers.get("r", T0 + 100))
        self.assertEqual(len(answers), 0)
        self.assertIsNone(answers.get("other", T0))

    def test_a_permanent_block_is_answered_until_cleared(self) -> None:
        """A block without an end stays; clear() forgets it."""
        answers = BlockedAnswers(ttl=None)
        answers.remember("r", Verdict(False, Reason.BLOCKED, None, "ip:ab"), T0)
        self.assertEqual(
            answers.get("r", T0 + 10**8), Verdict(False, Reason.BLOCKED, None, "ip:ab")
        )
        answers.clear()
        self.assertIsNone(answers.get("r", T0 + 10**8))

    def test_ttl_bounds_how_long_an_answer_is_trusted(self) -> None:
        """With a ttl the store is asked again ttl seconds after it answered."""
        answers = BlockedAnswers(ttl=1.0)
        answers.remember("r", BLOCKED, T0)
        self.assertIsNotNone(answers.get("r", T0 + 0.999))
        self.assertIsNone(answers.get("r", T0 + 1.0))

    def test_only_blocks_are_remembered(self) -> None:
        """A limit's denial records a strike each time, so it is never skipped."""
        answers = BlockedAnswers(ttl=None)
        answers.remember("a", Verdict(True), T0)
        answers.remember("b", Verdict(False, Reason.IP, 10.0, "ip:ab"), T0)
        answers.remember("c", Verdict(False, Reason.UNAVAILABLE, 1.0), T0)
        answers.remember("d", Verdict(False, Reason.BLOCKED, 0.0, "ip:ab"), T0)
        self.assertEqual(len(answers), 0)
        BlockedAnswers(ttl=0.0).remember("e", BLOCKED, T0)

    def test_size_is_bounded(self) -> None:
        """The oldest answers make room for new ones."""
        answers = BlockedAnswers(ttl=None, size=3)
        for i in range(5):
            answers.remember(i, BLOCKED, T0)
        self.assertEqual(len(answers), 3)
        self.assertIsNone(answers.get(0, T0))
        self.assertIsNotNone(answers.get(4, T0))


class LimiterBlockedTests(SynchronousTestCase):
    def limiter(self, ttl: float | None = None, **changes: Any) -> Limiter:
        self.store = CountingStore()
        settings: LimitSettings = attrs.evolve(
            LOOSE, destination_short_limit=1, escalate_after=2, **changes
        )
        self.registry = CollectorRegistry()
        self.settings = settings
        return Limiter(
            self.store, settings, SECRET, registry=self.registry, blocked_ttl=ttl
        )

    def flood(self, limiter: Limiter, n: int, now: float = T0) -> list[Verdict]:
        return [run(limiter.check(IP, "link1", NUMBER, now)) for _ in range(n)]

    def block(self, limiter: Limiter) -> Verdict:
        """Spend the number's bucket and get it blocked; the first blocked verdict."""
        verdicts = self.flood(limiter, 5)
        short = Reason.DESTINATION_SHORT
        self.assertEqual(
            [v.reason for v in verdicts], [None, short, short, short, Reason.BLOCKED]
        )
        return verdicts[-1]

    def test_a_blocked_request_is_answered_without_the_store(self) -> None:
        """Once blocked, the same request gets the store's verdict from memory."""
        limiter = self.limiter()
        first = self.block(limiter)
        asked = self.store.evaluations
        later = self.flood(limiter, 5, T0 + 30)
        self.assertEqual(self.store.evaluations, asked)
        expected = blocked_at(first, 30)
        self.assertEqual(later, [expected] * 5)
        # The store, asked directly, says the same.
        plan = limiter.plan(IP, "link1", NUMBER)
        self.assertEqual(run(self.store.evaluate(plan, T0 + 30)).verdict, expected)

    def test_remembered_answers_are_counted(self) -> None:
        """Denials answered from memory appear in the tallies and metrics."""
        limiter = self.limiter()
        self.block(limiter)
        self.flood(limiter, 3)
        self.assertEqual(limiter.denials["blocked"], 4)  # one from the store
        self.assertEqual(
            self.registry.get_sample_value(
                "callnow_rate_limited_total", {"reason": "blocked"}
            ),
            4.0,
        )

    def test_a_lift_takes_effect_at_once(self) -> None:
        """Lifting the block (the operator endpoint) lets the next request through."""
        limiter = self.limiter()
        blocked = self.block(limiter)
        assert blocked.key is not None
        self.assertTrue(run(limiter.lift(blocked.key)))
        verdict = run(limiter.check(IP, "link1", NUMBER, T0 + 21600))
        self.assertTrue(verdict.allowed)

    def test_a_new_block_outranks_a_remembered_one(self) -> None:
        """When another key of the request gets a longer block, that is the answer."""
        limiter = self.limiter(not_found_limit=1)
        blocked = self.block(limiter)
        self.assertEqual(self.flood(limiter, 1, T0 + 100), [blocked_at(blocked, 100)])
        # Later the visitor's IP is blocked too (for unknown links), until later.
        reasons = [run(limiter.check_404(IP, T0 + 100)).reason for _ in range(5)]
        self.assertEqual(reasons[-1], Reason.BLOCKED)
        ip_key = limiter.key(KeyKind.IP, IP).name
        verdict = self.flood(limiter, 1, T0 + 101)[0]
        self.assertEqual(verdict, Verdict(False, Reason.BLOCKED, 86399.0, ip_key))

    def test_with_a_ttl_the_store_is_asked_again(self) -> None:
        """With Redis (a ttl) a block lifted elsewhere is seen within the ttl."""
        limiter = self.limiter(ttl=1.0)
        blocked = self.block(limiter)
        assert blocked.key is not None
        asked = self.store.evaluations
        self.flood(limiter, 3, T0 + 0.5)
        self.assertEqual(self.store.evaluations, asked)
        # Lifted in the store behind the limiter's back (callnowctl, another daemon).
        run(self.store.lift(LimitKey.parse(blocked.key)))
        self.assertEqual(self.flood(limiter, 1, T0 + 0.9)[0].reason, Reason.BLOCKED)
        verdict = self.flood(limiter, 1, T0 + 21600)[0]
        self.assertTrue(verdict.allowed)

    def test_ttl_zero_always_asks_the_store(self) -> None:
        """blocked_answer_ttl = 0 remembers nothing."""
        limiter = self.limiter(ttl=0.0)
        self.block(limiter)
        asked = self.store.evaluations
        self.flood(limiter, 3)
        self.assertEqual(self.store.evaluations, asked + 3)

    def test_404_blocks_are_remembered(self) -> None:
        """A client blocked for unknown links is answered from memory too."""
        limiter = self.limiter(not_found_limit=1)
        reasons = [run(limiter.check_404(IP, T0)).reason for _ in range(5)]
        self.assertEqual(reasons, [None] + [Reason.NOT_FOUND] * 3 + [Reason.BLOCKED])
        asked = self.store.evaluations
        self.assertEqual(run(limiter.check_404(IP, T0)).reason, Reason.BLOCKED)
        self.assertEqual(self.store.evaluations, asked)

    def test_keys_are_the_same_when_remembered(self) -> None:
        """The key map gives the same HMACs as computing them afresh."""
        limiter = self.limiter()
        fresh = Limiter(MemoryRateLimitStore(), self.settings, SECRET)
        for _ in range(2):
            self.assertEqual(
                limiter.plan(IP, "link1", NUMBER), fresh.plan(IP, "link1", NUMBER)
            )
        self.assertEqual(
            limiter.key(KeyKind.IP, "2001:db8::1"), fresh.key(KeyKind.IP, "2001:db8::2")
        )
