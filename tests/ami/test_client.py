"""Tests for the AMI client service with StringTransport and MemoryReactorClock."""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.client import (
    AmiActionError,
    AmiClient,
    AmiConnectionLost,
    AmiNotConnected,
    AmiSettings,
    ListResult,
    OriginateResult,
    OriginateTimeout,
)
from callnowd.ami.codec import AmiParser, Message, encode_message
from callnowd.ami.protocol import MAX_PINGS_MISSED

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def reply(*pairs: tuple[str, str]) -> bytes:
    return encode_message(pairs)


class Harness:
    """A client on a MemoryReactorClock whose connections are StringTransports."""

    def __init__(self, **settings: Any) -> None:
        self.reactor = MemoryReactorClock()
        defaults: dict[str, Any] = {"username": "callnow", "secret": "s3cr3t"}
        defaults.update(instance_id="cn", **settings)
        self.settings = AmiSettings(**defaults)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", 5038)
        self.client = AmiClient(
            self.reactor, endpoint, self.settings, jitter=lambda: 0.0
        )
        self.client.startService()
        self.logged_in_at = 0.0

    def attempts(self) -> int:
        return len(self.reactor.tcpClients)

    def connect(self) -> tuple[IProtocol, StringTransport]:
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    @staticmethod
    def sent(transport: StringTransport) -> list[Message]:
        return AmiParser(expect_banner=False).feed(transport.value())

    def login(self) -> tuple[IProtocol, StringTransport]:
        protocol, transport = self.connect()
        protocol.dataReceived(BANNER)
        login = self.sent(transport)[-1]
        protocol.dataReceived(
            reply(
                ("Response", "Success"),
                ("ActionID", login["ActionID"]),
                ("Message", "Authentication accepted"),
            )
        )
        assert self.client.connected
        self.logged_in_at = self.reactor.seconds()  # keep-alive slots count from here
        transport.clear()
        return protocol, transport

    def lose(self, protocol: IProtocol) -> None:
        protocol.connectionLost(Failure(ConnectionDone()))

    def start(self, coroutine: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(coroutine)


class LoginTests(SynchronousTestCase):
    def test_plain_login(self) -> None:
        """After the banner the client logs in with Secret and the Events mask."""
        h = Harness()
        protocol, transport = h.connect()
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(BANNER)
        (login,) = h.sent(transport)
        self.assertEqual(
            login.headers,
            (
                ("Action", "Login"),
                ("ActionID", "cn-1-1"),
                ("Username", "callnow"),
                ("Secret", "s3cr3t"),
                ("Events", "call,system,user"),
            ),
        )
        self.assertFalse(h.client.connected)
        protocol.dataReceived(reply(("Response", "Success"), ("ActionID", "cn-1-1")))
        self.assertTrue(h.client.connected)

    def test_md5_login(self) -> None:
        """MD5 auth sends Challenge, then Key = md5(challenge + secret), no Secret."""
        h = Harness(auth="md5")
        protocol, transport = h.connect()
        protocol.dataReceived(BANNER)
        (challenge,) = h.sent(transport)
        self.assertEqual(challenge["AuthType"], "MD5")
        self.assertEqual(challenge.action, "Challenge")
        protocol.dataReceived(
            reply(
                ("Response", "Success"),
                ("ActionID", challenge["ActionID"]),
                ("Challenge", "840414271"),
            )
        )
        login = h.sent(transport)[-1]
        self.assertEqual(login.action, "Login")
        self.assertEqual(
            login["Key"],
            hashlib.md5(b"840414271s3cr3t", usedforsecurity=False).hexdigest(),
        )
        self.assertNotIn("Secret", login)
        self.assertNotIn(b"s3cr3t", transport.value())
        protocol.dataReceived(
            reply(("Response", "Success"), ("ActionID", login["ActionID"]))
        )
        self.assertTrue(h.client.connected)

    def test_auth_failure_backs_off_long_and_logs_error(self) -> None:
        """A refused login is logged at error level and retried only after 300 s."""
        h = Harness()
        protocol, transport = h.connect()
        protocol.dataReceived(BANNER)
        login = h.sent(transport)[-1]
        with capturedLogs() as events:
            protocol.dataReceived(
                reply(
                    ("Response", "Error"),
                    ("ActionID", login["ActionID"]),
                    ("Message", "Authentication failed"),
                )
            )
            h.lose(protocol)  # Asterisk closes after a failed login
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["reason"], "Authentication failed")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(h.client.connected)
        h.reactor.advance(299)
        self.assertEqual(h.attempts(), 1)
        h.reactor.advance(2)
        self.assertEqual(h.attempts(), 2)

    def test_bad_banner_drops_connection(self) -> None:
        """A peer that is not Asterisk is dropped and retried with backoff."""
        h = Harness()
        protocol, transport = h.connect()
        protocol.dataReceived(b"SSH-2.0-OpenSSH_9.2\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        h.lose(protocol)
        h.reactor.advance(1.6)
        self.assertEqual(h.attempts(), 2)

    def test_connect_failure_backoff(self) -> None:
        """After a refused connect, 1.4 s gives no retry and 0.2 s more gives one."""
        h = Harness()
        factory = h.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(
            None,  # type: ignore[arg-type]
            Failure(ConnectionRefusedError()),
        )
        h.reactor.advance(1.4)
        self.assertEqual(h.attempts(), 1)
        h.reactor.advance(0.2)
        self.assertEqual(h.attempts(), 2)

    def test_wait_connected(self) -> None:
        """wait_connected fails after its timeout and succeeds at login."""
        h = Harness()
        early = h.start(h.client.wait_connected(5))
        h.reactor.advance(5)
        self.failureResultOf(early, AmiNotConnected)
        waiting = h.start(h.client.wait_connected(5))
        h.login()
        self.successResultOf(waiting)

    def test_ready_handlers_after_every_login(self) -> None:
        """on_ready handlers run after each login; a failing one does not stop others."""
        h = Harness()
        calls: list[str] = []

        def broken() -> None:
            raise RuntimeError("boom")

        h.client.on_ready(broken)
        h.client.on_ready(lambda: calls.append("ready"))
        protocol, _ = h.login()
        h.lose(protocol)
        h.reactor.advance(1.5)
        h.login()
        self.assertEqual(calls, ["ready", "ready"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class ActionTests(SynchronousTestCase):
    def test_not_connected(self) -> None:
        """Without a session an action fails at once and nothing is queued."""
        h = Harness()
        self.failureResultOf(h.start(h.client.send_action("Ping")), AmiNotConnected)
        _, transport = h.login()
        self.assertEqual(transport.value(), b"")

    def test_correlation_with_interleaved_events(self) -> None:
        """Responses are matched by ActionID in any order, events in between."""
        h = Harness()
        protocol, transport = h.login()
        seen: list[str | None] = []
        h.client.subscribe(None, lambda m: seen.append(m.event))
        first = h.start(h.client.send_action("Ping"))
        second = h.start(h.client.send_action("Status", [("Channel", "x")]))
        one, two = h.sent(transport)
        self.assertEqual((one["ActionID"], two["ActionID"]), ("cn-1-2", "cn-1-3"))
        protocol.dataReceived(
            reply(("Event", "Newchannel"), ("Channel", "a"))
            + reply(("Response", "Success"), ("ActionID", "cn-1-3"), ("X", "2"))
            + reply(("Event", "Hangup"), ("Channel", "a"))
            + reply(("Response", "Success"), ("ActionID", "cn-1-2"), ("Ping", "Pong"))
            + reply(("Response", "Success"), ("ActionID", "other-1"))
        )
        self.assertEqual(self.successResultOf(first)["Ping"], "Pong")
        self.assertEqual(self.successResultOf(second)["X"], "2")
        self.assertEqual(seen, ["Newchannel", "Hangup"])

    def test_events_and_answers_keep_wire_order(self) -> None:
        """In one read, an answer is handled after the events before it, before those after."""
        h = Harness()
        protocol, _ = h.login()
        order: list[str] = []
        h.client.subscribe(None, lambda m: order.append(f"event {m['N']}"))
        d = h.start(h.client.send_action("Ping"))
        d.addCallback(lambda m: order.append("answer"))
        protocol.dataReceived(
            reply(("Event", "A"), ("N", "1"))
            + reply(("Event", "B"), ("N", "2"))
            + reply(("Response", "Success"), ("ActionID", "cn-1-2"))
            + reply(("Event", "C"), ("N", "3"))
            + reply(("N", "4"), ("Event", "D"))
            + reply(("Event", "E"), ("N", "5"))
        )
        self.assertEqual(
            order,
            ["event 1", "event 2", "answer", "event 3", "event 4", "event 5"],
        )

    def test_error_response(self) -> None:
        """Response: Error fails the action with AmiActionError carrying it."""
        h = Harness()
        protocol, _ = h.login()
        d = h.start(h.client.send_action("Bogus"))
        protocol.dataReceived(
            reply(
                ("Response", "Error"),
                ("ActionID", "cn-1-2"),
                ("Message", "Invalid/unknown command: Bogus."),
            )
        )
        error = self.failureResultOf(d, AmiActionError).value
        assert isinstance(error, AmiActionError)
        self.assertEqual(error.message["Message"], "Invalid/unknown command: Bogus.")

    def test_timeout(self) -> None:
        """An unanswered action fails with TimeoutError; a late reply is ignored."""
        h = Harness()
        protocol, _ = h.login()
        d = h.start(h.client.send_action("Ping", timeout=3))
        h.reactor.advance(2.9)
        self.assertNoResult(d)
        h.reactor.advance(0.2)
        self.failureResultOf(d, TimeoutError)
        protocol.dataReceived(reply(("Response", "Success"), ("ActionID", "cn-1-2")))

    def test_list_collection(self) -> None:
        """List items are gathered by ActionID until EventList: Complete."""
        h = Harness()
        protocol, transport = h.login()
        hangups: list[Message] = []
        h.client.subscribe("Hangup", hangups.append)
        d = h.start(h.client.send_list_action("CoreShowChannels"))
        (sent,) = h.sent(transport)
        action_id = sent["ActionID"]
        protocol.dataReceived(
            reply(
                ("Response", "Success"),
                ("ActionID", action_id),
                ("EventList", "start"),
                ("Message", "Channels will follow"),
            )
            + reply(
                ("Event", "CoreShowChannel"), ("ActionID", action_id), ("Channel", "A")
            )
            + reply(("Event", "Hangup"), ("Channel", "Z"))
            + reply(("Event", "CoreShowChannel"), ("ActionID", "elsewhere-1"))
            + reply(
                ("Event", "CoreShowChannel"), ("ActionID", action_id), ("Channel", "B")
            )
        )
        self.assertNoResult(d)
        protocol.dataReceived(
            reply(
                ("Event", "CoreShowChannelsComplete"),
                ("ActionID", action_id),
                ("EventList", "Complete"),
                ("ListItems", "2"),
            )
        )
        result = self.successResultOf(d)
        assert isinstance(result, ListResult)
        self.assertEqual([m["Channel"] for m in result.items], ["A", "B"])
        self.assertEqual(result.complete["ListItems"], "2")
        self.assertEqual(result.ack["Message"], "Channels will follow")
        self.assertEqual([m["Channel"] for m in hangups], ["Z"])

    def test_connection_loss_not_replayed(self) -> None:
        """Loss fails pending actions with AmiConnectionLost; nothing is resent."""
        h = Harness()
        protocol, _ = h.login()
        d = h.start(h.client.send_action("Originate", [("Channel", "Local/1@x")]))
        lst = h.start(h.client.send_list_action("CoreShowChannels"))
        h.lose(protocol)
        self.failureResultOf(d, AmiConnectionLost)
        self.failureResultOf(lst, AmiConnectionLost)
        self.assertFalse(h.client.connected)
        h.reactor.advance(1.4)
        self.assertEqual(h.attempts(), 1)
        h.reactor.advance(0.2)
        self.assertEqual(h.attempts(), 2)
        protocol2, transport2 = h.connect()
        protocol2.dataReceived(BANNER)
        self.assertEqual([m.action for m in h.sent(transport2)], ["Login"])
        self.assertNotIn(b"Originate", transport2.value())
        self.assertEqual(h.sent(transport2)[0]["ActionID"], "cn-2-1")

    def test_subscriptions_survive_reconnect(self) -> None:
        """Handlers subscribed once still receive events on the next connection."""
        h = Harness()
        seen: list[str] = []
        unsubscribe = h.client.subscribe("UserEvent", lambda m: seen.append(m["X"]))
        protocol, _ = h.login()
        protocol.dataReceived(reply(("Event", "UserEvent"), ("X", "1")))
        h.lose(protocol)
        h.reactor.advance(1.5)
        protocol, _ = h.login()
        protocol.dataReceived(reply(("Event", "UserEvent"), ("X", "2")))
        unsubscribe()
        protocol.dataReceived(reply(("Event", "UserEvent"), ("X", "3")))
        self.assertEqual(seen, ["1", "2"])

    def test_handler_isolation(self) -> None:
        """A raising handler is logged and the other handlers still run."""
        h = Harness()
        seen: list[str] = []

        def broken(message: Message) -> None:
            raise ValueError("handler bug")

        h.client.subscribe("Hangup", broken)
        h.client.subscribe("Hangup", lambda m: seen.append("named"))
        h.client.subscribe(None, lambda m: seen.append("all"))
        protocol, _ = h.login()
        protocol.dataReceived(reply(("Event", "Hangup"), ("Cause", "16")))
        self.assertEqual(seen, ["named", "all"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_unwanted_events_skipped(self) -> None:
        """Events nobody subscribed to never reach the dispatcher."""
        h = Harness()
        seen: list[str] = []
        h.client.subscribe("Hangup", lambda m: seen.append(m["Channel"]))
        protocol, _ = h.login()
        protocol.dataReceived(
            reply(("Event", "VarSet"), ("Channel", "v"))
            + reply(("Event", "Hangup"), ("Channel", "h"))
        )
        self.assertEqual(seen, ["h"])

    def test_late_subscription_is_delivered(self) -> None:
        """An event name subscribed while connected is delivered from then on."""
        h = Harness()
        seen: list[str] = []
        h.client.subscribe("Hangup", lambda m: seen.append(m["Channel"]))
        protocol, _ = h.login()
        dial_end = reply(("Event", "DialEnd"), ("Channel", "d"))
        protocol.dataReceived(dial_end + reply(("Event", "Hangup"), ("Channel", "h")))
        h.client.subscribe("DIALEND", lambda m: seen.append(m["Channel"]))
        protocol.dataReceived(dial_end)
        self.assertEqual(seen, ["h", "d"])

    def test_event_header_not_first(self) -> None:
        """An event whose Event header is not its first line still reaches its handlers."""
        h = Harness()
        seen: list[str] = []
        h.client.subscribe("Hangup", lambda m: seen.append(m["Channel"]))
        protocol, _ = h.login()
        protocol.dataReceived(
            reply(("Privilege", "call,all"), ("Event", "Hangup"), ("Channel", "h"))
            + reply(("Privilege", "call,all"), ("Event", "VarSet"), ("Channel", "v"))
        )
        self.assertEqual(seen, ["h"])

    def test_events_for_a_pending_list_are_never_skipped(self) -> None:
        """While a list action runs, its items arrive even with no subscriber."""
        h = Harness()
        protocol, transport = h.login()
        h.client.subscribe("Hangup", lambda m: None)
        d = h.start(h.client.send_list_action("CoreShowChannels"))
        (sent,) = h.sent(transport)
        action_id = sent["ActionID"]
        protocol.dataReceived(
            reply(
                ("Response", "Success"), ("ActionID", action_id), ("EventList", "start")
            )
            + reply(("Event", "CoreShowChannel"), ("ActionID", action_id))
            + reply(
                ("Event", "CoreShowChannelsComplete"),
                ("ActionID", action_id),
                ("EventList", "Complete"),
            )
        )
        result = self.successResultOf(d)
        self.assertEqual([m.event for m in result.items], ["CoreShowChannel"])

    def test_unowned_answers_logged_at_most_once_a_second(self) -> None:
        """Answers to ActionIDs we do not own: one debug event a second, with a count."""
        h = Harness()
        protocol, _ = h.login()
        h.client.subscribe("OriginateResponse", lambda m: None)
        foreign = reply(("Response", "Success"), ("ActionID", "other-1")) + reply(
            ("Event", "OriginateResponse"), ("ActionID", "other-2")
        )
        with capturedLogs() as events:
            for _ in range(3):
                protocol.dataReceived(foreign)
            h.reactor.advance(1.0)
            protocol.dataReceived(foreign)
        unowned = [e for e in events if "we do not own" in e["log_format"]]
        self.assertEqual(
            [(e["action_id"], e["suppressed"]) for e in unowned],
            [("other-1", 0), ("other-2", 0), ("other-1", 2), ("other-2", 2)],
        )
        self.assertTrue(all(e["log_level"] is LogLevel.debug for e in unowned))

    def test_user_event(self) -> None:
        """user_event sends Action: UserEvent with the name and headers."""
        h = Harness()
        protocol, transport = h.login()
        d = h.start(h.client.user_event("CallNowAccepted", [("Request", "abc")]))
        (sent,) = h.sent(transport)
        self.assertEqual(
            sent.headers[2:], (("UserEvent", "CallNowAccepted"), ("Request", "abc"))
        )
        protocol.dataReceived(
            reply(("Response", "Success"), ("ActionID", sent["ActionID"]))
        )
        self.assertEqual(self.successResultOf(d).response, "Success")


class KeepaliveAndStopTests(SynchronousTestCase):
    def test_ping_timeout_aborts(self) -> None:
        """An unanswered Ping aborts the connection after ping_timeout."""
        h = Harness(ping_interval=20, ping_timeout=10)
        _, transport = h.login()
        h.reactor.advance(20)
        (ping,) = h.sent(transport)
        self.assertEqual(ping.action, "Ping")
        h.reactor.advance(9.9)
        self.assertFalse(transport.disconnecting)
        h.reactor.advance(0.2)
        self.assertTrue(transport.disconnecting)

    @staticmethod
    def until_next_ping(h: Harness) -> None:
        """Advance the clock to the next keep-alive slot (every 20 s from login)."""
        h.reactor.advance(20 - (h.reactor.seconds() - h.logged_in_at) % 20)

    def miss_ping_amid_traffic(self, h: Harness, protocol: IProtocol) -> None:
        """The next Ping goes unanswered while an event arrives within its timeout."""
        self.until_next_ping(h)
        h.reactor.advance(5)
        protocol.dataReceived(reply(("Event", "Newchannel"), ("Channel", "PJSIP/1")))
        h.reactor.advance(5.5)  # past the 10 s timeout, before the next slot

    def answer_ping(
        self, h: Harness, protocol: IProtocol, transport: StringTransport
    ) -> None:
        """The next Ping is answered at once."""
        self.until_next_ping(h)
        ping = h.sent(transport)[-1]
        self.assertEqual(ping.action, "Ping")
        protocol.dataReceived(
            reply(
                ("Response", "Success"),
                ("ActionID", ping["ActionID"]),
                ("Ping", "Pong"),
            )
        )

    def test_ping_late_while_the_pbx_sends_keeps_the_connection(self) -> None:
        """A late Pong amid traffic is overload, not a dead peer: kept, up to a limit."""
        h = Harness(ping_interval=20, ping_timeout=10)
        protocol, transport = h.login()
        for missed in range(1, MAX_PINGS_MISSED):
            self.miss_ping_amid_traffic(h, protocol)
            self.assertFalse(transport.disconnecting, missed)
        self.miss_ping_amid_traffic(h, protocol)
        self.assertTrue(transport.disconnecting)

    def test_an_answered_ping_resets_the_count(self) -> None:
        """Missed Pings count only in a row: a Pong starts the count again."""
        h = Harness(ping_interval=20, ping_timeout=10)
        protocol, transport = h.login()
        for _ in range(2):
            for _ in range(MAX_PINGS_MISSED - 1):
                self.miss_ping_amid_traffic(h, protocol)
            self.answer_ping(h, protocol, transport)
        self.assertFalse(transport.disconnecting)

    def test_ping_answered(self) -> None:
        """Answered Pings keep the connection and keep being sent."""
        h = Harness(ping_interval=20, ping_timeout=10)
        protocol, transport = h.login()
        for _ in range(3):
            self.answer_ping(h, protocol, transport)
        self.assertEqual(len(h.sent(transport)), 3)
        self.assertFalse(transport.disconnecting)

    def test_logoff_on_stop(self) -> None:
        """Stopping sends Logoff, waits for Goodbye, closes, never reconnects."""
        h = Harness()
        protocol, transport = h.login()
        stopped = h.client.stopService()
        (logoff,) = h.sent(transport)
        self.assertEqual(logoff.action, "Logoff")
        self.assertNoResult(stopped)
        protocol.dataReceived(
            reply(("Response", "Goodbye"), ("ActionID", logoff["ActionID"]))
        )
        self.assertTrue(transport.disconnecting)
        h.lose(protocol)
        self.successResultOf(stopped)
        h.reactor.advance(600)
        self.assertEqual(h.attempts(), 1)
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_stop_without_goodbye(self) -> None:
        """Without a Goodbye, stop completes after the short Logoff timeout."""
        h = Harness()
        protocol, transport = h.login()
        stopped = h.client.stopService()
        h.reactor.advance(5)
        self.assertTrue(transport.disconnecting)
        h.lose(protocol)
        self.successResultOf(stopped)
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_stop_while_waiting(self) -> None:
        """Stopping between attempts cancels the retry timer."""
        h = Harness()
        factory = h.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(
            None,  # type: ignore[arg-type]
            Failure(ConnectionRefusedError()),
        )
        self.successResultOf(h.client.stopService())
        self.assertEqual(h.reactor.getDelayedCalls(), [])


class OriginateTests(SynchronousTestCase):
    def originate(self, h: Harness, **kwargs: Any) -> Any:
        return h.client.originate(
            channel="Local/001002@phones",
            context="callnow-confirm",
            exten="s",
            priority=1,
            caller_id='"CallNow Mary" <5555555555>',
            variables=[("CALLNOW_REQUEST", "abc123")],
            **kwargs,
        )

    def result_event(self, action_id: str, response: str, reason: str) -> bytes:
        return reply(
            ("Event", "OriginateResponse"),
            ("Privilege", "call,all"),
            ("ActionID", action_id),
            ("Response", response),
            ("Channel", "Local/001002@phones"),
            ("Reason", reason),
            ("Uniqueid", "<unknown>" if response == "Failure" else "1795641915.4"),
        )

    def test_ack_then_result(self) -> None:
        """The queued Deferred fires with the ack, result with the OriginateResponse by ActionID."""
        h = Harness()
        protocol, transport = h.login()
        handle = self.originate(h)
        (sent,) = h.sent(transport)
        self.assertEqual(sent["ActionID"], handle.action_id)
        self.assertEqual(sent["Async"], "true")
        self.assertEqual(sent["Timeout"], "30000")
        self.assertEqual(sent.get_all("Variable"), ["CALLNOW_REQUEST=abc123"])
        protocol.dataReceived(
            reply(
                ("Response", "Success"),
                ("ActionID", handle.action_id),
                ("Message", "Originate successfully queued"),
            )
            + self.result_event("someone-else-7", "Failure", "5")
        )
        self.assertEqual(self.successResultOf(handle.queued).response, "Success")
        self.assertNoResult(handle.result)
        protocol.dataReceived(self.result_event(handle.action_id, "Success", "4"))
        result = self.successResultOf(handle.result)
        assert isinstance(result, OriginateResult)
        self.assertEqual(
            (result.outcome, result.reason, result.uniqueid),
            ("answered", 4, "1795641915.4"),
        )

    def test_failure_reasons(self) -> None:
        """Failure Reasons 3, 5 and 0 map to no_answer, busy and failed."""
        h = Harness()
        protocol, _ = h.login()
        for reason, outcome in (("3", "no_answer"), ("5", "busy"), ("0", "failed")):
            handle = self.originate(h)
            protocol.dataReceived(
                self.result_event(handle.action_id, "Failure", reason)
            )
            result = self.successResultOf(handle.result)
            self.assertEqual((result.outcome, result.uniqueid), (outcome, None))
            self.assertFalse(result.answered)
            handle.queued.cancel()
            self.failureResultOf(handle.queued)

    def test_result_timeout(self) -> None:
        """No OriginateResponse within timeout_ms/1000 + 15 s gives OriginateTimeout."""
        h = Harness()
        protocol, _ = h.login()
        handle = self.originate(h, timeout_ms=20000)
        protocol.dataReceived(
            reply(("Response", "Success"), ("ActionID", handle.action_id))
        )
        h.reactor.advance(34.9)
        self.assertNoResult(handle.result)
        h.reactor.advance(0.2)
        self.failureResultOf(handle.result, OriginateTimeout)
        protocol.dataReceived(self.result_event(handle.action_id, "Success", "4"))

    def test_queue_error_fails_result(self) -> None:
        """An Error ack fails both queued and result."""
        h = Harness()
        protocol, _ = h.login()
        handle = self.originate(h)
        protocol.dataReceived(
            reply(
                ("Response", "Error"),
                ("ActionID", handle.action_id),
                ("Message", "Originate failed"),
            )
        )
        self.failureResultOf(handle.queued, AmiActionError)
        self.failureResultOf(handle.result, AmiActionError)

    def test_connection_loss_fails_result(self) -> None:
        """A queued originate whose connection drops fails with AmiConnectionLost."""
        h = Harness()
        protocol, _ = h.login()
        handle = self.originate(h)
        protocol.dataReceived(
            reply(("Response", "Success"), ("ActionID", handle.action_id))
        )
        h.lose(protocol)
        self.failureResultOf(handle.result, AmiConnectionLost)

    def test_not_connected(self) -> None:
        """originate() without a session raises AmiNotConnected at once."""
        h = Harness()
        self.assertRaises(AmiNotConnected, self.originate, h)
