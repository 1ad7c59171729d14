"""The policy: which limits a request consumes, escalation, blocks, keys and counters."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import attrs
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from callnowd.limits.fallback import LimiterState
from callnowd.limits.limiter import Limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import KeyKind, Reason, Verdict, limit_key
from callnowd.limits.settings import LimitSettings

T = TypeVar("T")
T0 = 1_700_000_000.0
SECRET = b"k" * 32
NUMBER = "+12125551234"

LOOSE = LimitSettings(
    ip_limit=1000,
    ip_destinations=1000,
    link_limit=1000,
    destination_short_limit=1000,
    destination_long_limit=1000,
    range_limit=1000,
    global_limit=1000,
    not_found_limit=1000,
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that completes at once (the in-process store never waits)."""
    d: Deferred[T] = Deferred.fromCoroutine(coro)
    results: list[T] = []
    failures: list[Failure] = []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    return results[0]


class LimiterTests(SynchronousTestCase):
    def limiter(self, settings: LimitSettings = LOOSE, **changes: Any) -> Limiter:
        self.store = MemoryRateLimitStore()
        return Limiter(self.store, attrs.evolve(settings, **changes), SECRET)

    def check(
        self,
        limiter: Limiter,
        ip: str = "198.51.100.1",
        link: str = "link1",
        number: str = NUMBER,
        now: float = T0,
    ) -> Verdict:
        return run(limiter.check(ip, link, number, now))

    def test_defaults_follow_the_threat_model(self) -> None:
        """The shipped defaults are the figures of THREATS.md section 2."""
        s = LimitSettings()
        self.assertEqual((s.ip_limit, s.ip_period), (5, 900.0))
        self.assertEqual((s.ip_destinations, s.ip_destinations_window), (3, 3600.0))
        self.assertEqual((s.link_limit, s.link_period), (20, 3600.0))
        self.assertEqual(
            (s.destination_short_limit, s.destination_short_period), (3, 21600.0)
        )
        self.assertEqual(
            (s.destination_long_limit, s.destination_long_period), (5, 86400.0)
        )
        self.assertEqual(
            (s.global_limit / s.global_period, s.redis_timeout), (10.0, 0.25)
        )
        self.assertEqual(
            (s.block_seconds, s.on_redis_down, s.redis_url), (86400.0, "fallback", "")
        )

    def test_per_ip(self) -> None:
        """Five requests per IP at once, the sixth waits 180 s; another IP is unaffected."""
        limiter = self.limiter(ip_limit=5)
        for i in range(5):
            self.assertTrue(self.check(limiter, number=f"+1212555000{i}").allowed)
        verdict = self.check(limiter, number="+12125550009")
        self.assertEqual((verdict.reason, verdict.retry_after), (Reason.IP, 180.0))
        self.assertTrue(self.check(limiter, ip="198.51.100.2").allowed)

    def test_distinct_destinations_per_ip(self) -> None:
        """A fourth different number within the hour is refused; a known one is not."""
        limiter = self.limiter(ip_destinations=3)
        for i in range(3):
            self.assertTrue(
                self.check(limiter, number=f"+1212555000{i}", now=T0 + i).allowed
            )
        verdict = self.check(limiter, number="+12125550009", now=T0 + 10)
        self.assertEqual(
            (verdict.reason, verdict.retry_after), (Reason.IP_DESTINATIONS, 3590.0)
        )
        self.assertTrue(self.check(limiter, number="+12125550001", now=T0 + 10).allowed)
        self.assertTrue(
            self.check(limiter, number="+12125550009", now=T0 + 3600).allowed
        )

    def test_per_link(self) -> None:
        """A link takes 20 requests at once, from anywhere."""
        limiter = self.limiter(link_limit=20)
        for i in range(20):
            self.assertTrue(
                self.check(
                    limiter, ip=f"198.51.100.{i}", number=f"+121255501{i:02}"
                ).allowed
            )
        self.assertEqual(self.check(limiter, ip="192.0.2.1").reason, Reason.LINK)
        self.assertTrue(self.check(limiter, ip="192.0.2.1", link="link2").allowed)

    def test_per_destination_short_and_long(self) -> None:
        """Three requests to one number at once, then one every 2 h; the 24 h limit caps the rest."""
        limiter = self.limiter(destination_short_limit=3, destination_long_limit=5)
        ips = iter(f"198.51.100.{i}" for i in range(100))
        for _ in range(3):
            self.assertTrue(self.check(limiter, ip=next(ips)).allowed)
        verdict = self.check(limiter, ip=next(ips))
        self.assertEqual(
            (verdict.reason, verdict.retry_after), (Reason.DESTINATION_SHORT, 7200.0)
        )
        self.assertTrue(self.check(limiter, ip=next(ips), now=T0 + 7200).allowed)
        # The 24 h limit alone: 5 at once, then one every 24 h / 5.
        limiter = self.limiter(destination_long_limit=5)
        for _ in range(5):
            self.assertTrue(self.check(limiter, ip=next(ips)).allowed)
        verdict = self.check(limiter, ip=next(ips), now=T0 + 80)
        self.assertEqual(verdict.reason, Reason.DESTINATION_LONG)
        self.assertEqual(verdict.retry_after, 86400 / 5 - 80)

    def test_per_range(self) -> None:
        """Numbers sharing all but the last 4 digits share the range limit."""
        limiter = self.limiter(range_limit=2)
        self.assertTrue(self.check(limiter, number="+12125550001").allowed)
        self.assertTrue(self.check(limiter, number="+12125559999").allowed)
        self.assertEqual(
            self.check(limiter, number="+12125551234").reason, Reason.RANGE
        )
        self.assertTrue(self.check(limiter, number="+12125561234").allowed)
        self.assertEqual(limiter.range_of("+12125551234"), "+1212555")

    def test_global_ceiling(self) -> None:
        """Burst 50 then 10 per second across everyone."""
        limiter = self.limiter(global_limit=50, global_period=5.0)
        for i in range(50):
            self.assertTrue(self.check(limiter, ip=f"10.0.{i}.1").allowed)
        verdict = self.check(limiter, ip="10.1.0.1")
        self.assertEqual((verdict.reason, verdict.retry_after), (Reason.GLOBAL, 0.1))

    def test_denied_requests_do_not_burn_a_victims_quota(self) -> None:
        """An attacker refused by their own IP limit leaves the victim's number untouched."""
        limiter = self.limiter(ip_limit=1, destination_short_limit=3)
        self.check(limiter, ip="203.0.113.66", number="+12025550100")
        for _ in range(20):
            # Refused (and, after 10 refusals, blocked), never charged elsewhere.
            reason = self.check(limiter, ip="203.0.113.66").reason
            self.assertIn(reason, (Reason.IP, Reason.BLOCKED))
        for i in range(3):
            self.assertTrue(self.check(limiter, ip=f"198.51.100.{i}").allowed)

    def test_ipv6_is_limited_per_network(self) -> None:
        """Addresses of one /64 share a bucket; IPv4-mapped addresses are IPv4."""
        limiter = self.limiter(ip_limit=1)
        self.assertTrue(self.check(limiter, ip="2001:db8:1:2::1").allowed)
        self.assertEqual(
            self.check(limiter, ip="2001:db8:1:2:ffff::9").reason, Reason.IP
        )
        self.assertTrue(self.check(limiter, ip="2001:db8:1:3::1").allowed)
        self.assertTrue(self.check(limiter, ip="192.0.2.5").allowed)
        self.assertEqual(self.check(limiter, ip="::ffff:192.0.2.5").reason, Reason.IP)

    def test_keys_are_hmacs(self) -> None:
        """No check of a plan carries the raw number, range, IP or link id."""
        limiter = self.limiter()
        plan = limiter.plan("203.0.113.7", "john_doe", NUMBER)
        text = repr(plan)
        for raw in ("2125551234", "1212555", "203.0.113.7", "john_doe"):
            self.assertNotIn(raw, text)
        expected = limit_key(SECRET, KeyKind.DESTINATION, NUMBER)
        self.assertIn(expected, [c.key for c in plan.checks])
        other = Limiter(self.store, LOOSE, b"another secret")
        self.assertNotEqual(other.key(KeyKind.DESTINATION, NUMBER), expected)

    def test_404s_escalate_to_a_block_then_a_permanent_one(self) -> None:
        """A scanner hitting unknown links is limited, blocked for 24 h, then for good."""
        limiter = self.limiter(not_found_limit=10, escalate_after=3)
        ip = "203.0.113.9"
        for _ in range(10):
            self.assertTrue(run(limiter.check_404(ip, T0)).allowed)
        reasons = [run(limiter.check_404(ip, T0)).reason for _ in range(5)]
        self.assertEqual(reasons, [Reason.NOT_FOUND] * 4 + [Reason.BLOCKED])
        verdict = self.check(limiter, ip=ip, now=T0 + 60)
        self.assertEqual(
            (verdict.reason, verdict.retry_after), (Reason.BLOCKED, 86400.0 - 60)
        )
        (block,) = run(limiter.list_blocks(T0 + 60))
        self.assertEqual(
            (block.key, block.reason, block.until),
            (verdict.key, Reason.NOT_FOUND, T0 + 86400),
        )
        self.assertEqual(block.key, limiter.key(KeyKind.IP, ip).name)
        later = T0 + 86400
        self.assertTrue(self.check(limiter, ip=ip, now=later).allowed)
        for _ in range(14):
            run(limiter.check_404(ip, later))
        (block,) = run(limiter.list_blocks(later + 10**7))
        self.assertTrue(block.permanent)
        self.assertEqual(limiter.blocks, {"ip": 2})
        self.assertTrue(run(limiter.lift(block.key)))
        self.assertTrue(self.check(limiter, ip=ip, now=later + 10**7).allowed)
        self.assertRaises(ValueError, run, limiter.lift("no-such-key"))

    def test_counters_per_reason(self) -> None:
        """Refusals are tallied per reason, also in a prometheus registry when given."""
        registry = CollectorRegistry()
        limiter = Limiter(
            MemoryRateLimitStore(),
            attrs.evolve(LOOSE, ip_limit=1),
            SECRET,
            registry=registry,
        )
        self.check(limiter)
        self.check(limiter)
        self.check(limiter)
        self.assertEqual((limiter.allowed, dict(limiter.denials)), (1, {"ip": 2}))
        value = registry.get_sample_value(
            "callnow_rate_limited_total", {"reason": "ip"}
        )
        self.assertEqual(value, 2.0)

    def test_status_without_redis(self) -> None:
        """Without Redis the in-process limiter is the embedded default, and ready."""
        limiter = self.limiter()
        self.assertEqual(limiter.status(), LimiterState.IN_PROCESS)
        self.assertTrue(limiter.status().ready)
