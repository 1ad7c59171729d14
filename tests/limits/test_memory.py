"""The in-process store: the shared contract, the sweep and the bucket invariant."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase, TestCase

from callnowd.limits.memory import SWEEP_EVERY, MemoryRateLimitStore
from callnowd.limits.ratelimit import (
    BucketCheck,
    DistinctCheck,
    KeyKind,
    LimitKey,
    Plan,
    Rate,
    Reason,
    Verdict,
    to_us,
)
from tests.limits.contract import T0, RateLimitStoreContract, bucket


class MemoryStoreContractTests(RateLimitStoreContract, TestCase):
    def make_store(self) -> MemoryRateLimitStore:
        return MemoryRateLimitStore()


class MemoryStoreTests(SynchronousTestCase):
    def test_sweep_forgets_idle_keys(self) -> None:
        """Buckets and sets that refilled or expired are dropped by the periodic sweep."""
        store = MemoryRateLimitStore()
        for i in range(100):
            key = LimitKey(KeyKind.IP, f"{i:x}")
            member = DistinctCheck(Reason.IP_DESTINATIONS, key, "m", 3, 3600.0)
            self.assertTrue(
                store.evaluate_now(Plan((bucket(key), member)), T0).verdict.allowed
            )
        self.assertEqual(len(store), 200)
        for _ in range(SWEEP_EVERY):
            store.evaluate_now(Plan(()), T0 + 4000)
        self.assertEqual(len(store), 0)

    @given(
        limit=st.integers(1, 10),
        period=st.integers(1, 3600),
        steps=st.lists(st.integers(0, 5_000_000), min_size=1, max_size=60),
    )
    def test_permits_bounded_by_capacity_plus_elapsed_rate(
        self, limit: int, period: int, steps: list[int]
    ) -> None:
        """In any stretch of time, permits <= capacity + elapsed x rate."""
        store = MemoryRateLimitStore()
        check = BucketCheck(Reason.IP, LimitKey(KeyKind.IP, "1"), Rate(limit, period))
        now_us = to_us(T0)
        granted: list[int] = []
        for step in steps:
            now_us += step
            if store.evaluate_now(Plan((check,)), now_us / 1e6).verdict.allowed:
                granted.append(to_us(now_us / 1e6))
        for i, start in enumerate(granted):
            for j in range(i, len(granted)):
                elapsed_s = (granted[j] - start) / 1e6
                self.assertLessEqual(j - i + 1, limit + elapsed_s * limit / period)
        # A fresh bucket always grants its first request.
        self.assertEqual(granted[0], to_us((to_us(T0) + steps[0]) / 1e6))


class _NaiveDistinct:
    """The distinct limit as first written: every live member scanned per check."""

    def __init__(self) -> None:
        self.members: dict[str, int] = {}

    def take(self, member: str, limit: int, window_us: int, now_us: int) -> int:
        """retry_after_us (0: allowed, and the member recorded)."""
        cutoff = now_us - window_us
        self.members = {m: t for m, t in self.members.items() if t > cutoff}
        if member in self.members or len(self.members) < limit:
            self.members[member] = now_us
            return 0
        return min(self.members.values()) + window_us - now_us


class MemoryDistinctTests(SynchronousTestCase):
    @given(
        limit=st.integers(1, 5),
        window=st.integers(1, 50),
        steps=st.lists(
            st.tuples(st.integers(-20, 30), st.sampled_from("abcdefgh")),
            min_size=1,
            max_size=80,
        ),
    )
    def test_same_answers_as_scanning_every_member(
        self, limit: int, window: int, steps: list[tuple[int, str]]
    ) -> None:
        """Distinct limits answer as a full scan of the members would (clock going back too)."""
        store = MemoryRateLimitStore()
        naive = _NaiveDistinct()
        key = LimitKey(KeyKind.IP, "1")
        now = T0
        for step, member in steps:
            now += step
            check = DistinctCheck(
                Reason.IP_DESTINATIONS, key, member, limit, float(window)
            )
            verdict = store.evaluate_now(Plan((check,)), now).verdict
            retry_us = naive.take(member, limit, to_us(float(window)), to_us(now))
            self.assertEqual(verdict.allowed, retry_us == 0)
            if retry_us:
                self.assertEqual(verdict.retry_after, retry_us / 1e6)

    def test_many_members_refreshed_and_expired_in_order(self) -> None:
        """Among thousands of members the oldest frees first; a refreshed one stays."""
        store = MemoryRateLimitStore()
        key = LimitKey(KeyKind.IP, "1")

        def take(member: str, at: float) -> Verdict:
            check = DistinctCheck(Reason.IP_DESTINATIONS, key, member, 3000, 10000.0)
            return store.evaluate_now(Plan((check,)), T0 + at).verdict

        for i in range(3000):
            self.assertTrue(take(f"m{i}", i).allowed)
        self.assertTrue(take("m0", 4000).allowed)  # refreshed: now the newest
        # m1 (seen at 1) is the oldest now: its place frees first.
        self.assertEqual(take("new", 5000).retry_after, 5001.0)
        self.assertFalse(take("new", 10000).allowed)
        self.assertTrue(take("new", 10001).allowed)
        self.assertFalse(take("other", 10001).allowed)
        self.assertTrue(take("other", 10002).allowed)
        # m0 still holds its place (seen at 4000), m2 has expired.
        self.assertEqual(take("late", 10002).retry_after, 1.0)


class MemorySweepPacingTests(SynchronousTestCase):
    def test_large_state_is_still_swept(self) -> None:
        """A sweep that kept many entries is followed by one that forgets expired ones."""
        store = MemoryRateLimitStore()
        n = 4 * SWEEP_EVERY
        for i in range(n):
            key = LimitKey(KeyKind.IP, f"{i:x}")
            store.evaluate_now(Plan((bucket(key),)), T0)
        self.assertEqual(len(store), n)  # swept meanwhile: all still live
        for _ in range(n):
            store.evaluate_now(Plan(()), T0 + 4000)
        self.assertEqual(len(store), 0)

    def test_sweep_waits_as_many_evaluations_as_entries_kept(self) -> None:
        """A sweep keeping many live entries is not repeated every SWEEP_EVERY."""
        store = MemoryRateLimitStore()
        n = 4 * SWEEP_EVERY
        for i in range(n):
            key = LimitKey(KeyKind.IP, f"{i:x}")
            store.evaluate_now(Plan((bucket(key),)), T0)
        # The last sweep (at evaluation 4 * SWEEP_EVERY - 1) kept about that
        # many entries, so nothing is swept for as many evaluations after it.
        for _ in range(SWEEP_EVERY):
            store.evaluate_now(Plan(()), T0 + 4000)
        self.assertEqual(len(store), n)
