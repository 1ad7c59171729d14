"""Replays the real Asterisk 22.10.1 transcripts against the simulator.

For every recorded scenario the same Login/Originate (and, where Asterisk ran
the AGI, the same FastAGI dialogue) is sent to the simulator over loopback TCP;
the messages it produces are compared with the transcript for the events the
daemon uses: the same kinds per channel leg, header names, OriginateResponse
Response/Reason/Channel shape, DialBegin before DialEnd, Hangup causes, Cdr
presence, and the AGI environment and replies.  Transcripts come from
/work/shared when present, else from tests/fixtures/transcripts/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    connectProtocol,
)
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from callnowd.ami.agi import AgiEnvironment, AgiHangupNotice, AgiResult, AgiServerParser
from callnowd.ami.codec import AmiParser, Message
from callnowd.ami.fastagi import AgiSession, FastAgiFactory
from callnowd.ami.sim_config import (
    DEFAULT_OWNERS,
    AmiUser,
    SimulatorSettings,
    VisitorScript,
)
from callnowd.ami.simulator import AsteriskSimulator
from tests.integration.test_asterisk_sim import AmiDriver, reactor, settle

_DIRS = (
    Path("/work/shared/asterisk/transcripts"),
    Path(__file__).resolve().parent.parent / "fixtures" / "transcripts",
)
USED = {
    "Newchannel",
    "Newstate",
    "NewCallerid",
    "DialBegin",
    "DialState",
    "DialEnd",
    "OriginateResponse",
    "Hangup",
    "Cdr",
    "DTMFBegin",
    "DTMFEnd",
}
USER = AmiUser(
    "callnow", "callnowsecret", read=frozenset({"all"}), write=frozenset({"all"})
)
_SUFFIX = re.compile(r"-[0-9a-f]{8};")


def transcript(name: str) -> bytes:
    for directory in _DIRS:
        path = directory / name
        if path.exists():
            return path.read_bytes()
    raise SkipTest(f"transcript {name} not available")


def role(channel: str | None) -> str:
    """A channel name with its per-run suffix removed (``Local/1@phones;1``)."""
    return _SUFFIX.sub(";", channel or "")


def call_events(messages: list[Message]) -> list[Message]:
    """The used events after the Originate ack, up to the Logoff."""
    start = next(
        i for i, m in enumerate(messages) if m.action_id == "o1" and m.event is None
    )
    return [m for m in messages[start + 1 :] if m.event in USED]


def projection(events: list[Message]) -> list[tuple[str, str]]:
    return [
        (m.event or "", role(m.get("Channel") or m.get("DestChannel"))) for m in events
    ]


def _hangup_of(prefix: str, leg: str) -> Callable[[Message], bool]:
    def match(message: Message) -> bool:
        name = message.get("Channel") or ""
        return (
            message.event == "Hangup" and name.startswith(prefix) and name.endswith(leg)
        )

    return match


def _port(listening: IListeningPort) -> int:
    port: int = listening.getHost().port  # type: ignore[attr-defined]
    return port


@attrs.define
class Replay:
    """The AGI replies the simulator gave to the transcript's dialogue."""

    environment: list[str] = attrs.Factory(list)
    replies: list[AgiResult] = attrs.Factory(list)
    notice: bool = False


def dialogue(replay: Replay) -> Any:
    async def confirm(session: AgiSession) -> None:
        replay.environment = [name for name, _ in session.env.variables]
        replay.replies.append(await session.command("ANSWER"))
        replay.replies.append(
            await session.command("GET", "VARIABLE", "CALLNOW_REQUEST")
        )
        digit = await session.command("WAIT", "FOR", "DIGIT", 5000)
        replay.replies.append(digit)
        if digit.result == "49":
            replay.replies.append(
                await session.command("SET", "VARIABLE", "CALLERID(num)", "5555550000")
            )
            replay.replies.append(
                await session.command("EXEC", "Dial", "Local/5555555555@pstn,30")
            )
            replay.replies.append(
                await session.command("GET", "VARIABLE", "DIALSTATUS")
            )
        replay.replies.append(await session.command("HANGUP"))
        await deferLater(reactor, 0.1)
        replay.notice = session.hung_up

    return confirm


