"""The site's root: hot routes answered directly, the same as Klein answers them."""

from __future__ import annotations

import re
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import server
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from callnowd.http.routes import HotRoutes
from tests.http.helpers import FORM, PagesCase, extension

# What differs from one run to the next: request tokens, CSRF nonces and tokens.
_RANDOM = re.compile(
    r"(?<=requests/)[A-Za-z0-9_-]+|(?<=callnow_csrf=)[^;]+|\b[0-9a-f]{64}\b"
)


def _fixed(text: str) -> str:
    return _RANDOM.sub("*", text)


SAME_ANSWERS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/callnow/index.php?call=john&myname=Mary&phone=%2B12125550123", None),
    ("GET", "/callnow/index.php?call=john&phone=not+a+number", None),
    ("GET", "/callnow/index.php?call=nobody&phone=%2B12125550123", None),
    ("GET", "/callnow/index.php?call=john&phone=%FF", None),
    ("GET", "/callnow/nobody", None),
    ("GET", "/callnow/b%61d", None),
    ("GET", "/callnow/john/", None),
    ("POST", "/callnow/john", b"csrf=0&phone=%2B12125550123"),
    ("POST", "/callnow/nobody", b"phone=1"),
    ("POST", "/callnow/index.php", b"phone=1"),
    ("GET", "/healthz", None),
    ("GET", "/no/such/page", None),
]


class HotRoutesTests(PagesCase):
    def answers(self, client: Any) -> list[tuple[int, dict[str, str], str]]:
        self.client = client
        self.add(extension("john", image_validation=False))
        out = []
        for method, url, body in SAME_ANSWERS:
            if method == "GET":
                out.append(self.get(url))
            else:
                assert body is not None
                out.append(self.post(url, body, **FORM))
        return [
            (code, {k: _fixed(v) for k, v in headers.items() if k != "date"}, _fixed(b))
            for code, headers, b in out
        ]

    def test_answers_are_klein_answers(self) -> None:
        """Each request gets the same status, headers and body as through Klein."""
        direct = self.answers(self.client)
        self.setUp()
        through_klein = self.answers(StubTreq(self.pages.app.resource()))
        self.assertEqual(direct, through_klein)
        self.assertEqual(
            [code for code, _, _ in direct],
            [303, 400, 404, 400, 404, 404, 404, 403, 404, 404, 200, 404],
        )

    def test_the_one_step_link_creates_a_request(self) -> None:
        """The direct route reaches the intake like Klein's: one stored request."""
        self.add(extension("john", image_validation=False))
        code, headers, _ = self.get(SAME_ANSWERS[0][1])
        self.assertEqual(code, 303)
        self.assertTrue(headers["location"].startswith("/callnow/john/requests/"))
        self.assertEqual(len(self.store.requests), 1)

    def test_head_goes_through_klein(self) -> None:
        """HEAD of the one-step link shows the form and creates nothing."""
        self.add(extension("john", image_validation=False))
        code, _, body = self.head(SAME_ANSWERS[0][1])
        self.assertEqual((code, body), (200, ""))
        self.assertEqual(len(self.store.requests), 0)


class Handlers:
    """Handlers the test controls: each returns the Deferred of the test."""

    def __init__(self) -> None:
        self.pending: Deferred[bytes] = Deferred()
        self.cancelled = False
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def make(self, name: str) -> Any:
        async def handler(request: object, *args: object) -> bytes:
            self.calls.append((name, args))
            try:
                return await self.pending
            except CancelledError:
                self.cancelled = True
                raise

        return handler


class HotRoutesUnitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.handlers = Handlers()
        self.klein = Resource()
        self.klein_requests: list[object] = []

        def klein_render(request: object) -> bytes:
            self.klein_requests.append(request)
            return b"klein"

        self.klein.render = klein_render  # type: ignore[method-assign]
        self.routes = HotRoutes(
            self.handlers.make("one_step"),
            self.handlers.make("page"),
            self.handlers.make("submit"),
            self.klein,
        )

    def request(self, method: bytes, path: bytes) -> Any:
        request: Any = DummyRequest([])
        request.method = method
        request.path = path
        return request

    def test_routing(self) -> None:
        """Only exact hot paths are direct; anything needing decoding goes to Klein."""
        cases = [
            (b"GET", b"/callnow/index.php", ("one_step", ())),
            (b"GET", b"/callnow/john_doe-1.x", ("page", ("john_doe-1.x",))),
            (b"POST", b"/callnow/john", ("submit", ("john",))),
            (b"POST", b"/callnow/index.php", None),
            (b"HEAD", b"/callnow/index.php", None),
            (b"HEAD", b"/callnow/john", None),
            (b"GET", b"/callnow/j%6fhn", None),
            (b"GET", b"/callnow/john/", None),
            (b"GET", b"/callnow/" + b"a" * 65, None),
            (b"GET", b"/callnow/john/requests/abc", None),
            (b"PUT", b"/callnow/john", None),
            (b"GET", b"/healthz", None),
        ]
        for method, path, expected in cases:
            self.handlers.calls.clear()
            self.klein_requests.clear()
            result = self.routes.render(self.request(method, path))
            if expected is None:
                self.assertEqual((result, self.handlers.calls), (b"klein", []), path)
            else:
                self.assertEqual(result, server.NOT_DONE_YET)
                self.assertEqual(self.handlers.calls, [expected], path)
                self.assertEqual(self.klein_requests, [])

    def test_answer_is_written_and_finished(self) -> None:
        """The handler's bytes are written, then the request is finished."""
        request = self.request(b"GET", b"/callnow/index.php")
        self.routes.render(request)
        self.assertEqual((request.written, request.finished), ([], 0))
        self.handlers.pending.callback(b"answer")
        self.assertEqual((request.written, request.finished), ([b"answer"], 1))

    def test_a_visitor_leaving_cancels_the_handler(self) -> None:
        """A lost connection cancels the handler's coroutine; nothing is logged."""
        request = self.request(b"GET", b"/callnow/index.php")
        self.routes.render(request)
        with capturedLogs() as events:
            request.processingFailed(Failure(ConnectionLost()))
        self.assertEqual(events, [])
        self.assertEqual((request.finished, request.written), (0, []))
        self.assertTrue(self.handlers.cancelled)

    def test_a_failing_handler_is_a_500(self) -> None:
        """An exception becomes the request's processingFailed (500 and a log)."""
        request = self.request(b"POST", b"/callnow/john")
        failures: list[Failure] = []
        request.processingFailed = failures.append
        self.routes.render(request)
        self.handlers.pending.errback(RuntimeError("boom"))
        (failure,) = failures
        self.assertTrue(failure.check(RuntimeError))
        self.assertEqual(request.written, [])
