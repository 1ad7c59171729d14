"""Contract tests every RateLimitStore passes: the in-process one and real Redis."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, gatherResults

from callnowd.limits.ratelimit import (
    BlockInfo,
    BucketCheck,
    DistinctCheck,
    Escalation,
    KeyKind,
    LimitKey,
    Outcome,
    Plan,
    Rate,
    RateLimitStore,
    Reason,
)

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object

T0 = 1_700_000_000.0
IP = LimitKey(KeyKind.IP, "a1")
DEST = LimitKey(KeyKind.DESTINATION, "b2")
LINK = LimitKey(KeyKind.LINK, "c3")

ESCALATION = Escalation(
    kinds=frozenset({KeyKind.IP, KeyKind.DESTINATION}),
    after=2,
    window=60.0,
    block_seconds=100.0,
    memory=1000.0,
)


def bucket(key: LimitKey = IP, limit: int = 3, period: float = 30.0) -> BucketCheck:
    reason = {KeyKind.IP: Reason.IP, KeyKind.LINK: Reason.LINK}.get(
        key.kind, Reason.DESTINATION_SHORT
    )
    return BucketCheck(reason, key, Rate(limit, period))


def distinct(member: str, limit: int = 3, window: float = 3600.0) -> DistinctCheck:
    return DistinctCheck(Reason.IP_DESTINATIONS, IP, member, limit, window)


class RateLimitStoreContract(ABC, _Base):
    """Mixed into a trial TestCase; ``make_store`` gives a fresh, empty store."""

    store: RateLimitStore

    @abstractmethod
    def make_store(self) -> RateLimitStore: ...

    async def take(
        self,
        now: float,
        *checks: BucketCheck | DistinctCheck,
        esc: Escalation | None = None,
    ) -> Outcome:
        return await self.make_store_once().evaluate(Plan(checks, esc), now)

    def make_store_once(self) -> RateLimitStore:
        if not hasattr(self, "store"):
            self.store = self.make_store()
        return self.store

    async def test_adopted_blocks_refuse_and_never_replace(self) -> None:
        """Blocks made elsewhere are recorded as they are, unless ended or held here."""
        store = self.make_store_once()
        temporary = BlockInfo(IP.name, KeyKind.IP, Reason.IP, T0, T0 + 100, 1)
        permanent = BlockInfo(
            DEST.name, KeyKind.DESTINATION, Reason.DESTINATION_SHORT, T0, None, 2
        )
        ended = BlockInfo(LINK.name, KeyKind.LINK, Reason.LINK, T0 - 200, T0 - 100, 1)
        added = await store.adopt_blocks([temporary, permanent, ended], T0 + 10)
        self.assertEqual(added, 2)
        listed = await store.list_blocks(T0 + 10)
        self.assertEqual(
            sorted(listed, key=lambda b: b.key),
            sorted([temporary, permanent], key=lambda b: b.key),
        )
        verdict = (await self.take(T0 + 10, bucket(IP))).verdict
        self.assertEqual((verdict.reason, verdict.retry_after), (Reason.BLOCKED, 90.0))
        verdict = (await self.take(T0 + 10, bucket(DEST))).verdict
        self.assertEqual((verdict.reason, verdict.retry_after), (Reason.BLOCKED, None))
        self.assertTrue((await self.take(T0 + 10, bucket(LINK))).verdict.allowed)
        # Blocked here already: that block stays as it is.
        longer = BlockInfo(IP.name, KeyKind.IP, Reason.IP, T0 + 5, T0 + 500, 1)
        self.assertEqual(await store.adopt_blocks([longer], T0 + 10), 0)
        self.assertTrue((await self.take(T0 + 100, bucket(IP))).verdict.allowed)

    async def test_burst_then_deny(self) -> None:
        """After `limit` takes at one instant the next is denied with its retry_after."""
        for _ in range(3):
            self.assertTrue((await self.take(T0, bucket())).verdict.allowed)
        verdict = (await self.take(T0, bucket())).verdict
        self.assertFalse(verdict.allowed)
        self.assertEqual(verdict.reason, Reason.IP)
        self.assertEqual(verdict.retry_after, 10.0)
        self.assertEqual(verdict.key, IP.name)

    async def give_back(self, now: float, *checks: BucketCheck | DistinctCheck) -> None:
        await self.make_store_once().refund(Plan(checks, None), now)

    async def test_refund_gives_back_one_request(self) -> None:
        """A refunded permit can be taken again; only one per refund."""
        checks = (bucket(IP), bucket(DEST, limit=2))
        for _ in range(2):
            self.assertTrue((await self.take(T0, *checks)).verdict.allowed)
        self.assertFalse((await self.take(T0, *checks)).verdict.allowed)
        await self.give_back(T0 + 1, *checks)
        self.assertTrue((await self.take(T0 + 1, *checks)).verdict.allowed)
        denied = (await self.take(T0 + 1, *checks)).verdict
        self.assertEqual(
            (denied.allowed, denied.reason, denied.retry_after),
            (False, Reason.DESTINATION_SHORT, 14.0),
        )

    async def test_refund_never_fills_beyond_capacity(self) -> None:
        """Refunds of permits not taken, or taken long ago, add nothing."""
        await self.give_back(T0, bucket())  # nothing taken yet
        self.assertTrue((await self.take(T0, bucket())).verdict.allowed)
        await self.give_back(T0, bucket())
        await self.give_back(T0, bucket())  # one more than was taken
        results = [(await self.take(T0, bucket())).verdict.allowed for _ in range(4)]
        self.assertEqual(results, [True, True, True, False])
        await self.give_back(T0 + 100, bucket())  # long refilled
        results = [
            (await self.take(T0 + 100, bucket())).verdict.allowed for _ in range(4)
        ]
        self.assertEqual(results, [True, True, True, False])

    async def test_refund_keeps_distinct_members(self) -> None:
        """A distinct set still counts the member of a refunded request."""
        self.assertTrue((await self.take(T0, distinct("m1", limit=1))).verdict.allowed)
        await self.give_back(T0, distinct("m1", limit=1))
        self.assertFalse((await self.take(T0, distinct("m2", limit=1))).verdict.allowed)
        self.assertTrue((await self.take(T0, distinct("m1", limit=1))).verdict.allowed)

    async def test_refill_over_time(self) -> None:
        """One permit returns every period/limit seconds; a full burst after `period`."""
        for _ in range(3):
            await self.take(T0, bucket())
        self.assertFalse((await self.take(T0 + 9.999, bucket())).verdict.allowed)
        self.assertTrue((await self.take(T0 + 10, bucket())).verdict.allowed)
        denied = (await self.take(T0 + 10, bucket())).verdict
        self.assertEqual(denied.retry_after, 10.0)
        results = [
            (await self.take(T0 + 40, bucket())).verdict.allowed for _ in range(4)
        ]
        self.assertEqual(results, [True, True, True, False])

    async def test_permits_bounded_by_capacity_plus_elapsed_rate(self) -> None:
        """Granted permits never exceed capacity + elapsed x rate (examples)."""
        rate = Rate(4, 20.0)
        times = [
            T0 + x
            for x in (
                0,
                0,
                1,
                2,
                3,
                4.9,
                5,
                5,
                7.5,
                10,
                10.1,
                12,
                15,
                30,
                30,
                30,
                30,
                31,
            )
        ]
        granted: list[float] = []
        for now in times:
            if (await self.take(now, BucketCheck(Reason.IP, IP, rate))).verdict.allowed:
                granted.append(now)
        for i, start in enumerate(granted):
            for j in range(i, len(granted)):
                elapsed = granted[j] - start
                self.assertTrue(
                    j - i + 1 <= rate.limit + elapsed * rate.limit / rate.period
                )
        # 4 at once, then one every 5 s (at 5, 10, 15), then 3 at 30 (refilled).
        self.assertEqual(len(granted), 10)

    async def test_denied_request_consumes_nothing(self) -> None:
        """When one check denies, no other check of the plan is charged."""
        await self.take(T0, bucket(IP, limit=1))
        for _ in range(5):
            outcome = await self.take(
                T0, bucket(IP, limit=1), bucket(DEST, limit=2), distinct("m1", limit=1)
            )
            self.assertEqual(outcome.verdict.reason, Reason.IP)
        self.assertTrue((await self.take(T0, bucket(DEST, limit=2))).verdict.allowed)
        self.assertTrue((await self.take(T0, bucket(DEST, limit=2))).verdict.allowed)
        self.assertTrue((await self.take(T0, distinct("m9", limit=1))).verdict.allowed)

    async def test_longest_retry_after_is_reported(self) -> None:
        """With two denying limits the verdict names the one that lasts longer."""
        await self.take(
            T0, bucket(IP, limit=1, period=10), bucket(DEST, limit=1, period=50)
        )
        verdict = (
            await self.take(
                T0 + 1, bucket(IP, limit=1, period=10), bucket(DEST, limit=1, period=50)
            )
        ).verdict
        self.assertEqual(
            (verdict.reason, verdict.retry_after), (Reason.DESTINATION_SHORT, 49.0)
        )

    async def test_distinct_members(self) -> None:
        """At most `limit` distinct members per window; known members always pass."""
        for i, member in enumerate(("m1", "m2", "m3")):
            self.assertTrue((await self.take(T0 + i, distinct(member))).verdict.allowed)
        verdict = (await self.take(T0 + 100, distinct("m4"))).verdict
        self.assertEqual(
            (verdict.reason, verdict.retry_after), (Reason.IP_DESTINATIONS, 3500.0)
        )
        self.assertTrue((await self.take(T0 + 100, distinct("m2"))).verdict.allowed)
        self.assertFalse((await self.take(T0 + 3599.5, distinct("m4"))).verdict.allowed)
        self.assertTrue((await self.take(T0 + 3600, distinct("m4"))).verdict.allowed)
        # m2 was seen again at T0+100, so it still holds a place.
        self.assertFalse((await self.take(T0 + 3601, distinct("m5"))).verdict.allowed)

    async def test_concurrent_calls_are_atomic(self) -> None:
        """Many simultaneous evaluations grant exactly the capacity."""
        store = self.make_store_once()
        plan = Plan((bucket(limit=5, period=60), bucket(DEST, limit=7, period=60)))
        results = await gatherResults(
            [Deferred.fromCoroutine(store.evaluate(plan, T0)) for _ in range(25)]
        )
        self.assertEqual(sum(o.verdict.allowed for o in results), 5)
        self.assertTrue(
            (await self.take(T0, bucket(DEST, limit=7, period=60))).verdict.allowed
        )
        self.assertTrue(
            (await self.take(T0, bucket(DEST, limit=7, period=60))).verdict.allowed
        )
        self.assertFalse(
            (await self.take(T0, bucket(DEST, limit=7, period=60))).verdict.allowed
        )

    async def test_escalation_blocks_for_a_while_then_for_good(self) -> None:
        """Denials beyond `after` block the key; a second block is permanent."""
        check = bucket(IP, limit=1, period=10)
        await self.take(T0, check, esc=ESCALATION)
        for _ in range(2):
            outcome = await self.take(T0, check, esc=ESCALATION)
            self.assertEqual(
                (outcome.verdict.reason, outcome.new_blocks), (Reason.IP, ())
            )
        outcome = await self.take(T0, check, esc=ESCALATION)
        (block,) = outcome.new_blocks
        self.assertEqual(
            (block.key, block.kind, block.reason), (IP.name, KeyKind.IP, Reason.IP)
        )
        self.assertEqual((block.since, block.until, block.strikes), (T0, T0 + 100, 1))
        verdict = (
            await self.take(T0 + 50, check, bucket(DEST), esc=ESCALATION)
        ).verdict
        self.assertEqual(
            (verdict.reason, verdict.retry_after, verdict.key),
            (Reason.BLOCKED, 50.0, IP.name),
        )
        # The destination was not charged by the blocked request.
        for _ in range(3):
            self.assertTrue((await self.take(T0 + 50, bucket(DEST))).verdict.allowed)
        self.assertEqual(
            [b.key for b in await self.store.list_blocks(T0 + 50)], [IP.name]
        )
        self.assertEqual(await self.store.list_blocks(T0 + 100), [])
        self.assertTrue(
            (await self.take(T0 + 100, check, esc=ESCALATION)).verdict.allowed
        )
        for _ in range(2):
            await self.take(T0 + 100, check, esc=ESCALATION)
        (block,) = (await self.take(T0 + 100, check, esc=ESCALATION)).new_blocks
        self.assertEqual((block.until, block.strikes), (None, 2))
        verdict = (await self.take(T0 + 10_000, check, esc=ESCALATION)).verdict
        self.assertEqual((verdict.reason, verdict.retry_after), (Reason.BLOCKED, None))
        (listed,) = await self.store.list_blocks(T0 + 10_000)
        self.assertTrue(listed.permanent)
        self.assertTrue(await self.store.lift(IP))
        self.assertFalse(await self.store.lift(IP))
        self.assertEqual(await self.store.list_blocks(T0 + 10_000), [])
        self.assertTrue(
            (await self.take(T0 + 10_000, check, esc=ESCALATION)).verdict.allowed
        )

    async def test_strikes_are_forgotten_after_memory(self) -> None:
        """A block long after the previous one (beyond `memory`) is temporary again."""
        check = bucket(IP, limit=1, period=10)
        for now in (T0, T0 + 2000):
            blocks: list[BlockInfo] = []
            for _ in range(4):
                blocks += (await self.take(now, check, esc=ESCALATION)).new_blocks
            (block,) = blocks
            self.assertEqual(block.strikes, 1)

    async def test_kinds_outside_escalation_are_never_blocked(self) -> None:
        """A link key that keeps hitting its limit is denied but never blocked."""
        check = bucket(LINK, limit=1)
        for _ in range(10):
            outcome = await self.take(T0, check, esc=ESCALATION)
        self.assertEqual(
            (outcome.verdict.reason, outcome.new_blocks), (Reason.LINK, ())
        )
        self.assertEqual(await self.store.list_blocks(T0), [])

    async def test_ping(self) -> None:
        """A working store answers ping."""
        await self.make_store_once().ping()
        self.assertTrue((await self.take(T0, bucket())).verdict.allowed)
