"""The HTTP site: body-size limit (413), security headers, privacy-safe access log.

Twisted buffers a whole request body before any resource sees it, so the limit is
enforced while the body arrives: bytes past ``max_body`` are dropped and the request
is answered 413 without reaching the application.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IReactorTime
from twisted.web import http, server
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAccessLogFormatter
from twisted.web.resource import IResource
from typing_extensions import override
from zope.interface import provider

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
)

_TOO_LARGE_BODY = (
    b"<!doctype html><html lang=en><meta charset=utf-8>"
    b"<title>Request too large</title><h1>Request too large</h1>"
    b"<p>The form data sent was larger than this server accepts.</p></html>"
)


class LimitedRequest(server.Request):
    """A request that refuses bodies over the site's limit and sets safe headers."""

    too_large = False
    _received = 0

    @override
    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.max_body  # type: ignore[attr-defined]
        if length is not None and length > limit:
            self.too_large = True
            super().gotLength(0)
            return
        super().gotLength(length)

    @override
    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > self.channel.site.max_body:  # type: ignore[attr-defined]
            self.too_large = True
            if self.content is not None:
                self.content.seek(0)
                self.content.truncate()
            return
        super().handleContentChunk(data)

    @override
    def process(self) -> None:
        headers = self.responseHeaders
        raw = getattr(headers, "_rawHeaders", None)
        if type(headers) is Headers and isinstance(raw, dict) and not raw:
            # What setHeader stores, set at once (seven setHeader calls were a
            # few percent of a refused request); SECURITY_HEADERS are constant
            # lowercase bytes that need no encoding or sanitising.
            raw.update({name: [value] for name, value in SECURITY_HEADERS})
        else:
            for name, value in SECURITY_HEADERS:
                self.setHeader(name, value)
        if self.too_large:
            self.setHeader(b"connection", b"close")
            self._refuse(http.REQUEST_ENTITY_TOO_LARGE, _TOO_LARGE_BODY)
            return
        try:
            unquote_to_bytes(self.path).decode("utf-8")
        except UnicodeDecodeError:
            # Refused here: the router would log a traceback for every such path.
            self._refuse(http.BAD_REQUEST, _BAD_PATH_BODY)
            return
        super().process()

    def _refuse(self, code: int, body: bytes) -> None:
        self.setResponseCode(code)
        self.setHeader(b"content-type", b"text/html; charset=utf-8")
        self.write(body)
        self.finish()


_BAD_PATH_BODY = (
    b"<!doctype html><html lang=en><meta charset=utf-8>"
    b"<title>Bad address</title><h1>Bad address</h1>"
    b"<p>This address is not valid UTF-8 text.</p></html>"
)


@provider(IAccessLogFormatter)
def private_log_formatter(timestamp: str, request: Any) -> str:
    """An access-log line without the query string (names and numbers live there)."""
    path = request.uri.split(b"?", 1)[0]
    method = request.method.decode("ascii", "replace")
    return '{} "{} {} {}" {} {}'.format(
        timestamp,
        method,
        path.decode("ascii", "replace")[:200],
        request.clientproto.decode("ascii", "replace"),
        request.code,
        request.sentLength or "-",
    )


class CallNowSite(server.Site):
    """``Site`` with our request class, a body limit and the private access log.

    Form bodies are parsed by the application, not by Twisted
    (``parsePOSTFormSubmission=False``), which also skips Twisted's costly
    Content-Type parsing for every POST.
    """

    def __init__(
        self, resource: IResource, *, max_body: int, reactor: IReactorTime
    ) -> None:
        super().__init__(
            resource,
            requestFactory=LimitedRequest,
            parsePOSTFormSubmission=False,
            logFormatter=private_log_formatter,
            reactor=reactor,
        )
        self.max_body = max_body
