"""Weekly availability windows in the owner's time zone.

Pure: the instant comes in as a POSIX timestamp (``now``), the zone as a name.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from callnowd.models import Preferences, Window


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


def is_available(preferences: Preferences, timezone: str, now: float) -> bool:
    """Whether the owner is available at ``now`` by his availability windows.

    "Available only in time interval" off means always available.
    """
    if not preferences.availability_enabled:
        return True
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    return any(in_window(w, local) for w in preferences.windows)


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


def _parse_time(text: str) -> time:
    try:
        parsed = datetime.strptime(text, "%H:%M")
    except ValueError:
        raise ValueError(f"time {text!r} must be HH:MM (24 h)") from None
    return parsed.time()


__all__ = ["format_window", "in_window", "is_accepting", "is_available", "parse_window"]
