"""Composition of the PBX side: AMI client (or simulator), FastAGI server, call flow.

Called by :func:`callnowd.service.build_service`; kept apart so the composition
root stays readable. In simulator mode the simulator listens first (port 0 by
default), the AMI client connects to whatever port it got, and the simulator's
dialplan is pointed at the FastAGI port once that is bound.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.internet import TimerService
from twisted.application.service import IServiceCollection
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

from callnowd.ami.client import AmiClient, AmiSettings
from callnowd.ami.fastagi import FastAgiFactory
from callnowd.ami.owner_leg import Prompts, owner_route
from callnowd.ami.pbx import AmiPbx, OwnerDialplan, watch_calls
from callnowd.ami.sim_config import (
    DEFAULT_OWNERS,
    AmiUser,
    OwnerScript,
    SimulatorSettings,
    VisitorScript,
)
from callnowd.ami.simulator import SimulatorService
from callnowd.background import run_in_background
from callnowd.calls.flow import CallFlow, FlowSettings
from callnowd.config import Config
from callnowd.listening import ListeningService
from callnowd.models import CallRequest
from callnowd.store.interface import Store

log = Logger()
RECONCILE_EVERY = 60.0

# What callnowd's AMI user may do: see conf/asterisk/manager.conf.
AMI_READ = frozenset({"call", "system", "user"})
AMI_WRITE = frozenset({"originate", "call", "user", "reporting"})
#: The ``eventfilter`` lines of the [callnowd] user of conf/asterisk/manager.conf
#: (a test keeps the two equal): the built-in simulator delivers only these
#: broadcast events, as Asterisk does with the shipped file.
AMI_EVENTFILTERS: tuple[tuple[str, str], ...] = tuple(
    (f"eventfilter(action(include),name({name}))", "")
    for name in (
        "OriginateResponse",
        "DialEnd",
        "Hangup",
        "FullyBooted",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "ExtensionStatus",
    )
)


def instance_id(config: Config) -> str:
    """The configured instance id, or one derived from host and store (stable)."""
    if config.daemon.instance_id:
        return config.daemon.instance_id
    material = f"{socket.gethostname()}\x1f{config.store.url}".encode()
    return hashlib.sha256(material).hexdigest()[:6]


@attrs.define
class PbxParts:
    """What the rest of the daemon needs from the PBX side."""

    flow: CallFlow
    client: AmiClient
    simulator: SimulatorService | None


@implementer(IStreamClientEndpoint)
class _SimulatorEndpoint:
    """Connects to the simulator's AMI port, whatever port it was given."""

    def __init__(self, reactor: Any, simulator: SimulatorService) -> None:
        self._reactor = reactor
        self._simulator = simulator

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        port = self._simulator.port
        if port is None:
            return Deferred.fromCoroutine(_refused())
        address = port.getHost()
        target = endpoints.TCP4ClientEndpoint(
            self._reactor,
            "127.0.0.1",
            address.port,  # type: ignore[attr-defined]
        )
        return target.connect(factory)


async def _refused() -> IProtocol:
    raise ConnectionRefusedError("the simulator is not listening yet")


