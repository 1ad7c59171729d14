"""The simulator's AMI server session: Asterisk's manager.c as seen on the wire.

This module owns :class:`AmiServerProtocol`, one AMI connection of the
simulator: the banner, plain and MD5 Login (a wrong secret answers after 1 s
and closes), the pre-login restriction to Login/Challenge/Logoff, per-user
write-class checks, the actions (Ping, Logoff, Events, ListCommands,
Originate validation, CoreShowChannels, UserEvent, Hangup, ExtensionState,
Getvar, Setvar) and per-session event filtering by the user's ``read`` classes,
the Login ``Events:`` mask and the user's ``eventfilter`` lines (broadcast
events only: responses and list events are never filtered).  Parsing and encoding use
:mod:`callnowd.ami.codec`.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from callnowd.ami import sim_perms
from callnowd.ami.codec import (
    AmiEncodingError,
    AmiParser,
    AmiProtocolError,
    Message,
    encode_message,
)
from callnowd.ami.sim_actions import ActionHandlers
from callnowd.ami.sim_channels import Headers
from callnowd.ami.sim_config import AmiUser
from callnowd.ami.sim_filters import EventFilters

if TYPE_CHECKING:
    from callnowd.ami.simulator import AsteriskSimulator

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_PRE_LOGIN = ("login", "challenge", "logoff")
LOGIN_FAILURE_DELAY = 1.0


class AmiServerProtocol(Protocol):
    """One AMI session of the simulated Asterisk."""

    log = Logger()

    def __init__(self, simulator: AsteriskSimulator) -> None:
        self.simulator = simulator
        self._parser = AmiParser(expect_banner=False, max_line=1024, max_headers=128)
        self.user: AmiUser | None = None
        self.read: frozenset[str] = frozenset()
        self.write: frozenset[str] = frozenset()
        self.mask: frozenset[str] = frozenset()
        self.filters = EventFilters()
        self._challenge: str | None = None
        self._closing = False
        self.closed = False
        self.lost: Deferred[None] = Deferred()
        self._actions = ActionHandlers(self)

    @property
    def authenticated(self) -> bool:
        """Whether Login succeeded on this session."""
        return self.user is not None

    @override
    def connectionMade(self) -> None:
        self.simulator.sessions.add(self)
        self.transport.write(BANNER)  # type: ignore[union-attr]

    @override
    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        if self.closed:
            return
        self.closed = True
        self.simulator.sessions.discard(self)
        self.lost.callback(None)

    @override
    def dataReceived(self, data: bytes) -> None:
        self.simulator.received_bytes += data
        if self._closing:
            return
        try:
            messages = self._parser.feed(data)
        except AmiProtocolError as e:
            self.log.warn("Simulated AMI dropped a client: {error}", error=str(e))
            self.close()
            return
        for message in messages:
            self.simulator.received_actions.append(message)
            if self._closing:
                return
            self._handle(message)

    def close(self) -> None:
        """Close the connection after pending writes."""
        self._closing = True
        if self.transport is not None:
            self.transport.loseConnection()

    def send(self, headers: Headers) -> None:
        """Write one message to this session."""
        if self.closed or self.transport is None:
            return
        try:
            self.transport.write(encode_message(headers))
        except AmiEncodingError as e:
            self.log.warn(
                "Simulated AMI could not encode a message: {error}", error=str(e)
            )

    def respond(
        self,
        message: Message,
        response: str,
        text: str | None = None,
        extra: Headers | None = None,
    ) -> None:
        """Write a response in Asterisk's order: Response, ActionID, extra..., Message."""
        headers: Headers = [("Response", response)]
        if message.action_id is not None:
            headers.append(("ActionID", message.action_id))
        headers += extra or []
        if text is not None:
            headers.append(("Message", text))
        self.send(headers)

    def error(self, message: Message, text: str) -> None:
        """Write ``Response: Error`` with ``text``."""
        self.respond(message, "Error", text)

    def wants(self, klass: str) -> bool:
        """Whether an event of class ``klass`` reaches this session."""
        return self.authenticated and klass in self.read and klass in self.mask

    def wants_event(self, klass: str, event: str, data: bytes) -> bool:
        """Whether the broadcast ``event`` (class ``klass``, wire ``data``) is sent.

        Asterisk's ``process_events``: read class and mask, then the user's
        event filters (``should_send_event``).
        """
        return self.wants(klass) and self.filters.allows(event, data)

    def _handle(self, message: Message) -> None:
        action = (message.action or "").strip()
        if not action:
            self.error(message, "Missing action in request")
            return
        lowered = action.lower()
        if not self.authenticated and lowered not in _PRE_LOGIN:
            self.error(message, "Permission denied")
            return
        if lowered == "login":
            self._login(message)
            return
        if lowered == "challenge":
            self._challenge_action(message)
            return
        if lowered not in sim_perms.ACTION_CLASSES:
            self.error(
                message,
                f"Invalid/unknown command: {action}. "
                "Use Action: ListCommands to show available commands.",
            )
            return
        if not sim_perms.action_permitted(lowered, self.write):
            self.error(message, "Permission denied")
            return
        self._actions.run(lowered, message)

    def _challenge_action(self, message: Message) -> None:
        if (message.get("AuthType") or "").lower() != "md5":
            self.error(message, "Must specify AuthType")
            return
        if self._challenge is None:
            self._challenge = str(secrets.randbelow(900_000_000) + 100_000_000)
        self.respond(message, "Success", extra=[("Challenge", self._challenge)])

    def _check_login(self, message: Message) -> AmiUser | None:
        user = self.simulator.settings.user(message.get("Username") or "")
        if user is None:
            return None
        if (message.get("AuthType") or "").lower() == "md5":
            if self._challenge is None:
                return None
            expected = hashlib.md5(  # noqa: S324 - the AMI MD5 challenge protocol
                (self._challenge + user.secret).encode()
            ).hexdigest()
            key = (message.get("Key") or "").lower()
            return user if secrets.compare_digest(key, expected) else None
        secret = message.get("Secret") or ""
        return (
            user
            if secrets.compare_digest(secret.encode(), user.secret.encode())
            else None
        )

    def _login(self, message: Message) -> None:
        if self.authenticated:
            self.respond(message, "Success", "Already authenticated")
            return
        user = self._check_login(message)
        if user is None:
            # Asterisk sleeps 1 s, answers, then closes; nothing else is read.
            self._closing = True

            def fail() -> None:
                self.error(message, "Authentication failed")
                if self.transport is not None:
                    self.transport.loseConnection()

            self.simulator.timers.call_later(LOGIN_FAILURE_DELAY, fail)
            return
        self.user = user
        self.read = sim_perms.expand_classes(user.read)
        self.write = sim_perms.expand_classes(user.write)
        self.mask = sim_perms.parse_event_mask(message.get("Events"), self.read)
        self.filters = user.eventfilters
        self.respond(message, "Success", "Authentication accepted")
        # Written to the session (astman_append), so never subject to eventfilter.
        if self.wants("system"):
            uptime = str(int(self.simulator.uptime()))
            self.send(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                    ("Status", "Fully Booted"),
                ]
            )
        self.simulator.successful_auth(self, using_password=False)
