"""Weekly availability windows."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from twisted.trial.unittest import SynchronousTestCase

from callnowd.models import Preferences, Window
from callnowd.rules.availability import (
    format_window,
    is_accepting,
    is_available,
    parse_window,
)

NY = "America/New_York"


def at(text: str, zone: str = NY) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


class AvailabilityTests(SynchronousTestCase):
    """is_available and is_accepting."""

    def prefs(self, *windows: str) -> Preferences:
        return Preferences(
            callnow_id="x",
            availability_enabled=True,
            windows=tuple(parse_window(w) for w in windows),
        )

    def test_off_means_always(self) -> None:
        """With "available only in time interval" off, any time is fine."""
        self.assertTrue(is_available(Preferences(callnow_id="x"), NY, 0.0))

    def test_weekday_hours_in_owner_zone(self) -> None:
        """A window applies in the owner's time zone, start inclusive, end exclusive."""
        p = self.prefs("mon-fri 09:00-17:00")
        self.assertTrue(is_available(p, NY, at("2026-11-25T09:00")))
        self.assertFalse(is_available(p, NY, at("2026-11-25T17:00")))
        self.assertFalse(is_available(p, NY, at("2026-11-25T08:59")))
        self.assertFalse(is_available(p, NY, at("2026-11-28T10:00")))  # Saturday
        # 14:00 UTC is 09:00 in New York in winter.
        self.assertTrue(is_available(p, NY, at("2026-11-25T14:00", "UTC")))

    def test_across_midnight(self) -> None:
        """A Friday 22:00-02:00 window covers Saturday 01:00 but not Friday 01:00."""
        p = self.prefs("fri 22:00-02:00")
        self.assertTrue(is_available(p, NY, at("2026-11-27T23:00")))
        self.assertTrue(is_available(p, NY, at("2026-11-28T01:59")))
        self.assertFalse(is_available(p, NY, at("2026-11-27T01:00")))

    def test_accepting(self) -> None:
        """Disabled or reject-all links never accept; otherwise availability decides."""
        self.assertFalse(
            is_accepting(Preferences(callnow_id="x", enabled=False), NY, 0)
        )
        self.assertFalse(
            is_accepting(Preferences(callnow_id="x", reject_all=True), NY, 0)
        )
        self.assertTrue(is_accepting(Preferences(callnow_id="x"), NY, 0))


class WindowTextTests(SynchronousTestCase):
    """parse_window and format_window."""

    def test_parse(self) -> None:
        """Day ranges, lists and wrap-around ranges parse."""
        self.assertEqual(
            parse_window("mon-fri 09:00-17:30"),
            Window(frozenset(range(5)), time(9), time(17, 30)),
        )
        self.assertEqual(parse_window("sat,sun 10:00-12:00").days, frozenset({5, 6}))
        self.assertEqual(
            parse_window("fri-mon 10:00-12:00").days, frozenset({4, 5, 6, 0})
        )

    def test_round_trip(self) -> None:
        """format_window is the inverse of parse_window."""
        window = parse_window("mon,wed 22:00-02:00")
        self.assertEqual(parse_window(format_window(window)), window)

    def test_errors(self) -> None:
        """Bad text is refused with a message."""
        for text in [
            "",
            "mon",
            "funday 09:00-10:00",
            "mon 9-10",
            "mon 25:00-26:00",
            "mon 10:00-10:00",
        ]:
            self.assertRaises(ValueError, parse_window, text)
