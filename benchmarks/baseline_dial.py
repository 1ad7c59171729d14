"""Baseline D: the least a server does per request for what callnowd's issues require.

Run as ``python benchmarks/baseline_dial.py PORT AMI_PORT SECRET DATABASE LOG
RING_S [REDIS_URL] [--checkpoint-every=N]`` (``0`` picks a free port; ``RING_S``: the
Originate's timeout in seconds; with ``REDIS_URL`` the limits are evaluated in that
Redis by callnowd's Redis store, its Lua script and txredisapi client, instead of in
this process; ``--checkpoint-every`` asks for a WAL checkpoint every N writes
instead of the daemon's ``CHECKPOINT_EVERY``). It logs in to the AMI peer at ``AMI_PORT`` (the benchmark
simulator, ``sim_server.py``) as ``callnowd`` with ``SECRET``, then listens and
prints ``listening on 127.0.0.1:<port>``, as the other baselines do.

It answers the form POST ``calls.py`` sends the daemon as baseline C does
(``baseline_accept.py``: CSRF HMAC, callnowd's destination check, 303), and adds,
in the plainest code that does it, the rest of what an accepted request needs in
callnowd's requirements, on the reactor thread with no Deferred, coroutine or
thread hand-off anywhere:

- the rate limits (callnowd's in-process limiter, its seven checks evaluated
  synchronously);
- the request row and its ``received`` and ``ringing_owner`` events in SQLite (WAL,
  ``synchronous=NORMAL``, the daemon's indexes), committed once per reactor turn
  with the other writes of that turn, the WAL checkpointed as the daemon's store
  does it (PASSIVE, every 300 writes, on callnowd's low-priority checkpoint thread,
  and SQLite's own past the daemon's WAL bound);
- the ``Originate`` and a ``UserEvent`` for ``ringing_owner`` written to AMI;
- a JSON log line for the access, the new request and its state;
- and when the simulator's ``OriginateResponse`` says the owner did not answer
  (read with callnowd's AMI parser, every other event skipped by it), the
  ``owner_no_answer`` transition: an UPDATE and an event row, a UserEvent and a
  log line. The AMI answers to the actions are parsed and dropped, the owner
  channel's ``Hangup`` parsed and looked up (the daemon reacts to it).

So it does the core of what callnowd must do once, with nothing around it: no
lookup of the link's extension or its opening hours (the one link is fixed), no
rules, no joining, no capacity or timers, no reconciliation, no metrics, no
security headers, none of the checks a daemon needs for a second daemon, a lost
connection or a late answer, and SQLite on the reactor thread (a busy database
would stall it). Its one access line per request is written by the
site (:class:`LoggingSite`) in place of twisted.web's own. It runs with the
daemon's garbage-collector settings (``GcTuning``).
What D / A gives is therefore a ceiling for the "accepted" target of any
implementation with these features and libraries; see ``calls.py``.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import sys
import time
from pathlib import Path
from typing import IO, Any

from twisted.internet import endpoints, protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocol
from twisted.web import resource, server
from twisted.web.iweb import IRequest

from benchmarks.baseline_accept import CALLNOW_ID, checked_form
from benchmarks.baseline_post import BODY
from callnowd.ami.codec import AmiParser, WantedEvents
from callnowd.limits.destination_policy import DestinationPolicy
from callnowd.limits.limiter import Limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.settings import LimitSettings, parse_redis_url
from callnowd.service import GcTuning
from callnowd.store.sqlite import CHECKPOINT_EVERY, WAL_BOUND_PAGES
from callnowd.store.sqlite_checkpoint import Checkpointer

# The daemon's tables and indexes (callnowd/store/migrations/sqlite), cut to what D
# writes: an index costs every insert.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests ("
    " id TEXT PRIMARY KEY, callnow_id TEXT NOT NULL, extension TEXT NOT NULL,"
    " phone TEXT NOT NULL, name TEXT, state TEXT NOT NULL, reason TEXT,"
    " token TEXT NOT NULL, channel_id TEXT, created_at REAL NOT NULL,"
    " updated_at REAL NOT NULL, dedupe_key TEXT);"
    "CREATE UNIQUE INDEX IF NOT EXISTS requests_token ON requests (token);"
    "CREATE INDEX IF NOT EXISTS requests_dedupe ON requests (dedupe_key, created_at);"
    "CREATE INDEX IF NOT EXISTS requests_extension ON requests (extension, created_at);"
    "CREATE INDEX IF NOT EXISTS requests_created ON requests (created_at);"
    "CREATE INDEX IF NOT EXISTS requests_state ON requests (state);"
    "CREATE TABLE IF NOT EXISTS request_events ("
    " id INTEGER PRIMARY KEY, request_id TEXT NOT NULL REFERENCES requests(id),"
    " at REAL NOT NULL, state TEXT NOT NULL, reason TEXT, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS request_events_by_request"
    " ON request_events (request_id, id);"
)
INSERT_REQUEST = (
    "INSERT INTO requests VALUES"
    " (?, ?, '100', ?, ?, 'ringing_owner', NULL, ?, ?, ?, ?, NULL)"
)
INSERT_EVENT = (
    "INSERT INTO request_events (request_id, at, state, reason, detail)"
    " VALUES (?, ?, ?, ?, ?)"
)
UPDATE_STATE = (
    "UPDATE requests SET state = ?, reason = ?, updated_at = ?"
    " WHERE id = ? AND state = 'ringing_owner'"
)
# Every limit far out of reach, as the daemon's in calls.py; the checks still run.
GENEROUS = 1_000_000_000
# A name as the daemon's validation admits it (letters, marks, digits, space, .'-).
NAME = re.compile(r"[^\W_](?:[\w .'-]{0,62}[^\W_])?")


def _limiter() -> tuple[Limiter, MemoryRateLimitStore]:
    import attrs

    names: dict[str, Any] = {
        f.name: GENEROUS
        for f in attrs.fields(LimitSettings)
        if f.name.endswith("_limit") or f.name == "ip_destinations"
    }
    store = MemoryRateLimitStore()
    return Limiter(store, LimitSettings(**names), b"baseline-d-limits"), store


class Dialler(protocol.Protocol):
    """The AMI connection: writes actions, reads OriginateResponses."""

    def __init__(self, secret: str, flow: Flow) -> None:
        self._secret = secret
        self._flow = flow
        self._parser = AmiParser(
            skip_events=WantedEvents([b"OriginateResponse", b"Hangup"])
        )
        self.logged_in = False
        self.on_login: list[Any] = []

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        """Log in (plain text, as a simulator allows)."""
        assert self.transport is not None
        self.transport.write(
            (
                f"Action: Login\r\nActionID: login\r\nUsername: callnowd\r\n"
                f"Secret: {self._secret}\r\nEvents: on\r\n\r\n"
            ).encode()
        )

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        """Parse what came, act on the OriginateResponses."""
        for message in self._parser.feed(data):
            event = message.get("Event")
            if event == "OriginateResponse":
                self._flow.owner_result(
                    message.get("ActionID") or "", message.get("Response") or ""
                )
            elif event == "Hangup":
                self._flow.hangup(message.get("Uniqueid") or "")
            elif not self.logged_in and message.get("ActionID") == "login":
                if message.get("Response") != "Success":
                    print("AMI login refused", file=sys.stderr, flush=True)
                    return
                self.logged_in = True
                for call in self.on_login:
                    call()

    def write(self, data: str) -> None:
        """Write ``data`` (already safe: see the callers)."""
        assert self.transport is not None
        self.transport.write(data.encode())


class Flow:
    """The request's life: stored, dialled, notified, logged, ended."""

    def __init__(
        self,
        database: sqlite3.Connection,
        log: IO[str],
        reactor: Any,
        checkpointer: Checkpointer,
    ):
        self._db = database
        self._log = log
        self._reactor = reactor
        self._checkpointer = checkpointer
        self._writes = 0  # since the last checkpoint
        self.checkpoint_every = CHECKPOINT_EVERY
        self._live: set[str] = set()  # channel ids of requests not yet ended
        self._turn_due = False
        self._counter = 0
        self._open: dict[str, str] = {}  # Originate ActionID -> request id
        self.ring_timeout_ms = 1000
        self.ami: Dialler | None = None

    def start(self, e164: str, name: str, token: str, now: float) -> str:
        """Store, dial and announce a new request; return its id."""
        assert self.ami is not None
        request_id = secrets.token_hex(8)
        channel_id = f"callnow-{request_id}"
        execute = self._db.execute
        execute(
            INSERT_REQUEST,
            (request_id, CALLNOW_ID, e164, name, token, channel_id, now, now),
        )
        execute(INSERT_EVENT, (request_id, now, "received", None, None))
        execute(INSERT_EVENT, (request_id, now, "ringing_owner", None, "100"))
        self._log_line(f"Call request {request_id} for extension 100: accept", now)
        self._log_line(f"Request {request_id}: ringing_owner", now)
        self._counter += 1
        action_id = f"d-{self._counter}"
        self._open[action_id] = request_id
        self.ami.write(
            "Action: Originate\r\n"
            f"ActionID: {action_id}\r\n"
            "Channel: PJSIP/100\r\n"
            "Context: callnow-owner\r\nExten: s\r\nPriority: 1\r\n"
            f"Timeout: {self.ring_timeout_ms}\r\n"
            f'CallerID: "CallNow: {name}" <{e164}>\r\n'
            f"Variable: CALLNOW_REQUEST={request_id}\r\n"
            f"ChannelId: {channel_id}\r\n"
            "Async: true\r\n\r\n"
        )
        self._user_event(request_id, "ringing_owner", "")
        self._live.add(channel_id)
        self._turn()
        return request_id

    def hangup(self, channel_id: str) -> None:
        """A channel ended: one of ours still open would end here (none is)."""
        self._live.discard(channel_id)

    def owner_result(self, action_id: str, response: str) -> None:
        """The Originate's outcome: anything but Success ends it (no answer)."""
        request_id = self._open.pop(action_id, None)
        if request_id is None or response == "Success":
            return
        now = time.time()
        self._db.execute(
            UPDATE_STATE, ("owner_no_answer", "no_answer", now, request_id)
        )
        self._db.execute(
            INSERT_EVENT, (request_id, now, "owner_no_answer", "no_answer", None)
        )
        self._user_event(request_id, "owner_no_answer", "no_answer")
        self._log_line(f"Request {request_id}: owner_no_answer (no_answer)", now)
        self._turn()

    def access(self, line: str, now: float) -> None:
        """Log one access line."""
        self._log_line(line, now)

    def _user_event(self, request_id: str, state: str, reason: str) -> None:
        assert self.ami is not None
        self._counter += 1
        self.ami.write(
            f"Action: UserEvent\r\nActionID: d-{self._counter}\r\n"
            f"UserEvent: CallNow\r\nRequestID: {request_id}\r\n"
            f"CallNowID: {CALLNOW_ID}\r\nExtension: 100\r\n"
            f"State: {state}\r\nReason: {reason}\r\n\r\n"
        )

    def _log_line(self, text: str, now: float) -> None:
        self._log.write(
            json.dumps({"log_text": text, "log_level": "info", "log_time": now}) + "\n"
        )

    def _turn(self) -> None:
        self._writes += 1
        if self._writes >= self.checkpoint_every and self._checkpointer.start():
            self._writes = 0
        if not self._turn_due:
            self._turn_due = True
            self._reactor.callLater(0, self.end_of_turn)

    def end_of_turn(self) -> None:
        """Commit the turn's writes and flush its log lines."""
        self._turn_due = False
        self._db.commit()
        self._log.flush()


