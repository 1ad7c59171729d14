"""A PublicPages instance over a MemoryStore and a Clock, driven with StubTreq."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.intake import Intake
from callnowd.http.captcha import CaptchaChallenges
from callnowd.http.csrf import CsrfTokens
from callnowd.http.public import PublicPages, PublicSettings
from callnowd.http.render import Templates
from callnowd.limits.destination_policy import DestinationPolicy
from callnowd.models import Extension, Preferences
from tests.fakes import MemoryStore

# 2026-11-25 15:00 UTC, a Wednesday: 10:00 in New York.
NOW = 1795618800.0
_numbers = itertools.count(100)
BASE = "http://callnow.test"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def extension(callnow_id: str = "john", **prefs: Any) -> Extension:
    """An extension with the given preferences changed from the defaults."""
    return Extension(
        number=f"001*{next(_numbers)}",
        display_name="John Doe",
        external_number="+12125550100",
        dial_string="PJSIP/001002",
        timezone="America/New_York",
        preferences=attrs.evolve(Preferences(callnow_id=callnow_id), **prefs),
    )


class FakePresence:
    """Busy or not, as the test says; records the dial strings asked about."""

    def __init__(self) -> None:
        self.busy = False
        self.asked: list[str] = []

    async def is_busy(self, dial_string: str) -> bool:
        self.asked.append(dial_string)
        return self.busy


def _now_blocking(f: Callable[[], bytes]) -> Deferred[bytes]:
    return succeed(f())


class PagesCase(SynchronousTestCase):
    """Builds pages, a store and a client; helpers to run and read requests."""

    test_hooks = False
    cookie = ""

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.clock = Clock()
        self.clock.advance(NOW)
        self.captchas = CaptchaChallenges(self.clock, ttl=300, length=5)
        self.presence = FakePresence()
        self.intake = Intake(
            self.store, DestinationPolicy(home_region="US"), self.presence, 600
        )
        self.pages = PublicPages(
            store=self.store,
            clock=self.clock,
            settings=PublicSettings(
                default_region="US",
                one_step_window=600,
                status_refresh=3,
                secure_cookies=False,
                test_hooks=self.test_hooks,
            ),
            csrf=CsrfTokens(b"k" * 32),
            captchas=self.captchas,
            templates=Templates(),
            blocking=_now_blocking,
            intake=self.intake,
            readiness={"store": self.store.ping},
        )
        # StubTreq builds its methods dynamically; mypy sees none of them.
        self.client: Any = StubTreq(self.pages.resource())

    def add(self, ext: Extension) -> Extension:
        self.successResultOf(Deferred.fromCoroutine(self.store.add_extension(ext)))
        return ext

    def get(self, url: str, **headers: str) -> tuple[int, dict[str, str], str]:
        return self._read(
            self.client.get(BASE + url, headers=headers, allow_redirects=False)
        )

    def head(self, url: str) -> tuple[int, dict[str, str], str]:
        return self._read(self.client.head(BASE + url, allow_redirects=False))

    def post(
        self, url: str, body: bytes | str, **headers: str
    ) -> tuple[int, dict[str, str], str]:
        data = body.encode() if isinstance(body, str) else body
        return self._read(
            self.client.post(
                BASE + url, data=data, headers=headers, allow_redirects=False
            )
        )

    def _read(self, d: Deferred[Any]) -> tuple[int, dict[str, str], str]:
        response = self.successResultOf(d)
        body = self.successResultOf(response.content())
        headers = {
            k.decode().lower(): v[-1].decode()
            for k, v in response.headers.getAllRawHeaders()
        }
        return response.code, headers, body.decode("utf-8")

    def open_form(self, callnow_id: str = "john") -> tuple[str, str, str | None]:
        """GET the form; return (cookie header, csrf token, captcha id)."""
        code, headers, body = self.get(f"/callnow/{callnow_id}")
        self.assertEqual(code, 200)
        # The client keeps cookies: a second load reuses the first nonce.
        if "set-cookie" in headers:
            self.cookie = headers["set-cookie"].split(";", 1)[0]
        cookie = self.cookie
        csrf = _hidden(body, "csrf")
        assert csrf is not None
        return cookie, csrf, _hidden(body, "captcha_id")


def _hidden(body: str, name: str) -> str | None:
    match = re.search(rf'name="{name}" value="([^"]*)"', body)
    return match.group(1) if match else None
