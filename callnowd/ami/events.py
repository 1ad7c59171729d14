"""Event subscriptions of the AMI client: by name or for all events, isolated handlers.

This module owns who is told about which AMI event. It outlives connections,
so subscriptions survive reconnects, and it tells the parser which event names
nobody needs, so those are dropped before they are split into headers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from callnowd.ami.codec import Message, WantedEvents
from callnowd.background import run_in_background

EventHandler = Callable[[Message], object]
#: Asked first about each event of a gated name: False withholds it from the handlers.
EventGate = Callable[[Message, str], bool]

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


_Route = tuple[EventGate | None, tuple[EventHandler, ...]]


class EventSubscriptions:
    """Handlers by event name (case-insensitive) plus handlers for every event.

    Args:
        gates: by event name exactly as spelt on the wire, a gate asked about
            each such event before its handlers; when it answers False the
            handlers are not called.
    """

    #: Most distinct event names whose handler lists are kept ready.
    ROUTES = 1024

    def __init__(self, gates: Mapping[str, EventGate] | None = None) -> None:
        self._by_name: dict[str, list[EventHandler]] = {}
        self._all: list[EventHandler] = []
        self._gates = dict(gates or {})
        self._wanted = WantedEvents(ALWAYS_WANTED)
        # The gate and handlers of each event name as spelt on the wire, the
        # named handlers first; emptied whenever a subscription is added or
        # removed.
        self._routes: dict[str, _Route] = {}

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

        The name's gate, if any, is asked first. Each handler is called as
        :func:`call_isolated` would.
        """
        gate, handlers = self._routes.get(name) or self._route(name)
        if gate is not None and not gate(message, name):
            return
        for handler in handlers:
            call_isolated(_log, "event handler", handler, message)

    def dispatch_events(self, messages: Iterable[Message]) -> None:
        """Dispatch events whose first header is ``Event``, in order.

        The same as :meth:`dispatch` with that header's value as the name, for
        each message in turn; inlined, as this runs once per event.
        """
        routes = self._routes
        for message in messages:
            name = message.values[0]
            route = routes.get(name)
            if route is None:
                route = self._route(name)
            gate, handlers = route
            if gate is not None and not gate(message, name):
                continue
            for handler in handlers:
                try:
                    result = handler(message)
                except Exception:
                    _log.failure("AMI {what} failed", what="event handler")
                    continue
                if result is not None:
                    _follow(_log, "event handler", result)

    def _route(self, name: str) -> _Route:
        route = (
            self._gates.get(name),
            (*self._by_name.get(name.lower(), ()), *self._all),
        )
        if len(self._routes) < self.ROUTES:
            self._routes[name] = route
        return route
