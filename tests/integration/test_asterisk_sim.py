"""The Asterisk simulator over real loopback TCP, with the real FastAGI server.

The AMI side is driven by a small test driver built on the AMI codec; the
FastAGI side is callnowd's own ``FastAgiFactory`` with a handler that does what
the daemon does: answer, read the request id, wait for the owner's digit, set
the external caller id, dial the visitor, read DIALSTATUS and hang up.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
)
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from typing_extensions import override

from callnowd.ami.client import AmiClient, AmiSettings
from callnowd.ami.codec import AmiParser, Message, encode_action
from callnowd.ami.fastagi import AgiSession, FastAgiFactory
from callnowd.ami.sim_config import (
    AmiUser,
    OwnerScript,
    SimulatorSettings,
    VisitorScript,
)
from callnowd.ami.simulator import AsteriskSimulator
from callnowd.pbx_services import AMI_EVENTFILTERS

reactor: Any = _global_reactor
_SETTLE = itertools.count(1)
USER = AmiUser(
    "callnow",
    "s3cr3t",
    read=frozenset({"call", "system", "cdr", "dtmf"}),
    write=frozenset({"originate", "call", "reporting", "user"}),
)
OWNERS = {
    "Local/001002@phones": OwnerScript(kind="answer", digit="1", digit_delay=0.2),
    "Local/001003@phones": OwnerScript(kind="decline", digit_delay=0.2),
    "Local/001004@phones": OwnerScript(kind="noanswer"),
    "Local/001005@phones": OwnerScript(kind="busy"),
    "Local/001006@phones": OwnerScript(kind="ring"),
    "Local/009999@phones": OwnerScript(kind="nonexistent"),
}
VISITORS = {
    "5555555551": VisitorScript(kind="busy"),
    "5555555552": VisitorScript(kind="noanswer"),
}


class AmiDriver(Protocol):
    """A minimal AMI client for tests: sends actions, collects every message."""

    def __init__(self) -> None:
        self.parser = AmiParser(expect_banner=True)
        self.messages: list[Message] = []
        self._waiters: list[tuple[Callable[[Message], bool], Deferred[Message]]] = []
        self.lost: Deferred[None] = Deferred()

    @override
    def dataReceived(self, data: bytes) -> None:
        messages = self.parser.feed(data)
        self.messages += messages
        for message in messages:
            for waiter in list(self._waiters):
                if waiter[0](message):
                    self._waiters.remove(waiter)
                    waiter[1].callback(message)

    @override
    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost.callback(None)

    def send(self, action: str, action_id: str, *headers: tuple[str, str]) -> None:
        assert self.transport is not None
        self.transport.write(encode_action(action, action_id, headers))

    def wait_for(
        self, match: Callable[[Message], bool], timeout: float = 10.0
    ) -> Deferred[Message]:
        for message in self.messages:
            if match(message):
                return Deferred.fromCoroutine(_now(message))
        waiter: Deferred[Message] = Deferred()
        self._waiters.append((match, waiter))
        return waiter.addTimeout(timeout, reactor)

    def events(self, *names: str) -> list[Message]:
        return [
            m
            for m in self.messages
            if m.event is not None and (not names or m.event in names)
        ]


async def _now(message: Message) -> Message:
    return message


@attrs.define
class AgiLog:
    """What the test FastAGI handler saw."""

    digit: str | None = None
    request: str | None = None
    dial: int | None = None
    dialstatus: str | None = None
    answeredtime: str | None = None


def owner_handler(log: AgiLog, visitor: str) -> Callable[[AgiSession], Any]:
    async def handle(session: AgiSession) -> None:
        await session.answer()
        log.request = await session.get_variable("CALLNOW_REQUEST")
        log.digit = await session.wait_for_digit(3000)
        if log.digit == "1":
            await session.set_variable("CALLERID(num)", "5555550000")
            result = await session.exec("Dial", f"Local/{visitor}@pstn,1,L(60000)")
            log.dial = int(result.result)
            log.dialstatus = await session.get_variable("DIALSTATUS")
            log.answeredtime = await session.get_variable("ANSWEREDTIME")
        await session.hangup()

    return handle


class SimulatorHarness:
    """A simulator, a FastAGI server and one logged-in AMI driver on loopback."""

    def __init__(self, test: TestCase, visitor: str = "5555555555") -> None:
        self.test = test
        self.visitor = visitor
        self.agi_log = AgiLog()

    async def start(self, **settings: Any) -> AmiDriver:
        tcp: IReactorTCP = reactor
        clock: IReactorTime = reactor
        fastagi = FastAgiFactory(
            clock, {"owner": owner_handler(self.agi_log, self.visitor)}
        )
        agi_port: IListeningPort = await TCP4ServerEndpoint(
            tcp, 0, interface="127.0.0.1"
        ).listen(fastagi)
        self.test.addCleanup(agi_port.stopListening)
        agi_port_number = agi_port.getHost().port  # type: ignore[attr-defined]
        template = f"agi://127.0.0.1:{agi_port_number}/owner,${{CALLNOW_REQUEST}}"
        base: dict[str, Any] = {
            "users": (USER,),
            "owners": OWNERS,
            "visitors": VISITORS,
            "default_visitor": VisitorScript(kind="answer", talk_seconds=0.3),
            "contexts": {"callnow-owner": template},
        }
        base.update(settings)
        self.sim = AsteriskSimulator(clock, SimulatorSettings(**base))
        port = await self.sim.listen(TCP4ServerEndpoint(tcp, 0, interface="127.0.0.1"))
        self.test.addCleanup(lambda: Deferred.fromCoroutine(self.sim.stop()))
        self.port = port.getHost().port  # type: ignore[attr-defined]
        driver = await self.connect()
        driver.send(
            "Login", "login1", ("Username", USER.username), ("Secret", USER.secret)
        )
        await driver.wait_for(lambda m: m.action_id == "login1")
        return driver

    async def connect(self) -> AmiDriver:
        driver = AmiDriver()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        await connectProtocol(endpoint, driver)

        async def close() -> None:
            if driver.transport is not None:
                driver.transport.loseConnection()
            await driver.lost

        self.test.addCleanup(lambda: Deferred.fromCoroutine(close()))
        return driver


async def originate(
    driver: AmiDriver, channel: str, timeout_ms: int = 1500
) -> tuple[Message, Message]:
    """Originate like the daemon; return (OriginateResponse, Hangup of the ;1 leg)."""
    driver.send(
        "Originate",
        "o1",
        ("Channel", channel),
        ("Context", "callnow-owner"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Async", "true"),
        ("Timeout", str(timeout_ms)),
        ("CallerID", '"CallNow Mary" <5555555555>'),
        ("Variable", "CALLNOW_REQUEST=abc123"),
        ("ChannelId", "cn-test-1"),
    )
    ack = await driver.wait_for(
        lambda m: m.response is not None and m.action_id == "o1"
    )
    assert ack["Message"] == "Originate successfully queued"
    response = await driver.wait_for(lambda m: m.event == "OriginateResponse")
    hangup = await driver.wait_for(
        lambda m: (
            m.event == "Hangup"
            and m["Channel"].startswith(channel)
            and m["Channel"].endswith(";1")
        )
    )
    await settle(driver)
    return response, hangup


async def settle(driver: AmiDriver) -> None:
    """Round-trip a Ping so every event written before it has arrived."""
    action_id = f"settle-{next(_SETTLE)}"
    driver.send("Ping", action_id)
    await driver.wait_for(lambda m: m.action_id == action_id and m.response is not None)


class AsteriskSimulatorTests(TestCase):
    """Each scripted scenario end to end over loopback TCP."""

    async def test_owner_accepts_visitor_answers(self) -> None:
        """s1: Reason 4, digit 1, Dial -1 with ANSWER, DialBegin with the external caller id."""
        harness = SimulatorHarness(self)
        driver = await harness.start()
        response, hangup = await originate(driver, "Local/001002@phones")
        self.assertEqual((response["Response"], response["Reason"]), ("Success", "4"))
        self.assertEqual(response["Uniqueid"], "cn-test-1")
        self.assertEqual(hangup["Cause"], "16")
        log = harness.agi_log
        self.assertEqual(
            (log.request, log.digit, log.dial, log.dialstatus),
            ("abc123", "1", -1, "ANSWER"),
        )
        assert log.answeredtime is not None
        self.assertGreaterEqual(int(log.answeredtime), 0)
        [owner_begin, visitor_begin] = driver.events("DialBegin")
        self.assertNotIn("Channel", owner_begin)
        self.assertEqual(visitor_begin["CallerIDNum"], "5555550000")
        self.assertEqual(visitor_begin["DialString"], "5555555555@pstn")
        self.assertEqual(visitor_begin["Linkedid"], "cn-test-1")
        self.assertEqual(visitor_begin["DestLinkedid"], "cn-test-1")
        names = [m.event for m in driver.events("DialBegin", "DialEnd")]
        self.assertEqual(names, ["DialBegin", "DialEnd", "DialBegin", "DialEnd"])
        [mary] = [m for m in driver.events("Cdr") if m["Destination"] == "5555555555"]
        self.assertEqual(
            (mary["Source"], mary["Disposition"]), ("5555550000", "ANSWERED")
        )
        self.assertEqual(mary["DestinationContext"], "pstn")
        self.assertIn(["WAIT", "FOR", "DIGIT", "3000"], harness.sim.agi_commands)
        self.assertEqual(harness.sim.agi_commands[-1], ["HANGUP"])

    async def test_owner_declines(self) -> None:
        """s2: digit 2, AGI HANGUP gives Cause 0 on both legs after the socket closes."""
        harness = SimulatorHarness(self)
        driver = await harness.start()
        response, _ = await originate(driver, "Local/001003@phones")
        self.assertEqual(response["Reason"], "4")
        self.assertEqual(harness.agi_log.digit, "2")
        self.assertEqual([m["Cause"] for m in driver.events("Hangup")], ["0", "0"])
        self.assertEqual(len(driver.events("Cdr")), 2)
        self.assertNotIn("Dial", [c[1] for c in harness.sim.agi_commands if len(c) > 1])

    async def test_owner_no_answer(self) -> None:
        """s3: no ringing, Reason 3 after Timeout, Cause 19, no DialEnd, no Cdr."""
        harness = SimulatorHarness(self)
        driver = await harness.start()
        response, hangup = await originate(driver, "Local/001004@phones")
        self.assertEqual((response["Response"], response["Reason"]), ("Failure", "3"))
        self.assertEqual(response["Channel"], "Local/001004@phones")
        self.assertEqual(hangup["Cause"], "19")
        self.assertEqual(
            driver.events("DialEnd")
            + driver.events("Cdr")
            + driver.events("DialState"),
            [],
        )
        self.assertEqual(harness.sim.agi_commands, [])

    async def test_owner_rings_no_answer(self) -> None:
        """s5: DialState RINGING, then Reason 3 and Cause 19."""
        harness = SimulatorHarness(self)
        driver = await harness.start()
        response, hangup = await originate(driver, "Local/001006@phones")
        self.assertEqual(response["Reason"], "3")
        self.assertEqual(
            [m["DialStatus"] for m in driver.events("DialState")], ["RINGING"]
        )
        self.assertEqual(hangup["Cause"], "19")

    async def test_owner_busy(self) -> None:
        """s4: DialEnd BUSY, Reason 5, Uniqueid is our ChannelId, Causes 0 and 17."""
        harness = SimulatorHarness(self)
        driver = await harness.start()
        response, _ = await originate(driver, "Local/001005@phones")
        self.assertEqual((response["Reason"], response["Uniqueid"]), ("5", "cn-test-1"))
        self.assertEqual([m["DialStatus"] for m in driver.events("DialEnd")], ["BUSY"])
        self.assertEqual(
            sorted(m["Cause"] for m in driver.events("Hangup")), ["0", "17"]
        )

    async def test_owner_nonexistent(self) -> None:
        """s7: Reason 0 and no DialBegin."""
        harness = SimulatorHarness(self)
        driver = await harness.start()
        response, _ = await originate(driver, "Local/009999@phones")
        self.assertEqual((response["Response"], response["Reason"]), ("Failure", "0"))
        self.assertEqual(driver.events("DialBegin"), [])

    async def test_visitor_busy(self) -> None:
        """The visitor is busy: Dial returns 0 with DIALSTATUS BUSY; no visitor Cdr."""
        harness = SimulatorHarness(self, visitor="5555555551")
        driver = await harness.start()
        await originate(driver, "Local/001002@phones")
        log = harness.agi_log
        self.assertEqual((log.dial, log.dialstatus), (0, "BUSY"))
        self.assertEqual(driver.events("DialEnd")[-1]["DialStatus"], "BUSY")
        self.assertEqual(
            [m for m in driver.events("Cdr") if m["Destination"] == "5555555551"], []
        )

    async def test_visitor_no_answer(self) -> None:
        """The visitor never answers: after the Dial timeout DIALSTATUS is NOANSWER."""
        harness = SimulatorHarness(self, visitor="5555555552")
        driver = await harness.start()
        await originate(driver, "Local/001002@phones")
        log = harness.agi_log
        self.assertEqual((log.dial, log.dialstatus), (0, "NOANSWER"))
        self.assertEqual(driver.events("DialState")[-1]["DialStatus"], "RINGING")
        self.assertEqual(driver.events("DialEnd")[-1]["DialStatus"], "NOANSWER")

    async def test_fastagi_unreachable(self) -> None:
        """Without a FastAGI server the answered leg gets AGISTATUS FAILURE and hangs up."""
        harness = SimulatorHarness(self)
        driver = await harness.start(
            contexts={"callnow-owner": "agi://127.0.0.1:1/owner"}
        )
        response, hangup = await originate(driver, "Local/001002@phones")
        self.assertEqual(response["Reason"], "4")
        self.assertEqual(hangup["Cause"], "16")

    async def test_drop_connections_and_reconnect(self) -> None:
        """drop_connections closes the AMI socket; a new connection logs in again."""
        harness = SimulatorHarness(self)
        driver = await harness.start()
        harness.sim.drop_connections()
        await driver.lost
        again = await harness.connect()
        again.send("Login", "l2", ("Username", USER.username), ("Secret", USER.secret))
        reply = await again.wait_for(lambda m: m.action_id == "l2")
        self.assertEqual(reply["Message"], "Authentication accepted")


class AmiClientAgainstSimulatorTests(TestCase):
    """callnowd's own AmiClient (reconnecting service) against the simulator."""

    async def run_call(
        self, channel: str, visitor: str = "5555555555"
    ) -> tuple[Any, list[Message], AgiLog]:
        harness = SimulatorHarness(self, visitor=visitor)
        await harness.start()
        client = AmiClient(
            reactor,
            TCP4ClientEndpoint(reactor, "127.0.0.1", harness.port),
            AmiSettings(
                username=USER.username, secret=USER.secret, events="call,system,cdr"
            ),
            jitter=lambda: 0.0,
        )
        seen: list[Message] = []
        ended: Deferred[None] = Deferred()

        def collect(message: Message) -> None:
            seen.append(message)
            name = message.get("Channel") or ""
            if (
                message.event == "Hangup"
                and name.startswith(channel + "-")
                and name.endswith(";1")
            ):
                ended.callback(None)

        client.subscribe(None, collect)
        client.startService()
        self.addCleanup(client.stopService)
        await client.wait_connected(5)
        handle = client.originate(
            channel=channel,
            context="callnow-owner",
            exten="s",
            priority=1,
            timeout_ms=1500,
            caller_id='"CallNow Mary" <5555555555>',
            variables=[("CALLNOW_REQUEST", "abc123")],
            channel_id=f"{client.instance_id}-c1",
        )
        await handle.queued
        result = await handle.result
        await ended.addTimeout(10, reactor)
        return result, seen, harness.agi_log

    async def test_accept(self) -> None:
        """Answered, Mary dialled with the external caller id, DIALSTATUS ANSWER."""
        result, seen, log = await self.run_call("Local/001002@phones")
        self.assertEqual(result.outcome, "answered")
        self.assertTrue(result.uniqueid.endswith("-c1"))
        self.assertEqual((log.digit, log.dialstatus), ("1", "ANSWER"))
        begins = [m for m in seen if m.event == "DialBegin"]
        self.assertEqual(begins[-1]["CallerIDNum"], "5555550000")

    async def test_busy_no_answer_nonexistent(self) -> None:
        """Busy, no answer and nonexistent owners give the observed outcomes."""
        expected = {
            "Local/001005@phones": "busy",
            "Local/001004@phones": "no_answer",
            "Local/009999@phones": "failed",
        }
        for channel, outcome in expected.items():
            result, _, _ = await self.run_call(channel)
            self.assertEqual(result.outcome, outcome, channel)


