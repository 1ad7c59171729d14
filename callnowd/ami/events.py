"""Event subscriptions of the AMI client: by name or for all events, isolated handlers.

This module owns who is told about which AMI event. It outlives connections,
so subscriptions survive reconnects, and it tells the parser which event names
nobody needs, so those are dropped before they are split into headers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from callnowd.ami.codec import Message, WantedEvents
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

    #: Most distinct event names whose handler lists are kept ready.
    ROUTES = 1024

    def __init__(self) -> None:
        self._by_name: dict[str, list[EventHandler]] = {}
        self._all: list[EventHandler] = []
        self._wanted = WantedEvents(ALWAYS_WANTED)
        # The handlers of each event name as spelt on the wire, the named ones
        # first; emptied whenever a subscription is added or removed.
        self._routes: dict[str, tuple[EventHandler, ...]] = {}

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
        handlers.append(handler)
        self._routes.clear()

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)
                self._routes.clear()

        return unsubscribe

    def skip_filter(self) -> WantedEvents | None:
        """Return the parser's ``skip_events`` filter; None keeps every event.

        It stays live: a later subscription changes its answers.
        """
        if self._all:
            return None
        return self._wanted

    def wants(self, name: bytes) -> bool:
        """Whether events of this name have a subscriber (or are always needed)."""
        return bool(self._all) or not self._wanted(name)

    def dispatch(self, message: Message, name: str) -> None:
        """Give ``message`` (event ``name``) to that name's handlers, then to the rest.

        Each handler is called as :func:`call_isolated` would (inlined: this
        runs once per event).
        """
        handlers = self._routes.get(name)
        if handlers is None:
            handlers = self._route(name)
        for handler in handlers:
            try:
                result = handler(message)
            except Exception:
                _log.failure("AMI {what} failed", what="event handler")
                continue
            if result is not None:
                _follow(_log, "event handler", result)

    def _route(self, name: str) -> tuple[EventHandler, ...]:
        handlers = (*self._by_name.get(name.lower(), ()), *self._all)
        if len(self._routes) < self.ROUTES:
            self._routes[name] = handlers
        return handlers
