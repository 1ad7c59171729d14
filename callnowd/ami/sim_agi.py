"""The simulator's FastAGI client: Asterisk's side of one ``AGI(agi://...)``.

This module owns :class:`AgiSession`, the Twisted protocol that connects to the
daemon's FastAGI server for an answered owner leg: it sends the ``agi_*``
environment, answers commands one at a time like res_agi (ANSWER, GET
[FULL] VARIABLE, SET VARIABLE, WAIT FOR DIGIT, STREAM FILE, SAY DIGITS, GET
DATA, EXEC Dial/Wait/..., HANGUP, NOOP, VERBOSE, CHANNEL STATUS; 510 for
unknown commands, 520 blocks for bad arity, 511 in dead mode), delivers the
owner's DTMF only while a digit-reading command runs, writes the unsolicited
``HANGUP`` line shortly after a hang-up and keeps the channel until the server
closes the socket.  Wire encoding and decoding come from :mod:`callnowd.ami.agi`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from typing_extensions import override

from callnowd.ami import sim_channels as ev
from callnowd.ami.agi import (
    HANGUP_LINE,
    AgiClientParser,
    AgiEncodingError,
    AgiError,
    AgiResult,
    encode_environment,
    encode_result,
)
from callnowd.ami.sim_agi_usage import DEAD_SAFE, USAGE, match_command
from callnowd.ami.sim_dialplan import (
    AgiTarget,
    DialSyntaxError,
    expand_variables,
    parse_dial_data,
)
from callnowd.ami.sim_visitor import VisitorDial

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from callnowd.ami.sim_call import OwnerCall

Reply = AgiResult | AgiError | None
_INVALID = AgiError(510, "Invalid or unknown command")
_DEAD = AgiError(511, "Command Not Permitted on a dead channel or intercept routine")
_SAMPLES_PER_SECOND = 8000
_THREAD_ID = 140661527893696  # looks like a pthread id, as in the transcripts


def _ok(result: str | int, data: str | None = None, **extra: str) -> AgiResult:
    return AgiResult(200, str(result), data, tuple(extra.items()))


@attrs.define
class _Waiting:
    """A command that waits for time to pass or for DTMF."""

    kind: str  # "digit", "stream", "say", "getdata", "sleep", "dial"
    started: float
    escape: str = ""
    length: float = 0.0
    max_digits: int = 0
    digits: str = ""
    timer: IDelayedCall | None = None


class AgiSession(Protocol):
    """One FastAGI connection of an answered owner leg."""

    def __init__(self, call: OwnerCall, target: AgiTarget) -> None:
        self.call = call
        self.host = call.host
        self.target = target
        self._parser = AgiClientParser()
        self._queue: deque[list[str]] = deque()
        self._waiting: _Waiting | None = None
        self._busy = False
        self._dial: VisitorDial | None = None
        self.hung = False
        self.dead = False
        self.closed = False
        self.lost: Deferred[None] = Deferred()

    @property
    def dialing(self) -> VisitorDial | None:
        """The Dial running on this AGI, if any."""
        return self._dial

    @property
    def _now(self) -> float:
        return self.host.clock.seconds()

    def _environment(self) -> list[tuple[str, str]]:
        one = self.call.leg
        env = [("agi_network", "yes")]
        if self.target.network_script:
            env.append(("agi_network_script", self.target.network_script))
        env += [
            ("agi_request", self.target.request),
            ("agi_channel", one.name),
            ("agi_language", "en"),
            ("agi_type", one.name.split("/", 1)[0]),
            ("agi_uniqueid", one.uniqueid),
            ("agi_version", "22.10.1"),
            ("agi_callerid", one.caller_num or "unknown"),
            ("agi_calleridname", one.caller_name or "unknown"),
            ("agi_callingpres", "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", "unknown"),
            ("agi_rdnis", "unknown"),
            ("agi_context", one.context),
            ("agi_extension", one.exten),
            ("agi_priority", str(one.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", one.accountcode),
            ("agi_threadid", str(_THREAD_ID + self.host.registry.next_thread())),
        ]
        env += [
            (f"agi_arg_{i}", arg) for i, arg in enumerate(self.target.args, start=1)
        ]
        return env

    @override
    def connectionMade(self) -> None:
        if self.call.hangup_cause is not None or self.call.finished:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._write(encode_environment(self._environment()))

    @override
    def dataReceived(self, data: bytes) -> None:
        for words in self._parser.feed(data):
            self.host.record_agi_command(words)
            if (
                self._busy
                and self._waiting is not None
                and self._waiting.kind
                in (
                    "stream",
                    "say",
                    "getdata",
                )
            ):
                # res_agi stops playback on new input and prints no result line.
                self._stop_waiting()
                self._busy = False
            self._queue.append(words)
        self._pump()

    @override
    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        if self.closed:
            return
        self.closed = True
        self._stop_waiting()
        if self._dial is None:
            self.call.agi_closed()
        self.lost.callback(None)

    def abort(self) -> None:
        """Close the socket now (the call ended or the simulator stops)."""
        self._stop_waiting()
        if self.transport is not None and not self.closed:
            self.transport.loseConnection()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _reply(self, reply: AgiResult | AgiError) -> None:
        self._busy = False
        try:
            self._write(encode_result(reply))
        except AgiEncodingError:
            self._write(encode_result(_ok(-1)))
        self._pump()

    def _pump(self) -> None:
        while not self._busy and self._queue and not self.closed:
            words = self._queue.popleft()
            self._busy = True
            reply = self._execute(words)
            if reply is not None:
                self._busy = False
                try:
                    self._write(encode_result(reply))
                except AgiEncodingError:
                    self._write(encode_result(_ok(-1)))

    def _execute(self, words: list[str]) -> Reply:
        found = match_command(words)
        if found is None:
            return _INVALID
        name, argc_ok = found
        if self.dead and name not in DEAD_SAFE:
            return _DEAD
        if not argc_ok:
            return AgiError(520, USAGE[name])
        handler: Callable[[list[str]], Reply] = getattr(
            self, "_do_" + name.replace(" ", "_")
        )
        return handler(words)

    # -- digits and waiting ------------------------------------------------------

    def deliver_digit(self, digit: str) -> None:
        """The owner pressed ``digit``; only a digit-reading command sees it."""
        waiting = self._waiting
        if waiting is None:
            return  # res_agi's idle loop reads and drops it
        if waiting.kind == "digit":
            self._finish_wait(_ok(ord(digit)))
        elif waiting.kind in ("stream", "say") and digit in waiting.escape:
            if waiting.kind == "stream":
                self._finish_wait(_ok(ord(digit), endpos=self._endpos(waiting)))
            else:
                self._finish_wait(_ok(ord(digit)))
        elif waiting.kind == "getdata":
            waiting.digits += digit
            if len(waiting.digits) >= waiting.max_digits:
                self._finish_wait(_ok(waiting.digits))

    def _endpos(self, waiting: _Waiting) -> str:
        played = min(self._now - waiting.started, waiting.length)
        return str(int(played * _SAMPLES_PER_SECOND))

    def _wait(
        self, waiting: _Waiting, seconds: float | None, on_timeout: Callable[[], Reply]
    ) -> Reply:
        if self.hung:
            return _ok(-1)
        self._waiting = waiting

        def fire() -> None:
            waiting.timer = None
            reply = on_timeout()
            if reply is not None:
                self._finish_wait(reply)

        if seconds is not None:
            waiting.timer = self.host.timers.call_later(seconds, fire)
        return None

    def _finish_wait(self, reply: AgiResult | AgiError) -> None:
        self._stop_waiting()
        self._reply(reply)

    def _stop_waiting(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self.host.timers.cancel(waiting.timer)

    def channel_hung_up(self) -> None:
        """The channel hung up: fail the running command, then send ``HANGUP``."""
        if self.hung:
            return
        self.hung = True
        waiting = self._waiting
        if waiting is not None:
            if waiting.kind == "stream":
                self._finish_wait(_ok(-1, endpos=self._endpos(waiting)))
            else:
                self._finish_wait(_ok(-1))
        if self._dial is not None:
            self._dial.caller_hung_up()
        self.host.timers.call_later(
            self.host.settings.hangup_notice_delay, self._notice
        )

    def _notice(self) -> None:
        if not self.closed:
            self._write(HANGUP_LINE)
            self.dead = True

    # -- commands (argument counts are checked by match_command) -------------------

    def _do_answer(self, words: list[str]) -> Reply:
        return _ok(-1) if self.hung else _ok(0)

    def _do_noop(self, words: list[str]) -> Reply:
        return _ok(0)

    def _do_verbose(self, words: list[str]) -> Reply:
        return _ok(1)

    def _do_channel_status(self, words: list[str]) -> Reply:
        one = self.call.one
        return _ok(-1) if one is None or self.hung else _ok(one.state)

    def _read(self, name: str) -> str | None:
        one = self.call.leg
        upper = name.upper()
        functions = {
            "CALLERID(NUM)": one.caller_num,
            "CALLERID(NUMBER)": one.caller_num,
            "CALLERID(NAME)": one.caller_name,
            "CALLERID(ALL)": ev.caller_id_text(one.caller_name, one.caller_num),
            "CDR(ACCOUNTCODE)": one.accountcode,
            "CHANNEL(ACCOUNTCODE)": one.accountcode,
            "CHANNEL(NAME)": one.name,
            "CHANNEL": one.name,
            "UNIQUEID": one.uniqueid,
            "CONTEXT": one.context,
            "EXTEN": one.exten,
            "PRIORITY": str(one.priority),
        }
        if upper in functions:
            return functions[upper]
        return one.variables.get(name)

    def _do_get_variable(self, words: list[str]) -> Reply:
        value = self._read(words[2])
        return _ok(0) if value is None else _ok(1, value)

    def _do_get_full_variable(self, words: list[str]) -> Reply:
        one = self.call.leg
        names = dict(one.variables)
        for reference in (
            "CALLERID(num)",
            "CALLERID(name)",
            "CDR(accountcode)",
            "UNIQUEID",
        ):
            names[reference] = self._read(reference) or ""
        return _ok(1, expand_variables(words[3], names))

    def _do_set_variable(self, words: list[str]) -> Reply:
        one = self.call.leg
        name, value = words[2], words[3]
        upper = name.upper()
        if upper in ("CALLERID(NUM)", "CALLERID(NUMBER)", "CALLERID(NAME)"):
            if upper == "CALLERID(NAME)":
                one.caller_name = value
            else:
                one.caller_num = value
            ev.emit_newcallerid(self.host, one)
        elif upper in ("CDR(ACCOUNTCODE)", "CHANNEL(ACCOUNTCODE)"):
            one.accountcode = value
            self.host.emit("NewAccountCode", "call", one.headers())
        else:
            ev.emit_varset(self.host, one, name, value)
        return _ok(1)

    def _do_wait_for_digit(self, words: list[str]) -> Reply:
        try:
            timeout = int(words[3])
        except ValueError:
            return AgiError(520, USAGE["wait for digit"])
        seconds = None if timeout < 0 else timeout / 1000.0
        return self._wait(_Waiting("digit", self._now), seconds, lambda: _ok(0))

    def _do_stream_file(self, words: list[str]) -> Reply:
        length = self.host.settings.playback_seconds
        waiting = _Waiting("stream", self._now, escape=words[3], length=length)
        total = str(int(length * _SAMPLES_PER_SECOND))
        return self._wait(waiting, length, lambda: _ok(0, endpos=total))

    def _do_say_digits(self, words: list[str]) -> Reply:
        if not words[2].isdigit():
            return AgiError(520, USAGE["say digits"])
        length = 0.5 * len(words[2])
        return self._wait(
            _Waiting("say", self._now, escape=words[3], length=length),
            length,
            lambda: _ok(0),
        )

    def _do_get_data(self, words: list[str]) -> Reply:
        try:
            timeout = int(words[3]) if len(words) > 3 else 6000
            max_digits = int(words[4]) if len(words) > 4 else 1024
        except ValueError:
            return AgiError(520, USAGE["get data"])
        waiting = _Waiting("getdata", self._now, max_digits=max(max_digits, 1))
        seconds = self.host.settings.playback_seconds + max(timeout, 0) / 1000.0

        def timed_out() -> Reply:
            return _ok(waiting.digits, "timeout")

        return self._wait(waiting, seconds, timed_out)

    def _do_hangup(self, words: list[str]) -> Reply:
        one = self.call.one
        if len(words) > 1 and (one is None or words[1] != one.name):
            return _ok(-1)
        if self.hung:
            return _ok(1)
        self.call.hangup_leg(ev.CAUSE_UNKNOWN, by_agi=True)
        return _ok(1)

    def _do_exec(self, words: list[str]) -> Reply:
        app = words[1].lower()
        data = words[2] if len(words) > 2 else ""
        if app == "dial":
            return self._exec_dial(data)
        if app == "wait":
            try:
                seconds = float(data or "0")
            except ValueError:
                seconds = 0.0
            return self._wait(_Waiting("sleep", self._now), seconds, lambda: _ok(0))
        if app in (
            "set",
            "noop",
            "verbose",
            "log",
            "playback",
            "answer",
            "progress",
            "ringing",
        ):
            if app == "set":
                name, sep, value = data.partition("=")
                one = self.call.one
                if sep and one is not None:
                    ev.emit_varset(self.host, one, name, value)
            return _ok(-1 if self.hung and app != "set" else 0)
        if app == "hangup":
            self.call.hangup_leg(ev.CAUSE_NORMAL, by_agi=False)
            return _ok(-1)
        return _ok(-2)

    def _exec_dial(self, data: str) -> Reply:
        if self.hung or self.call.one is None:
            return _ok(-1)
        try:
            request = parse_dial_data(data)
        except DialSyntaxError:
            return _ok(-1)

        def done(result: int) -> None:
            self._dial = None
            if self.closed:
                self.call.agi_closed()
                return
            self._reply(_ok(result))
            if result == -1:
                # The bridge ended with the far end hanging up: Asterisk hangs
                # the caller up as well (Dial without the g option).
                self.call.hangup_leg(ev.CAUSE_NORMAL, by_agi=False)

        self._dial = VisitorDial(self.call, request, data, done)
        self._dial.start()
        return None
