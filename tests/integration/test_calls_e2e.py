"""Calls end to end: the real daemon (subprocess) against the simulator over TCP.

The simulator runs in the test process on the real reactor, as the daemon's
"Asterisk" (``asterisk.mode = "ami"``), so the tests see exactly what reached the
AMI wire and the FastAGI dialogue.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web.http_headers import Headers

from callnowd.ami.codec import Message
from callnowd.ami.sim_config import (
    DEFAULT_OWNERS,
    AmiUser,
    OwnerScript,
    SimulatorSettings,
    VisitorScript,
)
from callnowd.ami.simulator import AsteriskSimulator
from callnowd.pbx_services import AMI_EVENTFILTERS, AMI_READ, AMI_WRITE
from tests.integration.daemon import Daemon
from tests.integration.pbx_case import SimulatorCase

EXTERNAL = "+12125550100"
SECRET = "s3cret-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class CallsCase(SimulatorCase):
    """A simulator in this process and a daemon subprocess connected to it."""

    timeout = 120
    owners: dict[str, OwnerScript] = {}
    visitors: dict[str, VisitorScript] = {}

    async def start(self, asterisk: dict[str, Any] | None = None, **calls: Any) -> None:
        self.agi_port = free_port()
        self.simulator = AsteriskSimulator(
            reactor,
            SimulatorSettings(
                # The shipped manager.conf [callnowd] user, event filters included.
                users=(
                    AmiUser(
                        "callnowd",
                        SECRET,
                        read=AMI_READ,
                        write=AMI_WRITE,
                        eventfilters=AMI_EVENTFILTERS,
                    ),
                ),
                owners={**DEFAULT_OWNERS, **self.owners},
                visitors=self.visitors,
                default_visitor=VisitorScript(kind="answer", talk_seconds=1.0),
                contexts={
                    "callnow-owner": f"agi://127.0.0.1:{self.agi_port}/owner,${{CALLNOW_REQUEST}}"
                },
                playback_seconds=0.2,
            ),
        )
        port = await self.simulator.listen(
            TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        )
        self.addCleanup(lambda: Deferred.fromCoroutine(self.simulator.stop()))
        self.ami_port = port.getHost().port  # type: ignore[attr-defined]
        workdir = Path(self.mktemp()).absolute()
        workdir.mkdir(parents=True)
        self.daemon = Daemon(
            workdir,
            {
                "asterisk": {
                    "mode": "ami",
                    "ami_endpoint": f"tcp:host=127.0.0.1:port={self.ami_port}",
                    "secret": SECRET,
                    "agi_listen": f"tcp:{self.agi_port}:interface=127.0.0.1",
                    "ring_timeout": 2,
                    **(asterisk or {}),
                },
                "calls": {"visitor_ring_timeout": 2, "connect_wait": 5.0, **calls},
            },
        )
        await self.daemon.start_async(reactor)
        self.addCleanup(lambda: deferToThread(self.daemon.stop))
        await self.until(
            lambda: any(m.action == "Login" for m in self.simulator.received_actions)
        )

    async def provision(self, callnow_id: str, dial: str, *prefs: str) -> None:
        number = str(100 + len(getattr(self, "_provisioned", [])))
        self._provisioned = [*getattr(self, "_provisioned", []), number]
        result = await deferToThread(
            self.daemon.ctl,
            "extension",
            "add",
            number,
            "--name",
            f"Owner {callnow_id}",
            "--external",
            EXTERNAL,
            "--dial",
            dial,
            "--account",
            "acct7",
            "--callnow-id",
            callnow_id,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        result = await deferToThread(
            self.daemon.ctl, "callnow", "set", number, "--captcha", "no", *prefs
        )
        self.assertEqual(result.returncode, 0, result.stderr)

    async def request(self, callnow_id: str, phone: str, name: str = "Mary") -> str:
        url = self.daemon.url(
            f"/callnow/index.php?call={callnow_id}&myname={name}&phone=%2B{phone.lstrip('+')}"
        )
        response = await treq.get(url, allow_redirects=False, persistent=False)
        await response.content()
        self.assertEqual(response.code, 303)
        location: str = response.headers.getRawHeaders(b"location")[0].decode()
        return location

    async def status(self, location: str) -> dict[str, Any]:
        response = await treq.get(
            self.daemon.url(location),
            headers=Headers({"accept": ["application/json"]}),
            persistent=False,
        )
        document: dict[str, Any] = json.loads(await response.content())
        return document

    async def final(self, location: str, timeout: float = 40.0) -> dict[str, Any]:
        waited = 0.0
        while True:
            document = await self.status(location)
            if document["final"] or waited > timeout:
                return document
            await deferLater(reactor, 0.1)
            waited += 0.1

    def user_events(self) -> list[Message]:
        return self.actions("UserEvent")


def states(document: dict[str, Any]) -> list[str]:
    return [e["state"] for e in document["events"]]


class ScenarioTests(CallsCase):
    """Every scenario of the issue, run side by side on one daemon."""

    owners = {"SIM/auto": OwnerScript(kind="answer")}
    visitors = {
        "+12125550111": VisitorScript(kind="busy"),
        "+12125550122": VisitorScript(kind="noanswer"),
    }

    async def test_scenarios(self) -> None:
        """Accept, decline, no answer, busy, nonexistent, visitor busy/no answer, auto."""
        await self.start()
        cases = {
            "accept": ("Local/001002@phones", "+12125550150", ()),
            "decline": ("Local/001003@phones", "+12125550101", ()),
            "noanswer": ("Local/001004@phones", "+12125550102", ()),
            "busy": ("Local/001005@phones", "+12125550103", ()),
            "nonexistent": ("Local/009999@phones", "+12125550104", ()),
            "vbusy": ("Local/001002@phones", "+12125550111", ()),
            "vnoanswer": ("Local/001002@phones", "+12125550122", ()),
            "auto": ("SIM/auto", "+12125550105", ("--confirm", "no")),
        }
        for callnow_id, (dial, _, prefs) in cases.items():
            await self.provision(callnow_id, dial, *prefs)
        locations = {
            cid: await self.request(cid, phone) for cid, (_, phone, _) in cases.items()
        }
        results = {cid: await self.final(loc) for cid, loc in locations.items()}
        expected = {
            "accept": (
                "completed",
                [
                    "received",
                    "ringing_owner",
                    "calling_visitor",
                    "connected",
                    "completed",
                ],
            ),
            "decline": (
                "owner_declined",
                ["received", "ringing_owner", "owner_declined"],
            ),
            "noanswer": (
                "owner_no_answer",
                ["received", "ringing_owner", "owner_no_answer"],
            ),
            "busy": ("owner_busy", ["received", "ringing_owner", "owner_busy"]),
            "nonexistent": ("failed", ["received", "ringing_owner", "failed"]),
            "vbusy": (
                "visitor_busy",
                ["received", "ringing_owner", "calling_visitor", "visitor_busy"],
            ),
            "vnoanswer": (
                "visitor_no_answer",
                ["received", "ringing_owner", "calling_visitor", "visitor_no_answer"],
            ),
            "auto": (
                "completed",
                [
                    "received",
                    "ringing_owner",
                    "calling_visitor",
                    "connected",
                    "completed",
                ],
            ),
        }
        for cid, (state, path) in expected.items():
            self.assertEqual(
                (results[cid]["state"], states(results[cid])), (state, path), cid
            )
        # One Originate per request, each with a ChannelId, the request id and the
        # visitor as caller id; only the opaque id crosses AMI.
        originates = self.originates()
        self.assertEqual(len(originates), len(cases))
        for action in originates:
            self.assertEqual(action.get("Async"), "true")
            self.assertEqual(action.get("Context"), "callnow-owner")
            self.assertRegex(
                action.get("ChannelId") or "", r"^callnow-[0-9a-f]{6}-[0-9a-f]{16}$"
            )
            self.assertRegex(
                action.get("Variable") or "", r"^CALLNOW_REQUEST=[0-9a-f]{16}$"
            )
            self.assertRegex(
                action.get("CallerID") or "", r'^"CallNow: Mary" <\+1212555\d{4}>$'
            )
        # The visitor leg carries the owner's external number and account.
        dial_begins = [
            e
            for e in self.simulator.emitted_events
            if e.event == "DialBegin"
            and e.get("Channel") is not None  # the visitor leg, dialled by the owner's
            and "12125550150" in (e.get("DialString") or "")
        ]
        self.assertEqual(
            len(dial_begins),
            1,
            [
                e.headers
                for e in self.simulator.emitted_events
                if e.event == "DialBegin" and e.get("Channel")
            ][:2],
        )
        self.assertEqual({e.get("CallerIDNum") for e in dial_begins}, {EXTERNAL})
        commands = [" ".join(c) for c in self.simulator.agi_commands]
        self.assertIn(f"SET VARIABLE CALLERID(num) {EXTERNAL}", commands)
        self.assertIn("SET VARIABLE CDR(accountcode) acct7", commands)
        self.assertTrue(
            any(
                c.startswith("EXEC Dial PJSIP/+12125550150@trunk,2,L(")
                for c in commands
            )
        )
        # The auto-accept owner was never asked to press a key.
        # The owner who declined was told so.
        self.assertTrue(any("callnow/declined" in c for c in commands))
        # UserEvents for integrators: every transition, in order, no visitor data.
        accept_id = next(
            m.get("RequestID")
            for m in self.user_events()
            if m.get("CallNowID") == "accept"
        )
        sequence = [
            (m.get("State"), m.get("Reason"))
            for m in self.user_events()
            if m.get("RequestID") == accept_id
        ]
        self.assertEqual(
            sequence,
            [
                ("ringing_owner", ""),
                ("calling_visitor", ""),
                ("connected", ""),
                ("completed", "normal"),
            ],
        )
        for m in self.user_events():
            self.assertEqual(m.get("UserEvent"), "CallNow")
            self.assertNotIn("21255501", " ".join(v for _, v in m.headers))
            self.assertNotIn("Mary", " ".join(v for _, v in m.headers))


class JoinTests(CallsCase):
    """Two identical requests make one call."""

    async def test_two_requests_one_call(self) -> None:
        """A second request for the same visitor while one is open joins it."""
        await self.start()
        await self.provision("john", "Local/001002@phones")
        first = await self.request("john", "+12125550160")
        second = await self.request("john", "+12125550160", name="Maria")
        self.assertEqual(first, second)
        document = await self.final(first)
        self.assertEqual(document["state"], "completed")
        self.assertEqual(len(self.originates()), 1)


class AmiDropTests(CallsCase):
    """The AMI link drops while a call is up."""

    owners = {"SIM/slow": OwnerScript(kind="answer", digit="1", digit_delay=2.0)}

    async def test_drop_mid_call(self) -> None:
        """The call completes over FastAGI, AMI reconnects, nothing is dialled twice."""
        await self.start()
        await self.provision("john", "SIM/slow")
        location = await self.request("john", "+12125550160")
        await self.until(lambda: len(self.originates()) == 1)
        await deferLater(reactor, 0.5)
        logins = sum(1 for m in self.simulator.received_actions if m.action == "Login")
        self.simulator.drop_connections(refuse_for=1.0)
        document = await self.final(location)
        self.assertEqual(document["state"], "completed")
        await self.until(
            lambda: (
                sum(1 for m in self.simulator.received_actions if m.action == "Login")
                > logins
            )
        )
        self.assertEqual(len(self.originates()), 1)


class AmiDownTests(CallsCase):
    """No AMI session when a request arrives."""

    async def test_pbx_unavailable(self) -> None:
        """With AMI refused for longer than connect_wait the request fails, undialled."""
        await self.start(connect_wait=1.0)
        await self.provision("john", "Local/001002@phones")
        self.simulator.drop_connections(refuse_for=30.0)
        location = await self.request("john", "+12125550160")
        document = await self.final(location)
        self.assertEqual(document["state"], "failed")
        self.assertEqual(self.originates(), [])


class RestartTests(CallsCase):
    """The daemon restarts while a call is in flight."""

    owners = {"SIM/slow": OwnerScript(kind="answer", digit="1", digit_delay=3.0)}

    async def test_restart_with_call_in_flight(self) -> None:
        """The request is settled after the restart and never dialled twice."""
        await self.start()
        await self.provision("john", "SIM/slow")
        location = await self.request("john", "+12125550160")
        await self.until(lambda: len(self.originates()) == 1)
        await deferToThread(self.daemon.stop)
        await self.daemon.start_async(reactor)
        document = await self.final(location)
        self.assertIn(document["state"], {"failed", "completed", "owner_no_answer"})
        self.assertEqual(states(document).count("ringing_owner"), 1)
        self.assertEqual(len(self.originates()), 1)


class StopTests(CallsCase):
    """The daemon is stopped (SIGTERM) while calls are in flight."""

    owners = {"SIM/slow": OwnerScript(kind="answer", digit="1", digit_delay=3.0)}

    async def test_stop_with_calls_in_flight_is_quiet(self) -> None:
        """No error at stop, one summary line; the next start settles the requests."""
        await self.start(max_in_flight_per_extension=10)
        await self.provision("john", "SIM/slow")
        phones = [f"+1212555018{n}" for n in range(4)]
        locations = [await self.request("john", phone) for phone in phones]
        await self.until(lambda: len(self.originates()) == len(phones))
        await deferToThread(self.daemon.stop)
        events = self.daemon.events
        noisy = [
            e
            for e in events
            if e.get("log_level", {}).get("name") in ("error", "critical")
        ]
        self.assertEqual(noisy, [])
        summaries = [
            e for e in events if e.get("log_format", "").startswith("Stopping with")
        ]
        self.assertEqual([e["count"] for e in summaries], [len(phones)])
        await self.daemon.start_async(reactor)
        for location in locations:
            document = await self.final(location)
            self.assertTrue(document["final"], document)
            self.assertEqual(states(document).count("ringing_owner"), 1)
        self.assertEqual(len(self.originates()), len(phones))


class PrivilegeTests(CallsCase):
    """The simulator enforces Asterisk's AMI permissions on the daemon."""

    async def test_application_agi_needs_system(self) -> None:
        """Originate with Application: AGI is refused for a user without "system"."""
        await self.start({"originate_application": True})
        await self.provision("john", "Local/001002@phones")
        location = await self.request("john", "+12125550160")
        document = await self.final(location)
        self.assertEqual(document["state"], "failed")
        (originate,) = self.originates()
        self.assertEqual(originate.get("Application"), "AGI")
        events = await self.daemon_events(location)
        self.assertIn("Originate Access Forbidden", events[-1]["detail"] or "")

    async def daemon_events(self, location: str) -> list[dict[str, Any]]:
        """The stored audit trail (details included), read from the daemon's store."""
        token = location.rsplit("/", 1)[1]
        with sqlite3.connect(self.daemon.workdir / "callnow.sqlite3") as db:
            rows = db.execute(
                "SELECT e.state, e.reason, e.detail FROM request_events e"
                " JOIN call_requests r ON r.id = e.request_id WHERE r.token = ?"
                " ORDER BY e.id",
                (token,),
            ).fetchall()
        return [{"state": s, "reason": r, "detail": d} for s, r, d in rows]


