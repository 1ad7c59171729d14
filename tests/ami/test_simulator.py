"""Unit tests of the Asterisk simulator with StringTransport and a fake clock."""

from __future__ import annotations

import gc
import hashlib

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.agi import AgiEnvironment, AgiResult, AgiServerParser, encode_command
from callnowd.ami.codec import AmiParser, Message, encode_action, encode_message
from callnowd.ami.sim_ami import AmiServerProtocol
from callnowd.ami.sim_config import (
    AmiUser,
    OwnerScript,
    SimulatorSettings,
    VisitorScript,
)
from callnowd.ami.sim_dialplan import parse_callerid, parse_dial_data, separate_args
from callnowd.ami.simulator import AsteriskSimulator, SimulatorService

ALL = frozenset({"all"})
DAEMON = AmiUser(
    "callnow",
    "s3cr3t",
    read=frozenset({"call", "system", "user"}),
    write=frozenset({"originate", "call", "user", "reporting"}),
)
ADMIN = AmiUser("admin", "adm", read=ALL, write=ALL)
SETTINGS = SimulatorSettings(
    users=(DAEMON, ADMIN),
    owners={
        "Local/001002@phones": OwnerScript(kind="answer", digit="1", digit_delay=1.7),
        "Local/001005@phones": OwnerScript(kind="busy"),
        "Local/001006@phones": OwnerScript(kind="ring"),
        "Local/009999@phones": OwnerScript(kind="nonexistent"),
        "SIM/demo": OwnerScript.parse("answer digit=2 digit_delay=0.5"),
    },
    contexts={"callnow-owner": "agi://127.0.0.1:4573/owner,${CALLNOW_REQUEST}"},
)


PEERS: list[Peer] = []


def stop(test: SynchronousTestCase, sim: AsteriskSimulator, *others: IProtocol) -> None:
    """Stop ``sim``; StringTransports never report the close, so do it here."""
    stopping = Deferred.fromCoroutine(sim.stop())
    for peer in PEERS:
        peer.protocol.connectionLost(Failure(ConnectionDone()))
    for other in others:
        other.connectionLost(Failure(ConnectionDone()))
    PEERS.clear()
    test.successResultOf(stopping)


class Peer:
    """One AMI client connection on a StringTransport."""

    def __init__(self, sim: AsteriskSimulator) -> None:
        self.transport = StringTransport()
        protocol = sim.ami_factory().buildProtocol(None)
        assert protocol is not None
        self.protocol: IProtocol = protocol
        protocol.makeConnection(self.transport)
        PEERS.append(self)
        self.parser = AmiParser(expect_banner=True)

    def send(self, action: str, action_id: str, *headers: tuple[str, str]) -> None:
        self.protocol.dataReceived(encode_action(action, action_id, headers))

    def send_raw(self, *headers: tuple[str, str]) -> None:
        """An action encoded as a message (Getvar's Variable is a plain name)."""
        self.protocol.dataReceived(encode_message(headers))

    def read(self) -> list[Message]:
        data = self.transport.value()
        self.transport.clear()
        return self.parser.feed(data)

    def login(self, user: AmiUser = DAEMON, events: str | None = None) -> list[Message]:
        headers = [("Username", user.username), ("Secret", user.secret)]
        if events is not None:
            headers.append(("Events", events))
        self.send("Login", "login1", *headers)
        return self.read()


def kinds(messages: list[Message]) -> list[str]:
    return [m.event or f"Response:{m.response}" for m in messages]


class AmiServerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(1795641915)
        self.sim = AsteriskSimulator(self.clock, SETTINGS)

    def tearDown(self) -> None:
        stop(self, self.sim)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_banner(self) -> None:
        """The banner is the AMI 11.0.0 line."""
        peer = Peer(self.sim)
        self.assertEqual(peer.transport.value(), b"Asterisk Call Manager/11.0.0\r\n")

    def test_login_ok(self) -> None:
        """A good login is accepted, then FullyBooted arrives (system is read)."""
        messages = Peer(self.sim).login()
        self.assertEqual(kinds(messages), ["Response:Success", "FullyBooted"])
        self.assertEqual(messages[0]["Message"], "Authentication accepted")
        self.assertEqual(messages[0].action_id, "login1")

    def test_login_admin_gets_successful_auth(self) -> None:
        """A user reading security sees SuccessfulAuth after FullyBooted."""
        messages = Peer(self.sim).login(ADMIN)
        self.assertEqual(
            kinds(messages), ["Response:Success", "FullyBooted", "SuccessfulAuth"]
        )
        self.assertEqual(messages[2]["AccountID"], "admin")
        self.assertEqual(messages[2]["Privilege"], "security,all")

    def test_bad_login_waits_one_second_then_closes(self) -> None:
        """A wrong secret is answered after 1 s, then the connection closes."""
        peer = Peer(self.sim)
        peer.read()
        peer.send("Login", "login1", ("Username", "callnow"), ("Secret", "wrong"))
        self.clock.advance(0.999)
        self.assertEqual(peer.transport.value(), b"")
        self.assertFalse(peer.transport.disconnecting)
        self.clock.advance(0.001)
        [reply] = peer.read()
        self.assertEqual(
            (reply.response, reply["Message"]), ("Error", "Authentication failed")
        )
        self.assertTrue(peer.transport.disconnecting)

    def test_md5_login(self) -> None:
        """Challenge/Login with Key = md5(challenge + secret) is accepted."""
        peer = Peer(self.sim)
        peer.send("Challenge", "c1", ("AuthType", "MD5"))
        [challenge] = peer.read()
        key = hashlib.md5((challenge["Challenge"] + "s3cr3t").encode()).hexdigest()  # noqa: S324
        peer.send(
            "Login", "l1", ("AuthType", "MD5"), ("Username", "callnow"), ("Key", key)
        )
        self.assertEqual(peer.read()[0]["Message"], "Authentication accepted")

    def test_md5_login_wrong_key(self) -> None:
        """A wrong MD5 key fails like a wrong secret."""
        peer = Peer(self.sim)
        peer.send("Challenge", "c1", ("AuthType", "MD5"))
        peer.read()
        peer.send(
            "Login",
            "l1",
            ("AuthType", "MD5"),
            ("Username", "callnow"),
            ("Key", "0" * 32),
        )
        self.clock.advance(1)
        self.assertEqual(peer.read()[0]["Message"], "Authentication failed")

    def test_action_before_login_denied(self) -> None:
        """Only Login/Challenge/Logoff are allowed before login."""
        peer = Peer(self.sim)
        peer.read()
        peer.send("Ping", "p1")
        [reply] = peer.read()
        self.assertEqual(
            (reply.response, reply["Message"]), ("Error", "Permission denied")
        )

    def test_ping(self) -> None:
        """Ping answers Pong with a Timestamp."""
        peer = Peer(self.sim)
        peer.login()
        peer.send("Ping", "p1")
        [reply] = peer.read()
        self.assertEqual(
            (reply.response, reply["Ping"], reply.action_id), ("Success", "Pong", "p1")
        )
        self.assertEqual(float(reply["Timestamp"]), self.clock.seconds())

    def test_getvar_setvar(self) -> None:
        """Setvar/Getvar without a channel answer Success; no name or no channel errs."""
        peer = Peer(self.sim)
        peer.login()
        peer.send_raw(
            ("Action", "Setvar"),
            ("ActionID", "s1"),
            ("Variable", "GREETING"),
            ("Value", "hi"),
        )
        [reply] = peer.read()
        self.assertEqual(reply.response, "Success")
        peer.send_raw(
            ("Action", "Getvar"), ("ActionID", "g1"), ("Variable", "GREETING")
        )
        [reply] = peer.read()
        self.assertEqual(
            (reply.response, reply.get("Variable")), ("Success", "GREETING")
        )
        for action in ("Getvar", "Setvar"):
            peer.send(action, "e1")
            [reply] = peer.read()
            self.assertEqual(
                (reply.response, reply.get("Message")),
                ("Error", "No variable specified"),
            )
            peer.send_raw(
                ("Action", action),
                ("ActionID", "e2"),
                ("Variable", "X"),
                ("Channel", "PJSIP/nope-1"),
            )
            [reply] = peer.read()
            self.assertEqual(
                (reply.response, reply.get("Message")), ("Error", "No such channel")
            )

    def test_unknown_action(self) -> None:
        """An unknown action gets Asterisk's Invalid/unknown command text."""
        peer = Peer(self.sim)
        peer.login()
        peer.send("Bogus", "b1")
        [reply] = peer.read()
        self.assertEqual(
            reply["Message"],
            "Invalid/unknown command: Bogus. Use Action: ListCommands to show available commands.",
        )

    def test_originate_agi_application_needs_system(self) -> None:
        """Originate of Application AGI is refused without the system class."""
        peer = Peer(self.sim)
        peer.login()
        peer.send(
            "Originate",
            "o1",
            ("Channel", "Local/001002@phones"),
            ("Application", "AGI"),
            ("Data", "agi://127.0.0.1/x"),
            ("Async", "true"),
        )
        [reply] = peer.read()
        self.assertEqual(reply.response, "Error")
        self.assertEqual(
            reply["Message"], "Originate Access Forbidden: app or data blacklisted"
        )
        self.assertEqual(self.sim.calls, [])

    def test_originate_without_originate_class_denied(self) -> None:
        """A user without the originate write class gets Permission denied."""
        sim = AsteriskSimulator(
            self.clock,
            SimulatorSettings(
                users=(AmiUser("ro", "x", read=ALL, write=frozenset({"call"})),)
            ),
        )
        peer = Peer(sim)
        peer.login(AmiUser("ro", "x", read=ALL, write=frozenset()))
        peer.send(
            "Originate",
            "o1",
            ("Channel", "Local/001002@phones"),
            ("Context", "callnow-owner"),
            ("Exten", "s"),
            ("Priority", "1"),
        )
        self.assertEqual(peer.read()[0]["Message"], "Permission denied")
        stop(self, sim)

    def test_originate_validation(self) -> None:
        """Validation errors come back at once as Response: Error."""
        peer = Peer(self.sim)
        peer.login()
        cases = {
            "Channel not specified": [("Context", "callnow-owner")],
            "Invalid channel": [("Channel", "nochannel"), ("Context", "callnow-owner")],
            "Invalid timeout": [("Channel", "SIM/demo"), ("Timeout", "soon")],
            "Extension does not exist.": [
                ("Channel", "SIM/demo"),
                ("Context", "nowhere"),
                ("Exten", "s"),
                ("Priority", "1"),
            ],
        }
        for expected, headers in cases.items():
            peer.send("Originate", "o1", *headers)
            self.assertEqual(peer.read()[0]["Message"], expected)

    def originate(self, peer: Peer, channel: str, *extra: tuple[str, str]) -> None:
        peer.send(
            "Originate",
            "o1",
            ("Channel", channel),
            ("Context", "callnow-owner"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Async", "true"),
            ("Timeout", "5000"),
            ("CallerID", '"CallNow Mary" <5555555555>'),
            ("Variable", "CALLNOW_REQUEST=abc123"),
            *extra,
        )

    def test_originate_busy(self) -> None:
        """A busy owner gives DialEnd BUSY, Reason 5 and Hangup causes 0/17."""
        peer = Peer(self.sim)
        peer.login()
        self.originate(peer, "Local/001005@phones")
        self.clock.advance(0)
        messages = peer.read()
        self.assertEqual(messages[0]["Message"], "Originate successfully queued")
        [response] = [m for m in messages if m.event == "OriginateResponse"]
        self.assertEqual((response["Response"], response["Reason"]), ("Failure", "5"))
        self.assertEqual(
            (response["Channel"], response["Uniqueid"]),
            ("Local/001005@phones", "<unknown>"),
        )
        hangups = [
            (m["Channel"][-2:], m["Cause"]) for m in messages if m.event == "Hangup"
        ]
        self.assertEqual(hangups, [(";1", "0"), (";2", "17")])
        self.assertEqual(
            [m["DialStatus"] for m in messages if m.event == "DialEnd"], ["BUSY"]
        )
        self.assertNotIn("Cdr", kinds(messages))

    def test_originate_ring_no_answer_times_out(self) -> None:
        """A ringing phone gives DialState RINGING, then Reason 3 after Timeout."""
        peer = Peer(self.sim)
        peer.login()
        self.originate(peer, "Local/001006@phones", ("ChannelId", "cn-1-a"))
        self.clock.advance(0)
        first = peer.read()
        self.assertIn("DialState", kinds(first))
        self.assertNotIn("OriginateResponse", kinds(first))
        newchannels = [m for m in first if m.event == "Newchannel"]
        self.assertEqual([m["Uniqueid"] for m in newchannels], ["cn-1-a", "cn-1-a;2"])
        self.assertEqual({m["Linkedid"] for m in newchannels}, {"cn-1-a"})
        self.clock.advance(5)
        later = peer.read()
        [response] = [m for m in later if m.event == "OriginateResponse"]
        self.assertEqual((response["Reason"], response["Uniqueid"]), ("3", "cn-1-a"))
        self.assertEqual(
            [m["Cause"] for m in later if m.event == "Hangup"], ["19", "19"]
        )

    def test_finished_calls_leave_no_reference_cycle(self) -> None:
        """A call's objects are freed as soon as it ends, without the collector.

        Cyclic garbage per call would make the simulator's collector pauses grow
        with the call rate (and show up as PBX latency in the benchmarks).
        """
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.addCleanup(gc.set_debug, 0)
        peer = Peer(self.sim)
        peer.login()
        for index, channel in enumerate(("Local/001006@phones", "Local/001005@phones")):
            self.originate(peer, channel, ("ChannelId", f"cn-{index}-a"))
            self.clock.advance(0)
            self.clock.advance(5)
            peer.read()
        gc.collect()
        kept = {type(o).__name__ for o in gc.garbage}
        gc.garbage.clear()
        self.assertEqual(kept & {"OwnerCall", "Channel", "OriginateRequest"}, set())

    def test_originate_nonexistent(self) -> None:
        """A nonexistent extension fails with Reason 0 after two Hangups."""
        peer = Peer(self.sim)
        peer.login()
        self.originate(peer, "Local/009999@phones")
        self.clock.advance(0)
        events = kinds(peer.read())
        self.assertEqual(events[-3:], ["Hangup", "Hangup", "OriginateResponse"])
        self.assertNotIn("DialBegin", events)

    def test_variable_header_split_on_commas(self) -> None:
        """An injected comma in a Variable header sets a second variable, as in Asterisk."""
        peer = Peer(self.sim)
        peer.login(ADMIN)
        # Written raw: the codec (rightly) refuses to encode this value.
        peer.protocol.dataReceived(
            b"Action: Originate\r\nActionID: o1\r\nChannel: Local/001006@phones\r\n"
            b"Context: callnow-owner\r\nExten: s\r\nPriority: 1\r\n"
            b"Variable: A=1,EVIL=2\r\n\r\n"
        )
        self.clock.advance(0)
        varsets = [
            (m["Variable"], m["Value"]) for m in peer.read() if m.event == "VarSet"
        ]
        self.assertEqual(varsets[:2], [("A", "1"), ("EVIL", "2")])

    def test_core_show_channels(self) -> None:
        """CoreShowChannels lists live channels between start and Complete."""
        peer = Peer(self.sim)
        peer.login()
        self.originate(peer, "Local/001006@phones")
        self.clock.advance(0)
        peer.read()
        peer.send("CoreShowChannels", "c1")
        messages = peer.read()
        self.assertEqual(messages[0]["EventList"], "start")
        items = [m for m in messages if m.event == "CoreShowChannel"]
        self.assertEqual(len(items), 2)
        self.assertTrue(
            all(m.action_id == "c1" and "Privilege" not in m for m in items)
        )
        self.assertEqual({m["Linkedid"] for m in items}, {items[0]["Uniqueid"]})
        self.assertEqual(
            (messages[-1].event, messages[-1]["EventList"], messages[-1]["ListItems"]),
            ("CoreShowChannelsComplete", "Complete", "2"),
        )

    def test_user_event_broadcast(self) -> None:
        """UserEvent reaches sessions reading class user, with the extra headers."""
        sender, listener, deaf = Peer(self.sim), Peer(self.sim), Peer(self.sim)
        sender.login()
        listener.login(ADMIN)
        deaf.login(events="call")
        listener.read()  # the SuccessfulAuth of the others
        sender.send(
            "UserEvent", "u1", ("UserEvent", "CallNow"), ("State", "ringing_owner")
        )
        self.assertEqual(sender.read()[0]["Message"], "Event Sent")
        [event] = listener.read()
        self.assertEqual(
            (event.event, event["UserEvent"], event["State"], event["Privilege"]),
            ("UserEvent", "CallNow", "ringing_owner", "user,all"),
        )
        self.assertEqual(deaf.read(), [])

    def test_events_off_mask(self) -> None:
        """Events: off gives no FullyBooted and no broadcast events."""
        peer = Peer(self.sim)
        self.assertEqual(kinds(peer.login(events="off")), ["Response:Success"])
        self.originate(peer, "Local/001005@phones")
        self.clock.advance(0)
        self.assertEqual(kinds(peer.read()), ["Response:Success"])

    def test_logoff(self) -> None:
        """Logoff says Goodbye and closes."""
        peer = Peer(self.sim)
        peer.login()
        peer.send("Logoff", "bye")
        [reply] = peer.read()
        self.assertEqual(
            (reply.response, reply["Message"]), ("Goodbye", "Thanks for all the fish.")
        )
        self.assertTrue(peer.transport.disconnecting)

    def test_records_actions_and_bytes(self) -> None:
        """Every received action and byte is recorded."""
        peer = Peer(self.sim)
        peer.login()
        peer.send("Ping", "p1")
        self.assertEqual(
            [m.action for m in self.sim.received_actions], ["Login", "Ping"]
        )
        self.assertTrue(
            self.sim.received_bytes.endswith(b"Action: Ping\r\nActionID: p1\r\n\r\n")
        )

    def test_drop_and_refuse(self) -> None:
        """drop_connections closes sessions and refuses new ones for a while."""
        peer = Peer(self.sim)
        peer.login()
        self.sim.drop_connections(refuse_for=2)
        self.assertTrue(peer.transport.disconnecting)
        self.assertIsNone(self.sim.ami_factory().buildProtocol(None))
        self.clock.advance(2)
        self.assertIsNotNone(self.sim.ami_factory().buildProtocol(None))

    def test_extension_state(self) -> None:
        """set_extension_state emits ExtensionStatus and ExtensionState answers 1."""
        peer = Peer(self.sim)
        peer.login()
        self.sim.set_extension_state("001002", context="phones")
        events = peer.read()
        self.assertEqual(kinds(events), ["DeviceStateChange", "ExtensionStatus"])
        peer.send("ExtensionState", "e1", ("Exten", "001002"), ("Context", "phones"))
        [reply] = peer.read()
        self.assertEqual((reply["Status"], reply["StatusText"]), ("1", "InUse"))


class AgiClientTests(SynchronousTestCase):
    """The FastAGI side, driven through MemoryReactorClock's pending connection."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.sim = AsteriskSimulator(self.clock, SETTINGS)
        self.peer = Peer(self.sim)
        self.peer.login(ADMIN)
        self.peer.send(
            "Originate",
            "o1",
            ("Channel", "SIM/demo"),
            ("Context", "callnow-owner"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("CallerID", '"Mary" <5555555555>'),
            ("Variable", "CALLNOW_REQUEST=r42"),
        )
        self.clock.advance(0)
        [(host, port, factory, _, _)] = self.clock.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 4573))
        agi = factory.buildProtocol(None)
        assert agi is not None
        self.agi: IProtocol = agi
        self.agi_lost = False
        self.agi_transport = StringTransport()
        self.agi.makeConnection(self.agi_transport)
        self.parser = AgiServerParser()

    def tearDown(self) -> None:
        stop(self, self.sim, *([] if self.agi_lost else [self.agi]))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def replies(self) -> list[object]:
        data = self.agi_transport.value()
        self.agi_transport.clear()
        return list(self.parser.feed(data))

    def command(self, *words: str | int) -> list[object]:
        self.agi.dataReceived(encode_command(*words))
        return self.replies()

    def test_environment_and_dialogue(self) -> None:
        """Env, GET VARIABLE, WAIT FOR DIGIT with the scripted digit, HANGUP then notice."""
        [env] = self.replies()
        assert isinstance(env, AgiEnvironment)
        self.assertEqual(env.get("agi_network_script"), "owner")
        self.assertEqual(env.args, ("r42",))
        self.assertEqual(env.get("agi_callerid"), "5555555555")
        self.assertEqual(
            self.command("GET", "VARIABLE", "CALLNOW_REQUEST"),
            [AgiResult(200, "1", "r42")],
        )
        self.assertEqual(self.command("WAIT", "FOR", "DIGIT", 5000), [])
        self.clock.advance(0.5)
        self.assertEqual(self.replies(), [AgiResult(200, "50")])
        self.assertEqual(self.command("HANGUP"), [AgiResult(200, "1")])
        self.clock.advance(0.04)
        self.assertEqual(len(self.replies()), 1)  # the HANGUP notice
        self.assertEqual(self.command("ANSWER")[0].code, 511)  # type: ignore[attr-defined]
        self.assertEqual(self.sim.agi_commands[-1], ["ANSWER"])
        self.peer.read()
        self.agi.connectionLost(Failure(ConnectionDone()))
        self.agi_lost = True
        hangups = [m for m in self.peer.read() if m.event == "Hangup"]
        self.assertEqual([m["Cause"] for m in hangups], ["0"])

    def test_digit_outside_a_command_is_dropped(self) -> None:
        """A digit pressed while no digit command runs never reaches the AGI."""
        self.replies()
        self.clock.advance(1)
        self.assertEqual(self.command("WAIT", "FOR", "DIGIT", 100), [])
        self.clock.advance(0.1)
        self.assertEqual(self.replies(), [AgiResult(200, "0")])

    def test_unknown_and_usage(self) -> None:
        """Unknown commands give 510, wrong arity a 520 block."""
        self.replies()
        self.assertEqual(self.command("FROB")[0].code, 510)  # type: ignore[attr-defined]
        self.assertEqual(self.command("SET", "VARIABLE", "X")[0].code, 520)  # type: ignore[attr-defined]


class DialplanParserTests(SynchronousTestCase):
    def test_separate_args(self) -> None:
        """Commas inside quotes or parentheses do not split; quotes are removed."""
        self.assertEqual(separate_args('a,"b,c",d(e,f)'), ["a", "b,c", "d(e,f)"])

    def test_dial_data(self) -> None:
        """Targets, timeout and L() are parsed."""
        request = parse_dial_data(
            "PJSIP/+15551234567@trunk&Local/1@pstn,30,gL(60000:30000)"
        )
        self.assertEqual([t.number for t in request.targets], ["+15551234567", "1"])
        self.assertEqual((request.timeout, request.limit), (30.0, 60.0))

    def test_callerid(self) -> None:
        """Caller ids split into name and number."""
        self.assertEqual(
            parse_callerid('"CallNow Mary" <5555555555>'),
            ("CallNow Mary", "5555555555"),
        )
        self.assertEqual(parse_callerid("5555"), ("", "5555"))

    def test_visitor_rules(self) -> None:
        """Exact numbers win over prefixes; the longest prefix wins."""
        busy, silent = VisitorScript(kind="busy"), VisitorScript(kind="noanswer")
        settings = SimulatorSettings(
            users=(), visitors={"+44*": silent, "+4420*": busy, "15551234567": busy}
        )
        self.assertEqual(settings.visitor_for("+442071234567"), busy)
        self.assertEqual(settings.visitor_for("+441611234567"), silent)
        self.assertEqual(settings.visitor_for("+15551234567"), busy)
        self.assertEqual(settings.visitor_for("+33123"), settings.default_visitor)


class SimulatorServiceTests(SynchronousTestCase):
    def test_listens_and_stops(self) -> None:
        """The service listens on its endpoint string and stops without leftovers."""
        clock = MemoryReactorClock()
        service = SimulatorService(clock, SETTINGS, "tcp:0:interface=127.0.0.1")
        service.startService()
        [(port, factory, _, interface)] = clock.tcpServers
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        self.assertIsInstance(factory.buildProtocol(address), AmiServerProtocol)
        self.successResultOf(service.stopService())
        self.assertEqual(clock.getDelayedCalls(), [])