class TranscriptConformanceTests(TestCase):
    """The simulator against each recorded scenario."""

    async def run_scenario(
        self, channel: str, timeout_ms: int = 30000
    ) -> tuple[list[Message], Replay]:
        replay = Replay()
        fastagi = FastAgiFactory(reactor, {"confirm": dialogue(replay)})
        agi_port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            fastagi
        )
        self.addCleanup(agi_port.stopListening)
        owners = {
            k: attrs.evolve(v, digit_delay=0.2) for k, v in DEFAULT_OWNERS.items()
        }
        url = f"agi://127.0.0.1:{_port(agi_port)}/confirm,${{CALLNOW_REQUEST}}"
        settings = SimulatorSettings(
            users=(USER,),
            owners=owners,
            contexts={"callnow-confirm": url},
            default_visitor=VisitorScript(kind="answer", talk_seconds=0.5),
        )
        sim = AsteriskSimulator(reactor, settings)
        self.addCleanup(lambda: Deferred.fromCoroutine(sim.stop()))
        port = await sim.listen(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))
        driver = AmiDriver()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", _port(port)), driver
        )
        self.addCleanup(lambda: Deferred.fromCoroutine(self._close(driver)))
        driver.send(
            "Login", "login1", ("Username", USER.username), ("Secret", USER.secret)
        )
        await driver.wait_for(lambda m: m.action_id == "login1")
        driver.send(
            "Originate",
            "o1",
            ("Channel", channel),
            ("Context", "callnow-confirm"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Async", "true"),
            ("Timeout", str(timeout_ms)),
            ("CallerID", '"CallNow Mary" <5555555555>'),
            ("Variable", "CALLNOW_REQUEST=abc123"),
        )
        await driver.wait_for(lambda m: m.event == "OriginateResponse")
        for leg in (";1", ";2"):
            await driver.wait_for(_hangup_of(channel + "-", leg))
        await settle(driver)
        return driver.messages, replay

    async def _close(self, driver: AmiDriver) -> None:
        if driver.transport is not None:
            driver.transport.loseConnection()
        await driver.lost

    def compare(self, name: str, simulated: list[Message]) -> None:
        real = call_events(
            AmiParser(expect_banner=True).feed(transcript(f"{name}.ami.raw"))
        )
        ours = call_events(simulated)
        # Same event kinds on the same legs (OriginateResponse and Cdr timing aside).
        self.assertEqual(sorted(projection(ours)), sorted(projection(real)), name)
        # Same header names for every kind, in the same order.
        for kind in {m.event for m in real}:
            real_names = [
                h for h, _ in next(m for m in real if m.event == kind).headers
            ]
            our_names = [h for h, _ in next(m for m in ours if m.event == kind).headers]
            self.assertEqual(our_names, real_names, f"{name}: headers of {kind}")
        # The same outcome.
        [real_or] = [m for m in real if m.event == "OriginateResponse"]
        [our_or] = [m for m in ours if m.event == "OriginateResponse"]
        for header in (
            "Response",
            "Reason",
            "Context",
            "Exten",
            "CallerIDNum",
            "CallerIDName",
        ):
            self.assertEqual(our_or[header], real_or[header], f"{name}: {header}")
        self.assertEqual(role(our_or["Channel"]), role(real_or["Channel"]))
        self.assertEqual(
            our_or["Uniqueid"] == "<unknown>", real_or["Uniqueid"] == "<unknown>"
        )

        # Hangup causes per leg, Cdr count, and the per-leg order of Dial events.
        def causes(events: list[Message]) -> dict[str, str]:
            return {
                role(m["Channel"]): m["Cause"] for m in events if m.event == "Hangup"
            }

        self.assertEqual(causes(ours), causes(real), name)
        self.assertEqual(
            len([m for m in ours if m.event == "Cdr"]),
            len([m for m in real if m.event == "Cdr"]),
        )
        for events in (ours, real):
            dial = [
                (m.event, role(m["DestChannel"]))
                for m in events
                if m.event in ("DialBegin", "DialEnd")
            ]
            for index, (event, dest) in enumerate(dial):
                if event == "DialEnd":
                    self.assertIn(("DialBegin", dest), dial[:index], name)
        # Every leg starts with Newchannel and ends with Hangup (Cdr may follow).
        for leg in {r for _, r in projection(ours)}:
            kinds = [
                e
                for e, r in projection(ours)
                if r == leg and e not in ("Cdr", "OriginateResponse")
            ]
            if kinds and leg.endswith((";1", ";2")):
                self.assertEqual(
                    (kinds[0], kinds[-1]), ("Newchannel", "Hangup"), f"{name} {leg}"
                )

    def compare_agi(self, name: str, replay: Replay) -> None:
        real = AgiServerParser().feed(transcript(f"{name}.agi.raw"))
        env = real[0]
        assert isinstance(env, AgiEnvironment)
        self.assertEqual(replay.environment, [n for n, _ in env.variables])
        real_replies = [r for r in real[1:] if isinstance(r, AgiResult)]
        self.assertEqual(
            [(r.result, r.data) for r in replay.replies],
            [(r.result, r.data) for r in real_replies],
        )
        self.assertEqual(
            replay.notice, any(isinstance(r, AgiHangupNotice) for r in real)
        )

    maxDiff = None

    async def test_s1_accept(self) -> None:
        """s1: the owner accepts, Mary answers and hangs up; AGI dialogue identical."""
        messages, replay = await self.run_scenario("Local/001002@phones")
        self.compare("s1-001002-accept", messages)
        self.compare_agi("s1-001002-accept", replay)

    async def test_s2_reject(self) -> None:
        """s2: the owner presses 2; AGI dialogue identical, Causes 0."""
        messages, replay = await self.run_scenario("Local/001003@phones")
        self.compare("s2-001003-reject", messages)
        self.compare_agi("s2-001003-reject", replay)

    async def test_s3_no_answer(self) -> None:
        """s3: no answer (Timeout shortened to 1 s): Reason 3, Cause 19, no Cdr."""
        messages, _ = await self.run_scenario("Local/001004@phones", timeout_ms=1000)
        self.compare("s3-001004-noanswer", messages)

    async def test_s4_busy(self) -> None:
        """s4: busy: Reason 5, Causes 0/17."""
        messages, _ = await self.run_scenario("Local/001005@phones")
        self.compare("s4-001005-busy", messages)

    async def test_s5_ring_no_answer(self) -> None:
        """s5: rings (Timeout shortened to 1 s): DialState RINGING, Reason 3."""
        messages, _ = await self.run_scenario("Local/001006@phones", timeout_ms=1000)
        self.compare("s5-001006-ringnoanswer", messages)

    async def test_s7_nonexistent(self) -> None:
        """s7: nonexistent extension: Reason 0, no Dial events."""
        messages, _ = await self.run_scenario("Local/009999@phones")
        self.compare("s7-009999-nonexistent", messages)

    async def test_s6_bad_login(self) -> None:
        """s6: a wrong secret gets the same reply as the transcript, then EOF."""
        sim = AsteriskSimulator(reactor, SimulatorSettings(users=(USER,)))
        self.addCleanup(lambda: Deferred.fromCoroutine(sim.stop()))
        port = await sim.listen(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))
        driver = AmiDriver()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", _port(port)), driver
        )
        driver.send(
            "Login", "login1", ("Username", "callnow"), ("Secret", "wrongsecret")
        )
        await (
            driver.lost
        )  # the 1 s delay itself is checked with a fake clock in tests/ami
        real = AmiParser(expect_banner=True).feed(transcript("s6-bad-login.ami.raw"))
        self.assertEqual(driver.messages, real)
