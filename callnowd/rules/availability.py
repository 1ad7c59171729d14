"""Weekly availability windows and holidays in the owner's time zone.

Pure: the instant comes in as a POSIX timestamp (``now``), the zone as an IANA name
(``zoneinfo`` with the ``tzdata`` package, so DST rules do not depend on the host).

Semantics. An instant is available when "available only in time interval" is off,
or when it is on and (a) the owner-local date of the instant is not a holiday and
(b) the owner-local wall-clock time of the instant lies in a window. Membership
is a function of the instant's wall-clock reading, so it is well defined on DST
days: in a spring-forward gap the skipped wall times never occur (a window starting
inside the gap begins at the transition), and in a fall-back hour both passes of
the repeated wall times are inside or outside alike. With the switch off, the owner
is always available and holidays do not apply: holidays refine the availability
windows, they are not a separate "closed" switch; ``callnowctl`` says so when
holidays are set while the switch is off.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callnowd.models import Preferences, Window

_DAY = timedelta(days=1)


def in_window(window: Window, local: datetime) -> bool:
    """Whether the local wall-clock time ``local`` falls inside ``window``.

    A window with ``end <= start`` runs across midnight: it starts on one of its days
    and ends the next day at ``end``.
    """
    t = local.time().replace(tzinfo=None)
    day = local.weekday()
    if window.start < window.end:
        return day in window.days and window.start <= t < window.end
    # Across midnight: the evening part belongs to today, the morning to yesterday.
    if day in window.days and t >= window.start:
        return True
    return (day - 1) % 7 in window.days and t < window.end


def is_available_local(preferences: Preferences, local: datetime) -> bool:
    """Whether the owner is available at the owner-local wall-clock time ``local``.

    "Available only in time interval" off means always available; on, the date
    must not be a holiday and the time must be in a window.
    """
    if not preferences.availability_enabled:
        return True
    if local.date() in preferences.holidays:
        return False
    return any(in_window(w, local) for w in preferences.windows)


def is_available(preferences: Preferences, timezone: str, now: float) -> bool:
    """Whether the owner is available at ``now`` by his windows and holidays.

    "Available only in time interval" off means always available.
    """
    if not preferences.availability_enabled:
        return True
    return is_available_local(
        preferences, datetime.fromtimestamp(now, ZoneInfo(timezone))
    )


def next_available(preferences: Preferences, timezone: str, now: float) -> float | None:
    """The first instant at or after ``now`` when the owner is available.

    Returns:
        ``now`` itself when available now; ``None`` when he never will be
        (availability on without any window day).
    """
    if is_available(preferences, timezone, now):
        return now
    if not any(window.days for window in preferences.windows):
        return None
    zone = ZoneInfo(timezone)
    first = datetime.fromtimestamp(now, zone).date() - _DAY
    # Each holiday can block at most one day; 7 free days hold every weekly window.
    ahead = sum(1 for day in preferences.holidays if day >= first)
    days = 7 * (ahead + 2) + 2
    candidates = sorted(
        {
            instant
            for n in range(days)
            for instant in _starts(preferences.windows, zone, first + n * _DAY)
            if instant > now
        }
    )
    for instant in candidates:
        if is_available(preferences, timezone, instant):
            return instant
    return None


def _starts(windows: tuple[Window, ...], zone: ZoneInfo, day: date) -> Iterator[float]:
    """Every instant of ``day`` at which availability may switch on.

    Availability changes only where the wall clock reaches a window start or
    midnight (a holiday ends), or jumps at a zone transition. A wall time that falls
    in a gap resolves to a neighbouring instant: harmless, the caller keeps only
    candidates that are available, and the transition itself is a candidate.
    """
    walls = {time(0)} | {window.start for window in windows if window.days}
    for wall in walls:
        for fold in (0, 1):
            yield datetime.combine(day, wall, zone).replace(fold=fold).timestamp()
    start = int(datetime.combine(day, time(0), zone).timestamp())
    end = int(datetime.combine(day + _DAY, time(0), zone).timestamp()) + 1
    yield from _transitions(zone, start, end)


def _transitions(zone: ZoneInfo, start: int, end: int) -> Iterator[float]:
    """The instants in ``(start, end]`` where the zone's UTC offset changes."""
    if end - start <= 1:
        if _offset(zone, start) != _offset(zone, end):
            yield float(end)
        return
    if _offset(zone, start) == _offset(zone, end) and end - start <= 2 * 86400:
        # No zone changes its offset twice within a day and back again.
        return
    middle = (start + end) // 2
    yield from _transitions(zone, start, middle)
    yield from _transitions(zone, middle, end)


def _offset(zone: ZoneInfo, instant: int) -> timedelta | None:
    return datetime.fromtimestamp(instant, zone).utcoffset()


def is_accepting(preferences: Preferences, timezone: str, now: float) -> bool:
    """Whether the link takes requests now: enabled, not rejecting all, available."""
    return (
        preferences.enabled
        and not preferences.reject_all
        and is_available(preferences, timezone, now)
    )


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_window(text: str) -> Window:
    """Parse ``mon-fri 09:00-17:30`` or ``sat,sun 22:00-02:00`` into a Window.

    Raises:
        ValueError: with a message saying what is wrong.
    """
    try:
        days_part, times_part = text.strip().split()
        start_text, end_text = times_part.split("-")
    except ValueError:
        raise ValueError(
            f"window {text!r} must look like 'mon-fri 09:00-17:00'"
        ) from None
    days: set[int] = set()
    for item in days_part.lower().split(","):
        first, _, last = item.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"unknown day in {item!r}; use mon, tue, ... sun")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        span = range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)]
        days.update(span)
    start, end = _parse_time(start_text), _parse_time(end_text)
    if start == end:
        raise ValueError(f"window {text!r} starts and ends at the same time")
    return Window(days=frozenset(days), start=start, end=end)


def format_window(window: Window) -> str:
    """The inverse of :func:`parse_window` (days listed one by one)."""
    days = ",".join(_DAYS[d] for d in sorted(window.days))
    return f"{days} {window.start:%H:%M}-{window.end:%H:%M}"


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def describe_window(window: Window) -> str:
    """A window for people, runs of days collapsed: ``Mon-Fri 09:00-17:00``."""
    days = sorted(window.days)
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names = ", ".join(
        _DAY_NAMES[r[0]] if len(r) == 1 else f"{_DAY_NAMES[r[0]]}-{_DAY_NAMES[r[-1]]}"
        for r in runs
    )
    return f"{names} {window.start:%H:%M}-{window.end:%H:%M}"


def parse_holiday(text: str) -> date:
    """Parse a holiday written ``YYYY-MM-DD``.

    Raises:
        ValueError: with a message saying what is wrong.
    """
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date {text!r} must be YYYY-MM-DD, e.g. 2026-12-24") from None


def _parse_time(text: str) -> time:
    try:
        parsed = datetime.strptime(text, "%H:%M")
    except ValueError:
        raise ValueError(f"time {text!r} must be HH:MM (24 h)") from None
    return parsed.time()


__all__ = [
    "format_window",
    "in_window",
    "is_accepting",
    "is_available",
    "is_available_local",
    "next_available",
    "parse_holiday",
    "parse_window",
]
