"""The incremental AMI parser: bytes from the wire to :class:`Message` objects.

Fast paths for whole reads and for dropping unwanted events on the raw bytes, with
a line-by-line path that gives identical results for any unusual input.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from callnowd.ami.ami_message import (
    AmiProtocolError,
    Message,
    WantedEvents,
    _message,
    _set_names,
    _set_values,
)

# Markers that stand in for line and message breaks in the fast path: after
# ``\r\n\r\n`` -> _MESSAGE_BREAK and ``\r\n`` -> _LINE_BREAK, one split of a
# whole block at ": " gives name, value, mark, name, value, mark, ... exactly
# when every line holds exactly one ": " (see AmiParser._parse_fast).
_LINE_MARK = "\x00"
_MESSAGE_MARK = "\x01"
_LINE_BREAK = ": \x00: "
_MESSAGE_BREAK = ": \x01: "
_CRLF2 = "\r\n\r\n"
# One whole CRLF line split at its first ": " (a name holds no ":"), for the
# fast path of messages whose values hold ": " too (see AmiParser._parse_lines).
_HEADER_LINE = re.compile(r"^([^:\r\n]*): ([^\r\n]*)\r\n", re.MULTILINE)

# Messages are built by setting the slots directly: a Python __init__ costs
# about as much as parsing a short event (the other attributes default).
_NEW = object.__new__


def _message_end(buffer: bytes | bytearray, start: int) -> int:
    """Index just past the last empty line of ``buffer`` at or after ``start``; -1 if none."""
    end = buffer.rfind(b"\n\r\n", start)
    if end >= 0:
        end += 3
        other = buffer.rfind(b"\n\n", end - 1)
    else:
        other = buffer.rfind(b"\n\n", start)
    if other >= 0 and other + 2 > end:
        end = other + 2
    return end


def _messages(
    names: tuple[str, ...], values: tuple[str, ...], sizes: list[int]
) -> list[Message]:
    """Messages of ``sizes`` headers each, in order, from all the names and values."""
    messages: list[Message] = []
    append = messages.append
    start = 0
    for size in sizes:
        end = start + size
        message = _NEW(Message)
        _set_names(message, names[start:end])
        _set_values(message, values[start:end])
        append(message)
        start = end
    return messages


class AmiParser:
    """Incremental AMI parser: feed it bytes, get complete messages back.

    Lines may end in ``\\r\\n`` or a bare ``\\n`` (one trailing ``\\r`` is
    stripped); an empty line ends a message and empty lines between messages
    are ignored. A header is split at the first ``:``; its value has leading
    blanks stripped and trailing blanks kept; lines without ``:`` are kept in
    :attr:`Message.unparsed`. Bytes are decoded as UTF-8 with replacement
    characters, so no input can make it raise anything but
    :class:`AmiProtocolError`.

    Whole reads are handled at once: Asterisk's own CRLF output takes a fast
    path built from a few C-level string operations per read (values holding
    ``": "`` included); anything else (bare LF, stray blank lines, a value
    starting with a blank...) takes a slower line-by-line path that gives the
    same messages.

    Args:
        expect_banner: the first line is the ``Asterisk Call Manager/x`` banner
            (client side); it is stored in :attr:`banner`.
        max_line: longest accepted line, in bytes, line end excluded.
        max_headers: most lines accepted in one message.
        max_message: largest accepted message, in bytes (line ends included).
        skip_events: called with the event name (bytes, blanks stripped) of each
            message whose first line starts with ``Event:``; True drops the
            message before it is decoded or split into headers. The caps still
            apply to dropped messages. A :class:`WantedEvents` is not called per
            event: its patterns find the kept messages of a whole read at once.
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
        self._too_many_marks = _LINE_MARK * max_headers
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
        if self._want_banner:
            buffer += data
            if not self._read_banner():
                return []
            data = bytes(buffer)
            buffer.clear()
        end = _message_end(data, 0)
        if end >= 0:
            # One copy: the pending bytes and the new ones up to the last end.
            if buffer:
                block = b"".join((buffer, memoryview(data)[:end]))
                buffer.clear()
            else:
                block = data[:end] if end < len(data) else data
            buffer += memoryview(data)[end:]
        else:
            # An end-of-message sequence may start in the last two old bytes.
            start = len(buffer) - 2 if len(buffer) > 2 else 0
            buffer += data
            end = _message_end(buffer, start)
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

    # -- caps ------------------------------------------------------------------

    def _check_tail(self) -> None:
        tail = self._buffer
        if len(tail) <= self._small_tail:
            return
        if len(tail) > self._max_message:
            raise AmiProtocolError(f"message larger than {self._max_message} bytes")
        partial = len(tail) - tail.rfind(b"\n") - 1
        if tail.endswith(b"\r"):
            partial -= 1  # maybe the CR of a CRLF
        if partial > self._max_line:
            raise AmiProtocolError(f"line longer than {self._max_line} bytes")
        if tail.count(b"\n") > self._max_headers:
            raise AmiProtocolError(f"more than {self._max_headers} lines in a message")

    def _check_block(self, block: bytes) -> None:
        """Line and message size caps of a block of whole messages."""
        max_line = self._max_line
        size = len(block)
        if size > max_line:
            # A line longer than max_line holds a whole window of max_line // 2
            # bytes without LF, so only such windows need a closer look.
            step = max(max_line // 2, 1)
            find = block.find
            pos = 0
            while pos + step <= size:
                if find(b"\n", pos, pos + step) >= 0:
                    pos += step
                    continue
                first = block.rfind(b"\n", 0, pos) + 1
                last = find(b"\n", pos)
                length = last - first - (block[last - 1] == 13 and last > first)
                if length > max_line:
                    raise AmiProtocolError(f"line longer than {max_line} bytes")
                pos = last + 1
        if size > self._max_message:
            length = 0
            for raw in block.split(b"\n"):
                if raw in (b"", b"\r"):
                    length = 0
                    continue
                length += len(raw) + 1
                if length > self._max_message:
                    raise AmiProtocolError(
                        f"message larger than {self._max_message} bytes"
                    )

    def _too_many_lines(self) -> AmiProtocolError:
        return AmiProtocolError(f"more than {self._max_headers} lines in a message")

    # -- parsing ---------------------------------------------------------------

    def _parse_block(self, block: bytes) -> list[Message]:
        if len(block) > self._small:
            self._check_block(block)
        skip = self.skip_events
        if skip is None:
            return self._parse_text(block)
        if type(skip) is WantedEvents:
            return self._parse_wanted(block, skip)
        return self._parse_general(block, skip)

    def _parse_text(self, block: bytes) -> list[Message]:
        text = block.decode("utf-8", "replace")
        messages = self._parse_fast(text)
        if messages is not None:
            return messages
        # One odd message must not slow down its neighbours: every "\r\n\r\n"
        # ends a message, so each piece between them is tried on its own.
        messages = []
        for piece in text.split(_CRLF2):
            if piece:
                piece += _CRLF2
                parsed = self._parse_fast(piece)
                if parsed is None:
                    parsed = self._parse_general(piece.encode(), None)
                messages += parsed
        return messages

    def _parse_wanted(self, block: bytes, wanted: WantedEvents) -> list[Message]:
        """Parse the messages of ``block`` that ``wanted`` keeps; drop the others.

        The regular expressions of :meth:`WantedEvents.patterns` find where the
        kept messages start, so a dropped one is never sliced, decoded or even
        looked at from Python. A read with an LF-only empty line takes the
        general path; from a stray empty line on, so does the rest of the read.
        """
        self._check_line_counts(block)
        first, later = wanted.patterns()
        starts = [match.end() for match in later.finditer(block)]
        if first.match(block):
            starts.insert(0, 0)
        size = len(block)
        find = block.find
        pieces: list[bytes] = []
        rest: list[Message] = []
        for start in starts:
            if start and block[start - 2] == 10:  # "\n\n"
                return self._parse_general(block, wanted)
            if start == size:
                break
            if block[start] in (10, 13):
                rest = self._parse_general(block[start:], wanted)
                break
            pieces.append(block[start : find(b"\n\r\n", start) + 3])
        if not pieces:
            return rest
        messages = self._parse_text(b"".join(pieces))
        if rest:
            messages += rest
        return messages

    def _check_line_counts(self, block: bytes) -> None:
        """Raise if a message ending in ``\n\r\n`` in ``block`` has too many lines.

        Such a message spans at least ``2 * max_headers`` bytes, each line
        taking two, so it holds a whole window of ``max_headers`` bytes without
        a message end; only messages under such windows are counted. (A message
        ending otherwise is left to the general path, which counts every line.)
        """
        max_headers = self._max_headers
        size = len(block)
        find = block.find
        pos = 0
        while pos + max_headers <= size:
            if find(b"\n\r\n", pos, pos + max_headers) >= 0:
                pos += max_headers
                continue
            start = block.rfind(b"\n\r\n", 0, pos)
            start = 0 if start < 0 else start + 3
            end = find(b"\n\r\n", pos)
            if end < 0:
                return
            if block.count(b"\n", start, end) >= max_headers:
                raise self._too_many_lines()
            pos = end + 3

    def _parse_fast(self, text: str) -> list[Message] | None:
        """Parse whole messages in Asterisk's own layout; None if ``text`` is unusual.

        ``text`` must be complete messages. The fast paths need CRLF line ends
        only and, in every line, a ``": "`` after a name without ``:`` and before
        a value that does not start with a blank. When every line holds exactly
        one ``": "``, the split of the whole text at ``": "``, after the breaks
        are replaced by marks, is name, value, mark, ...; the marks landing
        exactly on every third item proves it: with n lines there are n - 1
        marks, and a line with no ``": "`` (an empty one too: a stray blank line)
        puts every later mark off by at least one, unless a line with two makes
        up for it before, which puts an earlier mark off. When the marks are off
        (a value such as ``CallNow: Mary``, which every event of an owner's
        channel carries), :meth:`_parse_lines` splits each line at its first
        ``": "`` instead.
        """
        # A value starting with a blank would need stripping. rfind looks for
        # the rare ":" where find would stop at every frequent blank, and a
        # tab is first looked for alone (memchr), as it is seldom there at all.
        if (
            not text.endswith(_CRLF2)
            or text.rfind(":  ") >= 0
            or ("\t" in text and ": \t" in text)
        ):
            return None
        if _LINE_MARK in text or _MESSAGE_MARK in text:
            return self._parse_lines(text)
        # split + join does one pass over the text; replace does two. The
        # text ends in a message break, so the split ends in "" after a mark.
        joined = _MESSAGE_BREAK.join(text.split(_CRLF2))
        joined = joined.replace("\r\n", _LINE_BREAK)
        if "\n" in joined:
            return None
        # ": " cannot overlap itself, so rsplit cuts at the same places as
        # split; it looks for the rare ":" where split looks for the frequent
        # blank at every step.
        flat = joined.rsplit(": ")
        if flat.pop() or len(flat) % 3:
            return self._parse_lines(text)
        # Each mark is an item of its own (": " on both sides, none in the
        # text), so all third items are marks when their join is that many
        # mark characters.
        lines = len(flat) // 3
        marks = "".join(flat[2::3])
        if (
            len(marks) != lines
            or marks.count(_LINE_MARK) + marks.count(_MESSAGE_MARK) != lines
        ):
            return self._parse_lines(text)
        name_list = flat[0::3]
        if ":" in "".join(name_list):
            return None
        # A message of n lines is n - 1 line marks and a message mark.
        if self._too_many_marks in marks:
            raise self._too_many_lines()
        runs = marks.split(_MESSAGE_MARK)
        runs.pop()
        return _messages(
            tuple(name_list), tuple(flat[1::3]), [len(run) + 1 for run in runs]
        )

    def _parse_lines(self, text: str) -> list[Message] | None:
        """The fast path for values holding ``": "``; None if ``text`` is unusual.

        ``text`` ends in a message break and holds no value starting with a
        blank (:meth:`_parse_fast` checked). One regular expression splits every
        CRLF line at its first ``": "``; each match is one whole line, from its
        start (``^``) to its CRLF, so the matches are exactly the lines when
        there are as many as lines: a bare LF, a stray CR or blank line, or a
        line without ``": "`` after a ``:``-free name leaves one unmatched.
        """
        if text.count("\n") != text.count("\r\n"):
            return None
        found = _HEADER_LINE.findall(text)
        pieces = text.split(_CRLF2)
        pieces.pop()  # the text ends in a message break
        sizes = [piece.count("\r\n") + 1 for piece in pieces]
        if len(found) != sum(sizes):
            return None
        if max(sizes) > self._max_headers:
            raise self._too_many_lines()
        names, values = zip(*found, strict=True)
        return _messages(names, values, sizes)

    def _parse_general(
        self, block: bytes, skip: Callable[[bytes], bool] | None
    ) -> list[Message]:
        """Line-by-line parse of whole messages in any layout."""
        messages: list[Message] = []
        lines: list[bytes] = []
        for raw in block.split(b"\n"):
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if line:
                lines.append(line)
            elif lines:
                message = self._build(lines, skip)
                if message is not None:
                    messages.append(message)
                lines = []
        return messages

    def _build(
        self, lines: list[bytes], skip: Callable[[bytes], bool] | None
    ) -> Message | None:
        if len(lines) > self._max_headers:
            raise self._too_many_lines()
        first = lines[0]
        if skip is not None and first.startswith(b"Event:") and skip(first[6:].strip()):
            return None
        names: list[str] = []
        values: list[str] = []
        unparsed: list[str] = []
        for line in lines:
            text = line.decode("utf-8", "replace")
            name, colon, value = text.partition(":")
            if colon:
                names.append(name)
                values.append(value.lstrip(" \t"))
            else:
                unparsed.append(text)
        return _message(tuple(names), tuple(values), tuple(unparsed))
