"""Fire-and-forget work started from Twisted callbacks, never dropped silently."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure


def run_in_background(
    log: Logger, what: str, coro: Coroutine[Deferred[Any], Any, object]
) -> Deferred[object]:
    """Start ``coro`` now; a failure is logged at error level, never dropped.

    Args:
        log: the logger of the component starting the work.
        what: a short human description used in the log line.
        coro: the coroutine to run.

    Returns:
        A Deferred that fires with the coroutine's result, or with None after a
        failure was logged.
    """

    def logged(failure: Failure) -> None:
        log.failure("{what} failed", failure, level=LogLevel.error, what=what)

    return Deferred.fromCoroutine(coro).addErrback(logged)
