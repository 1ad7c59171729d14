"""The long-lived AMI client service: reconnection, login, subscriptions, originate.

This module owns what outlives one TCP connection: the ``ClientService`` with
its backoff, the login done in ``prepareConnection`` (so a bad secret counts as
a failed attempt), the event subscriptions, the pending originates and the
clean ``Logoff`` on stop. Per-connection state is in :mod:`callnowd.ami.protocol`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from typing import Literal, cast

import attrs
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IProtocol,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from callnowd.ami.codec import Message
from callnowd.ami.connector import GatedEndpoint
from callnowd.ami.deadlines import Deadlines
from callnowd.ami.events import EventHandler, EventSubscriptions, call_isolated
from callnowd.ami.originate import (
    DEFAULT_RESULT_MARGIN,
    OriginateHandle,
    OriginateResult,
    OriginateTimeout,
    originate_headers,
)
from callnowd.ami.protocol import (
    AmiActionError,
    AmiAuthenticationError,
    AmiConnectionLost,
    AmiNotConnected,
    AmiProtocol,
    ListResult,
)
from callnowd.log_throttle import LogThrottle

__all__ = [
    "AmiActionError",
    "AmiAuthenticationError",
    "AmiClient",
    "AmiConnectionLost",
    "AmiNotConnected",
    "AmiSettings",
    "ListResult",
    "OriginateHandle",
    "OriginateResult",
    "OriginateTimeout",
]

_SAFE_ID = re.compile(r"[A-Za-z0-9._]{0,24}\Z")


def _check_instance_id(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _SAFE_ID.match(value):
        raise ValueError(
            f"{attribute.name} must match [A-Za-z0-9._]{{0,24}}: {value!r}"
        )


@attrs.frozen
class AmiSettings:
    """How to log in and how patient to be.

    Attributes:
        username: the manager.conf user.
        secret: its secret (never logged).
        auth: ``plain`` (``Secret`` on the wire) or ``md5`` (challenge/response).
        events: the Login ``Events:`` mask.
        action_timeout: default seconds to wait for a response.
        ping_interval: seconds between keep-alive ``Ping`` actions.
        ping_timeout: seconds to wait for a Ping reply; the connection is aborted
            when none came and nothing else either, or at the third in a row.
        initial_delay: first reconnection delay.
        max_delay: largest reconnection delay after connection failures.
        auth_failure_delay: reconnection delay after a refused login.
        instance_id: first part of every ActionID; random when empty.
    """

    username: str
    secret: str = attrs.field(repr=False)
    auth: Literal["plain", "md5"] = "plain"
    events: str = "call,system,user"
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    initial_delay: float = 1.0
    max_delay: float = 60.0
    auth_failure_delay: float = 300.0
    instance_id: str = attrs.field(default="", validator=_check_instance_id)


class AmiClient(Service):
    """A reconnecting, logged-in AMI session with subscriptions and originate.

    Args:
        reactor: clock for timeouts, keep-alive and reconnection delays.
        endpoint: where Asterisk listens (``tcp:`` or ``tls:`` client endpoint).
        settings: credentials and timings.
        jitter: added to each backoff delay (``lambda: 0.0`` in tests).
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        endpoint: IStreamClientEndpoint,
        settings: AmiSettings,
        *,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self._clock = reactor
        self._settings = settings
        self._endpoint_name = str(endpoint)
        self.instance_id = settings.instance_id or secrets.token_hex(3)
        self._id_prefix = f"{self.instance_id}-"
        self._unowned = LogThrottle(reactor)
        self._connections = 0
        self._protocol: AmiProtocol | None = None
        self._auth_failed = False
        self._stopping = False
        self._subscriptions = EventSubscriptions(
            {"OriginateResponse": self._claim, "UserEvent": self._claim}
        )
        self._ready_handlers: list[Callable[[], object]] = []
        self._ready_waiters: list[Deferred[None]] = []
        self._originates: dict[str, tuple[AmiProtocol, Deferred[OriginateResult]]] = {}
        # Originate result timeouts: one timer per distinct limit, not one each.
        self._result_deadlines = Deadlines(reactor, self._result_timed_out)
        self._backoff = (
            backoffPolicy(settings.initial_delay, settings.max_delay)
            if jitter is None
            else backoffPolicy(
                settings.initial_delay, settings.max_delay, jitter=jitter
            )
        )
        self._jitter = jitter
        factory = Factory.forProtocol(self._build_protocol)
        self._service = ClientService(
            GatedEndpoint(endpoint),
            factory,
            retryPolicy=self._retry_delay,
            clock=reactor,
            prepareConnection=self._prepare,
        )

    # -- service -------------------------------------------------------------

    @override
    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._service.startService()

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        protocol = self._protocol
        if protocol is not None:
            await protocol.close(min(self._settings.action_timeout, 5.0))
        await self._service.stopService()

    # -- connection lifecycle ------------------------------------------------

    def _build_protocol(self) -> AmiProtocol:
        self._connections += 1
        return AmiProtocol(self._clock, self, f"{self.instance_id}-{self._connections}")

    def _retry_delay(self, attempt: int) -> float:
        if self._auth_failed:
            return self._settings.auth_failure_delay + (self._jitter or (lambda: 0.0))()
        return self._backoff(attempt)

    def _prepare(self, protocol: IProtocol) -> Deferred[None]:
        # ClientService hands us its proxy; work with the protocol behind it.
        return Deferred.fromCoroutine(self._login(cast(AmiProtocol, protocol).session))

    async def _login(self, protocol: AmiProtocol) -> None:
        settings = self._settings
        self._auth_failed = False
        try:
            banner = await protocol.login(
                settings.username,
                settings.secret,
                settings.auth,
                settings.events,
                settings.action_timeout,
            )
        except AmiAuthenticationError as e:
            self._auth_failed = True
            self.log.error(
                "AMI login to {endpoint} as {username} refused: {reason}; "
                "next attempt in {delay} s",
                endpoint=self._endpoint_name,
                username=settings.username,
                reason=str(e),
                delay=settings.auth_failure_delay,
            )
            self._abort(protocol)
            raise
        except Exception as e:
            self.log.warn(
                "AMI session setup with {endpoint} failed: {reason}",
                endpoint=self._endpoint_name,
                reason=repr(e),
            )
            self._abort(protocol)
            raise
        self._protocol = protocol
        protocol.start_keepalive(settings.ping_interval, settings.ping_timeout)
        self.log.info(
            "AMI logged in to {endpoint} ({banner})",
            endpoint=self._endpoint_name,
            banner=banner,
        )
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        for handler in list(self._ready_handlers):
            call_isolated(self.log, "ready handler", handler)

    @staticmethod
    def _abort(protocol: AmiProtocol) -> None:
        if not protocol.lost and protocol.transport is not None:
            protocol.transport.abortConnection()  # type: ignore[attr-defined]

    def session_lost(self, protocol: AmiProtocol, reason: Failure) -> None:
        """Forget the session and fail its in-flight originates (never replayed)."""
        if protocol is not self._protocol:
            return
        self._protocol = None
        if not self._stopping:
            self.log.warn(
                "AMI connection to {endpoint} lost: {reason}",
                endpoint=self._endpoint_name,
                reason=str(reason.value),
            )
        for action_id, (owner, result) in list(self._originates.items()):
            if owner is protocol:
                del self._originates[action_id]
                result.errback(
                    AmiConnectionLost(f"connection lost before {action_id} ended")
                )
        self._result_deadlines.prune()

    @property
    def connected(self) -> bool:
        """True while a logged-in session exists."""
        return self._protocol is not None

    async def wait_connected(self, timeout: float) -> None:
        """Wait until a session is logged in.

        Args:
            timeout: seconds to wait.

        Raises:
            AmiNotConnected: no session within ``timeout``.
        """
        if self._protocol is not None:
            return
        waiter: Deferred[None] = Deferred(lambda d: self._ready_waiters.remove(d))
        self._ready_waiters.append(waiter)

        def timed_out(result: object, timeout: float) -> None:
            raise AmiNotConnected(f"no AMI session within {timeout} s")

        await waiter.addTimeout(timeout, self._clock, onTimeoutCancel=timed_out)

    def _session(self) -> AmiProtocol:
        if self._protocol is None:
            raise AmiNotConnected("no logged-in AMI session")
        return self._protocol

    # -- actions -------------------------------------------------------------

    async def send_action(
        self,
        action: str,
        headers: Sequence[tuple[str, str]] = (),
        variables: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> Message:
        """Send one action and return its response.

        Raises:
            AmiActionError: ``Response: Error``.
            AmiConnectionLost: the connection ended first (the action is not resent).
            AmiNotConnected: no session now (nothing is queued).
            AmiEncodingError: the action would be unsafe on the wire.
            twisted.internet.defer.TimeoutError: no response in time.
        """
        limit = self._settings.action_timeout if timeout is None else timeout
        response: Message = await self._session().send(
            action, headers, variables, timeout=limit
        )
        return response

    async def send_list_action(
        self,
        action: str,
        headers: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> ListResult:
        """Send a list action and collect its events until ``EventList: Complete``.

        Raises:
            The same errors as :meth:`send_action`; the timeout covers the whole list.
        """
        limit = self._settings.action_timeout if timeout is None else timeout
        result: ListResult = await self._session().send(
            action, headers, timeout=limit, collect=True
        )
        return result

    async def user_event(
        self, name: str, headers: Sequence[tuple[str, str]] = ()
    ) -> Message:
        """Send ``Action: UserEvent`` with ``UserEvent: <name>`` and ``headers``."""
        return await self.post_user_event(name, headers)

    def post_user_event(
        self, name: str, headers: Sequence[tuple[str, str]] = ()
    ) -> Deferred[Message]:
        """:meth:`user_event` for callers that do not wait for the answer.

        The same action, sent at once; the Deferred it returns fails the same ways
        (add an errback), without a coroutine around it.

        Raises:
            AmiNotConnected: no session now (nothing is sent).
            AmiEncodingError: a header would be unsafe on the wire.
        """
        response: Deferred[Message] = self._session().send(
            "UserEvent",
            [("UserEvent", name), *headers],
            timeout=self._settings.action_timeout,
        )
        return response

    def originate(
        self,
        *,
        channel: str,
        context: str | None = None,
        exten: str | None = None,
        priority: int | None = None,
        application: str | None = None,
        data: str | None = None,
        timeout_ms: int = 30000,
        caller_id: str | None = None,
        variables: Sequence[tuple[str, str]] = (),
        channel_id: str | None = None,
        account: str | None = None,
        result_timeout: float | None = None,
    ) -> OriginateHandle:
        """Start an asynchronous originate and return its handle at once.

        Raises:
            AmiNotConnected: no session now (nothing is sent).
            AmiEncodingError: a header or variable would be unsafe on the wire.
            ValueError: inconsistent destination arguments.
        """
        protocol = self._session()
        headers = originate_headers(
            channel=channel,
            context=context,
            exten=exten,
            priority=priority,
            application=application,
            data=data,
            timeout_ms=timeout_ms,
            caller_id=caller_id,
            channel_id=channel_id,
            account=account,
        )
        action_id = protocol.next_action_id()
        limit = (
            timeout_ms / 1000 + DEFAULT_RESULT_MARGIN
            if result_timeout is None
            else result_timeout
        )

        def forget(_: Deferred[OriginateResult]) -> None:
            self._originates.pop(action_id, None)

        result: Deferred[OriginateResult] = Deferred(forget)
        queued: Deferred[Message] = protocol.send(
            "Originate",
            headers,
            variables,
            timeout=self._settings.action_timeout,
            action_id=action_id,
        )
        # Tracked before any reply can be processed (replies come from dataReceived).
        self._originates[action_id] = (protocol, result)
        self._result_deadlines.add(result, action_id, limit)

        def not_queued(failure: Failure) -> Failure:
            entry = self._originates.pop(action_id, None)
            if entry is not None:
                entry[1].errback(failure)
            return failure

        queued.addErrback(not_queued)
        return OriginateHandle(action_id, queued, result)

    def _result_timed_out(
        self, result: Deferred[OriginateResult], action_id: str
    ) -> None:
        self._originates.pop(action_id, None)
        result.errback(
            OriginateTimeout(f"no OriginateResponse for {action_id} in time")
        )

    # -- events --------------------------------------------------------------

    def subscribe(self, event: str | None, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler`` for each event named ``event`` (None: every event).

        Subscriptions survive reconnections. A handler's exception is logged and
        does not affect other handlers; coroutines are run in the background.

        Returns:
            A function that removes the subscription.
        """
        return self._subscriptions.subscribe(event, handler)

    def on_ready(self, handler: Callable[[], object]) -> Callable[[], None]:
        """Call ``handler`` after every successful login (e.g. to reconcile state)."""
        self._ready_handlers.append(handler)
        return lambda: (
            self._ready_handlers.remove(handler)
            if handler in self._ready_handlers
            else None
        )

    def event_filter(self) -> Callable[[bytes], bool] | None:
        """Return the parser's ``skip_events`` for the current subscriptions."""
        return self._subscriptions.skip_filter()

    def event_received(
        self, protocol: AmiProtocol, message: Message, name: str
    ) -> None:
        """Route one event to the subscribers (originate results by ActionID first)."""
        self._subscriptions.dispatch(message, name)

    def events_received(
        self, protocol: AmiProtocol, messages: Sequence[Message]
    ) -> None:
        """Route events whose first header is ``Event``, in order."""
        self._subscriptions.dispatch_events(messages)

    def _claim(self, message: Message, name: str) -> bool:
        """Gate of ``OriginateResponse`` and ``UserEvent``: ours only, results first.

        Such events carrying an ActionID of another client are withheld from
        the subscribers; an ``OriginateResponse`` settles its originate.
        """
        action_id = message.action_id
        if action_id is not None and not action_id.startswith(self._id_prefix):
            suppressed = self._unowned.allow()
            if suppressed is not None:
                self.log.debug(
                    "AMI {event} for an ActionID we do not own: {action_id}",
                    event=name,
                    action_id=action_id,
                    suppressed=suppressed,
                )
            return False
        if name == "OriginateResponse":
            entry = self._originates.pop(action_id or "", None)
            if entry is not None:
                entry[1].callback(OriginateResult.from_event(message))
        return True
