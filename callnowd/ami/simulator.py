"""The built-in Asterisk simulator: an AMI server and FastAGI client on loopback.

This module owns :class:`AsteriskSimulator`, the facade used by tests,
benchmarks and ``make run`` when no real PBX is configured: it accepts AMI
connections (:mod:`callnowd.ami.sim_ami`), runs originated calls
(:mod:`callnowd.ami.sim_call`) whose answered legs connect to the daemon's
FastAGI server (:mod:`callnowd.ami.sim_agi`), broadcasts events to the sessions
allowed to see them, and records what reached the wire for tests.  It also owns
:class:`SimulatorService`, the ``Service`` that listens on an endpoint string.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
    serverFromString,
)
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocol,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from typing_extensions import override

from callnowd.ami.codec import AmiEncodingError, Message, encode_message
from callnowd.ami.sim_agi import AgiSession
from callnowd.ami.sim_ami import AmiServerProtocol
from callnowd.ami.sim_call import OriginateRequest, OwnerCall
from callnowd.ami.sim_channels import Channel, ChannelRegistry, Headers
from callnowd.ami.sim_config import SimulatorSettings
from callnowd.ami.sim_dialplan import AgiTarget
from callnowd.ami.sim_host import Timers


class _AmiFactory(ServerFactory):
    def __init__(self, simulator: AsteriskSimulator) -> None:
        self.simulator = simulator

    @override
    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if self.simulator.refusing():
            return None
        return AmiServerProtocol(self.simulator)


def _address(address: object) -> str:
    host, port = getattr(address, "host", "0.0.0.0"), getattr(address, "port", 0)  # noqa: S104
    return f"IPV4/TCP/{host}/{port}"


class AsteriskSimulator:
    """A simulated Asterisk 22: AMI server plus FastAGI client.

    Test hooks: :attr:`received_actions` (every parsed AMI message received),
    :attr:`received_bytes` (all AMI bytes received), :attr:`agi_commands`
    (every AGI command line, tokenised), :attr:`emitted_events` (every broadcast
    event), :meth:`drop_connections` and :meth:`set_extension_state`.

    Args:
        reactor: provides the clock; TCP (``IReactorTCP``) is needed for AGI.
        settings: users, scripted endpoints and dialplan contexts.
    """

    log = Logger()

    def __init__(self, reactor: IReactorTime, settings: SimulatorSettings) -> None:
        self._reactor = reactor
        self._settings = settings
        self._registry = ChannelRegistry()
        self._timers = Timers(reactor)
        self._started = reactor.seconds()
        self._refuse_until = float("-inf")
        self._ports: list[IListeningPort] = []
        self._agi: set[AgiSession] = set()
        self._connecting: set[Deferred[Any]] = set()
        self._extensions: dict[tuple[str, str], tuple[int, str]] = {}
        self.sessions: set[AmiServerProtocol] = set()
        self.calls: list[OwnerCall] = []
        self.received_actions: list[Message] = []
        self.received_bytes = b""
        self.agi_commands: list[list[str]] = []
        self.emitted_events: list[Message] = []

    # -- SimHost ---------------------------------------------------------------
    @property
    def clock(self) -> IReactorTime:
        """The reactor's clock."""
        return self._reactor

    @property
    def settings(self) -> SimulatorSettings:
        """The simulator settings."""
        return self._settings

    def reconfigure(self, settings: SimulatorSettings) -> None:
        """Use new settings from now on (calls in progress keep their scripts).

        The daemon uses it to point the dialplan contexts at its FastAGI port once
        that port is known (it may be chosen by the OS).
        """
        self._settings = settings

    @property
    def registry(self) -> ChannelRegistry:
        """Live channels and id allocation."""
        return self._registry

    @property
    def timers(self) -> Timers:
        """All pending delayed calls of the simulator."""
        return self._timers

    def emit(self, event: str, klass: str, headers: Headers) -> None:
        """Broadcast an event to every session whose read classes, mask and filters allow it."""
        full: Headers = [("Event", event), ("Privilege", f"{klass},all"), *headers]
        try:
            data = encode_message(full)
        except AmiEncodingError as e:
            self.log.warn(
                "Simulated event {event} not encodable: {error}",
                event=event,
                error=str(e),
            )
            return
        self.emitted_events.append(Message(tuple(full)))
        for session in list(self.sessions):
            if session.transport is not None and session.wants_event(
                klass, event, data
            ):
                session.transport.write(data)

    def record_agi_command(self, words: list[str]) -> None:
        """Remember one AGI command line."""
        self.agi_commands.append(list(words))

    def connect_agi(self, target: AgiTarget, protocol: IProtocol) -> Deferred[None]:
        """Connect ``protocol`` to ``target`` within the AGI connect timeout."""
        tcp = IReactorTCP(self._reactor)
        timeout = self._settings.agi_connect_timeout
        endpoint: IStreamClientEndpoint
        if target.host.replace(".", "").isdigit():
            endpoint = TCP4ClientEndpoint(
                tcp, target.host, target.port, timeout=timeout
            )
        elif ":" in target.host:
            endpoint = TCP6ClientEndpoint(
                tcp, target.host, target.port, timeout=timeout
            )
        else:
            endpoint = HostnameEndpoint(tcp, target.host, target.port, timeout=timeout)
        connecting = connectProtocol(endpoint, protocol)
        self._connecting.add(connecting)

        def connected(_: object) -> None:
            self._connecting.discard(connecting)
            if isinstance(protocol, AgiSession):
                self._agi.add(protocol)

        def failed(reason: Any) -> Any:
            self._connecting.discard(connecting)
            return reason

        result: Deferred[None] = connecting.addCallbacks(connected, failed)
        return result

    # -- used by the AMI sessions -----------------------------------------------
    def uptime(self) -> float:
        """Seconds since the simulator was created."""
        return self._reactor.seconds() - self._started

    def refusing(self) -> bool:
        """Whether new AMI connections are refused right now."""
        return self._reactor.seconds() < self._refuse_until

    def successful_auth(
        self, session: AmiServerProtocol, *, using_password: bool
    ) -> None:
        """Broadcast the SuccessfulAuth security event of a login."""
        now = self._reactor.seconds()
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}+0000"
        )
        transport = session.transport
        local = _address(transport.getHost()) if transport is not None else ""
        remote = _address(transport.getPeer()) if transport is not None else ""
        self.emit(
            "SuccessfulAuth",
            "security",
            [
                ("EventTV", stamp),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", session.user.username if session.user else ""),
                ("SessionID", f"0x{id(session):x}"),
                ("LocalAddress", local),
                ("RemoteAddress", remote),
                # A plain Secret login shows 0 in the s1 transcript.
                ("UsingPassword", "1" if using_password else "0"),
                ("SessionTV", stamp),
            ],
        )

    def originate(self, request: OriginateRequest) -> None:
        """Start an originated call once the ack is on the wire."""
        self.calls = [call for call in self.calls if not call.finished]
        call = OwnerCall(self, request)
        self.calls.append(call)
        self._timers.call_later(0, call.start)

    def hangup_channel(self, channel: Channel, cause: int) -> None:
        """Hang up ``channel`` on request (AMI Hangup)."""
        for call in self.calls:
            if channel is call.one or channel is call.two:
                call.owner_hangs_up()
                return
            dial = call.session.dialing if call.session is not None else None
            if dial is not None and channel in (dial.near, dial.far):
                dial.far_end_hangs_up()
                return

    def extension_state(self, exten: str, context: str) -> tuple[int, str]:
        """``(Status, Hint)`` of an extension (-1 when it has no hint)."""
        return self._extensions.get((exten, context), (-1, ""))

    # -- public API ---------------------------------------------------------------
    def ami_factory(self) -> ServerFactory:
        """A factory for AMI connections; listen it on any endpoint."""
        return _AmiFactory(self)

    async def listen(self, endpoint: IStreamServerEndpoint) -> IListeningPort:
        """Listen for AMI connections on ``endpoint``; :meth:`stop` closes it."""
        port: IListeningPort = await endpoint.listen(self.ami_factory())
        self._ports.append(port)
        return port

    def drop_connections(self, refuse_for: float = 0.0) -> None:
        """Cut every AMI connection; refuse new ones for ``refuse_for`` seconds."""
        self._refuse_until = self._reactor.seconds() + refuse_for
        for session in list(self.sessions):
            transport = session.transport
            if transport is not None:
                abort = getattr(transport, "abortConnection", None)
                if abort is not None:
                    abort()
                else:
                    transport.loseConnection()

    def set_extension_state(
        self,
        exten: str,
        *,
        in_use: bool = True,
        context: str = "default",
        hint: str | None = None,
    ) -> None:
        """Report ``exten`` in use (or idle) like a hint change in Asterisk.

        Emits DeviceStateChange and ExtensionStatus; ``ExtensionState`` then
        answers Status 1 (in use) or 0 (idle).
        """
        hint = hint or f"PJSIP/{exten}"
        status = 1 if in_use else 0
        self._extensions[(exten, context)] = (status, hint)
        self.emit(
            "DeviceStateChange",
            "call",
            [("Device", hint), ("State", "INUSE" if in_use else "NOT_INUSE")],
        )
        self.emit(
            "ExtensionStatus",
            "call",
            [
                ("Exten", exten),
                ("Context", context),
                ("Hint", hint),
                ("Status", str(status)),
                ("StatusText", "InUse" if in_use else "Idle"),
            ],
        )

    async def stop(self) -> None:
        """Close listeners and connections and cancel every timer."""
        self._timers.cancel_all()
        for connecting in list(self._connecting):
            connecting.cancel()
        waits: list[Deferred[Any]] = []
        for port in self._ports:
            result = port.stopListening()
            if isinstance(result, Deferred):
                waits.append(result)
        self._ports.clear()
        for session in list(self.sessions):
            waits.append(session.lost)
            session.close()
        for agi in list(self._agi):
            if not agi.closed:
                waits.append(agi.lost)
                agi.abort()
        self._agi.clear()
        if waits:
            await DeferredList(waits, consumeErrors=True)


class SimulatorService(Service):
    """Runs an :class:`AsteriskSimulator` listening on a server endpoint string.

    Args:
        reactor: the reactor (clock and TCP).
        settings: the simulator settings.
        endpoint: e.g. ``"tcp:5038:interface=127.0.0.1"``.
    """

    log = Logger()

    def __init__(
        self, reactor: IReactorTime, settings: SimulatorSettings, endpoint: str
    ) -> None:
        self.simulator = AsteriskSimulator(reactor, settings)
        self._reactor = reactor
        self._endpoint = endpoint
        self.port: IListeningPort | None = None
        self._listening: Deferred[IListeningPort] | None = None

    @override
    def startService(self) -> None:
        super().startService()
        endpoint = serverFromString(self._reactor, self._endpoint)

        def listening(port: IListeningPort) -> IListeningPort:
            self.port = port
            self.log.warn(
                "Asterisk SIMULATOR listening for AMI on {endpoint}: no real PBX is used",
                endpoint=self._endpoint,
            )
            return port

        self._listening = ensureDeferred(self.simulator.listen(endpoint)).addCallback(
            listening
        )

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()
        return ensureDeferred(self.simulator.stop())