FILTERED = AmiUser(
    "filtered",
    "f",
    read=frozenset({"call", "system", "user", "cdr"}),
    write=frozenset({"reporting", "user"}),
    eventfilters=AMI_EVENTFILTERS,
)
UNFILTERED = attrs.evolve(FILTERED, username="unfiltered", eventfilters=())


class EventFilterTests(TestCase):
    """manager.conf eventfilter over loopback TCP: the shipped [callnowd] filters."""

    async def login(self, harness: SimulatorHarness, user: AmiUser) -> AmiDriver:
        driver = await harness.connect()
        driver.send("Login", "in", ("Username", user.username), ("Secret", user.secret))
        await driver.wait_for(lambda m: m.action_id == "in")
        return driver

    async def test_filtered_user_gets_only_the_shipped_events(self) -> None:
        """Filtered: OriginateResponse/DialEnd/Hangup and list events, no noise."""
        harness = SimulatorHarness(self)
        driver = await harness.start(users=(USER, FILTERED, UNFILTERED))
        filtered = await self.login(harness, FILTERED)
        unfiltered = await self.login(harness, UNFILTERED)
        for session in (filtered, unfiltered):
            session.send("UserEvent", "u1", ("UserEvent", "CallNow"), ("Id", "7"))
            await session.wait_for(lambda m: m.action_id == "u1")
        driver.send(
            "Originate",
            "o1",
            ("Channel", "Local/001002@phones"),
            ("Context", "callnow-owner"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Async", "true"),
            ("Timeout", "1500"),
            ("ChannelId", "cn-test-1"),
            ("Variable", "CALLNOW_REQUEST=abc123"),
        )
        # The owner's channels live while it waits for its digit: list them.
        await driver.wait_for(lambda m: m.event == "Newchannel")
        filtered.send("CoreShowChannels", "c1")
        await filtered.wait_for(lambda m: m.event == "CoreShowChannelsComplete")
        await filtered.wait_for(
            lambda m: m.event == "Hangup" and m["Channel"].endswith(";1")
        )
        await unfiltered.wait_for(
            lambda m: m.event == "Hangup" and m["Channel"].endswith(";1")
        )
        await settle(filtered)
        await settle(unfiltered)
        got = {m.event for m in filtered.events()}
        self.assertLessEqual(
            {
                "OriginateResponse",
                "DialEnd",
                "Hangup",
                "FullyBooted",
                "CoreShowChannel",
                "CoreShowChannelsComplete",
            },
            got,
        )
        self.assertEqual(
            got - {"OriginateResponse", "DialEnd", "Hangup", "FullyBooted"},
            {"CoreShowChannel", "CoreShowChannelsComplete"},
        )
        everything = {m.event for m in unfiltered.events()}
        self.assertLessEqual(
            {"Newchannel", "Newstate", "Cdr", "UserEvent", "DialBegin", "BridgeEnter"},
            everything,
        )
        self.assertLessEqual(
            got - {"CoreShowChannel", "CoreShowChannelsComplete"}, everything
        )
        self.assertEqual(
            [m.event for m in filtered.events("DialEnd", "Hangup")],
            [m.event for m in unfiltered.events("DialEnd", "Hangup")],
        )
