"""An endpoint wrapper that keeps ``ClientService`` consistent during AMI login.

This module owns one workaround: ``ClientService`` (Twisted 26.10) has no state
transition for a connection that is lost while ``prepareConnection`` runs or
after it failed; automat then raises ``NoTransition`` out of ``connectionLost``.
Our login runs in ``prepareConnection``, and Asterisk closes the connection
after a refused login, so such losses are routine. :class:`GatedEndpoint`
delivers them to the AMI protocol only; once logged in, every call passes
through to ``ClientService`` unchanged.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from callnowd.ami.protocol import AmiProtocol


@implementer(IProtocol)
class _Gate:
    """Forwards to the wrapped protocol; a loss before login skips ClientService."""

    def __init__(self, inner: IProtocol) -> None:
        self.inner = inner

    def makeConnection(self, transport: ITransport) -> None:  # noqa: N802
        self.inner.makeConnection(transport)

    def connectionMade(self) -> None:  # noqa: N802
        """Unused: ``makeConnection`` already informed the wrapped protocol."""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.inner.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        if getattr(self.inner, "logged_in", False):
            self.inner.connectionLost(reason)
        else:
            cast(AmiProtocol, self.inner).lost_before_ready(reason)


@implementer(IProtocolFactory)
class _GateFactory(Factory):
    def __init__(self, wrapped: IProtocolFactory) -> None:
        self._wrapped = wrapped

    @override
    def buildProtocol(self, addr: IAddress) -> Protocol | None:  # type: ignore[override]
        inner = self._wrapped.buildProtocol(addr)
        return None if inner is None else cast(Protocol, _Gate(inner))


@implementer(IStreamClientEndpoint)
class GatedEndpoint:
    """Wraps a client endpoint; see the module docstring.

    Args:
        endpoint: the real endpoint (``tcp:``, ``tls:``, ...).
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:  # noqa: N803
        """Connect the wrapped endpoint, gating the protocols it builds."""
        connecting = self._endpoint.connect(_GateFactory(protocolFactory))
        # ClientService must get back the protocol its own factory built.
        return connecting.addCallback(lambda gate: cast(_Gate, gate).inner)
