"""Event subscriptions of the AMI client: by name or for all events, isolated handlers.

This module owns who is told about which AMI event. It outlives connections,
so subscriptions survive reconnects, and it tells the parser which event names
nobody needs, so those are dropped before they are split into headers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from callnowd.ami.codec import Message
from callnowd.background import run_in_background

EventHandler = Callable[[Message], object]

#: Events the client itself needs even without a subscriber.
ALWAYS_WANTED = frozenset({b"originateresponse", b"shutdown"})


def call_isolated(
    log: Logger, what: str, handler: Callable[..., object], *args: object
) -> None:
    """Call ``handler``; an exception or a failed coroutine/Deferred is only logged.

    Args:
        log: where failures go (error level).
        what: a short description for the log line.
        handler: the callable.
        *args: its arguments.
    """
    try:
        result = handler(*args)
    except Exception:
        log.failure("AMI {what} failed", what=what)
        return
    if result is not None:
        _follow(log, what, result)


def _follow(log: Logger, what: str, result: object) -> None:
    """Log the failure of a coroutine or Deferred returned by a handler."""
    if inspect.iscoroutine(result):
        run_in_background(log, f"AMI {what}", result)
    elif isinstance(result, Deferred):
        result.addErrback(lambda f: log.failure("AMI {what} failed", f, what=what))


_log = Logger(namespace="callnowd.ami.events")


class EventSubscriptions:
    """Handlers by event name (case-insensitive) plus handlers for every event."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[EventHandler]] = {}
        self._all: list[EventHandler] = []
        self._wanted: set[bytes] = set(ALWAYS_WANTED)
        # The parser asks once per event; most names repeat, and a cached answer
        # is looked up in C, without a Python call. Cleared whenever _wanted grows.
        self._skip = functools.lru_cache(maxsize=1024)(self._unwanted)

    def subscribe(self, event: str | None, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler`` for each event named ``event`` (None: every event).

        Returns:
            A function that removes the subscription.
        """
        if event is None:
            handlers = self._all
        else:
            handlers = self._by_name.setdefault(event.lower(), [])
            self._wanted.add(event.lower().encode())
            self._skip.cache_clear()
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def skip_filter(self) -> Callable[[bytes], bool] | None:
        """Return ``skip(name) -> bool`` for unwanted event names; None keeps all.

        The parser calls it once per event. It stays live: a later
        subscription changes its answers.
        """
        if self._all:
            return None
        return self._skip

    def _unwanted(self, name: bytes) -> bool:
        return name.lower() not in self._wanted

    def wants(self, name: bytes) -> bool:
        """Whether events of this name have a subscriber (or are always needed)."""
        return bool(self._all) or name.lower() in self._wanted

    def dispatch(self, message: Message, name: str) -> None:
        """Give ``message`` (event ``name``) to that name's handlers, then to the rest."""
        named = self._by_name.get(name.lower())
        if named:
            _call_each(tuple(named), message)
        if self._all:
            _call_each(tuple(self._all), message)


def _call_each(handlers: tuple[EventHandler, ...], message: Message) -> None:
    """Call each handler as :func:`call_isolated` would (inlined: once per event)."""
    for handler in handlers:
        try:
            result = handler(message)
        except Exception:
            _log.failure("AMI {what} failed", what="event handler")
            continue
        if result is not None:
            _follow(_log, "event handler", result)
