"""Falling back to (or refusing without) Redis: with a fake primary, then a real one killed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from callnowd.limits.fallback import FallbackRateLimitStore, LimiterState
from callnowd.limits.limiter import Limiter, build_limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import (
    BlockInfo,
    KeyKind,
    LimitKey,
    Outcome,
    Plan,
    Reason,
    StoreUnavailable,
)
from callnowd.limits.settings import LimitSettings
from tests.limits.contract import DEST, ESCALATION, IP, T0, bucket
from tests.limits.test_limiter import SECRET, run
from tests.redis_server import SKIP_REASON, RedisServer


class FlakyStore(MemoryRateLimitStore):
    """An in-process store that can be switched off like an unreachable Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def _fail(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("Redis evaluate timed out after 0.25s")

    async def evaluate(self, plan: Plan, now: float) -> Outcome:
        self._fail()
        return await super().evaluate(plan, now)

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        self._fail()
        return await super().list_blocks(now)

    async def lift(self, key: LimitKey) -> bool:
        self._fail()
        return await super().lift(key)

    async def adopt_blocks(self, blocks: Sequence[BlockInfo], now: float) -> int:
        self._fail()
        return await super().adopt_blocks(blocks, now)

    async def refund(self, plan: Plan, now: float) -> None:
        self._fail()
        await super().refund(plan, now)

    async def ping(self) -> None:
        self._fail()


class FallbackTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.primary = FlakyStore()
        self.secondary = MemoryRateLimitStore()

    def store(self, refuse: bool = False) -> FallbackRateLimitStore:
        return FallbackRateLimitStore(
            self.primary, self.secondary, self.clock, refuse=refuse, retry_interval=1.0
        )

    def test_falls_back_logs_once_and_returns(self) -> None:
        """An outage is logged once; answers come from process memory; recovery is logged."""
        store = self.store()
        plan = Plan((bucket(limit=2),))
        self.assertTrue(run(store.evaluate(plan, T0)).verdict.allowed)
        self.primary.down = True
        with capturedLogs() as events:
            results = [run(store.evaluate(plan, T0)).verdict for _ in range(4)]
        self.assertEqual([v.allowed for v in results], [True, True, False, False])
        self.assertEqual(results[-1].reason, Reason.IP)
        self.assertEqual(len(events), 1)
        self.assertIn("unreachable", events[0]["log_format"])
        self.assertEqual(store.status(), LimiterState.FALLBACK)
        self.assertFalse(store.status().ready)
        # While down, Redis is not asked again until a ping is due.
        self.assertEqual(self.primary.calls, 2)
        self.primary.down = False
        with capturedLogs() as events:
            self.assertEqual(store.status(), LimiterState.FALLBACK)
            self.clock.advance(1.0)
            self.assertEqual(store.status(), LimiterState.REDIS_OK)
        self.assertEqual(len(events), 1)
        self.assertIn("reachable again", events[0]["log_format"])
        # Back on Redis, whose bucket still has one permit.
        self.assertTrue(run(store.evaluate(plan, T0)).verdict.allowed)
        self.assertFalse(run(store.evaluate(plan, T0)).verdict.allowed)
        self.assertEqual(store.outages, 1)

    def test_refunds_go_to_the_store_answering(self) -> None:
        """A refund reaches Redis while it answers, process memory while it is down."""
        store = self.store()
        plan = Plan((bucket(limit=1),))
        self.assertTrue(run(store.evaluate(plan, T0)).verdict.allowed)
        run(store.refund(plan, T0))
        self.assertTrue(run(store.evaluate(plan, T0)).verdict.allowed)  # in Redis
        self.primary.down = True
        self.assertTrue(run(store.evaluate(plan, T0)).verdict.allowed)  # fallback
        self.assertFalse(run(store.evaluate(plan, T0)).verdict.allowed)
        run(store.refund(plan, T0))
        self.assertTrue(run(store.evaluate(plan, T0)).verdict.allowed)
        # That refund stayed in process: Redis, back, still has its permit taken.
        self.primary.down = False
        self.clock.advance(1.0)
        self.assertEqual(store.status(), LimiterState.REDIS_OK)
        self.assertFalse(run(store.evaluate(plan, T0)).verdict.allowed)

    def test_a_refund_redis_cannot_take_is_an_outage(self) -> None:
        """Redis failing on a refund fails it and switches to the fallback."""
        store = self.store()
        plan = Plan((bucket(limit=1),))
        self.assertTrue(run(store.evaluate(plan, T0)).verdict.allowed)
        self.primary.down = True
        with capturedLogs():
            self.failureResultOf(
                Deferred.fromCoroutine(store.refund(plan, T0)), StoreUnavailable
            )
        self.assertEqual(store.status(), LimiterState.FALLBACK)

    def test_blocks_made_during_an_outage_hold_after_it(self) -> None:
        """A key blocked in process while Redis was down stays refused once it is back."""
        store = self.store()
        check = bucket(IP, limit=1, period=10)
        self.primary.down = True
        with capturedLogs():
            outcomes = [
                run(store.evaluate(Plan((check,), ESCALATION), T0)) for _ in range(4)
            ]
        (block,) = outcomes[-1].new_blocks
        self.assertEqual((block.key, block.until), (IP.name, T0 + 100))
        self.primary.down = False
        with capturedLogs():
            self.clock.advance(1.0)
            self.assertEqual(store.status(), LimiterState.REDIS_OK)
        # Copied to Redis, for the other daemons (with their since and until),
        # and refused by it; nothing is left in process.
        (shared,) = run(self.primary.list_blocks(T0 + 50))
        self.assertEqual(shared, block)
        self.assertEqual(run(self.secondary.list_blocks(T0 + 50)), [])
        verdict = run(store.evaluate(Plan((check,), ESCALATION), T0 + 50)).verdict
        self.assertEqual((verdict.allowed, verdict.reason), (False, Reason.BLOCKED))
        self.assertEqual(verdict.retry_after, 50.0)
        # Other keys go to Redis as usual; the block ends when it expires or is lifted.
        calls = self.primary.calls
        self.assertTrue(
            run(store.evaluate(Plan((bucket(DEST),)), T0 + 50)).verdict.allowed
        )
        self.assertEqual(self.primary.calls, calls + 1)
        self.assertTrue(run(self.primary.lift(IP)))  # as callnowctl does in Redis
        self.assertTrue(
            run(store.evaluate(Plan((check,), ESCALATION), T0 + 50)).verdict.allowed
        )

    def test_blocks_not_yet_copied_are_refused_here(self) -> None:
        """If the copy to Redis fails, the daemon still refuses the block, before Redis."""
        store = self.store()
        check = bucket(IP, limit=1, period=10)
        self.primary.down = True
        with capturedLogs():
            for _ in range(4):
                run(store.evaluate(Plan((check,), ESCALATION), T0))

        async def unreachable(blocks: Sequence[BlockInfo], now: float) -> int:
            raise StoreUnavailable("Redis adopt blocks timed out after 0.25s")

        self.primary.adopt_blocks = unreachable  # type: ignore[method-assign]
        self.primary.down = False
        with capturedLogs() as events:
            self.clock.advance(1.0)
            self.assertEqual(store.status(), LimiterState.REDIS_OK)  # a ping answered
        self.assertIn("Could not copy", events[-1]["log_format"])
        self.assertEqual(run(self.primary.list_blocks(T0 + 50)), [])
        calls = self.primary.calls
        verdict = run(store.evaluate(Plan((check,), ESCALATION), T0 + 50)).verdict
        self.assertEqual((verdict.allowed, verdict.reason), (False, Reason.BLOCKED))
        self.assertEqual(self.primary.calls, calls)  # refused before Redis

    def test_cancelled_check_is_not_an_outage(self) -> None:
        """A check cancelled because the visitor left keeps Redis in use."""
        store = self.store(refuse=True)
        gate: Deferred[None] = Deferred()

        async def slow(plan: Plan, now: float) -> Outcome:
            await gate
            raise AssertionError("not reached")

        self.primary.evaluate = slow  # type: ignore[method-assign]
        checking = Deferred.fromCoroutine(store.evaluate(Plan((bucket(),)), T0))
        with capturedLogs() as events:
            checking.cancel()
        self.failureResultOf(checking, CancelledError)
        self.assertEqual(events, [])
        self.assertEqual(store.status(), LimiterState.REDIS_OK)

    def test_refuse_mode_fails_closed(self) -> None:
        """With refuse, an outage refuses every request with reason `unavailable`."""
        store = self.store(refuse=True)
        self.primary.down = True
        with capturedLogs() as events:
            verdict = run(store.evaluate(Plan((bucket(),)), T0)).verdict
        self.assertEqual((verdict.allowed, verdict.reason), (False, Reason.UNAVAILABLE))
        self.assertEqual(verdict.retry_after, 1.0)
        self.assertIn("refusing every request", events[0]["action"])
        self.assertEqual(store.status(), LimiterState.REFUSING)

    def test_blocks_listing_needs_redis(self) -> None:
        """Listing or lifting blocks while Redis is down raises StoreUnavailable."""
        store = self.store()
        self.primary.down = True
        with capturedLogs():
            self.assertRaises(StoreUnavailable, run, store.list_blocks(T0))
            self.assertRaises(
                StoreUnavailable, run, store.lift(LimitKey.parse("ip:ab"))
            )


class LiveFallbackTests(TestCase):
    """A limiter on a real redis-server that is killed and restarted mid-test."""

    if SKIP_REASON:
        skip = SKIP_REASON

    def setUp(self) -> None:
        self.server = RedisServer()
        self.server.start()
        self.addCleanup(self.server.cleanup)

    def limiter(self, **changes: Any) -> Limiter:
        settings = attrs.evolve(
            LimitSettings(
                redis_url=f"redis://127.0.0.1:{self.server.port}",
                redis_retry_interval=0.1,
                redis_reconnect_max_delay=0.2,
                redis_connect_timeout=0.5,
            ),
            **changes,
        )
        limiter, service = build_limiter(settings, SECRET, reactor, reactor)
        self.addCleanup(service.stopService)
        return limiter

    async def sleep(self, seconds: float) -> None:
        await deferLater(reactor, seconds, lambda: None)

    async def restart_redis(self, limiter: Limiter) -> None:
        """Start the killed server again; wait until ``limiter`` uses it."""
        self.server.start()
        for _ in range(200):
            if limiter.status() is LimiterState.REDIS_OK:
                break
            await self.sleep(0.05)
        self.assertEqual(limiter.status(), LimiterState.REDIS_OK)

    async def test_redis_killed_then_back(self) -> None:
        """Killed Redis: answers in process within the timeout; restarted: back to Redis."""
        limiter = self.limiter(ip_limit=2)
        self.assertTrue(
            (await limiter.check("192.0.2.1", "l", "+12125551234", T0)).allowed
        )
        self.assertEqual(limiter.status(), LimiterState.REDIS_OK)
        self.server.kill()
        with capturedLogs() as events:
            verdicts = [
                await limiter.check("192.0.2.1", "l", "+12125551234", T0)
                for _ in range(3)
            ]
        # In process the IP starts afresh: 2 permits.
        self.assertEqual([v.allowed for v in verdicts], [True, True, False])
        self.assertEqual(limiter.status(), LimiterState.FALLBACK)
        self.assertEqual(
            len([e for e in events if "unreachable" in e["log_format"]]), 1
        )
        await self.restart_redis(limiter)
        # The restarted server (no persistence) starts empty: 2 permits, in Redis.
        verdicts = [
            await limiter.check("192.0.2.1", "l", "+12125551234", T0) for _ in range(3)
        ]
        self.assertEqual([v.allowed for v in verdicts], [True, True, False])
        self.assertIn(b"callnow:rl:ip:", self.server.command("KEYS", "callnow:rl:ip:*"))

    async def test_block_made_during_the_outage_holds_after_it(self) -> None:
        """An IP blocked in process while Redis was dead is still refused once it is back."""
        limiter = self.limiter(ip_limit=1, escalate_after=1)
        now = time.time()  # the copy to Redis compares with the daemon's clock
        self.server.kill()
        with capturedLogs():
            verdicts = [
                await limiter.check("192.0.2.1", "l", f"+1212555{n:04}", now)
                for n in range(4)
            ]
        self.assertEqual(verdicts[-1].reason, Reason.BLOCKED)
        await self.restart_redis(limiter)
        # The restarted server started empty: the block is copied to it.
        for _ in range(100):
            keys = self.server.command("KEYS", "callnow:rl:block:*")
            if b"callnow:rl:block:ip:" in keys:
                break
            await self.sleep(0.05)
        self.assertTrue(keys.startswith(b"*1\r\n"), keys)  # one block key
        self.assertIn(b"callnow:rl:block:ip:", keys)
        verdict = await limiter.check("192.0.2.1", "l", "+12125559999", now + 60)
        self.assertEqual((verdict.allowed, verdict.reason), (False, Reason.BLOCKED))
        other = await limiter.check("192.0.2.2", "l", "+12125559998", now + 60)
        self.assertTrue(other.allowed)

    async def test_refuse_when_redis_is_down(self) -> None:
        """Fail-closed: with Redis gone every request is refused as unavailable."""
        limiter = self.limiter(on_redis_down="refuse")
        self.server.kill()
        with capturedLogs():
            verdict = await limiter.check("192.0.2.1", "l", "+12125551234", T0)
        self.assertEqual(verdict.reason, Reason.UNAVAILABLE)
        self.assertEqual(limiter.status(), LimiterState.REFUSING)
        self.assertEqual(limiter.denials["unavailable"], 1)

    async def test_no_raw_value_in_any_redis_key(self) -> None:
        """Every key written holds HMACs: no number, range, IP or link id."""
        limiter = self.limiter(ip_limit=1, escalate_after=1)
        for _ in range(4):
            await limiter.check("203.0.113.7", "john_doe", "+12125551234", T0)
        reply = self.server.command("KEYS", "*").decode()
        keys = [line for line in reply.split("\r\n") if line.startswith("callnow:rl:")]
        # 7 limit states, then the IP's strikes and block (its denials were reset).
        self.assertEqual(len(keys), 9)
        self.assertIn(
            f"callnow:rl:block:{limiter.key(KeyKind.IP, '203.0.113.7').name}", keys
        )
        for raw in ("2125551234", "1212555", "203.0.113.7", "john_doe"):
            self.assertNotIn(raw, reply)
        (block,) = await limiter.list_blocks(T0)
        self.assertEqual(block.kind, KeyKind.IP)
