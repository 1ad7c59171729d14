"""Limits under stress on the real daemon: Redis killed mid-attack, operator blocks.

The Redis test runs a real ``redis-server`` (:mod:`tests.redis_server`) as the
daemon's ``[limits] redis_url`` and kills it with SIGKILL. The blocks test gets
one client address blocked by escalation and lifts it with ``callnowctl``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from callnowd.limits.ratelimit import KeyKind, limit_key
from tests.integration.attack_case import AttackCase
from tests.redis_server import SKIP_REASON, RedisServer, free_port


class RedisOutageTests(AttackCase):
    """The daemon keeps answering, and limiting, while Redis is down."""

    skip = SKIP_REASON

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        answer = await self.http("GET", "/readyz", "127.0.0.1")
        document: dict[str, Any] = json.loads(answer.body)
        return answer.code, document

    async def burst(self, phone: str, first_ip: int) -> list[int]:
        """Four requests for ``phone``, each from its own address."""
        codes = []
        for i in range(first_ip, first_ip + 4):
            answer = await self.one_step("victim", phone, "Mary", f"198.51.100.{i}")
            codes.append(answer.code)
        return codes

    async def test_redis_killed_and_restarted(self) -> None:
        """Limits move to the process when Redis dies, and back when it returns."""
        redis = RedisServer()
        redis.start()
        self.addCleanup(redis.cleanup)
        await self.start(
            limits={
                "redis_url": f"redis://127.0.0.1:{redis.port}/0",
                "redis_timeout": 0.5,
                "redis_retry_interval": 0.2,
                "redis_reconnect_max_delay": 0.5,
            },
            calls={"max_in_flight_per_extension": 20},
        )
        code, ready = await self.readyz()
        self.assertEqual((code, ready["checks"]["limits"]), (200, "redis ok"))
        # Three per number per 6 h, counted in Redis.
        self.assertEqual(await self.burst("+14155550181", 1), [303, 303, 303, 429])
        self.assertIn(b"callnow:rl:", redis.command("KEYS", "callnow:rl:*"))

        redis.kill()
        # Still answered, still limited: the in-process fallback counts afresh.
        self.assertEqual(await self.burst("+14155550182", 11), [303, 303, 303, 429])
        code, ready = await self.readyz()
        # Not ready (503): limits are not where they are configured to be.
        self.assertEqual(code, 503)
        self.assertEqual(ready["checks"]["limits"], "fallback: in-process")
        self.assertTrue(self.daemon.alive())

        redis.start()
        waited = 0.0
        while ready["checks"]["limits"] != "redis ok":
            self.assertLess(waited, 20.0, ready)
            await deferLater(reactor, 0.2)
            waited += 0.2
            code, ready = await self.readyz()
        self.assertEqual(code, 200)
        self.assertEqual(await self.burst("+14155550183", 21), [303, 303, 303, 429])
        # The restarted (empty) Redis holds the limits again.
        self.assertIn(b"callnow:rl:", redis.command("KEYS", "callnow:rl:*"))


class OperatorBlockTests(AttackCase):
    """An address blocked by escalation, listed and lifted with callnowctl."""

    async def test_block_list_lift(self) -> None:
        """Escalation blocks the IP; blocks list shows its key; lift lets it through."""
        metrics_port = free_port()
        await self.start(
            # One request per address per 5 s; the second denial blocks it.
            limits={"ip_limit": 1, "ip_period": 5.0, "escalate_after": 1},
            metrics={"listen": f"tcp:{metrics_port}:interface=127.0.0.1"},
            calls={"max_in_flight_per_extension": 20},
        )
        attacker = "203.0.113.66"
        answers = []
        allowed_at = time.monotonic()
        for n in range(4):
            answer = await self.one_step("victim", f"+1415555019{n}", "Mary", attacker)
            answers.append((answer.code, answer.header("retry-after")))
        self.assertEqual([code for code, _ in answers], [303, 429, 429, 429])
        blocked_for = answers[-1][1]
        assert blocked_for is not None
        self.assertGreater(int(blocked_for), 3600)  # the 24 h block, not the 5 s

        secret = (self.daemon.workdir / "secret.key").read_bytes()
        key = limit_key(secret, KeyKind.IP, attacker).name
        listed = await deferToThread(self.daemon.ctl, "blocks", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual(listed.stdout.split("\t")[:2], [key, "ip"])
        self.assertNotIn(attacker, listed.stdout)

        lifted = await deferToThread(
            self.daemon.ctl, "blocks", "lift", "--ip", attacker
        )
        self.assertEqual(lifted.returncode, 0, lifted.stderr)
        self.assertEqual(lifted.stdout.strip(), f"lifted {key}")
        listed = await deferToThread(self.daemon.ctl, "blocks", "list")
        self.assertEqual(listed.stdout.strip(), "(no blocks)")

        # Its own bucket (one per 5 s) still applies: wait until it has room
        # (asking earlier would be a new denial), then one request passes.
        await deferLater(reactor, max(0.0, allowed_at + 5.5 - time.monotonic()))
        answer = await self.one_step("victim", "+14155550199", "Mary", attacker)
        self.assertEqual(answer.code, 303, answer.body)


def script_calls(redis: RedisServer) -> int:
    """Lua script runs (EVAL + EVALSHA) Redis has served."""
    text = redis.command("INFO", "commandstats").decode()
    found = re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", text)
    return sum(int(n) for n in found)


class RedisBlockTests(AttackCase):
    """With Redis, a blocked flood is answered from memory; a lift still works."""

    skip = SKIP_REASON

    async def test_lifted_in_redis_within_the_ttl(self) -> None:
        """A block lifted in Redis by callnowctl is honoured within the ttl.

        The daemon answered the blocked flood from memory meanwhile.
        """
        redis = RedisServer()
        redis.start()
        self.addCleanup(redis.cleanup)
        ttl = 1.0
        await self.start(
            limits={
                "redis_url": f"redis://127.0.0.1:{redis.port}/0",
                "ip_limit": 1,
                "ip_period": 5.0,
                "escalate_after": 1,
                "blocked_answer_ttl": ttl,
            },
            calls={"max_in_flight_per_extension": 20},
        )
        attacker = "203.0.113.77"
        allowed_at = time.monotonic()
        codes = []
        for n in range(3):
            answer = await self.one_step("victim", f"+1415555018{n}", "Mary", attacker)
            codes.append(answer.code)
        self.assertEqual(codes, [303, 429, 429])  # the second denial blocked it
        # The same request again and again: one Redis evaluation per ttl at most.
        before, started = script_calls(redis), time.monotonic()
        flood = [
            await self.one_step("victim", "+14155550182", "Mary", attacker)
            for _ in range(10)
        ]
        elapsed = time.monotonic() - started
        self.assertEqual({a.code for a in flood}, {429})
        waits = {int(a.header("retry-after") or 0) for a in flood}
        self.assertLessEqual(max(waits) - min(waits), 1)
        self.assertGreater(min(waits), 3600)  # the 24 h block
        self.assertLessEqual(script_calls(redis) - before, 1 + int(elapsed / ttl))

        # Lifted in Redis itself (the daemon is not asked).
        lifted = await deferToThread(
            self.daemon.ctl, "blocks", "lift", "--ip", attacker, "--via", "redis"
        )
        self.assertEqual(lifted.returncode, 0, lifted.stderr)
        # Past the IP's own bucket (one per 5 s) and the ttl: let through.
        wait = max(allowed_at + 5.5, time.monotonic() + ttl) - time.monotonic()
        await deferLater(reactor, wait)
        answer = await self.one_step("victim", "+14155550182", "Mary", attacker)
        self.assertEqual(answer.code, 303, answer.body)
