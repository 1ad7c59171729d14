"""``eventfilter`` of the simulator's AMI users, as Asterisk's manager.c applies it.

This module owns the parsing and the matching of ``manager.conf`` event filters:

* the advanced form (Asterisk 21+): ``eventfilter(action(include|exclude),
  name(Event),header(Name),method(regex|exact|starts_with|ends_with|contains|none))
  = [pattern]`` -- one of each criterion, in any order; ``action`` defaults to
  include, ``method`` to ``none`` (no pattern: name/header only);
* the legacy form ``eventfilter = regex``, a regular expression searched in the
  whole event text (``Event: X\\r\\nPrivilege: ...``); a leading ``!`` on the value
  makes either form an exclude filter.

Evaluation (``should_send_event``): no filters -> every event; include filters
only -> the events matching any of them; exclude filters only -> every event but
those matching any of them; both -> matching an include and no exclude.  Event
names compare case-sensitively.  Filters apply to broadcast events only: action
responses, list events (``CoreShowChannel``...) and the ``FullyBooted`` written
after a Login go straight to the session (``astman_append``) and are never
filtered.  It also reads the ``key = value`` lines of one ``manager.conf``
section, for tests that compare the simulator's users with the shipped file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, get_args

import attrs

FilterMethod = Literal["regex", "exact", "starts_with", "ends_with", "contains", "none"]
_METHODS: dict[str, FilterMethod] = {m: m for m in get_args(FilterMethod)}
_OPTION = re.compile(r"([a-z]+)\(([^()]*)\)")


class EventFilterError(ValueError):
    """An ``eventfilter`` line is invalid; the message names its key."""


@attrs.frozen
class EventFilter:
    """One parsed ``eventfilter`` line.

    Attributes:
        key: the ``manager.conf`` key, e.g. ``eventfilter(name(Hangup))``.
        value: the value as written (``!`` prefix included).
        exclude: whether a match withholds the event.
        name: the event name it is limited to (exact, case-sensitive), if any.
        header: the header (with its trailing ``:``) whose value is matched, if any.
        method: how ``pattern`` is applied.
        pattern: the match expression (without the ``!`` prefix).
    """

    key: str
    value: str
    exclude: bool
    name: str | None
    header: str | None
    method: FilterMethod
    pattern: str
    _regex: re.Pattern[str] | None = attrs.field(eq=False, repr=False)

    @property
    def name_only(self) -> bool:
        """Whether only the event name decides (no header, no pattern)."""
        return self.header is None and self.method == "none" and self.name is not None

    def matches(self, name: str, text: str) -> bool:
        """Whether the event ``name`` with full wire ``text`` matches (filter_cmp_fn)."""
        if self.name is not None and name != self.name:
            return False
        if self.header is None:
            return self._match(text)
        for line in text.splitlines():
            if not line.startswith(self.header):
                continue
            data = line[len(self.header) :].lstrip(" \t")
            if data and self._match(data):
                return True
        return False

    def _match(self, data: str) -> bool:
        method = self.method
        if method == "none":
            return True
        if self._regex is not None:
            return self._regex.search(data) is not None
        if method == "exact":
            return data == self.pattern
        if method == "starts_with":
            return data.startswith(self.pattern)
        if method == "ends_with":
            return data.endswith(self.pattern)
        return self.pattern in data


def parse_filter(key: str, value: str) -> EventFilter:
    """Parse one ``manager.conf`` line ``key = value`` (``manager_add_filter``).

    Args:
        key: ``eventfilter`` or ``eventfilter(criteria)``.
        value: the pattern, possibly empty, ``!`` first for an exclude filter.

    Returns:
        The filter.

    Raises:
        EventFilterError: the key is not an event filter, a criterion is unknown
            or malformed, or the pattern does not fit the method.
    """
    key = key.strip()
    pattern = value.strip()

    def bad(why: str) -> EventFilterError:
        return EventFilterError(f"{key} = {value}: {why}")

    exclude = pattern.startswith("!")
    if exclude:
        pattern = pattern[1:]
    head, paren, criteria = key.partition("(")
    if head.strip() != "eventfilter":
        raise bad("not an eventfilter key")
    name: str | None = None
    header: str | None = None
    method: FilterMethod = "regex"
    if not paren:
        if not pattern:
            raise bad("legacy filter with no filter pattern")
    else:
        method = "none"
        criteria = criteria.strip()
        if not criteria.endswith(")"):
            raise bad("filter options not formatted correctly")
        rest = _OPTION.sub("", criteria[:-1]).replace(",", "").strip()
        if rest:
            raise bad(f"filter options not formatted correctly near {rest!r}")
        seen: set[str] = set()
        for option, raw in _OPTION.findall(criteria[:-1]):
            arg = raw.strip()
            if option in seen:
                raise bad(f"{option!r} given twice")
            seen.add(option)
            if option == "action":
                if arg not in ("include", "exclude"):
                    raise bad(f"'action' option {arg!r} is unknown")
                exclude = arg == "exclude"
            elif option in ("name", "header"):
                if not arg or any(c in arg for c in " ,"):
                    raise bad(f"{option!r} parameter {arg!r} is empty or malformed")
                if option == "name":
                    name = arg
                else:
                    header = arg if arg.endswith(":") else arg + ":"
            elif option == "method":
                if arg not in _METHODS:
                    raise bad(f"'method' option {arg!r} is unknown")
                method = _METHODS[arg]
            else:
                raise bad(f"filter option {option!r} is unknown")
        if not seen:
            raise bad("no action, name, header or method option found")
        if not pattern and method != "none":
            raise bad(f"method can't be {method!r} with no filter pattern")
        if pattern and method == "none":
            raise bad("method can't be 'none' with a filter pattern")
        if name is None and header is None and method == "none":
            raise bad("no name or header and no filter pattern")
    regex: re.Pattern[str] | None = None
    if method == "regex":
        try:
            # POSIX regcomp(REG_EXTENDED) without REG_NEWLINE: '.' crosses lines.
            regex = re.compile(pattern, re.DOTALL)
        except re.error as e:
            raise bad(f"unable to compile regex: {e}") from e
    return EventFilter(
        key=key,
        value=value,
        exclude=exclude,
        name=name,
        header=header,
        method=method,
        pattern=pattern,
        regex=regex,
    )


FilterSpec = EventFilter | tuple[str, str]


@attrs.frozen
class EventFilters:
    """The event filters of one AMI user, split as manager.c keeps them.

    Attributes:
        include: the include filters, in order.
        exclude: the exclude filters, in order.
    """

    include: tuple[EventFilter, ...] = ()
    exclude: tuple[EventFilter, ...] = ()
    _names: frozenset[str] | None = attrs.field(
        init=False, eq=False, repr=False, default=None
    )

    def __attrs_post_init__(self) -> None:
        # Name-only include filters and no exclude (the shipped manager.conf):
        # one set lookup decides, without the event text.
        if self.include and not self.exclude and all(f.name_only for f in self.include):
            names = frozenset(f.name for f in self.include if f.name is not None)
            object.__setattr__(self, "_names", names)

    @classmethod
    def parse(cls, specs: Iterable[FilterSpec]) -> EventFilters:
        """Build the filters from parsed ones or ``(key, value)`` pairs.

        Raises:
            EventFilterError: a pair is not a valid filter.
        """
        parsed = [s if isinstance(s, EventFilter) else parse_filter(*s) for s in specs]
        return cls(
            include=tuple(f for f in parsed if not f.exclude),
            exclude=tuple(f for f in parsed if f.exclude),
        )

    @property
    def lines(self) -> tuple[tuple[str, str], ...]:
        """The filters as ``(key, value)`` lines, includes first."""
        return tuple((f.key, f.value) for f in (*self.include, *self.exclude))

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def allows(self, name: str, data: bytes) -> bool:
        """Whether the broadcast event ``name`` (wire bytes ``data``) is delivered."""
        if self._names is not None:
            return name in self._names
        if not self.include and not self.exclude:
            return True
        text = data.decode("utf-8", "replace")
        if self.include and not any(f.matches(name, text) for f in self.include):
            return False
        return not any(f.matches(name, text) for f in self.exclude)


def to_filters(value: EventFilters | Iterable[FilterSpec]) -> EventFilters:
    """Converter of ``AmiUser.eventfilters``: filters, or specs to parse."""
    if isinstance(value, EventFilters):
        return value
    return EventFilters.parse(value)


def manager_conf_section(text: str, section: str) -> list[tuple[str, str]]:
    """The ``key = value`` lines of ``[section]`` of a ``manager.conf`` text.

    ``;`` starts a comment (``\\;`` is a literal ``;``); ``=>`` works as ``=``;
    keys and values are stripped, as Asterisk's config parser does.
    """
    lines: list[tuple[str, str]] = []
    current: str | None = None
    for raw in text.splitlines():
        line = re.sub(r"(?<!\\);.*", "", raw).replace("\\;", ";").strip()
        if not line:
            continue
        if line.startswith("[") and "]" in line:
            current = line[1 : line.index("]")].strip()
            continue
        if current != section:
            continue
        key, sep, rest = line.partition("=")
        if not sep:
            continue
        lines.append((key.strip(), rest.removeprefix(">").strip()))
    return lines