class Accept(resource.Resource):
    """Checks each form POST, hands it to the flow, answers 303."""

    isLeaf = True  # noqa: N815 (Twisted's attribute name)

    def __init__(self, flow: Flow, reactor: Any, redis: Any = None) -> None:
        super().__init__()
        self._flow = flow
        self._reactor = reactor
        self._policy = DestinationPolicy()
        self._limiter, self._limits = _limiter()
        self._redis = redis  # a RedisRateLimitStore, or None: in this process

    # Twisted dispatches to render_<METHOD> by name; Resource declares none of them.
    def render_POST(self, request: IRequest) -> bytes | int:  # noqa: N802
        """303 for a valid form within the limits; else 400 or 429.

        With Redis, the answer is written once the limits are known
        (``NOT_DONE_YET`` now).
        """
        checked = checked_form(request, self._policy, NAME)
        if isinstance(checked, bytes):
            return checked
        e164, name = checked
        now = self._reactor.seconds()
        client = request.getClientAddress()
        plan = self._limiter.plan(getattr(client, "host", ""), CALLNOW_ID, e164)
        if self._redis is None:
            allowed = self._limits.evaluate_now(plan, now).verdict.allowed
            return self._accept(request, allowed, e164, name, now)
        answer = Deferred.fromCoroutine(self._redis.evaluate(plan, now))

        gone: list[object] = []
        any_request: Any = request  # notifyFinish is twisted.web.server.Request's
        any_request.notifyFinish().addBoth(gone.append)  # the client left, or done

        def decided(outcome: Any) -> None:
            body = self._accept(request, outcome.verdict.allowed, e164, name, now)
            if not gone:
                request.write(body)
                request.finish()

        def failed(reason: Any) -> None:
            print(f"limits failed: {reason.getErrorMessage()}", file=sys.stderr)
            if not gone:
                request.setResponseCode(503)
                request.write(b"try again\n")
                request.finish()

        answer.addCallbacks(decided, failed)
        return server.NOT_DONE_YET

    def _accept(
        self, request: IRequest, allowed: bool, e164: str, name: str, now: float
    ) -> bytes:
        if not allowed:
            request.setResponseCode(429)
            return b"too many requests\n"
        token = secrets.token_urlsafe(16)
        self._flow.start(e164, name, token, now)
        request.setResponseCode(303)
        request.setHeader(
            b"location", f"/callnow/{CALLNOW_ID}/requests/{token}".encode()
        )
        return BODY


