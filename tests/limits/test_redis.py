"""The Redis store against a real redis-server: the shared contract, NOSCRIPT, HMAC keys."""

from __future__ import annotations

import hashlib
from typing import Any

import hiredis
import txredisapi
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from callnowd.limits.ratelimit import (
    DistinctCheck,
    KeyKind,
    LimitKey,
    Plan,
    Reason,
    to_us,
)
from callnowd.limits.redis import (
    _EVALSHA,
    Encoded,
    RedisRateLimitStore,
    _RedisProtocol,
    connect_redis,
)
from callnowd.limits.redis_script import GCRA_SCRIPT
from callnowd.limits.settings import RedisAddress, parse_redis_url
from tests.limits.contract import (
    ESCALATION,
    T0,
    RateLimitStoreContract,
    bucket,
)
from tests.redis_server import SKIP_REASON, RedisServer


class RedisTestCase(TestCase):
    """Starts a redis-server per test and closes every connection afterwards."""

    if SKIP_REASON:
        skip = SKIP_REASON

    def setUp(self) -> None:
        self.server = RedisServer()
        self.server.start()
        self.addCleanup(self.server.cleanup)

    def connect(self) -> Any:
        connection = connect_redis(reactor, RedisAddress("127.0.0.1", self.server.port))
        self.addCleanup(connection.disconnect)
        return connection

    def redis_store(self, **kw: Any) -> RedisRateLimitStore:
        kw.setdefault("server_time", False)
        kw.setdefault("timeout", 2.0)
        return RedisRateLimitStore(self.connect(), reactor, **kw)


class RedisStoreContractTests(RateLimitStoreContract, RedisTestCase):
    def make_store(self) -> RedisRateLimitStore:
        return self.redis_store()


class RedisStoreTests(RedisTestCase):
    async def test_noscript_recovery(self) -> None:
        """After SCRIPT FLUSH the cached EVALSHA fails with NOSCRIPT and EVAL recovers."""
        store = self.redis_store()
        self.assertTrue((await store.evaluate(Plan((bucket(),)), T0)).verdict.allowed)
        self.assertTrue((await store.evaluate(Plan((bucket(),)), T0)).verdict.allowed)
        self.assertEqual(self.server.command("SCRIPT", "FLUSH"), b"+OK\r\n")
        outcome = await store.evaluate(Plan((bucket(),)), T0)
        self.assertTrue(outcome.verdict.allowed)
        self.assertFalse((await store.evaluate(Plan((bucket(),)), T0)).verdict.allowed)
        stats = self.server.command("INFO", "commandstats").decode()
        evalsha = next(
            line for line in stats.splitlines() if line.startswith("cmdstat_evalsha")
        )
        evals = next(
            line for line in stats.splitlines() if line.startswith("cmdstat_eval:")
        )
        # One EVALSHA was refused (NOSCRIPT); EVAL ran twice: first use and recovery.
        self.assertIn("failed_calls=1", evalsha)
        self.assertIn("calls=2,", evals)

    async def test_server_time(self) -> None:
        """With server_time the passed `now` is ignored and Redis TIME drives the bucket."""
        store = self.redis_store(server_time=True)
        for now in (0.0, 5.0, -100.0):
            self.assertTrue(
                (
                    await store.evaluate(Plan((bucket(period=3600),)), now)
                ).verdict.allowed
            )
        verdict = (await store.evaluate(Plan((bucket(period=3600),)), 10.0**9)).verdict
        self.assertEqual(verdict.reason, Reason.IP)
        assert verdict.retry_after is not None
        self.assertTrue(1100 < verdict.retry_after <= 1200)

    async def test_refund_in_server_time(self) -> None:
        """With server_time a refund is timed by Redis TIME, as the evaluation was."""
        store = self.redis_store(server_time=True)
        plan = Plan((bucket(limit=2, period=3600),))
        for _ in range(2):
            self.assertTrue((await store.evaluate(plan, 0.0)).verdict.allowed)
        self.assertFalse((await store.evaluate(plan, 0.0)).verdict.allowed)
        # A `now` centuries ahead, which would empty the bucket if it were used.
        await store.refund(plan, 10.0**10)
        self.assertTrue((await store.evaluate(plan, 0.0)).verdict.allowed)
        self.assertFalse((await store.evaluate(plan, 0.0)).verdict.allowed)

    def test_parse_url(self) -> None:
        """redis:// and rediss:// URLs give host, port, db, credentials and TLS."""
        self.assertEqual(
            parse_redis_url("redis://r.example"), RedisAddress("r.example")
        )
        address = parse_redis_url("rediss://u:p%40ss@10.0.0.1:6380/2")
        self.assertEqual(
            (
                address.host,
                address.port,
                address.db,
                address.username,
                address.password,
                address.tls,
            ),
            ("10.0.0.1", 6380, 2, "u", "p@ss", True),
        )
        self.assertNotIn("p@ss", repr(address))
        for bad in ("http://x", "redis://", "redis://h/x", "redis://h:99999"):
            self.assertRaises(ValueError, parse_redis_url, bad)


