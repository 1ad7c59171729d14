"""The attack tests' base: a real daemon (subprocess), the simulator in this process.

The daemon trusts ``X-Forwarded-For`` so every request can claim its own client
address (a botnet); extensions are provisioned in process, through the CLI's own
``run_command`` on the daemon's store file, before the daemon starts (cheaper than
one ``callnowctl`` process per command).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web.http_headers import Headers

from callnowd.ami.sim_config import (
    DEFAULT_OWNERS,
    AmiUser,
    SimulatorSettings,
    VisitorScript,
)
from callnowd.ami.simulator import AsteriskSimulator
from callnowd.cli import build_parser, run_command
from callnowd.config import load_config
from callnowd.limits.settings import LimitSettings
from callnowd.pbx_services import AMI_READ, AMI_WRITE
from callnowd.store.open import open_store
from tests.integration.daemon import GENEROUS_LIMITS, Daemon
from tests.integration.pbx_case import SimulatorCase
from tests.redis_server import free_port

SECRET = "s3cret-for-attacks"
# A scripted owner phone that answers "busy" at once: every call ends quickly.
BUSY_OWNER = "Local/001005@phones"
FORM = "application/x-www-form-urlencoded"


class Answer:
    """One HTTP answer of the daemon."""

    def __init__(self, code: int, headers: Headers, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        """The last value of a response header, or None."""
        values = self.headers.getRawHeaders(name.encode())
        return values[-1].decode() if values else None


class AttackCase(SimulatorCase):
    """A simulator in this process and a daemon subprocess connected to it."""

    timeout = 90

    async def start(
        self,
        limits: dict[str, Any] | None = None,
        links: tuple[str, ...] = ("victim",),
        **sections: dict[str, Any],
    ) -> None:
        """Start the simulator and a daemon with ``limits``; provision ``links``."""
        agi_port = free_port()
        self.simulator = AsteriskSimulator(
            reactor,
            SimulatorSettings(
                users=(AmiUser("callnowd", SECRET, read=AMI_READ, write=AMI_WRITE),),
                owners=DEFAULT_OWNERS,
                default_visitor=VisitorScript(kind="answer", talk_seconds=0.5),
                contexts={
                    "callnow-owner": f"agi://127.0.0.1:{agi_port}/owner,"
                    "${CALLNOW_REQUEST}"
                },
                playback_seconds=0.1,
            ),
        )
        port = await self.simulator.listen(
            TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        )
        self.addCleanup(lambda: Deferred.fromCoroutine(self.simulator.stop()))
        workdir = Path(self.mktemp()).absolute()
        workdir.mkdir(parents=True)
        settings: dict[str, dict[str, Any]] = {
            "http": {"trust_forwarded_for": True, "test_hooks": False},
            "asterisk": {
                "mode": "ami",
                "ami_endpoint": f"tcp:host=127.0.0.1:port={port.getHost().port}",  # type: ignore[attr-defined]
                "secret": SECRET,
                "agi_listen": f"tcp:{agi_port}:interface=127.0.0.1",
                "ring_timeout": 2,
            },
            "calls": {"visitor_ring_timeout": 2, "connect_wait": 5.0},
            # Default limits unless the test says otherwise (the harness's are
            # generous).
            "limits": _default_limits() | (limits or {}),
        }
        for name, values in sections.items():
            settings.setdefault(name, {}).update(values)
        self.daemon = Daemon(workdir, settings)
        await self.provision(*links)
        await self.daemon.start_async(reactor)
        self.addCleanup(lambda: deferToThread(self.daemon.stop))
        await self.until(
            lambda: any(m.action == "Login" for m in self.simulator.received_actions)
        )

    async def provision(self, *links: str) -> None:
        """Add one extension per CallNow id (busy owner, no CAPTCHA, no confirm)."""
        config = load_config(self.daemon.config)
        store = open_store(reactor, config.store.url, self.daemon.workdir)
        try:
            for n, callnow_id in enumerate(links):
                number = str(200 + n)
                add = f"extension add {number} --external +12125550100"
                add += f" --dial {BUSY_OWNER} --callnow-id {callnow_id}"
                prefs = f"callnow set {number} --captcha no --confirm no"
                for argv in (
                    [*add.split(), "--name", f"Owner {n}"],
                    prefs.split(),
                ):
                    await run_command(build_parser().parse_args(argv), store, config)
        finally:
            await store.close()

    # -- HTTP ------------------------------------------------------------------------

    async def http(
        self,
        method: str,
        path: str,
        client_ip: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request claiming to come from ``client_ip``; redirects not followed."""
        all_headers = {"X-Forwarded-For": [client_ip]}
        all_headers.update({k: [v] for k, v in (headers or {}).items()})
        response = await treq.request(
            method,
            self.daemon.url(path),
            data=body,
            headers=Headers(all_headers),
            allow_redirects=False,
            persistent=False,
        )
        return Answer(response.code, response.headers, await response.content())

    async def one_step(
        self, callnow_id: str, phone: str, name: str, client_ip: str
    ) -> Answer:
        """The seed's one-step link (a GET that creates a request)."""
        query = urlencode({"call": callnow_id, "myname": name, "phone": phone})
        return await self.http("GET", f"/callnow/index.php?{query}", client_ip)

    async def form(
        self, callnow_id: str, phone: str, name: str, client_ip: str
    ) -> Answer:
        """Load the form (cookie, CSRF token) and post it, as a browser would."""
        page = await self.http("GET", f"/callnow/{callnow_id}", client_ip)
        self.assertEqual(page.code, 200, page.body)
        cookie = (page.header("set-cookie") or "").split(";", 1)[0]
        match = re.search(r'name="csrf" value="([^"]*)"', page.body)
        assert match is not None, page.body
        body = urlencode({"csrf": match.group(1), "phone": phone, "name": name})
        return await self.http(
            "POST",
            f"/callnow/{callnow_id}",
            client_ip,
            body.encode(),
            {"content-type": FORM, "cookie": cookie},
        )

    async def final(self, location: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll a status page (JSON) until the request is in a final state."""
        waited = 0.0
        while True:
            answer = await self.http(
                "GET", location, "127.0.0.1", headers={"accept": "application/json"}
            )
            document: dict[str, Any] = json.loads(answer.body)
            if document["final"]:
                return document
            if waited > timeout:
                self.fail(f"request {location} not final: {document}")
            await deferLater(reactor, 0.1)
            waited += 0.1

    # -- what happened ---------------------------------------------------------------

    def stored(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows of the daemon's SQLite file (opened read-only)."""
        path = self.daemon.workdir / "callnow.sqlite3"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return list(db.execute(sql, args))


def _default_limits() -> dict[str, Any]:
    # The shipped values of the keys the harness makes generous.
    shipped = LimitSettings()
    return {key: getattr(shipped, key) for key in GENEROUS_LIMITS}