def build_pbx(
    config: Config,
    reactor: Any,
    store: Store,
    parent: IServiceCollection,
    observer: Callable[[CallRequest], object] | None = None,
) -> PbxParts:
    """Build the simulator (if used), the AMI client, the call flow and FastAGI."""
    ast, calls = config.asterisk, config.calls
    ident = instance_id(config)
    simulator: SimulatorService | None = None
    secret = ast.secret
    if ast.mode == "simulator":
        secret = secret or secrets.token_hex(16)
        simulator = SimulatorService(
            reactor, _simulator_settings(config, secret), config.simulator.ami_listen
        )
        simulator.setServiceParent(parent)
        ami_endpoint: Any = _SimulatorEndpoint(reactor, simulator)
    else:
        ami_endpoint = endpoints.clientFromString(reactor, ast.ami_endpoint)
    client = AmiClient(
        reactor,
        ami_endpoint,
        AmiSettings(
            username=ast.username,
            secret=secret,
            auth=ast.auth,
            action_timeout=ast.action_timeout,
            ping_interval=ast.ping_interval,
            initial_delay=0.5 if simulator else 1.0,
            instance_id=ident,
        ),
    )
    dialplan = OwnerDialplan(
        agi_url=ast.agi_url or "agi://127.0.0.1:4573",
        context=ast.owner_context,
        exten=ast.owner_exten,
        priority=ast.owner_priority,
        use_application=ast.originate_application,
        ring_timeout=ast.ring_timeout,
    )
    pbx = AmiPbx(client, dialplan, reactor)
    flow = CallFlow(
        store,
        pbx,
        reactor.seconds,
        FlowSettings(
            instance_id=ident,
            trunk=calls.trunk,
            visitor_ring_timeout=calls.visitor_ring_timeout,
            max_call_seconds=calls.max_call_seconds,
            connect_wait=calls.connect_wait,
            max_in_flight=calls.max_in_flight,
            max_in_flight_per_extension=calls.max_in_flight_per_extension,
            notify_visitor=ast.user_event_visitor,
        ),
        observer,
    )
    watch_calls(client, flow, reactor)
    prompts = Prompts(
        incoming=calls.prompt_incoming,
        choice=calls.prompt_choice,
        declined=calls.prompt_declined,
        digit_timeout_ms=calls.digit_timeout * 1000,
    )
    agi = ListeningService(
        "FastAGI",
        endpoints.serverFromString(reactor, ast.agi_listen),
        FastAgiFactory(
            reactor,
            {"owner": owner_route(flow, prompts)},
            command_timeout=calls.max_call_seconds + calls.visitor_ring_timeout + 60,
            allowed_peers=ast.agi_allowed_peers,
        ),
    )
    agi.setServiceParent(parent)
    client.setServiceParent(parent)

    def agi_bound(port: IListeningPort) -> IListeningPort:
        url = ast.agi_url or f"agi://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
        pbx.dialplan = attrs.evolve(pbx.dialplan, agi_url=url)
        if simulator is not None:
            sim = simulator.simulator
            contexts = {ast.owner_context: f"{url}/owner,${{CALLNOW_REQUEST}}"}
            sim.reconfigure(attrs.evolve(sim.settings, contexts=contexts))
        return port

    agi.listening.addCallback(agi_bound)

    def sweep() -> None:
        # A safety net besides the reconciliation after each AMI login: requests
        # stored but not dispatched, or channels whose Hangup was missed.
        if client.connected:
            run_in_background(log, "periodic reconciliation", flow.reconcile())

    periodic = TimerService(RECONCILE_EVERY, sweep)
    periodic.clock = reactor
    periodic.setServiceParent(parent)
    log.info(
        "PBX: {mode} (instance {instance}); AMI user {user}",
        mode=ast.mode,
        instance=ident,
        user=ast.username,
    )
    return PbxParts(flow=flow, client=client, simulator=simulator)


def _simulator_settings(config: Config, secret: str) -> SimulatorSettings:
    sim = config.simulator
    owners = dict(DEFAULT_OWNERS)
    owners.update({d: OwnerScript.parse(s) for d, s in sim.owners.items()})
    return SimulatorSettings(
        users=(
            AmiUser(
                username=config.asterisk.username,
                secret=secret,
                read=AMI_READ,
                write=AMI_WRITE,
                eventfilters=AMI_EVENTFILTERS,
            ),
        ),
        owners=owners,
        visitors={n: VisitorScript.parse(s) for n, s in sim.visitors.items()},
        default_visitor=VisitorScript.parse(sim.default_visitor),
        # Pointed at the real FastAGI port as soon as it is bound.
        contexts={
            config.asterisk.owner_context: "agi://127.0.0.1:4573/owner,${CALLNOW_REQUEST}"
        },
    )
