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
