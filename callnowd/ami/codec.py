"""Sans-IO codec for the Asterisk Manager Interface: message model, parser, encoder.

This module owns the AMI wire format and nothing else: no transport, no clock.
The parser turns bytes from Asterisk (or, on the server side of the simulator,
from a client) into :class:`Message` objects; the encoders turn header lists
into bytes and refuse anything that could inject extra headers or actions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from operator import itemgetter

import attrs

__all__ = [
    "HEADER_NAME",
    "MAX_ACTION_HEADERS",
    "MAX_ACTION_LINE",
    "SAFE_VARIABLE_VALUE",
    "VARIABLE_NAME",
    "AmiEncodingError",
    "AmiParser",
    "AmiProtocolError",
    "Message",
    "encode_action",
    "encode_message",
]


class AmiProtocolError(Exception):
    """Malformed or oversized input; the connection should be dropped."""


class AmiEncodingError(ValueError):
    """A message or action was refused by the encoder (it would be unsafe on the wire)."""


#: Header names we are willing to write.
HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
#: Channel variable names accepted in ``Variable: NAME=value``.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_()]*\Z")
#: Channel variable values accepted in ``Variable: NAME=value``.  Asterisk re-parses
#: these values (commas split, quotes and backslashes vanish), so only a small
#: alphabet is let through.
SAFE_VARIABLE_VALUE = re.compile(r"[A-Za-z0-9_.:+-]*\Z")
#: Asterisk reads at most 1024 bytes per line, line end included; we stay below.
MAX_ACTION_LINE = 1024
#: Asterisk's AST_MAX_MANHEADERS.
MAX_ACTION_HEADERS = 128

# One header line: name up to the first ':', value with leading blanks skipped.
_HEADER_LINE = re.compile(r"^([^:\n]*):[ \t]*(.*)$", re.MULTILINE)
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_NAME = itemgetter(0)
_SEPARATOR = itemgetter(1)
_NAME_VALUE = itemgetter(0, 2)


@attrs.frozen
class Message:
    """One AMI message: an action, a response or an event.

    Attributes:
        headers: the ``(name, value)`` pairs in wire order, original spelling,
            duplicates kept.
        unparsed: lines of the message that had no ``:`` (kept for logging).
    """

    headers: tuple[tuple[str, str], ...]
    unparsed: tuple[str, ...] = ()
    _index: dict[str, str] | None = attrs.field(
        default=None, init=False, eq=False, repr=False, hash=False
    )

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Message:
        """Build a message from ``(name, value)`` pairs.

        Args:
            *pairs: the headers in order.

        Returns:
            The message.
        """
        return cls(tuple(pairs))

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self.headers:
                index.setdefault(name.lower(), value)
            object.__setattr__(self, "_index", index)
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of header ``name`` (case-insensitive).

        Args:
            name: the header name.
            default: returned when the header is absent.

        Returns:
            The value, or ``default``.
        """
        return self._lookup().get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Return every value of header ``name`` (case-insensitive), in order.

        Args:
            name: the header name.

        Returns:
            The values; empty when the header is absent.
        """
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def __getitem__(self, name: str) -> str:
        value = self._lookup().get(name.lower())
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def _first(self, name: str) -> str | None:
        # Asterisk writes Event/Response first; check that before building the index.
        headers = self.headers
        if headers and headers[0][0] == name:
            return headers[0][1]
        return self._lookup().get(name.lower())

    @property
    def event(self) -> str | None:
        """The ``Event`` header, or None."""
        return self._first("Event")

    @property
    def response(self) -> str | None:
        """The ``Response`` header, or None."""
        return self._first("Response")

    @property
    def action(self) -> str | None:
        """The ``Action`` header, or None."""
        return self._first("Action")

    @property
    def action_id(self) -> str | None:
        """The ``ActionID`` header, or None."""
        return self._lookup().get("actionid")


class AmiParser:
    """Incremental AMI parser: feed it bytes, get complete messages back.

    Lines may end in ``\\r\\n`` or a bare ``\\n``; an empty line ends a message.
    Values have leading blanks stripped and trailing blanks kept. Bytes are
    decoded as UTF-8 with replacement characters, so no input can make it raise
    anything but :class:`AmiProtocolError`.

    Args:
        expect_banner: the first line is the ``Asterisk Call Manager/x`` banner
            (client side); it is stored in :attr:`banner`.
        max_line: longest accepted line, in bytes, line end excluded.
        max_headers: most lines accepted in one message.
        max_message: largest accepted message, in bytes.
        skip_events: called with the event name (bytes) of each message whose
            first line is ``Event:``; True drops the message before it is
            decoded or split into headers.
    """

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_line: int = 65536,
        max_headers: int = 2000,
        max_message: int = 1 << 20,
        skip_events: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.banner: str | None = None
        self._want_banner = expect_banner
        self._max_line = max_line
        self._max_headers = max_headers
        self._max_message = max_message
        # A block no longer than this cannot break the size caps; a pending
        # tail no longer than the second one cannot break any cap (every line
        # of a message takes at least two bytes).
        self._small = min(max_line, max_message)
        self._small_tail = min(max_line, max_message, 2 * max_headers)
        #: May be replaced between feeds (None: keep every event).
        self.skip_events = skip_events
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Consume ``data`` and return the messages it completed.

        Args:
            data: the next bytes from the connection, of any size.

        Returns:
            The complete messages, in order (possibly none).

        Raises:
            AmiProtocolError: a line, message or header count exceeded its cap.
        """
        buffer = self._buffer
        start = len(buffer) - 2 if len(buffer) > 2 else 0
        buffer += data
        if self._want_banner and not self._read_banner():
            return []
        end = buffer.rfind(b"\n\n", start)
        if end >= 0:
            end += 2
        other = buffer.rfind(b"\n\r\n", start)
        if other >= 0 and other + 3 > end:
            end = other + 3
        if end < 0:
            self._check_tail()
            return []
        block = bytes(buffer[:end])
        del buffer[:end]
        if len(buffer) > self._small_tail:
            self._check_tail()
        return self._parse_block(block)

    def _read_banner(self) -> bool:
        buffer = self._buffer
        newline = buffer.find(b"\n")
        if newline < 0:
            if len(buffer) > self._max_line:
                raise AmiProtocolError("banner line too long")
            return False
        line = bytes(buffer[:newline])
        del buffer[: newline + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self._max_line:
            raise AmiProtocolError("banner line too long")
        self.banner = line.decode("utf-8", "replace")
        self._want_banner = False
        return True

    def _check_tail(self) -> None:
        tail = self._buffer
        if len(tail) <= self._small_tail:
            return
        if len(tail) > self._max_message:
            raise AmiProtocolError(f"message larger than {self._max_message} bytes")
        if len(tail) - tail.rfind(b"\n") - 1 > self._max_line:
            raise AmiProtocolError(f"line longer than {self._max_line} bytes")
        if tail.count(b"\n") > self._max_headers:
            raise AmiProtocolError(f"more than {self._max_headers} lines in a message")

    def _check_sizes(self, block: bytes) -> None:
        for raw in block.split(b"\n\n"):
            if len(raw) > self._max_message:
                raise AmiProtocolError(f"message larger than {self._max_message} bytes")
            if len(raw) > self._max_line and max(map(len, raw.split(b"\n"))) > (
                self._max_line
            ):
                raise AmiProtocolError(f"line longer than {self._max_line} bytes")

    @staticmethod
    def _drop_skipped(block: bytes, skip: Callable[[bytes], bool]) -> bytes:
        # Works on the raw block, before any normalisation or decoding, so a
        # dropped event costs a split and a name lookup only.
        separator = b"\r\n\r\n"
        if b"\n\n" in block or not block.endswith(separator):
            block = block.replace(b"\r\n", b"\n")
            separator = b"\n\n"
        line_end = separator[: len(separator) // 2]
        kept = [
            raw
            for raw in block.split(separator)
            if raw[:6] != b"Event:" or not skip(raw.partition(line_end)[0][6:].strip())
        ]
        return separator.join(kept)

    def _parse_block(self, block: bytes) -> list[Message]:
        # Lines are split once for the whole block and every per-line step runs
        # in C (map, str methods); that is what keeps full parsing within a small
        # factor of plain line splitting.
        if self.skip_events is not None:
            block = self._drop_skipped(block, self.skip_events)
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
        if len(block) > self._small:
            self._check_sizes(block)
        text = block.decode("utf-8", "replace")
        lines = text.split("\n")
        parts = list(map(str.partition, lines, repeat(": ", len(lines))))
        # Splitting at ": " equals splitting at the first ":" and skipping
        # blanks when every non-empty line has ": ", no name holds a ":" and
        # no value starts with a blank (what Asterisk writes). Otherwise the
        # whole block takes the general path.
        exact = (
            ":  " not in text
            and ": \t" not in text
            and list(map(_SEPARATOR, parts)).count("") == lines.count("")
            and ":" not in "\n".join(map(_NAME, parts))
        )
        if not exact:
            parts = [
                (name, colon, value.lstrip(" \t"))
                for name, colon, value in map(str.partition, lines, repeat(":"))
            ]
        max_headers = self._max_headers
        messages: list[Message] = []
        append = messages.append
        index = lines.index
        start = 0
        while True:
            try:
                end = index("", start)
            except ValueError:
                break
            if end > start:
                if end - start > max_headers:
                    raise AmiProtocolError(
                        f"more than {max_headers} lines in a message"
                    )
                if exact:
                    append(Message(tuple(map(_NAME_VALUE, parts[start:end]))))
                else:
                    headers = tuple([(k, v) for k, c, v in parts[start:end] if c])
                    if len(headers) == end - start:
                        append(Message(headers))
                    else:
                        append(_with_unparsed(headers, lines[start:end]))
            start = end + 1
        return messages


def _with_unparsed(headers: tuple[tuple[str, str], ...], lines: list[str]) -> Message:
    """Build a message that has lines without ``:``; those are kept aside."""
    return Message(headers, tuple(line for line in lines if ":" not in line))


def _check_text(what: str, text: str) -> None:
    if _FORBIDDEN.search(text):
        raise AmiEncodingError(f"{what} contains CR, LF or NUL: {text!r}")


def _encode_lines(headers: Iterable[tuple[str, str]]) -> list[bytes]:
    lines: list[bytes] = []
    for name, value in headers:
        _check_text("header name", name)
        _check_text(f"value of {name}", value)
        if not HEADER_NAME.match(name):
            raise AmiEncodingError(f"invalid header name {name!r}")
        if value and (value[0].isspace() or ord(value[0]) < 33):
            raise AmiEncodingError(f"value of {name} starts with a blank: {value!r}")
        try:
            line = f"{name}: {value}\r\n".encode()
        except UnicodeEncodeError as e:
            raise AmiEncodingError(f"value of {name} is not encodable") from e
        lines.append(line)
    return lines


def encode_message(headers: Sequence[tuple[str, str]]) -> bytes:
    """Encode one message (action, response or event) as ``K: V\\r\\n``... ``\\r\\n``.

    Args:
        headers: the ``(name, value)`` pairs, in order; at least one.

    Returns:
        The wire bytes, ending with the empty line.

    Raises:
        AmiEncodingError: no headers, a CR/LF/NUL anywhere, a bad header name or a
            value starting with a blank.
    """
    if not headers:
        raise AmiEncodingError("a message needs at least one header")
    return b"".join(_encode_lines(headers)) + b"\r\n"


def _variable_value(name: str, value: str) -> str:
    _check_text("variable name", name)
    _check_text(f"variable {name}", value)
    if not VARIABLE_NAME.match(name):
        raise AmiEncodingError(f"invalid variable name {name!r}")
    if not SAFE_VARIABLE_VALUE.match(value):
        raise AmiEncodingError(f"unsafe characters in variable {name}: {value!r}")
    return f"{name}={value}"


def encode_action(
    action: str,
    action_id: str,
    headers: Sequence[tuple[str, str]] = (),
    variables: Sequence[tuple[str, str]] = (),
) -> bytes:
    """Encode one action as a single bytes blob.

    ``Action`` comes first, ``ActionID`` second, then ``headers``, then one
    ``Variable: NAME=value`` header per variable (Asterisk splits a ``Variable``
    value on commas, so several variables are never joined into one header).

    Args:
        action: the action name, e.g. ``Originate``.
        action_id: our correlation id.
        headers: further ``(name, value)`` pairs; ``Action``/``ActionID`` are
            refused here, a ``Variable`` header is checked like ``variables``.
        variables: channel variables ``(NAME, value)``; names must match
            :data:`VARIABLE_NAME`, values :data:`SAFE_VARIABLE_VALUE`.

    Returns:
        The wire bytes.

    Raises:
        AmiEncodingError: anything unsafe: CR/LF/NUL, a bad header or variable
            name, an unsafe variable value, a line of 1024 bytes or more, or more
            than 128 headers.
    """
    if not action:
        raise AmiEncodingError("empty action name")
    if not action_id:
        raise AmiEncodingError("empty ActionID")
    pairs: list[tuple[str, str]] = [("Action", action), ("ActionID", action_id)]
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("action", "actionid"):
            raise AmiEncodingError(f"{name} must not be passed as a header")
        if lowered == "variable":
            variable, equals, variable_value = value.partition("=")
            if not equals:
                raise AmiEncodingError(f"Variable header without '=': {value!r}")
            _variable_value(variable, variable_value)
        pairs.append((name, value))
    pairs.extend(
        ("Variable", _variable_value(name, value)) for name, value in variables
    )
    if len(pairs) > MAX_ACTION_HEADERS:
        raise AmiEncodingError(f"more than {MAX_ACTION_HEADERS} headers in an action")
    lines = _encode_lines(pairs)
    for line in lines:
        if len(line) >= MAX_ACTION_LINE:
            raise AmiEncodingError(
                f"line of {len(line)} bytes; Asterisk accepts less than "
                f"{MAX_ACTION_LINE}: {line[:40]!r}..."
            )
    return b"".join(lines) + b"\r\n"
