"""One AMI connection: banner, login, ActionID correlation, list collection, keep-alive.

This module owns the per-connection state (:class:`AmiProtocol`) and the errors
an action can fail with. Everything that must outlive a connection
(subscriptions, originate tracking, reconnection) lives in
:mod:`callnowd.ami.client`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Literal
from typing import Protocol as TypingProtocol

import attrs
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from callnowd.ami.codec import AmiParser, AmiProtocolError, Message, encode_action
from callnowd.ami.deadlines import Deadlines
from callnowd.log_throttle import LogThrottle

BANNER_PREFIX = "Asterisk Call Manager/"


class AmiConnectionLost(Exception):
    """The AMI connection was lost before the action completed; it is not replayed."""


class AmiNotConnected(Exception):
    """There is no logged-in AMI session; the action was not sent."""


class AmiActionError(Exception):
    """Asterisk answered ``Response: Error``.

    Attributes:
        message: the whole response.
    """

    def __init__(self, message: Message) -> None:
        super().__init__(message.get("Message") or "Response: Error")
        self.message = message


class AmiAuthenticationError(AmiActionError):
    """Login was refused (wrong user or secret, login already in use, ...)."""


class AmiBannerError(AmiProtocolError):
    """The peer did not greet us with ``Asterisk Call Manager/...``."""


@attrs.frozen
class ListResult:
    """The collected answer to a list action (``EventList: start`` ... ``Complete``).

    Attributes:
        ack: the ``Response: Success`` that started the list.
        items: the events carrying our ActionID, in order.
        complete: the event with ``EventList: Complete`` (or ``cancelled``); the
            ack itself when Asterisk answered without starting a list.
    """

    ack: Message
    items: tuple[Message, ...]
    complete: Message


@attrs.define
class _Pending:
    deferred: Deferred[Any]
    collect: bool
    ack: Message | None = None
    items: list[Message] = attrs.Factory(list)


class SessionOwner(TypingProtocol):
    """What an :class:`AmiProtocol` reports to the long-lived client."""

    def event_received(
        self, protocol: AmiProtocol, message: Message, name: str
    ) -> None:
        """An event (named ``name``) that is not a list item of a pending list action arrived."""

    def events_received(
        self, protocol: AmiProtocol, messages: Sequence[Message]
    ) -> None:
        """Events that are not list items, each with ``Event`` first, arrived (in order)."""

    def event_filter(self) -> Callable[[bytes], bool] | None:
        """Return ``skip(name) -> bool`` for events nobody needs; None keeps all."""

    def session_lost(self, protocol: AmiProtocol, reason: Failure) -> None:
        """The connection ended (after or before login)."""


#: Unanswered keep-alive Pings in a row after which the connection is aborted
#: even though the PBX is still sending (one is enough when it sends nothing).
MAX_PINGS_MISSED = 3


class AmiProtocol(Protocol):
    """One AMI connection; the parser is fed straight from ``dataReceived``.

    Args:
        clock: for action timeouts and the keep-alive.
        owner: receives events and the connection loss.
        id_prefix: ``<instance>-<connection>``; ActionIDs are ``<id_prefix>-<n>``.
    """

    log = Logger()

    def __init__(
        self, clock: IReactorTime, owner: SessionOwner, id_prefix: str
    ) -> None:
        self._clock = clock
        self._owner = owner
        self.id_prefix = id_prefix
        self._counter = 0
        self._pending: dict[str, _Pending] = {}
        self._lists: dict[str, _Pending] = {}
        self._collectors = 0
        # Action timeouts: one timer per distinct timeout, not one per action.
        self._deadlines = Deadlines(clock, self._expire)
        self._parser = AmiParser()
        self._unowned = LogThrottle(clock)
        self._banner: Deferred[str] = Deferred()
        self._pinger: LoopingCall | None = None
        self._ping_in_flight = False
        self._pings_missed = 0  # unanswered Pings in a row
        self._reads = 0  # reads from the peer (a Ping compares them)
        self.logged_in = False
        self.lost = False

    # -- Twisted callbacks ---------------------------------------------------

    @override
    def dataReceived(self, data: bytes) -> None:
        self._reads += 1
        parser = self._parser
        # Dropping by name only pays when some names are unwanted, and never
        # while a list action may still deliver items of any name.
        parser.skip_events = None if self._collectors else self._owner.event_filter()
        try:
            messages = parser.feed(data)
            if not self._banner.called and self._parser.banner is not None:
                self._check_banner(self._parser.banner)
        except AmiProtocolError as e:
            self.log.error(
                "AMI protocol error, dropping the connection: {error}", error=e
            )
            if not self._banner.called:
                self._banner.errback(e)
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        # Most messages are events nobody is collecting, Event first: those go
        # to the owner in runs, one call each (_dispatch does the rest, one by
        # one, after the run before them).
        run: list[Message] = []
        lists = self._lists
        for message in messages:
            names = message.names
            if names and names[0] == "Event" and not lists:
                run.append(message)
                continue
            if run:
                self._owner.events_received(self, run)
                run = []
            self._dispatch(message)
        if run:
            self._owner.events_received(self, run)

    @override
    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.lost = True
        self.logged_in = False
        self.stop_keepalive()
        if not self._banner.called:
            self._banner.errback(AmiConnectionLost("connection lost before the banner"))
        pending = list(self._pending.values()) + list(self._lists.values())
        self._pending.clear()
        self._lists.clear()
        self._deadlines.stop()
        for entry in pending:
            entry.deferred.errback(AmiConnectionLost(str(reason.value)))
        self._owner.session_lost(self, reason)

    @property
    def session(self) -> AmiProtocol:
        """This protocol itself, also when reached through an attribute-forwarding proxy."""
        return self

    def lost_before_ready(self, reason: Failure) -> None:
        """Connection loss of a session that never finished logging in."""
        self.connectionLost(reason)

    # -- incoming ------------------------------------------------------------

    def _check_banner(self, banner: str) -> None:
        if not banner.startswith(BANNER_PREFIX):
            raise AmiBannerError(f"unexpected banner {banner[:80]!r}")
        self._banner.callback(banner)

    def _dispatch(self, message: Message) -> None:
        # Classify by Event first: OriginateResponse also carries Response.
        # Asterisk writes Event first; checking that here saves the lookup.
        names = message.names
        name = message.values[0] if names and names[0] == "Event" else message.event
        if name is not None:
            if self._lists:
                entry = self._lists.get(message.action_id or "")
                if entry is not None:
                    self._collect(entry, message)
                    return
            self._owner.event_received(self, message, name)
            return
        if message.response is None:
            self.log.warn(
                "AMI message without Event or Response ignored: {message!r}",
                message=message,
            )
            return
        action_id = message.action_id or ""
        entry = self._pending.pop(action_id, None)
        if entry is None:
            suppressed = self._unowned.allow()
            if suppressed is not None:
                self.log.debug(
                    "AMI response for an ActionID we do not own: {action_id}",
                    action_id=action_id,
                    suppressed=suppressed,
                )
            return
        if message.response.lower() == "error":
            entry.deferred.errback(AmiActionError(message))
        elif entry.collect and (message.get("EventList") or "").lower() == "start":
            entry.ack = message
            self._lists[action_id] = entry
        elif entry.collect:
            entry.deferred.callback(ListResult(message, (), message))
        else:
            entry.deferred.callback(message)

    def _collect(self, entry: _Pending, message: Message) -> None:
        state = (message.get("EventList") or "").lower()
        if state in ("complete", "cancelled"):
            del self._lists[message.action_id or ""]
            assert entry.ack is not None  # noqa: S101 (set before the entry is listed)
            entry.deferred.callback(ListResult(entry.ack, tuple(entry.items), message))
        else:
            entry.items.append(message)

    # -- outgoing ------------------------------------------------------------

    def next_action_id(self) -> str:
        """Return a fresh ActionID for this connection."""
        self._counter += 1
        return f"{self.id_prefix}-{self._counter}"

    def send(
        self,
        action: str,
        headers: Sequence[tuple[str, str]] = (),
        variables: Sequence[tuple[str, str]] = (),
        *,
        timeout: float,
        collect: bool = False,
        action_id: str | None = None,
    ) -> Deferred[Any]:
        """Write one action; the Deferred fires with its response.

        Args:
            action: the action name.
            headers: further headers.
            variables: channel variables, one ``Variable:`` header each.
            timeout: seconds before the Deferred fails with ``TimeoutError``.
            collect: collect a list (``ListResult``) instead of one response.
            action_id: use this ActionID (from :meth:`next_action_id`).

        Returns:
            A Deferred firing with a :class:`Message` (or a :class:`ListResult`).

        Raises:
            AmiEncodingError: the action was refused by the encoder.
            AmiNotConnected: the connection is already gone.
        """
        if self.lost or self.transport is None:
            raise AmiNotConnected("the AMI connection is gone")
        if action_id is None:
            action_id = self.next_action_id()
        data = encode_action(action, action_id, headers, variables)

        def cancel(_: Deferred[Any]) -> None:
            self._pending.pop(action_id, None)
            self._lists.pop(action_id, None)

        deferred: Deferred[Any] = Deferred(cancel)
        # Registered before writing: the answer may come back in the same turn.
        self._pending[action_id] = _Pending(deferred, collect)
        self._deadlines.add(deferred, action_id, timeout)
        if collect:
            self._collectors += 1
            deferred.addBoth(self._collector_done)
        self.transport.write(data)
        return deferred

    def _expire(self, deferred: Deferred[Any], action_id: str) -> None:
        """No (complete) answer in time: forget the action, fail with TimeoutError."""
        self._pending.pop(action_id, None)
        self._lists.pop(action_id, None)
        deferred.errback(TimeoutError(f"no answer to AMI action {action_id} in time"))

    def _collector_done(self, result: object) -> object:
        self._collectors -= 1
        return result

    async def login(
        self,
        username: str,
        secret: str,
        auth: Literal["plain", "md5"],
        events: str,
        timeout: float,
    ) -> str:
        """Wait for the banner and log in.

        Args:
            username: the manager.conf user.
            secret: its secret.
            auth: ``plain`` sends ``Secret``; ``md5`` sends ``Key`` = md5(challenge + secret).
            events: the ``Events:`` mask.
            timeout: per step.

        Returns:
            The banner.

        Raises:
            AmiAuthenticationError: Asterisk refused the login.
        """
        banner = await self._banner.addTimeout(timeout, self._clock)
        try:
            if auth == "md5":
                challenge: Message = await self.send(
                    "Challenge", [("AuthType", "MD5")], timeout=timeout
                )
                digest = hashlib.md5(  # protocol-mandated, not our choice
                    (challenge["Challenge"] + secret).encode(), usedforsecurity=False
                ).hexdigest()
                credentials = [
                    ("AuthType", "MD5"),
                    ("Username", username),
                    ("Key", digest),
                ]
            else:
                credentials = [("Username", username), ("Secret", secret)]
            await self.send(
                "Login", [*credentials, ("Events", events)], timeout=timeout
            )
        except AmiActionError as e:
            raise AmiAuthenticationError(e.message) from None
        self.logged_in = True
        return banner

    def start_keepalive(self, interval: float, timeout: float) -> None:
        """Send ``Ping`` every ``interval`` s; abort when the peer seems gone.

        A Ping unanswered within ``timeout`` s aborts the connection when nothing
        at all came from the peer meanwhile, or when it is the
        ``MAX_PINGS_MISSED``-th unanswered in a row.
        """
        self._pinger = LoopingCall(self._ping, timeout)
        self._pinger.clock = self._clock
        self._pinger.start(interval, now=False)

    def stop_keepalive(self) -> None:
        """Stop the keep-alive (idempotent)."""
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._pinger = None

    def _ping(self, timeout: float) -> None:
        if self._ping_in_flight or self.lost:
            return
        self._ping_in_flight = True
        reads = self._reads

        def done(result: object) -> None:
            self._ping_in_flight = False
            self._pings_missed = 0

        def failed(failure: Failure) -> None:
            self._ping_in_flight = False
            if failure.check(AmiActionError, AmiConnectionLost):
                self._pings_missed = 0
                return  # an Error reply still proves the session alive
            self._pings_missed += 1
            if self._reads != reads and self._pings_missed < MAX_PINGS_MISSED:
                # The PBX kept sending meanwhile: the connection is alive, and
                # the answer is late because it (or this daemon) is overloaded.
                # Aborting would fail every call in flight for nothing.
                self.log.warn(
                    "AMI Ping unanswered within {timeout} s while the PBX keeps"
                    " sending ({missed} in a row); keeping the connection",
                    timeout=timeout,
                    missed=self._pings_missed,
                )
                return
            self.log.warn(
                "AMI Ping unanswered within {timeout} s ({missed} in a row),"
                " aborting the connection",
                timeout=timeout,
                missed=self._pings_missed,
            )
            if self.transport is not None:
                self.transport.abortConnection()  # type: ignore[attr-defined]

        self.send("Ping", timeout=timeout).addCallbacks(done, failed)

    def close(self, timeout: float) -> Deferred[None]:
        """Send ``Logoff``; fires after ``Goodbye``, the close, or ``timeout`` s."""
        finished: Deferred[None] = Deferred()

        def settle(_: object) -> None:
            if not finished.called:
                finished.callback(None)

        self.stop_keepalive()
        try:
            self.send("Logoff", timeout=timeout).addBoth(settle)
        except AmiNotConnected:
            settle(None)
        return finished


ProtocolMaker = Callable[[], AmiProtocol]
