"""Tests for the FastAGI server (callnowd.ami.fastagi) driven with StringTransport."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.agi import AgiProtocolError, AgiResult
from callnowd.ami.fastagi import (
    AgiCommandFailed,
    AgiCommandInFlight,
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiSession,
    AgiTimeout,
    AgiUsageError,
    FastAgiFactory,
    FastAgiProtocol,
)

S1 = (
    Path(__file__).parents[1] / "fixtures" / "transcripts" / "s1-001002-accept.agi.raw"
).read_bytes()
S1_ENV, S1_REPLIES = S1.split(b"\n\n", 1)
S1_ENV += b"\n\n"
S1_COMMANDS = [
    b"ANSWER\n",
    b'GET VARIABLE "CALLNOW_REQUEST"\n',
    b"WAIT FOR DIGIT 5000\n",
    b'SET VARIABLE "CALLERID(num)" "5555550000"\n',
    b'EXEC "Dial" "Local/5555555555@pstn,30"\n',
    b'GET VARIABLE "DIALSTATUS"\n',
    b"HANGUP\n",
]
ENV = b"agi_network: yes\nagi_network_script: t?x=1\nagi_channel: Local/1@p-1;1\n\n"

Handler = Callable[[AgiSession], Awaitable[None]]


class Harness:
    """A factory, a clock and helpers to open StringTransport connections."""

    def __init__(self, handler: Handler | None = None, **kwargs: Any) -> None:
        self.clock = Clock()
        routes = {"t": handler, "confirm": handler} if handler is not None else {}
        self.factory = FastAgiFactory(self.clock, routes, **kwargs)

    def connect(
        self, host: str = "127.0.0.1"
    ) -> tuple[FastAgiProtocol, StringTransport]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4573))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        proto.makeConnection(transport)
        return proto, transport


def take(transport: StringTransport) -> bytes:
    value: bytes = transport.value()
    transport.clear()
    return value


S1_SEEN = [("abc123",), "abc123", "1", "-1", "ANSWER"]


def s1_handler(seen: list[object]) -> Handler:
    """The s1 call flow: answer, read the request, take a digit, dial, hang up."""

    async def confirm(session: AgiSession) -> None:
        seen.append(session.env.args)
        await session.answer()
        seen.append(await session.get_variable("CALLNOW_REQUEST"))
        seen.append(await session.wait_for_digit(5000))
        await session.set_variable("CALLERID(num)", "5555550000")
        seen.append((await session.exec("Dial", "Local/5555555555@pstn,30")).result)
        seen.append(await session.get_variable("DIALSTATUS"))
        await session.hangup()

    return confirm


class S1ReplayTests(SynchronousTestCase):
    def test_s1_dialogue(self) -> None:
        """The s1 call runs command by command with the exact bytes, then closes."""
        seen: list[object] = []
        harness = Harness(s1_handler(seen))
        proto, transport = harness.connect()
        proto.dataReceived(S1_ENV)
        reply_lines = S1_REPLIES.splitlines(keepends=True)
        self.assertEqual(reply_lines[-1], b"HANGUP\n")
        for command, reply in zip(S1_COMMANDS, reply_lines, strict=False):
            self.assertFalse(transport.disconnecting)
            self.assertEqual(take(transport), command)
            proto.dataReceived(reply)
        self.assertEqual(seen, S1_SEEN)
        self.assertTrue(transport.disconnecting)
        proto.dataReceived(b"HANGUP\n")  # the late notice is ignored
        self.assertEqual(transport.value(), b"")
        proto.connectionLost(Failure(ConnectionError()))
        self.assertEqual(harness.factory.active, set())
        self.assertEqual(harness.clock.getDelayedCalls(), [])


class CommandTests(SynchronousTestCase):
    def run_handler(
        self, handler: Handler, **kwargs: Any
    ) -> tuple[Harness, FastAgiProtocol, StringTransport]:
        harness = Harness(handler, **kwargs)
        proto, transport = harness.connect()
        proto.dataReceived(ENV)
        return harness, proto, transport

    def test_hangup_notice_while_pending(self) -> None:
        """A HANGUP notice sets hung_up; the real reply still goes to the command."""
        seen: list[object] = []

        async def handler(session: AgiSession) -> None:
            seen.append((await session.exec("Dial", "x")).result)
            seen.append(session.hung_up)
            seen.append(await session.get_variable("DIALSTATUS"))

        _, proto, transport = self.run_handler(handler)
        self.assertEqual(take(transport), b'EXEC "Dial" "x"\n')
        proto.dataReceived(b"HANGUP\n")
        self.assertEqual(seen, [])
        proto.dataReceived(b"200 result=-1\n")
        self.assertEqual(seen, ["-1", True])
        proto.dataReceived(b"200 result=1 (ANSWER)\n")
        self.assertEqual(seen, ["-1", True, "ANSWER"])
        self.assertTrue(transport.disconnecting)

    def test_error_replies(self) -> None:
        """511, 520 (with usage), 510 and result=-1 become exceptions."""
        seen: list[object] = []

        async def handler(session: AgiSession) -> None:
            try:
                await session.stream_file("bye", "#")
            except AgiDeadChannel as e:
                seen.append(e.code)
            try:
                await session.command("SET", "VARIABLE", "X")
            except AgiUsageError as e:
                seen.append((e.code, e.usage))
            try:
                await session.command("FROB")
            except AgiInvalidCommand as e:
                seen.append((e.code, e.text))
            try:
                await session.answer()
            except AgiCommandFailed as e:
                seen.append(e.text)

        _, proto, transport = self.run_handler(handler)
        self.assertEqual(take(transport), b'STREAM FILE "bye" "#"\n')
        proto.dataReceived(b"HANGUP\n511 Command Not Permitted on a dead channel\n")
        self.assertEqual(take(transport), b'SET VARIABLE "X"\n')
        proto.dataReceived(
            b"520-Invalid command syntax.  Proper usage follows:\n"
            b"Usage: SET VARIABLE <n> <v>\n\n  more\n520 End of proper usage.\n"
        )
        self.assertEqual(take(transport), b'"FROB"\n')
        proto.dataReceived(b"510 Invalid or unknown command\n")
        self.assertEqual(take(transport), b"ANSWER\n")
        proto.dataReceived(b"200 result=-1\n")
        self.assertEqual(
            seen,
            [
                511,
                (520, "Usage: SET VARIABLE <n> <v>\n\n  more"),
                (510, "Invalid or unknown command"),
                "ANSWER returned result=-1",
            ],
        )
        self.assertTrue(transport.disconnecting)

    def test_helpers(self) -> None:
        """Unset variables and digit timeouts give None; digits come as characters."""
        seen: list[object] = []

        async def handler(session: AgiSession) -> None:
            seen.append(await session.get_variable("NOPE"))
            seen.append(await session.get_variable("EMPTY"))
            seen.append(await session.wait_for_digit(100))
            seen.append(await session.stream_file("welcome", "#*"))
            seen.append(await session.say_digits("123", "#"))
            await session.verbose('say "hi"', 3)

        _, proto, transport = self.run_handler(handler)
        exchange = [
            (b'GET VARIABLE "NOPE"\n', b"200 result=0\n"),
            (b'GET VARIABLE "EMPTY"\n', b"200 result=1 ()\n"),
            (b"WAIT FOR DIGIT 100\n", b"200 result=0\n"),
            (b'STREAM FILE "welcome" "#*"\n', b"200 result=35 endpos=800\n"),
            (b'SAY DIGITS "123" "#"\n', b"200 result=0\n"),
            (b'VERBOSE "say \\"hi\\"" 3\n', b"200 result=1\n"),
        ]
        for command, reply in exchange:
            self.assertEqual(take(transport), command)
            proto.dataReceived(reply)
        self.assertEqual(seen, [None, "", None, "#", None])
        self.assertTrue(transport.disconnecting)

    def test_one_command_at_a_time(self) -> None:
        """A second concurrent command raises; the first keeps its reply."""
        results: list[object] = []
        session_box: list[AgiSession] = []

        async def handler(session: AgiSession) -> None:
            session_box.append(session)
            results.append(await session.command("NOOP"))

        _, proto, transport = self.run_handler(handler)
        second = Deferred.fromCoroutine(session_box[0].command("ANSWER"))
        self.failureResultOf(second, AgiCommandInFlight)
        self.assertEqual(take(transport), b"NOOP\n")
        proto.dataReceived(b"200 result=0\n")
        self.assertEqual(results, [AgiResult(200, "0")])

    def test_connection_lost_mid_command(self) -> None:
        """Losing the connection fails the pending command with AgiHangup."""
        seen: list[object] = []

        async def handler(session: AgiSession) -> None:
            try:
                await session.wait_for_digit(5000)
            except AgiHangup:
                seen.append("hangup")
            try:
                await session.answer()
            except AgiHangup:
                seen.append("closed")

        harness, proto, transport = self.run_handler(handler)
        take(transport)
        proto.connectionLost(Failure(ConnectionError()))
        self.assertEqual(seen, ["hangup", "closed"])
        self.assertEqual(transport.value(), b"")
        self.assertEqual(harness.factory.active, set())
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_command_timeout(self) -> None:
        """No reply within the timeout: AgiTimeout, and the connection is closed."""
        seen: list[object] = []

        async def handler(session: AgiSession) -> None:
            try:
                await session.command("ANSWER", timeout=3)
            except AgiTimeout:
                seen.append("timeout")

        harness, _, transport = self.run_handler(handler, command_timeout=60)
        harness.clock.advance(2.9)
        self.assertEqual(seen, [])
        harness.clock.advance(0.2)
        self.assertEqual(seen, ["timeout"])
        self.assertTrue(transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """A handler silent for idle_timeout loses its connection."""
        seen: list[object] = []
        gate: Deferred[None] = Deferred()

        async def handler(session: AgiSession) -> None:
            await session.answer()
            await gate
            try:
                await session.answer()
            except AgiHangup:
                seen.append("hangup")

        harness, proto, transport = self.run_handler(handler, idle_timeout=10)
        harness.clock.advance(9)  # a command is in flight: no idle timer
        proto.dataReceived(b"200 result=0\n")
        harness.clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        with capturedLogs() as events:
            harness.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(
            events[0]["log_format"], "FastAGI session idle for {idle_timeout}s; closing"
        )
        gate.callback(None)
        self.assertEqual(seen, ["hangup"])

    def test_handler_exception(self) -> None:
        """A failing handler is logged at error level and the socket closed."""

        async def handler(session: AgiSession) -> None:
            raise ValueError("boom")

        with capturedLogs() as events:
            _, _, transport = self.run_handler(handler)
        self.assertTrue(transport.disconnecting)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["script"], "t")
        self.assertIsInstance(errors[0]["log_failure"].value, ValueError)
        self.flushLoggedErrors(ValueError)

    def test_protocol_error_fails_pending(self) -> None:
        """Garbage fails the pending command with AgiProtocolError and closes."""
        seen: list[object] = []

        async def handler(session: AgiSession) -> None:
            try:
                await session.answer()
            except AgiProtocolError:
                seen.append("protocol")

        _, proto, transport = self.run_handler(handler)
        proto.dataReceived(b"garbage\n")
        self.assertEqual(seen, ["protocol"])
        self.assertTrue(transport.disconnecting)

    def test_unsolicited_reply(self) -> None:
        """A reply with no command in flight is a protocol error that closes."""
        gate: Deferred[None] = Deferred()

        async def handler(session: AgiSession) -> None:
            await gate

        _, proto, transport = self.run_handler(handler)
        proto.dataReceived(b"200 result=0\n")
        self.assertTrue(transport.disconnecting)
        gate.callback(None)


class ConnectionTests(SynchronousTestCase):
    def test_unknown_route(self) -> None:
        """An unknown script is logged and the connection closed without a command."""
        harness = Harness(None)
        proto, transport = harness.connect()
        with capturedLogs() as events:
            proto.dataReceived(ENV)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(events[0]["script"], "t")
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_max_sessions(self) -> None:
        """Connections above max_sessions are closed at once; freed slots are reused."""
        harness = Harness(None, max_sessions=1)
        first, first_transport = harness.connect()
        with capturedLogs() as events:
            _, second_transport = harness.connect()
        self.assertFalse(first_transport.disconnecting)
        self.assertTrue(second_transport.disconnecting)
        self.assertEqual(events[0]["max_sessions"], 1)
        first.connectionLost(Failure(ConnectionError()))
        _, third_transport = harness.connect()
        self.assertFalse(third_transport.disconnecting)

    def test_env_timeout(self) -> None:
        """An environment block not complete within env_timeout closes."""
        harness = Harness(None, env_timeout=5)
        proto, transport = harness.connect()
        proto.dataReceived(b"agi_network: yes\n")
        harness.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        harness.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)

    def test_disallowed_peer(self) -> None:
        """A peer not on the allow-list is closed before anything is read."""
        started: list[AgiSession] = []

        async def handler(session: AgiSession) -> None:
            started.append(session)

        harness = Harness(handler, allowed_peers=["127.0.0.1"])
        proto, transport = harness.connect("10.0.0.7")
        self.assertTrue(transport.disconnecting)
        proto.dataReceived(ENV)
        self.assertEqual((started, harness.factory.active), ([], set()))
        proto, transport = harness.connect("127.0.0.1")
        proto.dataReceived(ENV)
        self.assertEqual(len(started), 1)

    def test_bad_environment(self) -> None:
        """A connection that does not speak FastAGI is closed."""
        harness = Harness(None)
        proto, transport = harness.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(harness.clock.getDelayedCalls(), [])
