r"""FastAGI wire format, the Asterisk side: what the simulator writes and reads.

Owns :func:`encode_environment` and :func:`encode_result` (Asterisk's output) and
:class:`AgiClientParser` (how Asterisk reads the server's commands).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from callnowd.ami.agi_codec import (
    USAGE_END,
    AgiEncodingError,
    AgiError,
    AgiResult,
    check_text,
    decode_line,
    encode_text,
    split_command,
)

_USAGE_HEAD = "520-Invalid command syntax.  Proper usage follows:"
_NO_USAGE = "520 Invalid command syntax.  Proper usage not available."
_ASTERISK_CUT = 8191  # res_agi.c AGI_BUF_LEN - 1


def encode_environment(env: Sequence[tuple[str, str]]) -> bytes:
    r"""Encode an environment block: ``name: value\\n`` per pair, then ``\\n``.

    Raises:
        AgiEncodingError: an empty name, a name with ``:``, or CR/LF/NUL.
    """
    lines: list[str] = []
    for name, value in env:
        if not name or ":" in name:
            raise AgiEncodingError(f"bad environment name: {name!r}")
        check_text("environment name", name)
        check_text("environment value", value)
        lines.append(f"{name}: {value}\n")
    return encode_text("".join(lines) + "\n")


def encode_result(result: AgiResult | AgiError) -> bytes:
    """Encode one status: a ``200`` line, a 510/511 line, or a 520 block.

    A 520 with empty ``text`` is the single-line "usage not available" form;
    otherwise the multi-line block with ``text`` as the usage lines.

    Raises:
        AgiEncodingError: CR/LF/NUL where one line is expected, a space in
            ``result``, a bad extra key/value, or usage lines that would end
            the block early.
    """
    if isinstance(result, AgiError):
        if result.code == 520:
            if not result.text:
                return encode_text(_NO_USAGE + "\n")
            check_text("usage", result.text.replace("\n", " "))
            for usage_line in result.text.split("\n"):
                if usage_line.startswith("520 ") or USAGE_END in usage_line:
                    raise AgiEncodingError(f"usage line ends the block: {usage_line!r}")
            return encode_text(f"{_USAGE_HEAD}\n{result.text}\n{USAGE_END}\n")
        if result.code not in (510, 511):
            raise AgiEncodingError(f"unsupported error code {result.code}")
        check_text("error text", result.text)
        return encode_text(f"{result.code} {result.text}\n")
    if result.code != 200:
        raise AgiEncodingError(f"unsupported result code {result.code}")
    check_text("result", result.result)
    if " " in result.result:
        raise AgiEncodingError(f"space in result: {result.result!r}")
    line = f"200 result={result.result}"
    if result.data is not None:
        check_text("data", result.data)
        line += f" ({result.data})"
    for key, value in result.extra:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise AgiEncodingError(f"bad extra key: {key!r}")
        check_text("extra value", value)
        if " " in value or ")" in value:
            raise AgiEncodingError(f"ambiguous extra value: {value!r}")
        line += f" {key}={value}"
    return encode_text(line + "\n")


class AgiClientParser:
    r"""Reads what the FastAGI server sends, the way Asterisk does.

    Only the LF is removed: a CR stays part of the last word (so ``ANSWER\\r``
    is an unknown command, as in Asterisk). A line longer than 8191 bytes is
    cut there and the rest read as the next command, as Asterisk's read loop
    does. An empty line gives an empty word list.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[list[str]]:
        """Consume bytes; return one tokenized command per complete line."""
        self._buffer += data
        out: list[list[str]] = []
        while True:
            end = self._buffer.find(b"\n", 0, _ASTERISK_CUT + 1)
            if end >= 0:
                raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            elif len(self._buffer) >= _ASTERISK_CUT:
                raw = self._buffer[:_ASTERISK_CUT]
                self._buffer = self._buffer[_ASTERISK_CUT:]
            else:
                return out
            out.append(split_command(decode_line(raw)))
