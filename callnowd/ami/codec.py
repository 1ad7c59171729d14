"""Sans-IO codec for the Asterisk Manager Interface: the front of the wire format.

This module owns the encoders, which turn header lists into bytes and refuse
anything that could inject extra headers or actions, and re-exports the message
model (:mod:`callnowd.ami.ami_message`) and the parser
(:mod:`callnowd.ami.ami_parser`), so callers import the whole codec from here.
No transport, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from callnowd.ami.ami_message import (
    FORBIDDEN_CHARS,
    HEADER_NAME,
    MAX_ACTION_HEADERS,
    MAX_ACTION_LINE,
    SAFE_VARIABLE_VALUE,
    VARIABLE_NAME,
    AmiEncodingError,
    AmiProtocolError,
    Message,
    WantedEvents,
)
from callnowd.ami.ami_parser import AmiParser

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
    "WantedEvents",
    "encode_action",
    "encode_message",
]


# Every header name valid (HEADER_NAME), for names joined with ":" (once none holds
# one) and a final ":" added; and the first character of a value that must not
# start one (a blank, as str.isspace tells, or anything below "!").
_ALL_NAMES = re.compile(r"(?:[A-Za-z][A-Za-z0-9_-]*:)+")
_BAD_FIRST = re.compile(r"[\s\x00-\x20]")


def _encode_block(headers: Sequence[tuple[str, str]]) -> bytes:
    """The header lines of ``headers``, as :func:`_encode_lines` gives them, joined.

    Every check of :func:`_encode_lines` is made once over all the headers (a few
    C-level passes instead of several calls per header); when one fails, the
    headers are encoded again one by one, which raises with the header named.
    """
    names = [name for name, _ in headers]
    values = [value for _, value in headers]
    all_names = ":".join(names)
    if (
        all_names.count(":") == len(names) - 1  # so the join splits back exactly
        and _ALL_NAMES.fullmatch(all_names + ":") is not None
        and FORBIDDEN_CHARS.search("".join(values)) is None
        and _BAD_FIRST.search("".join([value[:1] for value in values])) is None
    ):
        text = "".join([f"{name}: {value}\r\n" for name, value in headers])
        try:
            return text.encode()
        except UnicodeEncodeError:
            pass
    return b"".join(_encode_lines(headers))


def _check_text(what: str, text: str) -> None:
    if FORBIDDEN_CHARS.search(text):
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
    return _encode_block(headers) + b"\r\n"


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
    block = _encode_block(pairs)
    if len(block) >= MAX_ACTION_LINE:  # else no line of it can be that long
        for line in block.splitlines(keepends=True):
            if len(line) >= MAX_ACTION_LINE:
                raise AmiEncodingError(
                    f"line of {len(line)} bytes; Asterisk accepts less than "
                    f"{MAX_ACTION_LINE}: {line[:40]!r}..."
                )
    return block + b"\r\n"
