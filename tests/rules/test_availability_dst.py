"""Availability across DST changes, holidays, and the next available instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.models import Preferences, Window
from callnowd.rules.availability import (
    is_accepting,
    is_available,
    is_available_local,
    next_available,
    parse_holiday,
    parse_window,
)

EVERY_DAY = frozenset(range(7))
# (zone, local date of a 2026 DST change): London and New York shift one hour,
# Lord Howe half an hour.
TRANSITION_DAYS = [
    ("Europe/London", date(2026, 3, 29)),
    ("Europe/London", date(2026, 10, 25)),
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
    ("Australia/Lord_Howe", date(2026, 4, 5)),
    ("Australia/Lord_Howe", date(2026, 10, 4)),
]


def prefs(*windows: Window, holidays: frozenset[date] = frozenset()) -> Preferences:
    return Preferences(
        callnow_id="x", availability_enabled=True, windows=windows, holidays=holidays
    )


def local(
    zone: str, year: int, month: int, day: int, hour: int, minute: int, fold: int = 0
) -> float:
    return datetime(
        year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold
    ).timestamp()


def wall(zone: str, instant: float) -> datetime:
    return datetime.fromtimestamp(instant, ZoneInfo(zone)).replace(tzinfo=None)


# Windows whose edges sit near the small hours, where the clocks change.
small_hours = st.builds(time, st.integers(0, 4), st.sampled_from([0, 10, 15, 30, 45]))
near_change_windows = st.builds(
    Window, st.just(EVERY_DAY), small_hours, small_hours
).filter(lambda w: w.start != w.end)


class DstPropertyTests(SynchronousTestCase):
    """Window membership on DST days, checked against independent computations."""

    @given(
        st.sampled_from(TRANSITION_DAYS),
        st.lists(near_change_windows, min_size=1, max_size=2),
        st.integers(-2 * 60, 26 * 60),
    )
    def test_next_available_is_first_available_minute(
        self, day: tuple[str, date], windows: list[Window], minute: int
    ) -> None:
        """From any minute of a DST day, next_available is the first minute a scan finds.

        Windows and offsets are whole minutes, so availability changes only on whole
        minutes: a minute-by-minute scan is an oracle. A disagreement would mean an
        instant counted both inside a window (by one computation) and outside (by
        the other).
        """
        zone, when = day
        p = prefs(*windows)
        start = datetime.combine(when, time(0), ZoneInfo(zone)).timestamp()
        now = start + 60 * minute
        found = next_available(p, zone, now)
        scan = now
        while not is_available(p, zone, scan):
            scan += 60
        self.assertEqual(found, scan)
        assert found is not None
        if found != now:
            self.assertFalse(is_available(p, zone, found - 0.001))

    @given(
        st.sampled_from(TRANSITION_DAYS),
        st.lists(near_change_windows, min_size=1, max_size=2),
        st.floats(-3 * 3600, 27 * 3600),
    )
    def test_utc_and_local_agree(
        self, day: tuple[str, date], windows: list[Window], offset: float
    ) -> None:
        """Membership is the same from a UTC instant and from its local reading."""
        zone, when = day
        p = prefs(*windows)
        instant = datetime.combine(when, time(0), ZoneInfo(zone)).timestamp() + offset
        via_utc = datetime.fromtimestamp(instant, UTC).astimezone(ZoneInfo(zone))
        self.assertEqual(is_available(p, zone, instant), is_available_local(p, via_utc))
        # And from a local wall time back to UTC, whenever that wall time exists.
        reading = via_utc.replace(tzinfo=None)
        for fold in (0, 1):
            back = reading.replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()
            if wall(zone, back) == reading:
                self.assertEqual(
                    is_available(p, zone, back),
                    is_available_local(p, via_utc.replace(fold=fold)),
                )

    @given(
        st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe"]),
        st.floats(1_767_225_600, 1_798_761_600),
        st.lists(near_change_windows, min_size=1, max_size=2),
        st.frozensets(st.dates(date(2026, 1, 1), date(2027, 1, 10)), max_size=20),
    )
    def test_next_available_is_available_and_first(
        self, zone: str, now: float, windows: list[Window], holidays: frozenset[date]
    ) -> None:
        """next_available is available, not a holiday, and nothing earlier is."""
        p = prefs(*windows, holidays=holidays)
        found = next_available(p, zone, now)
        assert found is not None
        self.assertGreaterEqual(found, now)
        self.assertTrue(is_available(p, zone, found))
        self.assertNotIn(wall(zone, found).date(), holidays)
        if found > now:
            self.assertFalse(is_available(p, zone, found - 0.001))
            # Sample the gap: every probe in [now, found) is unavailable.
            for k in range(1, 20):
                probe = now + (found - now) * k / 20
                self.assertFalse(is_available(p, zone, probe), probe)


class DstExampleTests(SynchronousTestCase):
    """Hand-checked instants on the 2026 transition days."""

    def test_window_inside_spring_gap_never_opens_that_day(self) -> None:
        """Lord Howe skips 02:00-02:30 on 4 Oct: a 02:00-02:20 window opens next day."""
        zone = "Australia/Lord_Howe"
        p = prefs(parse_window("mon-sun 02:00-02:20"))
        found = next_available(p, zone, local(zone, 2026, 10, 4, 1, 0))
        self.assertEqual(found, local(zone, 2026, 10, 5, 2, 0))

    def test_window_starting_in_gap_opens_at_transition(self) -> None:
        """A 02:10-03:00 window opens at 02:30, the first wall time after the gap."""
        zone = "Australia/Lord_Howe"
        p = prefs(parse_window("sun 02:10-03:00"))
        found = next_available(p, zone, local(zone, 2026, 10, 4, 1, 0))
        assert found is not None
        self.assertEqual(wall(zone, found), datetime(2026, 10, 4, 2, 30))
        self.assertEqual(datetime.fromtimestamp(found, UTC).hour, 15)

    def test_repeated_half_hour_is_inside_twice(self) -> None:
        """Lord Howe repeats 01:30-02:00 on 5 Apr: 01:40-01:50 is open twice."""
        zone = "Australia/Lord_Howe"
        p = prefs(parse_window("sun 01:40-01:50"))
        first = local(zone, 2026, 4, 5, 1, 40, fold=0)
        second = local(zone, 2026, 4, 5, 1, 40, fold=1)
        self.assertEqual(second - first, 1800)
        self.assertTrue(is_available(p, zone, first))
        self.assertFalse(is_available(p, zone, first + 600))
        self.assertTrue(is_available(p, zone, second))
        self.assertEqual(next_available(p, zone, first + 600), second)

    def test_new_york_fall_back(self) -> None:
        """New York repeats 01:00-02:00 on 1 Nov: a 01:30-01:45 window opens twice."""
        zone = "America/New_York"
        p = prefs(parse_window("sun 01:30-01:45"))
        after_first = local(zone, 2026, 11, 1, 1, 50, fold=0)
        self.assertEqual(
            next_available(p, zone, after_first),
            local(zone, 2026, 11, 1, 1, 30, fold=1),
        )

    def test_london_spring_forward_window_shortens(self) -> None:
        """A 00:30-02:30 window on 29 Mar lasts 1 h in London: 01:00-02:00 is skipped."""
        zone = "Europe/London"
        p = prefs(parse_window("sun 00:30-02:30"))
        opens = local(zone, 2026, 3, 29, 0, 30)
        self.assertTrue(is_available(p, zone, opens))
        self.assertTrue(is_available(p, zone, opens + 3599))
        self.assertFalse(is_available(p, zone, opens + 3600))  # 02:30 BST


class HolidayTests(SynchronousTestCase):
    """Holidays in the owner's time zone."""

    def test_holiday_is_the_owner_local_date(self) -> None:
        """A holiday covers the owner's local day, not the UTC day."""
        zone = "America/New_York"
        p = prefs(
            parse_window("mon-sun 00:00-23:59"),
            holidays=frozenset({date(2026, 12, 24)}),
        )
        # 23:00 on the 24th in New York is already the 25th in UTC.
        self.assertFalse(is_available(p, zone, local(zone, 2026, 12, 24, 23, 0)))
        self.assertTrue(is_available(p, zone, local(zone, 2026, 12, 25, 0, 0)))
        self.assertTrue(is_available(p, zone, local(zone, 2026, 12, 23, 23, 0)))

    def test_holiday_cuts_a_window_across_midnight(self) -> None:
        """A Friday 22:00-02:00 window stops at midnight when Saturday is a holiday."""
        zone = "Europe/London"
        p = prefs(
            parse_window("fri 22:00-02:00"), holidays=frozenset({date(2026, 11, 28)})
        )
        self.assertTrue(is_available(p, zone, local(zone, 2026, 11, 27, 23, 59)))
        self.assertFalse(is_available(p, zone, local(zone, 2026, 11, 28, 0, 30)))

    def test_is_accepting_honours_holidays(self) -> None:
        """The public page's is_accepting(preferences, timezone, now) sees holidays."""
        zone = "Europe/London"
        p = prefs(
            parse_window("mon-sun 09:00-17:00"), holidays=frozenset({date(2026, 5, 1)})
        )
        self.assertFalse(is_accepting(p, zone, local(zone, 2026, 5, 1, 10, 0)))
        self.assertTrue(is_accepting(p, zone, local(zone, 2026, 5, 2, 10, 0)))

    def test_many_holidays_still_find_a_day(self) -> None:
        """Fifty Mondays off in a row: the next Monday after them is found."""
        zone = "UTC"
        first = date(2026, 1, 5)  # a Monday
        mondays = frozenset(first + timedelta(weeks=n) for n in range(50))
        p = prefs(parse_window("mon 09:00-10:00"), holidays=mondays)
        found = next_available(p, zone, local(zone, 2026, 1, 1, 0, 0))
        assert found is not None
        self.assertEqual(wall(zone, found), datetime(2026, 12, 21, 9, 0))

    def test_parse_holiday(self) -> None:
        """Only YYYY-MM-DD dates parse."""
        self.assertEqual(parse_holiday("2026-12-24"), date(2026, 12, 24))
        for bad in ("2026-12-32", "24.12.2026", "2026-1-2", "20261224", ""):
            with self.assertRaises(ValueError, msg=bad):
                parse_holiday(bad)