class CommandEncodingTests(SynchronousTestCase):
    def test_commands_are_txredisapis(self) -> None:
        """The cheaper encoder writes txredisapi's bytes for every argument type."""
        args: tuple[object, ...] = (
            "EVALSHA",
            "0123abcd" * 5,
            22,
            b"callnow:rl:block:ip:ab",
            b"",
            "é\tx",
            3.5,
            bytearray(b"raw"),
            b"\r\n$*" * 100,
        )
        ours = _RedisProtocol()._build_command(*args)
        theirs = txredisapi.BaseRedisProtocol()._build_command(*args)
        self.assertEqual(ours, theirs)
        self.assertTrue(ours.startswith(b"*9\r\n$7\r\nEVALSHA\r\n"))


class EncodedCommandTests(SynchronousTestCase):
    def plan(self) -> Plan:
        ip = LimitKey(KeyKind.IP, "a1")
        dest = LimitKey(KeyKind.DESTINATION, "b2")
        return Plan(
            (
                bucket(ip),
                DistinctCheck(Reason.IP_DESTINATIONS, ip, "b2", 3, 3600.0),
                bucket(dest, limit=2, period=60.0),
            ),
            ESCALATION,
        )

    def test_evaluation_is_one_resp_command(self) -> None:
        """The kept pieces make txredisapi's bytes for EVALSHA sha nkeys keys argv."""
        store = RedisRateLimitStore(None, Clock(), prefix="p", server_time=False)
        plan = self.plan()
        for _ in range(2):  # built, then from the kept pieces
            count, body = store.encode(plan, plan.identities(), T0)
            command = b"*%d\r\n" % (count + 2) + _EVALSHA + body
            reader = hiredis.Reader()
            reader.feed(command)
            args = reader.gets()
            self.assertEqual(reader.gets(), False)  # nothing left over
            self.assertEqual(
                args[:3],
                [
                    b"EVALSHA",
                    hashlib.sha1(GCRA_SCRIPT.encode(), usedforsecurity=False)
                    .hexdigest()
                    .encode(),
                    b"9",
                ],
            )
            self.assertEqual(
                args[3:12],
                [
                    b"p:block:ip:a1",
                    b"p:strikes:ip:a1",
                    b"p:denials:ip:a1",
                    b"p:block:destination:b2",
                    b"p:strikes:destination:b2",
                    b"p:denials:destination:b2",
                    b"p:ip:a1",
                    b"p:ip_destinations:a1",
                    b"p:destination_short:b2",
                ],
            )
            fields = args[12].decode().split("\t")
            self.assertEqual(fields[:3], [str(to_us(T0)), "2", "3"])
            self.assertEqual(fields[-1], "")  # every argument ends with a tab
            self.assertEqual(len(args), count + 2)
            self.assertEqual(
                txredisapi.BaseRedisProtocol()._build_command(*args), command
            )

    def test_encoded_commands_are_sent_as_they_are(self) -> None:
        """An Encoded command is written unchanged."""
        command = Encoded(b"*1\r\n$4\r\nPING\r\n")
        self.assertIs(_RedisProtocol()._build_command(command), command)

    def test_replies_are_parsed_by_hiredis(self) -> None:
        """The protocol the store uses parses replies with hiredis."""
        self.assertTrue(issubclass(_RedisProtocol, txredisapi.HiredisProtocol))
        self.assertIsInstance(_RedisProtocol()._reader, hiredis.Reader)
