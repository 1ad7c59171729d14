"""Row codecs: availability windows as JSON, and migration script splitting."""

from __future__ import annotations

import json
from datetime import time

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.models import Window
from callnowd.store.rows import decode_windows, encode_windows
from callnowd.store.sqlite_migrate import split_statements

windows = st.lists(
    st.builds(
        Window,
        days=st.frozensets(st.integers(0, 6), min_size=1),
        start=st.times(),
        end=st.times(),
    ),
    max_size=5,
).map(tuple)


class WindowCodecTests(SynchronousTestCase):
    """Windows are stored as the documented JSON and read back unchanged."""

    def test_documented_form(self) -> None:
        """Whole-minute windows are stored as days plus HH:MM strings."""
        text = encode_windows([Window(frozenset({1, 0}), time(9, 0), time(17, 0))])
        self.assertEqual(
            json.loads(text), [{"days": [0, 1], "start": "09:00", "end": "17:00"}]
        )

    def test_empty(self) -> None:
        """No windows is an empty JSON list."""
        self.assertEqual(encode_windows(()), "[]")
        self.assertEqual(decode_windows("[]"), ())

    @given(windows)
    def test_round_trip(self, value: tuple[Window, ...]) -> None:
        """decode(encode(windows)) gives the same windows, seconds included."""
        self.assertEqual(decode_windows(encode_windows(value)), value)

    def test_malformed_json_raises(self) -> None:
        """Text that is not a list of window objects raises ValueError."""
        for text in ('{"days": []}', "[1]", "not json", '[{"days": [0]}]'):
            with self.assertRaises((ValueError, KeyError), msg=text):
                decode_windows(text)


class SplitStatementsTests(SynchronousTestCase):
    """Migration scripts split into single statements the way SQLite parses them."""

    def test_split(self) -> None:
        """Comments stay attached, and ';' inside strings does not split."""
        script = (
            "-- header\n"
            "CREATE TABLE a (x TEXT DEFAULT 'a;b');\n"
            "\n"
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
            "  UPDATE a SET x = 'y';\n"
            "END;\n"
            "-- trailing comment\n"
        )
        self.assertEqual(
            split_statements(script),
            [
                "-- header\nCREATE TABLE a (x TEXT DEFAULT 'a;b');",
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
                "  UPDATE a SET x = 'y';\nEND;",
            ],
        )

    def test_incomplete_statement_raises(self) -> None:
        """A script ending inside a statement raises ValueError."""
        with self.assertRaises(ValueError):
            split_statements("CREATE TABLE a (x TEXT);\nCREATE TABLE b (\n")