class RulesE2ETests(CallsCase):
    """The rules engine on real calls."""

    owners = {
        "SIM/auto": OwnerScript(kind="answer"),
        "SIM/busyphone": OwnerScript(kind="answer", digit="1", digit_delay=0.5),
    }

    async def ctl(self, *args: str) -> None:
        result = await deferToThread(self.daemon.ctl, *args)
        self.assertEqual(result.returncode, 0, result.stderr)

    async def test_rules_on_calls(self) -> None:
        """Hours, accept/confirm/reject rules and a busy owner, seen on the AMI wire."""
        await self.start()
        # Outside hours: refused before anything is stored or dialled.
        await self.provision("closed", "Local/001002@phones")
        await self.ctl(
            "callnow",
            "set",
            "100",
            "--available-only-in-windows",
            "yes",
            "--window",
            "mon 03:00-03:01",
        )
        # Today and tomorrow are holidays too, so the minute above can never match.
        today = datetime.now(UTC).date()
        await self.ctl(
            "availability",
            "add-holiday",
            "100",
            str(today),
            str(today + timedelta(days=1)),
        )
        closed = await treq.get(
            self.daemon.url(
                "/callnow/index.php?call=closed&myname=Mary&phone=%2B12125550170"
            ),
            allow_redirects=False,
            persistent=False,
        )
        await closed.content()
        self.assertEqual(closed.code, 404)
        # Accept rule: the owner's phone answers and is connected without a prompt.
        await self.provision("auto", "SIM/auto")
        await self.ctl(
            "rules", "add", "101", "--prefix", "+1212555017", "--action", "accept"
        )
        # Confirm rule on a link that otherwise connects at once: the owner is asked.
        await self.provision("ask", "Local/001002@phones", "--confirm", "no")
        await self.ctl(
            "rules", "add", "102", "--phone", "+12125550172", "--action", "confirm"
        )
        # Reject rule.
        await self.provision("picky", "Local/001002@phones")
        await self.ctl("rules", "add", "103", "--name", "mall*", "--action", "reject")
        # Busy owner, with "reject while I am on the phone".
        await self.provision("busy", "SIM/busyphone", "--reject-when-busy", "yes")
        self.simulator.set_extension_state("busyphone", in_use=True, context="default")

        auto = await self.request("auto", "+12125550171")
        ask = await self.request("ask", "+12125550172")
        picky = await self.request_rejected("picky", "+12125550173", "Mallory")
        busy = await self.request_rejected("busy", "+12125550174", "Mary")
        self.assertEqual((await self.final(auto))["state"], "completed")
        self.assertEqual((await self.final(ask))["state"], "completed")
        self.assertEqual((picky, busy), (404, 404))

        originated = {m.get("CallerID") for m in self.originates()}
        self.assertEqual(
            originated,
            {'"CallNow: Mary" <+12125550171>', '"CallNow: Mary" <+12125550172>'},
        )
        prompts_by_call = self.prompted_numbers()
        self.assertNotIn("12125550171", prompts_by_call)
        self.assertIn("12125550172", prompts_by_call)
        stored = self.stored()
        self.assertEqual(stored["+12125550173"][:2], ("rejected", "caller_rule"))
        self.assertRegex(stored["+12125550173"][2], r"^rule:\d+$")
        self.assertEqual(stored["+12125550174"][:2], ("rejected", "busy"))
        self.assertEqual(stored["+12125550171"][3], "accept")
        self.assertEqual(stored["+12125550172"][3], "confirm")
        self.assertNotIn("+12125550170", stored)
        self.assertTrue(
            any(m.action == "ExtensionState" for m in self.simulator.received_actions)
        )

    async def request_rejected(self, callnow_id: str, phone: str, name: str) -> int:
        url = self.daemon.url(
            f"/callnow/index.php?call={callnow_id}&myname={name}&phone=%2B{phone.lstrip('+')}"
        )
        response = await treq.get(url, allow_redirects=False, persistent=False)
        await response.content()
        return int(response.code)

    def prompted_numbers(self) -> set[str]:
        """Visitor digits the owners heard (SAY DIGITS)."""
        return {c[2] for c in self.simulator.agi_commands if c[:2] == ["SAY", "DIGITS"]}

    def stored(self) -> dict[str, tuple[str, str, str, str]]:
        with sqlite3.connect(self.daemon.workdir / "callnow.sqlite3") as db:
            rows = db.execute(
                "SELECT phone, state, coalesce(reason, ''), coalesce(decided_by, ''),"
                " coalesce(decision, '') FROM call_requests"
            ).fetchall()
        return {p: (s, r, d, dec) for p, s, r, d, dec in rows}
