"""The AMI message model and its errors: ordered, case-insensitive, duplicates kept.

Shared by the parser (:mod:`callnowd.ami.ami_parser`) and the encoders
(:mod:`callnowd.ami.codec`, which also re-exports everything here), with
:class:`WantedEvents`, the set of event names the parser keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


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

FORBIDDEN_CHARS = re.compile(r"[\r\n\x00]")


class Message:
    """One AMI message: an action, a response or an event.

    A value: equal, hashable and immutable (assigning an attribute raises).
    Header names are matched case-insensitively; duplicates are kept in order.

    Args:
        headers: the ``(name, value)`` pairs in wire order.
        unparsed: lines of the message that had no ``:``.

    Attributes:
        names: the header names in wire order, original spelling, duplicates kept.
        values: the header values, in the same order as :attr:`names`.
        unparsed: lines of the message that had no ``:`` (kept for logging).
    """

    # Names and values are two tuples, as the parser cuts them out of a read:
    # a message costs two slices, not a tuple per header. The pairs
    # (:attr:`headers`) and the lookup index are built when asked for. The
    # rarely needed unparsed lines and the index live in the instance dict,
    # made only when one is set, and default to the class attributes.
    __slots__ = ("__dict__", "names", "values")

    names: tuple[str, ...]
    values: tuple[str, ...]
    unparsed: tuple[str, ...] = ()
    _index: dict[str, str] | None = None

    def __init__(
        self,
        headers: Iterable[tuple[str, str]] = (),
        unparsed: Iterable[str] = (),
    ) -> None:
        pairs = tuple(headers)
        _set_names(self, tuple([name for name, _ in pairs]))
        _set_values(self, tuple([value for _, value in pairs]))
        lines = tuple(unparsed)
        if lines:
            _set(self, "unparsed", lines)

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Message:
        """Build a message from ``(name, value)`` pairs.

        Args:
            *pairs: the headers in order.

        Returns:
            The message.
        """
        return cls(pairs)

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The ``(name, value)`` pairs in wire order, original spelling, duplicates kept."""
        return tuple(zip(self.names, self.values, strict=True))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Message is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Message is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Message:
            return NotImplemented
        assert isinstance(other, Message)  # noqa: S101 (for mypy)
        return (
            self.names == other.names
            and self.values == other.values
            and self.unparsed == other.unparsed
        )

    def __hash__(self) -> int:
        return hash((self.names, self.values, self.unparsed))

    def __repr__(self) -> str:
        return f"Message(headers={self.headers!r}, unparsed={self.unparsed!r})"

    def __reduce__(self) -> tuple[type[Message], tuple[object, ...]]:
        return (Message, (self.headers, self.unparsed))

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # Built backwards, so the first of repeated names wins.
            index = dict(
                zip(
                    map(str.lower, reversed(self.names)),
                    reversed(self.values),
                    strict=True,
                )
            )
            _set(self, "_index", index)
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
        return [
            value
            for key, value in zip(self.names, self.values, strict=True)
            if key.lower() == lowered
        ]

    def __getitem__(self, name: str) -> str:
        value = self._lookup().get(name.lower())
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def _first(self, name: str) -> str | None:
        # Asterisk writes Event/Response first; check that before building the index.
        names = self.names
        if names and names[0] == name:
            return self.values[0]
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


# The only ways to write to a Message (its __setattr__ refuses), used by
# __init__ and by the parser, which builds messages without calling __init__.
_set_names = Message.__dict__["names"].__set__
_set_values = Message.__dict__["values"].__set__
_set = object.__setattr__


def _message(
    names: tuple[str, ...], values: tuple[str, ...], unparsed: tuple[str, ...] = ()
) -> Message:
    """Build a message from its names, values and unparsed lines, unchecked."""
    message = object.__new__(Message)
    _set_names(message, names)
    _set_values(message, values)
    if unparsed:
        _set(message, "unparsed", unparsed)
    return message


# What bytes.strip() removes around an event name; possessive, as wanted names
# neither start nor end with one (so no match needs to give any back, and a long
# run of blanks is never tried again from each of its positions).
_BLANKS = rb"[ \t\r\x0b\x0c]*+"


class WantedEvents:
    """A ``skip_events`` filter that keeps the events named in a set.

    ``skip(name)`` is ``name.lower() not in names`` (ASCII case folding, like
    ``bytes.lower``). The parser does not call it for each event: it asks
    :meth:`patterns` for two regular expressions that find the messages to keep
    in a whole read, so a dropped event costs no Python code at all. Both are
    derived from :attr:`names` and replaced together with it by :meth:`add`, so
    they can never answer for an older set.

    Args:
        names: the event names to keep.
    """

    __slots__ = ("_patterns", "names")

    def __init__(self, names: Iterable[bytes] = ()) -> None:
        self.names: frozenset[bytes] = frozenset(name.lower() for name in names)
        self._patterns: tuple[re.Pattern[bytes], re.Pattern[bytes]] | None = None

    def __call__(self, name: bytes) -> bool:
        """Whether events named ``name`` are dropped."""
        return name.lower() not in self.names

    def add(self, name: bytes) -> None:
        """Keep events named ``name`` from now on."""
        lowered = name.lower()
        if lowered not in self.names:
            self.names = self.names | {lowered}
            self._patterns = None

    def patterns(self) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
        """Return ``(first, later)``: which messages of a read to keep.

        ``first.match(block)`` tells whether the message at the start of a read
        is kept. A match of ``later`` is either an end-of-message ``\n\r\n``
        after which a kept message (or the end of the read) starts, or a bare
        ``\n\n`` (an LF-only empty line: the read needs the general path).
        A message is kept unless its first line is ``Event:`` and a name
        outside :attr:`names`; names that no stripped line could hold (blanks
        at either end, a line break) are left out, as ``skip`` never finds them
        either.
        """
        patterns = self._patterns
        if patterns is None:
            usable = sorted(
                name
                for name in self.names
                if name == name.strip() and b"\n" not in name
            )
            keep = rb"(?!Event:)"
            if usable:
                names = b"|".join(re.escape(name) for name in usable)
                keep += rb"|(?=Event:" + _BLANKS + rb"(?i:" + names + rb")"
                keep += _BLANKS + rb"\n)"
            later = rb"\n(?:\r\n(?:" + keep + rb")|\n)"
            patterns = (re.compile(keep), re.compile(later))
            self._patterns = patterns
        return patterns
