"""One FastAGI call as seen by a handler: commands, replies, errors and timers.

Owns :class:`AgiSession` (the async command API handlers use) and the session
exceptions. It knows nothing about sockets: the protocol in
:mod:`callnowd.ami.fastagi` gives it a ``write`` and a ``close`` function and
feeds it what :class:`~callnowd.ami.agi.AgiServerParser` reads.

Asterisk answers strictly in order and without ids, and some commands send no
reply at all if anything else arrives while they run, so at most one command is
in flight: a second concurrent :meth:`AgiSession.command` raises
:class:`AgiCommandInFlight` instead of queueing (a caller bug, made loud).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from callnowd.ami.agi import (
    AgiEnvironment,
    AgiError,
    AgiProtocolError,
    AgiResult,
    encode_command,
)


class AgiSessionError(Exception):
    """Base of everything an :class:`AgiSession` command can raise on its own."""


class AgiCommandError(AgiSessionError):
    """Asterisk refused or failed a command.

    Attributes:
        code: the status code (510, 511, 520, or 200 for a failed result).
        text: the status text.
    """

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class AgiInvalidCommand(AgiCommandError):
    """510: Asterisk does not know the command."""


class AgiDeadChannel(AgiCommandError):
    """511: the channel is hung up and the command is not allowed any more."""


class AgiUsageError(AgiCommandError):
    """520: wrong arguments; ``usage`` is Asterisk's usage text ("" if none)."""

    def __init__(self, usage: str) -> None:
        super().__init__(520, "Invalid command syntax.")
        self.usage = usage


class AgiCommandFailed(AgiCommandError):
    """A ``200 result=-1`` from a command whose -1 means failure."""


class AgiHangup(AgiSessionError):
    """The connection is gone (or closing) while or before a command ran."""


class AgiTimeout(AgiSessionError):
    """No reply within the command timeout; the connection is then closed."""


class AgiCommandInFlight(AgiSessionError):
    """A command was started while another one was still waiting for its reply."""


def _error_for(error: AgiError) -> AgiCommandError:
    if error.code == 510:
        return AgiInvalidCommand(error.code, error.text)
    if error.code == 511:
        return AgiDeadChannel(error.code, error.text)
    if error.code == 520:
        return AgiUsageError(error.text)
    return AgiCommandError(error.code, error.text)


