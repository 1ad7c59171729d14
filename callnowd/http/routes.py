"""The public site's root resource: the busiest routes direct, the rest through Klein.

Klein's dispatch (URL decoding, a werkzeug map bound per request, its adapters and
two ``maybeDeferred`` layers) cost about a fifth of the daemon's time per request
under a flood of the one-step link, more than the page handler. :class:`HotRoutes`
recognises the three URLs floods and visitors actually send -- ``GET
/callnow/index.php``, and ``GET``/``POST /callnow/<id>`` with a plain id -- by
their exact bytes and calls the same :class:`~callnowd.http.public.PublicPages`
handlers Klein would, the way Klein would (the coroutine is cancelled when the
visitor goes away; a failure is answered 500 and logged). Everything else, and
any spelling of those URLs that needs decoding (``%``-escapes, a trailing slash,
``HEAD``), goes to the Klein resource, so routing answers do not change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from typing_extensions import override

# What werkzeug's default converter would give the handler unchanged: no "%"
# escapes, no "/", and only CallNow ID characters (anything else goes to Klein).
_ID_PATH_RE = re.compile(rb"/callnow/([A-Za-z0-9_.-]{1,64})")
ONE_STEP_PATH = b"/callnow/index.php"

Handler = Callable[..., Coroutine[Any, Any, bytes]]


class HotRoutes(Resource):
    """Calls the busiest public handlers directly; Klein serves the rest.

    Args:
        one_step: the ``GET /callnow/index.php`` handler.
        page: the ``GET /callnow/<id>`` handler.
        submit: the ``POST /callnow/<id>`` handler.
        klein: the Klein resource of the same pages, for every other request.
    """

    isLeaf = True  # noqa: N815 (Twisted's name)
    log = Logger()

    def __init__(
        self, one_step: Handler, page: Handler, submit: Handler, klein: IResource
    ) -> None:
        super().__init__()
        self._one_step = one_step
        self._page = page
        self._submit = submit
        self._klein = klein

    @override
    def render(self, request: IRequest) -> Any:
        """Answer a hot route here, anything else through Klein."""
        method = request.method
        path = request.path
        if method == b"GET":
            if path == ONE_STEP_PATH:
                return self._run(request, self._one_step(request))
            match = _ID_PATH_RE.fullmatch(path)
            if match is not None:
                return self._run(request, self._page(request, match[1].decode()))
        elif method == b"POST" and path != ONE_STEP_PATH:
            match = _ID_PATH_RE.fullmatch(path)
            if match is not None:
                return self._run(request, self._submit(request, match[1].decode()))
        return self._klein.render(request)

    def _run(self, request: IRequest, coro: Coroutine[Any, Any, bytes]) -> Any:
        finished = False
        answer = Deferred.fromCoroutine(coro)

        def gone(result: object) -> None:
            nonlocal finished
            finished = True
            if isinstance(result, Failure):
                answer.cancel()  # the visitor left: stop, as Klein does

        def write(body: bytes) -> None:
            request.write(body)
            if not finished:
                request.finish()

        def failed(failure: Failure) -> None:
            if finished:
                if not failure.check(CancelledError):
                    self.log.failure("Unhandled error processing request", failure)
                return
            request.processingFailed(failure)  # type: ignore[attr-defined]

        request.notifyFinish().addBoth(gone)  # type: ignore[attr-defined]
        answer.addCallbacks(write, failed)
        answer.addErrback(
            lambda f: self.log.failure("Unhandled error writing response", f)
        )
        return server.NOT_DONE_YET
