"""A server endpoint service that logs the address it bound (port 0 included)."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override


class ListeningService(Service):
    """Listens on ``endpoint`` with ``factory`` while running.

    Unlike ``StreamServerEndpointService`` it logs ``"{what} listening on
    {host}:{port}"`` with the real port, which tests and operators read, and it
    exposes the port.
    """

    log = Logger()

    def __init__(
        self, what: str, endpoint: IStreamServerEndpoint, factory: IProtocolFactory
    ) -> None:
        self.what = what
        self._endpoint = endpoint
        self._factory = factory
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()

    @override
    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        d = self._endpoint.listen(self._factory)

        def listening(port: IListeningPort) -> IListeningPort:
            self.port = port
            address = port.getHost()
            self.log.info(
                "{what} listening on {host}:{port}",
                what=self.what,
                host=getattr(address, "host", "?"),
                port=getattr(address, "port", 0),
            )
            self.listening.callback(port)
            return port

        failures: list[Failure] = []

        def failed(failure: Failure) -> None:
            self.log.failure("{what} cannot listen", failure, what=self.what)
            failures.append(failure)
            self.listening.errback(failure)

        d.addCallbacks(listening, failed)
        if failures:
            # TCP and UNIX endpoints bind synchronously: a port in use ends the
            # daemon here, before the reactor runs, instead of leaving it half up.
            self.listening.addErrback(lambda _: None)
            failures[0].raiseException()

    @override
    def startService(self) -> None:
        if self.port is None and not self.listening.called:
            self.privilegedStartService()
        super().startService()

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self.port is None:
            return succeed(None)
        port, self.port = self.port, None
        stopped: Deferred[None] = maybeDeferred(port.stopListening)  # type: ignore[call-overload]
        return stopped
