"""Loopback TCP test of the FastAGI server against a scripted Asterisk peer."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from typing_extensions import override

from callnowd.ami.agi import AgiClientParser
from callnowd.ami.fastagi import FastAgiFactory
from tests.ami.test_fastagi import S1_COMMANDS, S1_ENV, S1_REPLIES, S1_SEEN, s1_handler


class FakeAsterisk(Protocol):
    """Plays Asterisk's side of s1: the environment, then one reply per command."""

    def __init__(self) -> None:
        self.received = b""
        self.commands: list[list[str]] = []
        self.replies = S1_REPLIES.splitlines(keepends=True)
        self.parser = AgiClientParser()
        self.closed: Deferred[None] = Deferred()

    @override
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(S1_ENV)

    @override
    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.received += data
        for command in self.parser.feed(data):
            self.commands.append(command)
            reply = self.replies.pop(0)
            if self.replies == [b"HANGUP\n"]:  # the notice follows the last reply
                reply += self.replies.pop()
            self.transport.write(reply)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed.callback(None)


class LoopbackTests(TestCase):
    async def test_s1_over_tcp(self) -> None:
        """Over real loopback TCP the s1 call completes and the server hangs up."""
        from twisted.internet import reactor

        seen: list[object] = []
        factory = FastAgiFactory(
            reactor, {"confirm": s1_handler(seen)}, allowed_peers=["127.0.0.1"]
        )
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
        asterisk = await connectProtocol(endpoint, FakeAsterisk())
        await asterisk.closed  # the server closed the socket itself
        self.assertEqual(asterisk.received, b"".join(S1_COMMANDS))
        self.assertEqual(asterisk.commands[-1], ["HANGUP"])
        self.assertEqual(asterisk.replies, [])
        self.assertEqual(seen, S1_SEEN)
        for _ in range(100):  # let the server side see its own close
            if not factory.active:
                break
            await deferLater(reactor, 0.01)
        self.assertEqual(factory.active, set())
