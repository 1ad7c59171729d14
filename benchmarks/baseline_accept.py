"""Baseline C: the least any server must do to accept a callback request and dial.

Run as ``python benchmarks/baseline_accept.py PORT SINK_PORT DATABASE`` (``0`` picks
a free port). Once it listens it prints ``listening on 127.0.0.1:<port>``, as the
other baselines do.

It answers the form POST ``calls.py`` sends the daemon as baseline B does
(``baseline_post.py``: the same ``Site``, the body parsed with ``parse_qs``, 303 with
a ``Location``), and on the way does the work no callnowd, however written, can skip
when it accepts such a request with these libraries:

- checks the CSRF token against the cookie (an HMAC-SHA256, as the daemon's);
- reads the number with callnowd's own destination check (phonenumbers: parse,
  region, type, validity), a new number per request as in ``calls.py``;
- inserts one row for the request into an SQLite file (WAL, ``synchronous=NORMAL``,
  as the daemon's store), on the reactor thread, with one commit per reactor turn
  for all the rows of that turn (no thread hand-off, the cheapest batching);
- writes an AMI ``Originate`` shaped like the daemon's to a TCP connection (to a
  sink that reads and discards, on the load core).

It leaves out everything else the daemon does for the request: rate limits, rules,
the request's states and their events, the AMI answers and events of the call (it
reads nothing back), its end, the UserEvents and callnowd's log lines (its site
keeps twisted.web's own access line, as A's and B's do). So no version of the
daemon that does those too can accept more requests per second than C; see
``http_floor.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import sys
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import endpoints, protocol
from twisted.internet.interfaces import IProtocol
from twisted.web import resource, server
from twisted.web.iweb import IRequest

from benchmarks.baseline_post import BODY, COOKIE, FIELDS
from benchmarks.baseline_web import serve
from callnowd.limits.destination_policy import DestinationPolicy
from callnowd.limits.destinations import check_destination

# The key C checks tokens with; the harness makes its token with csrf_token().
CSRF_KEY = b"baseline-c-csrf-key-not-a-secret"
CALLNOW_ID = "bench"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests ("
    " id TEXT PRIMARY KEY, callnow_id TEXT NOT NULL, extension TEXT NOT NULL,"
    " phone TEXT NOT NULL, name TEXT, state TEXT NOT NULL, token TEXT NOT NULL,"
    " created_at REAL NOT NULL)"
)
INSERT = "INSERT INTO requests VALUES (?, ?, '100', ?, ?, 'ringing_owner', ?, ?)"


def csrf_token(cookie: str, callnow_id: str = CALLNOW_ID) -> str:
    """The form token that goes with ``cookie`` (hex HMAC-SHA256, as the daemon's)."""
    message = f"{cookie}:{callnow_id}".encode()
    return hmac.new(CSRF_KEY, message, hashlib.sha256).hexdigest()


def checked_form(
    request: IRequest,
    policy: DestinationPolicy,
    name_pattern: re.Pattern[str] | None = None,
) -> tuple[str, str] | bytes:
    """The form's E.164 number and name, once cookie, token and number check out.

    Otherwise the 400 answer's body, the response code set. With
    ``name_pattern`` the name must match it whole.
    """
    content = request.content
    args = parse_qs(content.read() if content is not None else b"")
    values = [args.get(name) for name in FIELDS]
    cookie = request.getCookie(COOKIE)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setResponseCode(400)  # until everything checks out
    if cookie is None or not all(values):
        return b"missing form field or cookie\n"
    csrf, phone, name = (v[0].decode() for v in values if v)
    if not hmac.compare_digest(csrf, csrf_token(cookie.decode())):
        return b"bad token\n"
    if name_pattern is not None and name_pattern.fullmatch(name) is None:
        return b"bad name\n"
    verdict = check_destination(phone, policy)
    if not verdict.allowed or verdict.e164 is None:
        return b"number refused\n"
    request.setResponseCode(200)
    return verdict.e164, name


class Sink(protocol.Protocol):
    """The AMI connection: written to, its answers read and dropped."""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        """Nothing is read back (see the module docstring)."""


class Accept(resource.Resource):
    """Checks, stores and dials each accepted form POST, then answers 303."""

    isLeaf = True  # noqa: N815 (Twisted's attribute name)

    def __init__(self, database: sqlite3.Connection, reactor: Any) -> None:
        super().__init__()
        self._db = database
        self._reactor = reactor
        self._policy = DestinationPolicy()
        self._commit_due = False
        self.ami: protocol.Protocol | None = None

    # Twisted dispatches to render_<METHOD> by name; Resource declares none of them.
    def render_POST(self, request: IRequest) -> bytes:  # noqa: N802
        """303 for a valid form, cookie, token and number; else 400."""
        checked = checked_form(request, self._policy)
        if isinstance(checked, bytes):
            return checked
        if self.ami is None:
            request.setResponseCode(400)
            return b"not connected to AMI yet\n"
        e164, name = checked
        request_id, token = secrets.token_hex(8), secrets.token_urlsafe(16)
        self._db.execute(
            INSERT,
            (
                request_id,
                CALLNOW_ID,
                e164,
                name,
                token,
                self._reactor.seconds(),
            ),
        )
        if not self._commit_due:
            self._commit_due = True
            self._reactor.callLater(0, self._commit)
        self.ami.transport.write(  # type: ignore[union-attr]
            (
                "Action: Originate\r\n"
                f"ActionID: {request_id}\r\n"
                "Channel: PJSIP/100\r\n"
                "Context: callnow-owner\r\nExten: s\r\nPriority: 1\r\n"
                "Timeout: 30000\r\n"
                f'CallerID: "CallNow: {name}" <{e164}>\r\n'
                f"Variable: CALLNOW_REQUEST={request_id}\r\n"
                f"ChannelId: callnow-{request_id}\r\n"
                "Async: true\r\n\r\n"
            ).encode()
        )
        request.setResponseCode(303)
        request.setHeader(
            b"location", f"/callnow/{CALLNOW_ID}/requests/{token}".encode()
        )
        return BODY

    def _commit(self) -> None:
        self._commit_due = False
        self._db.commit()


def main(argv: list[str]) -> int:
    """Serve :class:`Accept`; ``argv`` is ``[PORT, SINK_PORT, DATABASE]``."""
    if len(argv) != 3 or not argv[0].isdigit() or not argv[1].isdigit():
        print("usage: baseline_accept.py PORT SINK_PORT DATABASE", file=sys.stderr)
        return 2
    from twisted.internet import reactor  # a program's entry point owns the reactor

    database = sqlite3.connect(argv[2], isolation_level="DEFERRED")
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("PRAGMA synchronous=NORMAL")
    database.execute(SCHEMA)
    database.commit()
    accept = Accept(database, reactor)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", int(argv[1]))

    def connected(ami: IProtocol) -> None:
        assert isinstance(ami, Sink)
        accept.ami = ami

    endpoint.connect(protocol.Factory.forProtocol(Sink)).addCallback(connected)
    # The rows of the last turn, when SIGTERM stops the reactor before it commits.
    reactor.addSystemEventTrigger("before", "shutdown", database.commit)
    # As the daemon's CallNowSite: the resource parses the body, not Twisted.
    site = server.Site(accept, parsePOSTFormSubmission=False)
    return serve("baseline_accept.py", argv[:1], site)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
