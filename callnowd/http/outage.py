"""A store that cannot be used right now, told to the visitor as such.

The store can be unusable for a while (:class:`StoreUnavailable`): its file locked
past the busy timeout by another writer, a full disk, or the daemon stopping. A
public page that meets this answers 503 with ``Retry-After`` and a page saying to
try again (JSON for a client asking for it), instead of a bare 500: nothing was
stored, so the visitor can simply send it again. Such failures come in floods
while they last, so they are logged once per :data:`LOG_INTERVAL` with the number
of the others. Any other store error fails the same way every time: it stays a
500, logged with its traceback for each request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from callnowd.http.answers import json_bytes, wants_json
from callnowd.log_throttle import LogThrottle
from callnowd.store.errors import StoreUnavailable

LOG_INTERVAL = 10.0
RETRY_AFTER = b"30"
TITLE = "Please try again in a moment"
TEXT = (
    "Call requests cannot be taken right now. Nothing was sent: "
    "please send your request again in a moment."
)

_P = ParamSpec("_P")


class Notices(Protocol):
    """The pages' notice renderer (``PublicPages._notice``)."""

    def __call__(self, request: IRequest, title: str, text: str) -> bytes:
        """The notice page with ``title`` and ``text``, its content type set."""


def try_again_later(request: IRequest, notice: Notices) -> bytes:
    """Answer ``request`` 503: nothing was taken, send it again in a moment.

    For every refusal of a request that could not be taken for a while: the store
    unavailable, or the rate limits' store when the daemon refuses without it.
    """
    request.setResponseCode(503)
    request.setHeader(b"retry-after", RETRY_AFTER)
    if wants_json(request):
        request.setHeader(b"content-type", b"application/problem+json")
        return json_bytes({"title": TITLE, "detail": TEXT})
    return notice(request, TITLE, TEXT)


class StoreOutage:
    """Answers and logs the store errors of public pages.

    Args:
        clock: paces the log.
        notice: renders the notice page.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, notice: Notices) -> None:
        self._notice = notice
        self._throttle = LogThrottle(clock, LOG_INTERVAL, self._more)

    def answer(self, request: IRequest, error: StoreUnavailable) -> bytes:
        """Log ``error`` (paced) and answer ``request`` 503."""
        left_out = self._throttle.allow()
        if left_out == 0:
            self.log.error("Store unavailable, answered 503: {error}", error=str(error))
        elif left_out is not None:
            self.log.error(
                "Store unavailable, answered 503: {error}"
                " ({left_out} more since the last report)",
                error=str(error),
                left_out=left_out,
            )
        return try_again_later(request, self._notice)

    def _more(self, left_out: int) -> None:
        self.log.error(
            "Store unavailable: {left_out} more requests answered 503",
            left_out=left_out,
        )


class HasOutage(Protocol):
    """Pages whose store errors a :class:`StoreOutage` answers."""

    @property
    def outage(self) -> StoreOutage:
        """The pages' outage answer."""


_Pages = TypeVar("_Pages", bound=HasOutage)


def answers_store_outage(
    handler: Callable[Concatenate[_Pages, IRequest, _P], Coroutine[Any, Any, bytes]],
) -> Callable[Concatenate[_Pages, IRequest, _P], Coroutine[Any, Any, bytes]]:
    """Wrap a page handler: a :class:`StoreUnavailable` it raises is answered 503."""

    @functools.wraps(handler)
    async def answered(
        pages: _Pages, request: IRequest, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> bytes:
        try:
            return await handler(pages, request, *args, **kwargs)
        except StoreUnavailable as e:
            return pages.outage.answer(request, e)

    return answered