class LoggingSite(server.Site):
    """The site, writing D's one JSON access line per request.

    Instead of twisted.web's own access line (a legacy log event), which would be
    a second one.
    """

    def __init__(self, resource: Accept, flow: Flow, reactor: Any) -> None:
        # As the daemon's CallNowSite: the resource parses the body, not Twisted.
        super().__init__(resource, parsePOSTFormSubmission=False)
        self._flow = flow
        self._reactor = reactor

    def log(self, request: Any) -> None:
        """One JSON line: method, path and status."""
        method, path = request.method.decode(), request.uri.decode()
        line = f'"{method} {path} HTTP/1.1" {request.code}'
        self._flow.access(line, self._reactor.seconds())


def main(argv: list[str]) -> int:
    """Serve :class:`Accept` once logged in; ``argv`` as in the module docstring."""
    option = "--checkpoint-every="
    counts = [a.removeprefix(option) for a in argv if a.startswith(option)]
    argv = [a for a in argv if not a.startswith(option)]
    if not all(count.isdigit() and int(count) >= 1 for count in counts):
        print(f"baseline_dial.py: {option}N takes a count from 1", file=sys.stderr)
        return 2
    checkpoint_every = int(counts[-1]) if counts else CHECKPOINT_EVERY
    if len(argv) not in (6, 7) or not all(argv[i].isdigit() for i in (0, 1, 5)):
        print(
            "usage: baseline_dial.py PORT AMI_PORT SECRET DATABASE LOG RING_S"
            " [REDIS_URL] [--checkpoint-every=N]",
            file=sys.stderr,
        )
        return 2
    from twisted.internet import reactor  # a program's entry point owns the reactor

    database = sqlite3.connect(argv[3], isolation_level="DEFERRED")
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("PRAGMA synchronous=NORMAL")
    # Checkpointed as the daemon's store does it: PASSIVE, on a thread of its own at
    # the lowest priority, every CHECKPOINT_EVERY writes (unless told otherwise);
    # SQLite's own checkpoint
    # in a commit only past WAL_BOUND_PAGES (the thread may starve under load).
    database.execute(f"PRAGMA wal_autocheckpoint={WAL_BOUND_PAGES}")
    database.executescript(SCHEMA)
    database.commit()
    checkpointer = Checkpointer(
        reactor, Path(argv[3]), lambda c: None, lambda error: None
    )
    log = open(argv[4], "a", encoding="utf-8")  # noqa: SIM115 (open while serving)
    flow = Flow(database, log, reactor, checkpointer)
    flow.ring_timeout_ms = 1000 * int(argv[5])
    flow.checkpoint_every = checkpoint_every
    # The rows and lines of the last turn, when SIGTERM stops the reactor first.
    reactor.addSystemEventTrigger("before", "shutdown", flow.end_of_turn)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", int(argv[1]))
    redis = None
    if len(argv) == 7:
        from callnowd.limits.redis import RedisRateLimitStore, connect_redis

        connection = connect_redis(reactor, parse_redis_url(argv[6]))
        redis = RedisRateLimitStore(connection, reactor, prefix="least")
    site = LoggingSite(Accept(flow, reactor, redis), flow, reactor)

    def connected(ami: IProtocol) -> None:
        assert isinstance(ami, Dialler)
        flow.ami = ami
        ami.on_login.append(lambda: serve_site())

    def serve_site() -> None:
        port = endpoints.TCP4ServerEndpoint(
            reactor, int(argv[0]), interface="127.0.0.1"
        )

        def listening(listener: Any) -> None:
            print(f"listening on 127.0.0.1:{listener.getHost().port}", flush=True)

        port.listen(site).addCallback(listening)

    factory = protocol.Factory.forProtocol(lambda: Dialler(argv[2], flow))
    endpoint.connect(factory).addCallback(connected)
    GcTuning().startService()  # the daemon's garbage-collector settings
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
