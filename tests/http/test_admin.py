"""The operator endpoints ``/admin/blocks`` on the metrics resource tree, via StubTreq."""

from __future__ import annotations

import json
from typing import Any, cast

import attrs
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from callnowd.http.admin import AdminPages, is_local_peer, mount_admin
from callnowd.limits.limiter import Limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import KeyKind, StoreUnavailable
from callnowd.limits.settings import LimitSettings
from callnowd.metrics import Metrics

BASE = "http://127.0.0.1:9108"
SECRET = b"s" * 32
NOW = 1_800_000_000.0
# One request per IP per hour; the second denial blocks the IP.
SETTINGS = LimitSettings(ip_limit=1, ip_period=3600.0, escalate_after=1)


def blocked_limiter(clock: Clock, *addresses: str) -> Limiter:
    """A limiter in which each of ``addresses`` got itself blocked."""
    limiter = Limiter(MemoryRateLimitStore(), SETTINGS, SECRET)
    for n, address in enumerate(addresses):
        for i in range(3):
            phone = f"+1212555{n:02d}{i:02d}"
            # The in-process store answers at once: the Deferred has fired.
            Deferred.fromCoroutine(limiter.check(address, "john", phone, NOW))
    return limiter


class AdminCase(SynchronousTestCase):
    """Metrics resource tree with the admin pages mounted, as in the daemon."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW + 1)
        self.limiter: Any = blocked_limiter(self.clock, "203.0.113.7", "198.51.100.2")
        root = Metrics().resource()
        mount_admin(root, AdminPages(self.limiter, self.clock))
        self.client: Any = StubTreq(root)

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = self.successResultOf(
            self.client.request(method, BASE + path, **kwargs)
        )
        body = self.successResultOf(response.content())
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"application/json"]
        )
        document: dict[str, Any] = json.loads(body)
        return response.code, document

    def ip_key(self, address: str) -> str:
        return str(self.limiter.key(KeyKind.IP, address).name)


class ListTests(AdminCase):
    """GET /admin/blocks."""

    def test_lists_blocks_by_key_only(self) -> None:
        """Each blocked IP is listed by its HMAC key, never by its address."""
        code, document = self.call("GET", "/admin/blocks")
        self.assertEqual(code, 200)
        keys = {b["key"] for b in document["blocks"]}
        self.assertEqual(
            keys, {self.ip_key("203.0.113.7"), self.ip_key("198.51.100.2")}
        )
        block = document["blocks"][0]
        self.assertEqual(block["kind"], "ip")
        self.assertEqual(block["reason"], "ip")
        self.assertEqual(block["strikes"], 1)
        self.assertFalse(block["permanent"])
        self.assertEqual(block["until"], block["since"] + SETTINGS.block_seconds)
        self.assertNotIn("203.0.113", json.dumps(document))

    def test_metrics_still_served(self) -> None:
        """Mounting the admin pages leaves /metrics where it was."""
        root = Metrics().resource()
        mount_admin(root, AdminPages(self.limiter, self.clock))
        self.assertEqual(sorted(cast(Resource, root).children), [b"admin", b"metrics"])

    def test_cross_origin_refused(self) -> None:
        """A request with an Origin header (a browser page) gets 403."""
        code, document = self.call(
            "GET", "/admin/blocks", headers={"origin": "http://evil.example"}
        )
        self.assertEqual(code, 403)
        self.assertIn("cross-origin", document["error"])

    def test_store_unavailable(self) -> None:
        """A limit store that cannot answer gives 503 with the reason."""

        async def down(now: float) -> list[Any]:
            raise StoreUnavailable("timeout")

        self.limiter.list_blocks = down
        code, document = self.call("GET", "/admin/blocks")
        self.assertEqual(code, 503)
        self.assertIn("timeout", document["error"])


class LiftTests(AdminCase):
    """POST /admin/blocks/lift."""

    def listed(self) -> set[str]:
        _, document = self.call("GET", "/admin/blocks")
        return {b["key"] for b in document["blocks"]}

    def test_lift_json(self) -> None:
        """A JSON key lifts that block and no other."""
        key = self.ip_key("203.0.113.7")
        code, document = self.call("POST", "/admin/blocks/lift", json={"key": key})
        self.assertEqual((code, document), (200, {"key": key, "lifted": True}))
        self.assertEqual(self.listed(), {self.ip_key("198.51.100.2")})

    def test_lift_form(self) -> None:
        """A urlencoded form key lifts too; lifting again says nothing was lifted."""
        key = self.ip_key("198.51.100.2")
        form = {"content-type": "application/x-www-form-urlencoded"}
        code, document = self.call(
            "POST", "/admin/blocks/lift", data=f"key={key}".encode(), headers=form
        )
        self.assertEqual((code, document["lifted"]), (200, True))
        code, document = self.call(
            "POST", "/admin/blocks/lift", data=f"key={key}".encode(), headers=form
        )
        self.assertEqual((code, document["lifted"]), (200, False))

    def test_bad_requests(self) -> None:
        """Malformed keys, bodies and content types are refused; nothing is lifted."""
        cases: list[tuple[dict[str, Any], int]] = [
            ({"json": {"key": "ip:not hex"}}, 400),
            ({"json": {"key": "planet:abcd"}}, 400),
            ({"json": {"nokey": 1}}, 400),
            ({"json": ["ip:abcd"]}, 400),
            ({"data": b"{", "headers": {"content-type": "application/json"}}, 400),
            ({"data": b"key=ip:ab", "headers": {"content-type": "text/plain"}}, 415),
            ({"json": {"key": "ip:" + "a" * 5000}}, 413),
        ]
        for kwargs, status in cases:
            code, document = self.call("POST", "/admin/blocks/lift", **kwargs)
            self.assertEqual(code, status, kwargs)
            self.assertIn("error", document)
        self.assertEqual(len(self.listed()), 2)

    def test_get_on_lift_is_not_allowed(self) -> None:
        """Lifting needs POST: a GET (a prefetched link) changes nothing."""
        response = self.successResultOf(
            self.client.get(
                BASE + "/admin/blocks/lift?key=" + self.ip_key("203.0.113.7")
            )
        )
        self.assertEqual(response.code, 405)
        self.assertEqual(len(self.listed()), 2)


@attrs.frozen
class _Peer:
    host: str


class PeerTests(SynchronousTestCase):
    """Which peers the endpoints serve."""

    def test_loopback_only(self) -> None:
        """Loopback and UNIX-socket peers are local; anything else is not."""
        local = [
            IPv4Address("TCP", "127.0.0.1", 1),
            IPv4Address("TCP", "127.8.9.10", 1),
            IPv6Address("TCP", "::1", 1),
            IPv6Address("TCP", "::ffff:127.0.0.1", 1),
            UNIXAddress(b"/run/callnow.sock"),
        ]
        remote = [
            IPv4Address("TCP", "10.0.0.5", 1),
            IPv6Address("TCP", "2001:db8::1", 1),
            IPv6Address("TCP", "::ffff:10.0.0.5", 1),
            _Peer("127.0.0.1"),
        ]
        self.assertEqual([is_local_peer(a) for a in local], [True] * len(local))
        self.assertEqual([is_local_peer(a) for a in remote], [False] * len(remote))
