r"""FastAGI wire format, sans-IO: status/environment parsing and command quoting.

Owns the value types, the server side's reader (:class:`AgiServerParser`: the
``agi_*`` environment block and the status lines), and the command encoder
:func:`encode_command` with its inverse :func:`split_command`. The Asterisk side
of the wire is in :mod:`callnowd.ami.agi_client`; :mod:`callnowd.ami.agi` is the
public facade over both.

Quoting follows Asterisk's ``res_agi.c`` ``parse_args`` tokenizer, reproduced by
:func:`split_command`: space/tab separate words, ``"`` toggles quoting, ``\\``
makes the next character literal, single quotes are not special, and there is no
escape for a newline. So any word containing CR, LF or NUL is refused: it would
end the command and start a new one.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

import attrs

#: The out-of-band line Asterisk writes when the channel hangs up.
HANGUP_LINE = b"HANGUP\n"
#: Longest command line we send, newline included (Asterisk reads up to 8191).
MAX_COMMAND_LINE = 4096
#: Most words in one command (Asterisk's ``MAX_ARGS`` is 128 including a NULL).
MAX_COMMAND_WORDS = 127

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # never lose or invent bytes, never crash on decode
_FORBIDDEN = re.compile("[\r\n\0]")
# The words of res_agi.c's command names; a leading run of them is written bare.
_KEYWORDS = re.compile(
    "ACTIVATE|ALPHA|ANSWER|ASYNCAGI|AUTOHANGUP|BREAK|CALLERID|CHANNEL|CHAR"
    "|CONTEXT|CONTROL|CREATE|DATA|DATABASE|DATE|DATETIME|DEACTIVATE|DEL"
    "|DELTREE|DESTROY|DIGIT|DIGITS|EXEC|EXTENSION|FILE|FOR|FULL|GET|GOSUB"
    "|GRAMMAR|HANGUP|IMAGE|LANGUAGE|LOAD|MODE|MUSIC|NOOP|NUMBER|OPTION"
    "|PHONETIC|PRIORITY|PUT|RECEIVE|RECOGNIZE|RECORD|SAY|SEND|SET|SPEECH"
    "|STATUS|STREAM|TDD|TEXT|TIME|UNLOAD|VARIABLE|VERBOSE|WAIT"
)
_EXTRA_KEY = re.compile(r" [A-Za-z_][A-Za-z0-9_]*=")
_USAGE_START = "520-"
USAGE_END = "520 End of proper usage."


class AgiProtocolError(Exception):
    """Malformed or oversized input; the connection should be dropped."""


class AgiEncodingError(ValueError):
    """Refused on encode: CR/LF/NUL in a word, bad name, or a line too long."""


@attrs.frozen
class AgiEnvironment:
    """The ``agi_*`` block Asterisk sends first, in order, values verbatim."""

    variables: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of ``name`` (exact spelling), or ``default``."""
        for key, value in self.variables:
            if key == name:
                return value
        return default

    @property
    def _request_path(self) -> str:
        """``agi_network_script``, or the path of ``agi_request`` if it is absent."""
        script = self.get("agi_network_script")
        if script is not None:
            return script
        request = self.get("agi_request") or ""
        _, sep, rest = request.partition("://")
        if not sep:
            return ""
        _, slash, path = rest.partition("/")
        return path if slash else ""

    @property
    def script(self) -> str:
        """The script path the route is chosen by (before any ``?``)."""
        return self._request_path.partition("?")[0]

    @property
    def query(self) -> dict[str, list[str]]:
        """The query part of the script, parsed; attacker-controlled."""
        return parse_qs(self._request_path.partition("?")[2], keep_blank_values=True)

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1``, ``agi_arg_2``, ... up to the first missing number."""
        found: list[str] = []
        while (value := self.get(f"agi_arg_{len(found) + 1}")) is not None:
            found.append(value)
        return tuple(found)


@attrs.frozen
class AgiResult:
    """A ``200`` status line, e.g. ``200 result=1 (abc123)``.

    Attributes:
        code: always 200.
        result: the text after ``result=`` (may be empty or negative).
        data: the parenthesised part without the parentheses, or None.
        extra: the ``key=value`` pairs after it (``endpos``, ``digit``...).
    """

    code: int
    result: str
    data: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def as_int(self) -> int:
        """Return ``result`` as an integer.

        Raises:
            AgiProtocolError: when it is not one (e.g. empty).
        """
        try:
            return int(self.result)
        except ValueError:
            raise AgiProtocolError(f"result is not a number: {self.result!r}") from None


@attrs.frozen
class AgiError:
    r"""A 510, 511 or 520 status.

    For 510/511 ``text`` is the text after the code. For 520 it is the usage
    text of the multi-line block, lines joined by ``"\\n"``; a single-line 520
    ("Proper usage not available") gives an empty ``text``.
    """

    code: int
    text: str


@attrs.frozen
class AgiHangupNotice:
    """The unsolicited ``HANGUP`` line: the channel hung up. Not a response."""


AgiServerEvent = AgiEnvironment | AgiResult | AgiError | AgiHangupNotice


def decode_line(line: bytes) -> str:
    """Decode one wire line losslessly (invalid UTF-8 kept as surrogates)."""
    return line.decode(_ENCODING, _ERRORS)


def encode_text(text: str) -> bytes:
    """Encode text for the wire; the inverse of :func:`decode_line`.

    Raises:
        AgiEncodingError: the text holds a lone surrogate.
    """
    try:
        return text.encode(_ENCODING, _ERRORS)
    except UnicodeEncodeError as e:
        raise AgiEncodingError(f"not encodable: {e}") from None


def check_text(what: str, text: str) -> None:
    """Refuse ``text`` if it holds CR, LF or NUL.

    Raises:
        AgiEncodingError: it does; ``what`` names the field.
    """
    if _FORBIDDEN.search(text):
        raise AgiEncodingError(f"{what} contains CR, LF or NUL: {text!r}")


def parse_result_line(line: str) -> AgiResult:
    """Parse one ``200 result=...`` line (without its newline).

    The data part may itself contain spaces and parentheses: it runs to the
    last ``)`` followed by the end of the line or by `` key=``.

    Raises:
        AgiProtocolError: on anything that is not such a line.
    """
    if not line.startswith("200 result="):
        raise AgiProtocolError(f"not a result line: {line[:80]!r}")
    rest = line[len("200 result=") :]
    result, _, rest = rest.partition(" ")
    data: str | None = None
    if rest.startswith("("):
        ends = [
            i
            for i, char in enumerate(rest)
            if char == ")" and (i + 1 == len(rest) or _EXTRA_KEY.match(rest, i + 1))
        ]
        if not ends:
            raise AgiProtocolError(f"unterminated data in {line[:80]!r}")
        data, rest = rest[1 : ends[-1]], rest[ends[-1] + 2 :]
    extra: list[tuple[str, str]] = []
    for token in rest.split(" ") if rest else ():
        key, eq, value = token.partition("=")
        if eq and key:
            extra.append((key, value))
        elif extra:  # a value with a space (speech results); keep it whole
            extra[-1] = (extra[-1][0], f"{extra[-1][1]} {token}")
        else:
            raise AgiProtocolError(f"unexpected text in {line[:80]!r}")
    return AgiResult(200, result, data, tuple(extra))


class AgiServerParser:
    """Reads what Asterisk sends: the environment block, then status lines.

    Lines end in LF; a stray CR before it is dropped. ``100 ...`` lines and
    blank lines after the environment are ignored. After an
    :class:`AgiProtocolError` the parser stays broken (every ``feed`` raises).
    """

    def __init__(
        self,
        *,
        max_line: int = 16384,
        max_env_lines: int = 256,
        max_usage_lines: int = 1000,
    ) -> None:
        self._max_line = max_line
        self._max_env_lines = max_env_lines
        self._max_usage_lines = max_usage_lines
        self._buffer = b""
        self._env: list[tuple[str, str]] | None = []  # None once the block is done
        self._usage: list[str] | None = None  # inside a 520 block
        self._broken: AgiProtocolError | None = None

    @property
    def in_environment(self) -> bool:
        """True until the environment block has been read completely."""
        return self._env is not None

    def feed(self, data: bytes) -> list[AgiServerEvent]:
        """Consume bytes; return the complete items they finished, in order.

        Raises:
            AgiProtocolError: malformed input or a cap exceeded.
        """
        if self._broken is not None:
            raise self._broken
        out: list[AgiServerEvent] = []
        self._buffer += data
        try:
            while (end := self._buffer.find(b"\n")) >= 0:
                raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                if len(raw) > self._max_line:
                    raise AgiProtocolError(f"line longer than {self._max_line} bytes")
                line = decode_line(raw.removesuffix(b"\r"))
                item = self._line(line)
                if item is not None:
                    out.append(item)
            if len(self._buffer) > self._max_line:
                raise AgiProtocolError(f"line longer than {self._max_line} bytes")
        except AgiProtocolError as e:
            self._broken = e
            raise
        return out

    def _line(self, line: str) -> AgiServerEvent | None:
        if self._env is not None:
            return self._env_line(self._env, line)
        if self._usage is not None:
            return self._usage_line(self._usage, line)
        if line == "HANGUP":
            return AgiHangupNotice()
        if line == "" or line.startswith("100 "):
            return None
        if line.startswith("200 "):
            return parse_result_line(line)
        if line.startswith(("510 ", "511 ")):
            return AgiError(int(line[:3]), line[4:])
        if line.startswith(_USAGE_START):
            self._usage = []
            return None
        if line.startswith("520 ") or line == "520":
            return AgiError(520, "")
        raise AgiProtocolError(f"unexpected line: {line[:80]!r}")

    def _env_line(self, env: list[tuple[str, str]], line: str) -> AgiEnvironment | None:
        if not env and line != "agi_network: yes":
            raise AgiProtocolError(f"not a FastAGI request: {line[:80]!r}")
        if line == "":
            self._env = None
            return AgiEnvironment(tuple(env))
        if len(env) >= self._max_env_lines:
            raise AgiProtocolError(f"more than {self._max_env_lines} environment lines")
        key, colon, value = line.partition(":")
        if not colon or not key:
            raise AgiProtocolError(f"bad environment line: {line[:80]!r}")
        env.append((key, value.removeprefix(" ")))
        return None

    def _usage_line(self, usage: list[str], line: str) -> AgiError | None:
        if line.startswith("520 ") or USAGE_END in line:
            if not line.startswith("520 "):
                # Asterisk < 13.17 glued the end marker to the last usage line.
                before = line[: line.index(USAGE_END)]
                if before:
                    usage.append(before)
            self._usage = None
            return AgiError(520, "\n".join(usage))
        if len(usage) >= self._max_usage_lines:
            raise AgiProtocolError(
                f"520 usage longer than {self._max_usage_lines} lines"
            )
        usage.append(line)
        return None


def _quote(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_command(*words: str | int) -> bytes:
    r"""Encode one AGI command line, e.g. ``GET VARIABLE "CALLNOW_REQUEST"\\n``.

    The leading run of command-name keywords (``GET``, ``VARIABLE``...) and
    integers are written bare; every other string (all arguments) is quoted:
    ``"`` + the word with ``\\`` → ``\\\\`` and ``"`` → ``\\"`` + ``"``. Both
    forms tokenize to exactly the given word in Asterisk, so ``split_command``
    inverts this for every accepted input.

    Raises:
        AgiEncodingError: no words, too many words, a word containing CR, LF
            or NUL (it would start another command), a non-str/int word, or a
            line longer than :data:`MAX_COMMAND_LINE` bytes.
    """
    if not words:
        raise AgiEncodingError("empty command")
    if len(words) > MAX_COMMAND_WORDS:
        raise AgiEncodingError(f"more than {MAX_COMMAND_WORDS} words")
    parts: list[str] = []
    in_name = True
    for word in words:
        if isinstance(word, bool) or not isinstance(word, int | str):
            raise AgiEncodingError(f"a word must be str or int: {word!r}")
        if isinstance(word, int):
            parts.append(str(word))
            continue
        check_text("command word", word)
        in_name = in_name and _KEYWORDS.fullmatch(word) is not None
        parts.append(word if in_name else _quote(word))
    line = encode_text(" ".join(parts) + "\n")
    if len(line) > MAX_COMMAND_LINE:
        raise AgiEncodingError(f"command line longer than {MAX_COMMAND_LINE} bytes")
    return line


def split_command(line: str) -> list[str]:
    """Tokenize a command line exactly as Asterisk's ``parse_args`` does.

    Args:
        line: one command without its trailing LF (a CR stays part of the text).

    Returns:
        The words; at most 127 are started by plain characters, as in Asterisk.
    """
    words: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and current is None:
                current = []
                words.append("")
            continue
        if char in " \t" and not quoted and not escaped:
            if current is not None:
                words[-1] = "".join(current)
            current = None
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        if current is None:
            if len(words) >= MAX_COMMAND_WORDS:
                continue  # Asterisk: "Too many arguments, truncating"
            current = []
            words.append("")
        current.append(char)
    if current is not None:
        words[-1] = "".join(current)
    return words
