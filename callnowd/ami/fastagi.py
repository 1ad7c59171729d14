"""The FastAGI server: accepts Asterisk's connections and runs one handler per call.

Owns :class:`FastAgiFactory` (routes, limits, the peer allow-list) and
:class:`FastAgiProtocol` (one connection: environment phase, routing, feeding
replies to the :class:`~callnowd.ami.fastagi_session.AgiSession`). When the
handler returns or raises, the server closes the socket itself: a real Asterisk
otherwise keeps the channel in dead-AGI mode and waits (OBSERVED.md finding 3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from typing_extensions import override

from callnowd.ami.agi import (
    AgiEnvironment,
    AgiHangupNotice,
    AgiProtocolError,
    AgiServerEvent,
    AgiServerParser,
)
from callnowd.ami.fastagi_session import (
    AgiCommandError,
    AgiCommandFailed,
    AgiCommandInFlight,
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiSession,
    AgiSessionError,
    AgiTimeout,
    AgiUsageError,
)
from callnowd.background import run_in_background

__all__ = [
    "AgiCommandError",
    "AgiCommandFailed",
    "AgiCommandInFlight",
    "AgiDeadChannel",
    "AgiHangup",
    "AgiInvalidCommand",
    "AgiSession",
    "AgiSessionError",
    "AgiTimeout",
    "AgiUsageError",
    "FastAgiFactory",
    "FastAgiProtocol",
    "Handler",
]

#: What a route runs for each call; the socket is closed when it finishes.
Handler = Callable[[AgiSession], Awaitable[None]]


class FastAgiFactory(ServerFactory):
    """Builds one :class:`FastAgiProtocol` per Asterisk connection.

    Args:
        clock: time source for every timeout.
        routes: handler per script path, i.e. ``agi_network_script`` before
            ``?`` (``"confirm"`` for ``agi://host:4573/confirm?x=1``).
        max_sessions: connections served at once; more are closed at once.
        env_timeout: seconds for the whole environment block to arrive.
        idle_timeout: seconds the handler may go without sending a command
            (while none is in flight) before the connection is closed.
        command_timeout: default seconds to wait for one command's reply.
        allowed_peers: peer IP addresses allowed to connect; None allows all.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        routes: Mapping[str, Handler],
        *,
        max_sessions: int = 100,
        env_timeout: float = 5.0,
        idle_timeout: float = 120.0,
        command_timeout: float = 600.0,
        allowed_peers: Collection[str] | None = None,
    ) -> None:
        self.clock = clock
        self.routes = dict(routes)
        self.max_sessions = max_sessions
        self.env_timeout = env_timeout
        self.idle_timeout = idle_timeout
        self.command_timeout = command_timeout
        self.allowed_peers = None if allowed_peers is None else frozenset(allowed_peers)
        self.active: set[FastAgiProtocol] = set()

    @override
    def buildProtocol(self, addr: object) -> FastAgiProtocol:
        return FastAgiProtocol(self)


class FastAgiProtocol(Protocol):
    """One FastAGI connection: environment, routing, then the handler's session."""

    log = Logger()

    def __init__(self, factory: FastAgiFactory) -> None:
        self._factory = factory
        self._parser = AgiServerParser()
        self._session: AgiSession | None = None
        self._env_timer: IDelayedCall | None = None
        self._closing = False
        self._peer = "?"

    @property
    def session(self) -> AgiSession | None:
        """The session once the environment has been read and routed."""
        return self._session

    @override
    def connectionMade(self) -> None:
        factory = self._factory
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        host = peer.host if isinstance(peer, IPv4Address | IPv6Address) else None
        self._peer = str(peer if host is None else host)
        if factory.allowed_peers is not None and host not in factory.allowed_peers:
            self.log.warn("FastAGI connection from {peer} refused", peer=self._peer)
            self._close()
            return
        if len(factory.active) >= factory.max_sessions:
            self.log.warn(
                "FastAGI connection from {peer} refused: {max_sessions} sessions",
                peer=self._peer,
                max_sessions=factory.max_sessions,
            )
            self._close()
            return
        factory.active.add(self)
        self._env_timer = factory.clock.callLater(factory.env_timeout, self._env_late)

    @override
    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return  # refused or finished: read nothing more
        try:
            for item in self._parser.feed(data):
                if self._closing:
                    return
                self._handle(item)
        except AgiProtocolError as e:
            self.log.warn(
                "FastAGI protocol error from {peer}: {error}", peer=self._peer, error=e
            )
            if self._session is not None:
                self._session.connection_lost(e)
            self._close()

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        self._cancel_env_timer()
        self._factory.active.discard(self)
        if self._session is not None:
            self._session.connection_lost()

    def _handle(self, item: AgiServerEvent) -> None:
        if isinstance(item, AgiEnvironment):
            self._start(item)
        elif self._session is None:
            raise AgiProtocolError(f"unexpected before the environment: {item!r}")
        elif isinstance(item, AgiHangupNotice):
            self.log.info(
                "FastAGI channel {channel} hung up",
                channel=self._session.env.get("agi_channel"),
            )
            self._session.notice_hangup()
        else:
            self._session.deliver(item)

    def _start(self, env: AgiEnvironment) -> None:
        self._cancel_env_timer()
        handler = self._factory.routes.get(env.script)
        fields = {
            "peer": self._peer,
            "script": env.script,
            "channel": env.get("agi_channel"),
            "uniqueid": env.get("agi_uniqueid"),
        }
        if handler is None:
            self.log.warn("FastAGI request for unknown script {script!r}", **fields)
            self._close()
            return
        self.log.info("FastAGI {script} for {channel} from {peer}", **fields)
        session = AgiSession(
            env,
            clock=self._factory.clock,
            write=self.transport.write,  # type: ignore[union-attr]
            close=self._close,
            command_timeout=self._factory.command_timeout,
            idle_timeout=self._factory.idle_timeout,
        )
        self._session = session
        run_in_background(
            self.log, "FastAGI session", self._run(handler, session, fields)
        )

    async def _run(
        self, handler: Handler, session: AgiSession, fields: dict[str, str | None]
    ) -> None:
        try:
            await handler(session)
        except AgiHangup:
            self.log.info("FastAGI {script} ended: connection gone", **fields)
        except Exception:
            self.log.failure(
                "FastAGI handler for {script} failed",
                Failure(),
                LogLevel.error,
                **fields,
            )
        finally:
            session.connection_lost()
            self._close()

    def _env_late(self) -> None:
        self._env_timer = None
        self.log.warn(
            "FastAGI environment from {peer} too slow; closing", peer=self._peer
        )
        self._close()

    def _cancel_env_timer(self) -> None:
        if self._env_timer is not None and self._env_timer.active():
            self._env_timer.cancel()
        self._env_timer = None

    def _close(self) -> None:
        self._cancel_env_timer()
        if not self._closing:
            self._closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]
