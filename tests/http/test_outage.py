"""Tests for public pages over a store that cannot be used (callnowd.http.outage)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from twisted.logger import LogLevel, capturedLogs

from callnowd.http.outage import LOG_INTERVAL, RETRY_AFTER
from callnowd.limits.limiter import Limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import Reason, Verdict
from callnowd.limits.settings import LimitSettings
from callnowd.store.errors import StoreClosed, StoreError, StoreUnavailable
from tests.http.helpers import FORM, PagesCase, extension


async def _fails(*args: Any, **kwargs: Any) -> Any:
    raise StoreUnavailable("callnow.sqlite3: database is locked")


class _TryAgainCase(PagesCase):
    """An open form; a submission; what a "try again" answer looks like."""

    def setUp(self) -> None:
        super().setUp()
        self.add(extension(image_validation=False))
        self.cookie_header, self.csrf, _ = self.open_form()

    def submit(self) -> tuple[int, dict[str, str], str]:
        body = urlencode({"csrf": self.csrf, "phone": "(212) 555-0123", "name": "M"})
        return self.post("/callnow/john", body, cookie=self.cookie_header, **FORM)

    def assert_try_again(self, answer: tuple[int, dict[str, str], str]) -> None:
        code, headers, body = answer
        self.assertEqual(code, 503)
        self.assertEqual(headers["retry-after"], RETRY_AFTER.decode())
        self.assertIn("Please try again in a moment", body)
        self.assertIn("Nothing was sent", body)


class StoreOutageTests(_TryAgainCase):
    def test_submission_that_cannot_be_stored(self) -> None:
        """The visitor is told to send it again; nothing is stored."""
        self.store.create_request = _fails  # type: ignore[method-assign]
        self.assert_try_again(self.submit())
        self.assertEqual(self.store.requests, {})

    def test_every_public_page(self) -> None:
        """Form, one-step link and status page answer 503 alike."""
        code, headers, _ = self.submit()
        self.assertEqual(code, 303)
        status = headers["location"]
        self.store.find_by_callnow_id = _fails  # type: ignore[method-assign]
        self.store.get_request_by_token = _fails  # type: ignore[method-assign]
        one_step = "/callnow/index.php?" + urlencode(
            {"call": "john", "myname": "Mary", "phone": "+12125550199"}
        )
        for url in ("/callnow/john", "/callnow/index.php?call=john", one_step, status):
            self.assert_try_again(self.get(url))

    def test_json_client(self) -> None:
        """A client asking for JSON gets a problem document."""
        self.store.get_request_by_token = _fails  # type: ignore[method-assign]
        code, headers, body = self.get(
            "/callnow/john/requests/whatever", accept="application/json"
        )
        self.assertEqual(code, 503)
        self.assertEqual(headers["content-type"], "application/problem+json")
        self.assertIn("again", json.loads(body)["detail"])

    def test_logged_once_per_interval_with_the_count(self) -> None:
        """A flood of failures is one error event, then one count per interval."""
        self.store.create_request = _fails  # type: ignore[method-assign]
        with capturedLogs() as events:
            for _ in range(5):
                self.assertEqual(self.submit()[0], 503)
            self.clock.advance(LOG_INTERVAL)
            self.assertEqual(self.submit()[0], 503)
        errors = [e for e in events if e["log_level"] is LogLevel.error]
        self.assertEqual(
            [(e["log_format"].split(":")[0], e.get("left_out")) for e in errors],
            [
                ("Store unavailable, answered 503", None),
                ("Store unavailable", 4),
                ("Store unavailable, answered 503", None),
            ],
        )
        self.assertIn("database is locked", errors[0]["error"])

    def test_store_closed_while_stopping(self) -> None:
        """A store closed under a request (the daemon stopping) is answered alike."""

        async def closed(*args: Any, **kwargs: Any) -> Any:
            raise StoreClosed("callnow.sqlite3: the store is closed")

        self.store.create_request = closed  # type: ignore[method-assign]
        self.assert_try_again(self.submit())

    def test_lasting_store_errors_are_not_hidden(self) -> None:
        """A store error that would fail again stays a 500, logged each time.

        Say, a schema this code does not know: the traceback is logged for each
        request, not paced.
        """

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise StoreError("callnow.sqlite3: no such column: token")

        self.store.create_request = broken  # type: ignore[method-assign]
        with capturedLogs():
            self.assertEqual(self.submit()[0], 500)
            self.assertEqual(self.submit()[0], 500)
        self.assertEqual(len(self.flushLoggedErrors(StoreError)), 2)

    def test_other_errors_are_not_hidden(self) -> None:
        """Anything but a store error still fails the request (500, logged)."""

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        self.store.create_request = broken  # type: ignore[method-assign]
        with capturedLogs():
            code, _, _ = self.submit()
        self.assertEqual(code, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class RefusingLimiter:
    """Rate limits whose store cannot answer, configured to refuse then."""

    async def check(self, *args: object) -> Verdict:
        return Verdict(False, Reason.UNAVAILABLE)

    async def refund(self, *args: object) -> None:
        raise AssertionError("nothing was allowed, so nothing is given back")


class LimitedOutageTests(_TryAgainCase):
    def test_sending_again_as_told_is_not_rate_limited(self) -> None:
        """Each 503 gives its permit back: more tries than the limit, then a 303."""
        self.intake._limiter = Limiter(
            MemoryRateLimitStore(), LimitSettings(), b"k" * 32
        )
        create = self.store.create_request
        self.store.create_request = _fails  # type: ignore[method-assign]
        for _ in range(LimitSettings().destination_short_limit + 1):
            self.assert_try_again(self.submit())
        self.store.create_request = create  # type: ignore[method-assign]
        code, headers, _ = self.submit()
        self.assertEqual(code, 303, headers)
        self.assertEqual(len(self.store.requests), 1)


class LimitsUnavailableTests(_TryAgainCase):
    def test_refused_without_the_limits_store(self) -> None:
        """The same 503 page as a store outage, for the same reason: nothing taken."""
        self.intake._limiter = RefusingLimiter()
        self.assert_try_again(self.submit())
        self.assertEqual(self.store.requests, {})
        code, headers, _ = self.post(
            "/callnow/john",
            urlencode({"csrf": self.csrf, "phone": "(212) 555-0123", "name": "M"}),
            cookie=self.cookie_header,
            accept="application/json",
            **FORM,
        )
        self.assertEqual(code, 503)
        self.assertEqual(headers["content-type"], "application/problem+json")
