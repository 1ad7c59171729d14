"""``callnowctl blocks``: parsing, the daemon path in process (StubTreq), addresses."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from callnowd.cli import build_parser
from callnowd.cli_blocks import BlocksCliError, admin_url, format_blocks, run
from callnowd.config import Config
from callnowd.http.admin import AdminPages, mount_admin
from callnowd.limits.ratelimit import BlockInfo, KeyKind, Reason
from callnowd.metrics import Metrics
from tests.http.test_admin import NOW, SECRET, SETTINGS, blocked_limiter

VICTIM = "+12125550199"


class BlocksCommandTests(SynchronousTestCase):
    """``blocks list`` and ``blocks lift`` against the daemon's admin pages."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW + 1)
        self.limiter = blocked_limiter(self.clock, "203.0.113.7")
        # The victim's number got itself blocked too (a call-bombing run).
        for i in range(12):
            d = Deferred.fromCoroutine(
                self.limiter.check(f"198.51.100.{i}", "john", VICTIM, NOW)
            )
            self.successResultOf(d)
        root = Metrics().resource()
        mount_admin(root, AdminPages(self.limiter, self.clock))
        self.http: Any = StubTreq(root)
        self.base_dir = Path(self.mktemp())
        (self.base_dir / "var").mkdir(parents=True)
        (self.base_dir / "var" / "secret.key").write_bytes(SECRET)
        self.config = attrs.evolve(Config(path=Path()), limits=SETTINGS)

    def parse(self, *argv: str) -> argparse.Namespace:
        return build_parser().parse_args(
            ["blocks", *argv, "--admin-url", "http://127.0.0.1:9108"]
        )

    def run_ok(self, *argv: str) -> str:
        coro = run(
            self.parse(*argv),
            self.config,
            self.clock,
            now=NOW + 2,
            base_dir=self.base_dir,
            http=self.http,
        )
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def run_fails(self, *argv: str, http: Any = None) -> str:
        coro = run(
            self.parse(*argv),
            self.config,
            self.clock,
            now=NOW + 2,
            base_dir=self.base_dir,
            http=http or self.http,
        )
        failure = self.failureResultOf(Deferred.fromCoroutine(coro), BlocksCliError)
        return str(failure.value)

    def key(self, kind: KeyKind, value: str) -> str:
        return self.limiter.key(kind, value).name

    def test_list(self) -> None:
        """Both blocks are listed by key, reason and times; no number, no address."""
        out = self.run_ok("list")
        lines = out.splitlines()
        self.assertEqual(len(lines), 2)
        self.assertIn(self.key(KeyKind.IP, "203.0.113.7") + "\tip\t", out)
        self.assertIn(
            self.key(KeyKind.DESTINATION, VICTIM) + "\tdestination_short\t", out
        )
        self.assertIn("until 2027-01-16T08:00:00Z\tstrikes 1", lines[0])
        self.assertNotIn("203.0.113", out)
        self.assertNotIn("2125550199", out)

    def test_lift_by_key_ip_and_number(self) -> None:
        """Lift takes the listed key, --ip or --number; each lifts only its block."""
        ip_key = self.key(KeyKind.IP, "203.0.113.7")
        self.assertEqual(self.run_ok("lift", "--ip", "203.0.113.7"), f"lifted {ip_key}")
        victim_key = self.key(KeyKind.DESTINATION, VICTIM)
        self.assertEqual(
            self.run_ok("lift", "--number", "+1 212-555-0199"), f"lifted {victim_key}"
        )
        self.assertEqual(self.run_ok("list"), "(no blocks)")

    def test_lift_by_listed_key(self) -> None:
        """The key as printed by list is accepted as is."""
        key = self.run_ok("list").splitlines()[0].split("\t")[0]
        self.assertEqual(self.run_ok("lift", key), f"lifted {key}")
        self.assertEqual(len(self.run_ok("list").splitlines()), 1)

    def test_lift_nothing(self) -> None:
        """Lifting a key without a block is an error (a typo would go unnoticed)."""
        message = self.run_fails("lift", "--ip", "192.0.2.1")
        self.assertIn("no block on ip:", message)

    def test_lift_needs_secret_for_values(self) -> None:
        """--ip needs the daemon's secret file; it is never created by the command."""
        (self.base_dir / "var" / "secret.key").unlink()
        message = self.run_fails("lift", "--ip", "203.0.113.7")
        self.assertIn("no secret key at", message)
        self.assertFalse((self.base_dir / "var" / "secret.key").exists())

    def test_daemon_unreachable(self) -> None:
        """A daemon that does not answer gives one clear line."""

        class Refusing:
            def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
                return fail(ConnectionRefusedError("Connection refused"))

        message = self.run_fails("list", http=Refusing())
        self.assertIn("the daemon is not reachable at http://127.0.0.1:9108", message)

    def test_bad_arguments(self) -> None:
        """Malformed keys, addresses, numbers and two targets are usage errors."""
        for argv in (
            ["lift", "ip:zz z"],
            ["lift", "--ip", "300.1.1.1"],
            ["lift", "--number", "12"],
            ["lift", "--ip", "192.0.2.1", "--number", VICTIM],
            ["lift"],
        ):
            with self.assertRaises(SystemExit) as raised:
                build_parser().parse_args(["blocks", *argv])
            self.assertEqual(raised.exception.code, 2, argv)

    def test_redis_needs_url(self) -> None:
        """--via redis without a Redis URL says so."""
        message = self.run_fails("list", "--via", "redis")
        self.assertIn("redis_url", message)


class AdminUrlTests(SynchronousTestCase):
    """Where the command finds the metrics listener."""

    def test_endpoints(self) -> None:
        """Loopback, wildcard and IPv6 listeners map to a URL the command can reach."""
        self.assertEqual(
            admin_url("tcp:9108:interface=127.0.0.1"), "http://127.0.0.1:9108"
        )
        self.assertEqual(admin_url("tcp:port=9200"), "http://127.0.0.1:9200")
        self.assertEqual(
            admin_url("tcp:9108:interface=0.0.0.0"), "http://127.0.0.1:9108"
        )
        self.assertEqual(admin_url(r"tcp6:9108:interface=\:\:1"), "http://[::1]:9108")
        self.assertEqual(admin_url("tcp6:9108"), "http://[::1]:9108")

    def test_unreachable_descriptions(self) -> None:
        """Port 0, UNIX sockets and TLS need --admin-url."""
        for listen in ("tcp:0:interface=127.0.0.1", "unix:/run/m.sock", "ssl:9108"):
            with self.assertRaises(BlocksCliError):
                admin_url(listen)


class FormatTests(SynchronousTestCase):
    """What list prints."""

    def test_permanent_and_empty(self) -> None:
        """A permanent block says so; no blocks print a placeholder."""
        block = BlockInfo("range:ab12", KeyKind.RANGE, Reason.RANGE, 0.0, None, 2)
        self.assertEqual(
            format_blocks([block]),
            "range:ab12\trange\tsince 1970-01-01T00:00:00Z\tuntil permanent\tstrikes 2",
        )
        self.assertEqual(format_blocks([]), "(no blocks)")