class AgiSession:
    """One FastAGI call: the environment and an async command API.

    Attributes:
        env: the environment block Asterisk sent.
        hung_up: set when Asterisk's out-of-band ``HANGUP`` notice arrives; the
            session then only accepts dead-safe commands (others give 511).
        closed: set once the connection is closing or gone.
    """

    log = Logger()

    def __init__(
        self,
        env: AgiEnvironment,
        *,
        clock: IReactorTime,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        command_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.env = env
        self.hung_up = False
        self.closed = False
        self._clock = clock
        self._write = write
        self._close = close
        self._command_timeout = command_timeout
        self._idle_timeout = idle_timeout
        self._pending: Deferred[AgiResult | AgiError] | None = None
        self._pending_timer: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._restart_idle_timer()

    # -- the command API used by handlers -------------------------------------

    async def command(
        self, *words: str | int, timeout: float | None = None
    ) -> AgiResult:
        """Send one command and wait for its ``200`` reply.

        Args:
            words: the command and its arguments, quoted by
                :func:`~callnowd.ami.agi.encode_command` (ints bare).
            timeout: seconds to wait for the reply; default the factory's
                ``command_timeout``. On expiry the connection is closed,
                because a late reply would be taken for the next command's.

        Returns:
            The parsed ``200`` line.

        Raises:
            AgiInvalidCommand: 510.
            AgiDeadChannel: 511.
            AgiUsageError: 520.
            AgiHangup: the connection is gone or went away meanwhile.
            AgiTimeout: no reply in time.
            AgiCommandInFlight: another command is still waiting.
            AgiProtocolError: Asterisk sent something unparseable.
            AgiEncodingError: a word holds CR/LF/NUL or the line is too long.
        """
        if self.closed:
            raise AgiHangup("the FastAGI connection is closed")
        if self._pending is not None:
            raise AgiCommandInFlight("one AGI command at a time")
        line = encode_command(*words)
        pending: Deferred[AgiResult | AgiError] = Deferred()
        self._pending = pending
        self._cancel_idle_timer()
        self._pending_timer = self._clock.callLater(
            self._command_timeout if timeout is None else timeout,
            self._command_timed_out,
            str(words[0]),
        )
        self._write(line)
        reply = await pending
        if isinstance(reply, AgiError):
            raise _error_for(reply)
        return reply

    async def answer(self) -> None:
        """Answer the channel (``ANSWER``).

        Raises:
            AgiCommandFailed: Asterisk answered ``result=-1``.
        """
        self._check_ok("ANSWER", await self.command("ANSWER"))

    async def get_variable(self, name: str) -> str | None:
        """Read a channel variable or function, e.g. ``CALLERID(num)``.

        Returns:
            The value, or None when it is not set (``200 result=0``).
        """
        reply = await self.command("GET", "VARIABLE", name)
        if reply.result != "1":
            return None
        return reply.data if reply.data is not None else ""

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable or function (``SET VARIABLE``).

        Raises:
            AgiCommandFailed: Asterisk answered ``result=-1``.
        """
        self._check_ok(
            "SET VARIABLE", await self.command("SET", "VARIABLE", name, value)
        )

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait up to ``timeout_ms`` for one DTMF digit (-1 waits forever).

        Returns:
            The digit character (``"1"``, ``"#"``), or None on timeout.

        Raises:
            AgiCommandFailed: ``result=-1`` (channel failure or hang-up).
        """
        return self._digit(
            "WAIT FOR DIGIT", await self.command("WAIT", "FOR", "DIGIT", timeout_ms)
        )

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play a sound file; a digit in ``escape_digits`` interrupts it.

        Returns:
            The digit pressed, or None when playback ended without one.

        Raises:
            AgiCommandFailed: ``result=-1`` (file missing, or hang-up).
        """
        reply = await self.command("STREAM", "FILE", name, escape_digits)
        return self._digit("STREAM FILE", reply)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        """Say ``digits`` one by one; a digit in ``escape_digits`` interrupts.

        Returns:
            The digit pressed, or None.

        Raises:
            AgiCommandFailed: ``result=-1``.
        """
        reply = await self.command("SAY", "DIGITS", digits, escape_digits)
        return self._digit("SAY DIGITS", reply)

    async def exec(self, application: str, data: str) -> AgiResult:
        """Run a dialplan application, ``data`` sent as one quoted word.

        The application splits ``data`` on commas itself: never put unchecked
        user input in it. Its return value is the result (``-2`` = no such
        application, ``-1`` e.g. when a Dial's callee hung up).
        """
        return await self.command("EXEC", application, data)

    async def hangup(self) -> None:
        """Hang the channel up (``HANGUP``); the socket closes after the handler.

        Raises:
            AgiCommandFailed: ``result=-1``.
        """
        self._check_ok("HANGUP", await self.command("HANGUP"))

    async def verbose(self, message: str, level: int = 1) -> None:
        """Write ``message`` to the Asterisk console/log at verbosity ``level``."""
        await self.command("VERBOSE", message, level)

    # -- fed by the protocol ---------------------------------------------------

    def deliver(self, reply: AgiResult | AgiError) -> None:
        """Hand a reply to the command in flight (called by the protocol).

        Raises:
            AgiProtocolError: there is no command in flight.
        """
        pending = self._take_pending()
        if pending is None:
            raise AgiProtocolError(f"reply with no command in flight: {reply!r}")
        self._restart_idle_timer()
        pending.callback(reply)

    def notice_hangup(self) -> None:
        """Record Asterisk's ``HANGUP`` notice; the command in flight keeps waiting."""
        self.hung_up = True

    def connection_lost(self, error: Exception | None = None) -> None:
        """Mark the session closed and fail the command in flight.

        Args:
            error: what to fail it with; default :class:`AgiHangup`.
        """
        self.closed = True
        self._cancel_idle_timer()
        pending = self._take_pending()
        if pending is not None:
            pending.errback(error or AgiHangup("FastAGI connection lost"))

    # -- internals -------------------------------------------------------------

    def _take_pending(self) -> Deferred[AgiResult | AgiError] | None:
        pending, self._pending = self._pending, None
        if self._pending_timer is not None:
            if self._pending_timer.active():
                self._pending_timer.cancel()
            self._pending_timer = None
        return pending

    def _command_timed_out(self, command: str) -> None:
        self._pending_timer = None
        self.log.warn(
            "FastAGI {command} got no reply in time; closing",
            command=command,
            channel=self.env.get("agi_channel"),
        )
        self.connection_lost(AgiTimeout(f"no reply to {command}"))
        self._close()

    def _restart_idle_timer(self) -> None:
        self._cancel_idle_timer()
        if not self.closed:
            self._idle_timer = self._clock.callLater(self._idle_timeout, self._idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        self._idle_timer = None

    def _idle(self) -> None:
        self._idle_timer = None
        self.log.warn(
            "FastAGI session idle for {idle_timeout}s; closing",
            idle_timeout=self._idle_timeout,
            channel=self.env.get("agi_channel"),
        )
        self.connection_lost()
        self._close()

    @staticmethod
    def _check_ok(command: str, reply: AgiResult) -> None:
        if reply.result == "-1":
            raise AgiCommandFailed(200, f"{command} returned result=-1")

    @staticmethod
    def _digit(command: str, reply: AgiResult) -> str | None:
        code = reply.as_int()
        if code == -1:
            raise AgiCommandFailed(200, f"{command} returned result=-1")
        if code == 0:
            return None
        if not 0 < code < 0x110000:
            raise AgiProtocolError(f"{command} returned result={code}")
        return chr(code)
