"""``callnowctl availability`` and ``callnowctl rules``: in process, and a few real runs."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from callnowd.cli import CliError, build_parser, run_command
from callnowd.config import Config
from callnowd.models import Extension, Preferences
from callnowd.rules.availability import parse_window
from callnowd.rules.callers import Action, NumberKind, NumberPattern
from tests.fakes import MemoryStore

BIN = Path(sys.executable).parent
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 25, 10, tzinfo=LONDON).timestamp()  # a Wednesday
JOHN = Extension(
    number="100",
    display_name="John",
    external_number="+12125550100",
    dial_string="PJSIP/100",
    timezone="Europe/London",
    preferences=Preferences(
        callnow_id="john",
        availability_enabled=True,
        windows=(parse_window("mon-fri 09:00-17:00"),),
    ),
)


class RulesCommandTests(SynchronousTestCase):
    """The commands against a MemoryStore, through run_command."""

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.store.extensions["100"] = JOHN

    def ctl(self, *argv: str) -> str:
        args = build_parser().parse_args(argv)
        coro = run_command(args, self.store, Config(path=Path()), now=NOW)
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def fails(self, *argv: str) -> str:
        args = build_parser().parse_args(argv)
        coro = run_command(args, self.store, Config(path=Path()), now=NOW)
        return str(self.failureResultOf(Deferred.fromCoroutine(coro), CliError).value)

    def usage_error(self, *argv: str) -> None:
        with self.assertRaises(SystemExit) as raised:
            build_parser().parse_args(argv)
        self.assertEqual(raised.exception.code, 2)

    def test_add_list_and_store(self) -> None:
        """Rules of each kind are added, stored with their patterns and listed."""
        self.assertEqual(self.ctl("rules", "list", "100"), "(no rules)")
        out = self.ctl("rules", "add", "100", "--prefix", "+4420", "--action", "reject")
        self.assertEqual(out, "added rule 1 at 1: reject number prefix +4420")
        self.ctl(
            "rules", "add", "100", "--phone", "+44 20 7946 0000", "--action", "accept"
        )
        self.ctl(
            "rules", "add", "100", "--phone-glob", "+1212555*", "--name", "Mary*",
            "--action", "confirm", "--position", "1", "--disabled",
        )  # fmt: skip
        rules = self.store.rules["100"]
        self.assertEqual([r.id for r in rules], [3, 1, 2])
        self.assertEqual(
            [r.spec.number for r in rules],
            [
                NumberPattern(NumberKind.GLOB, "+1212555*"),
                NumberPattern(NumberKind.PREFIX, "+4420"),
                NumberPattern(NumberKind.EXACT, "+442079460000"),
            ],
        )
        self.assertEqual(rules[0].spec.name_glob, "Mary*")
        self.assertEqual(rules[0].spec.action, Action.CONFIRM)
        self.assertFalse(rules[0].spec.enabled)
        self.assertEqual(rules[1].created_at, NOW)
        self.assertEqual(
            self.ctl("rules", "list", "100").splitlines(),
            [
                "rule 3 at 1: confirm number glob +1212555* name 'Mary*' (disabled)",
                "rule 1 at 2: reject number prefix +4420",
                "rule 2 at 3: accept number exact +442079460000",
            ],
        )

    def test_move_enable_disable_remove(self) -> None:
        """move, enable, disable and remove change the stored rules."""
        for prefix in ("+441", "+442", "+443"):
            self.ctl("rules", "add", "100", "--prefix", prefix, "--action", "reject")
        self.ctl("rules", "move", "100", "3", "1")
        self.assertEqual([r.id for r in self.store.rules["100"]], [3, 1, 2])
        self.ctl("rules", "disable", "100", "1")
        self.assertFalse(self.store.rules["100"][1].spec.enabled)
        self.ctl("rules", "enable", "100", "1")
        self.assertTrue(self.store.rules["100"][1].spec.enabled)
        self.assertEqual(self.ctl("rules", "remove", "100", "3"), "removed rule 3")
        self.assertEqual([r.id for r in self.store.rules["100"]], [1, 2])

    def test_errors_are_clear_and_write_nothing(self) -> None:
        """Bad input gives one clear error and leaves the rules unchanged."""
        self.ctl("rules", "add", "100", "--prefix", "+44", "--action", "reject")
        before = list(self.store.rules["100"])
        cases = [
            (("rules", "add", "100", "--action", "accept"), "needs --phone"),
            (("rules", "add", "100", "--phone-glob", "+1[2", "--action", "accept"),
             "is not closed"),
            (("rules", "add", "100", "--prefix", "44", "--action", "accept"),
             "not a number prefix"),
            (("rules", "add", "100", "--prefix", "+1", "--action", "accept",
              "--position", "3"), "use 1 to 2"),
            (("rules", "move", "100", "1", "2"), "use 1 to 1"),
            (("rules", "move", "100", "7", "1"), "has no rule 7"),
            (("rules", "disable", "100", "7"), "has no rule 7"),
            (("rules", "remove", "100", "7"), "has no rule 7"),
            (("rules", "list", "999"), "no extension 999"),
            (("rules", "add", "999", "--name", "x", "--action", "accept"),
             "no extension 999"),
        ]  # fmt: skip
        for argv, message in cases:
            self.assertIn(message, self.fails(*argv), argv)
        self.assertEqual(self.store.rules["100"], before)

    def test_usage_errors(self) -> None:
        """Malformed values are refused by the parser with exit status 2."""
        for argv in [
            ("rules", "add", "100", "--name", "[x", "--action", "accept"),
            ("rules", "add", "100", "--name", "  ", "--action", "accept"),
            ("rules", "add", "100", "--phone", "12", "--action", "accept"),
            ("rules", "add", "100", "--prefix", "+1", "--action", "maybe"),
            ("rules", "add", "100", "--prefix", "+1", "--phone", "+12125550100",
             "--action", "accept"),
            ("rules", "move", "100", "x", "1"),
            ("rules", "move", "100", "1", "0"),
            ("rules", "test", "100", "--phone", "+44", "--at", "2026-12-24T10:00"),
            ("rules", "test", "100", "--phone", "+442079460000", "--at", "tomorrow"),
            ("availability", "add-holiday", "100", "24/12/2026"),
        ]:  # fmt: skip
            self.usage_error(*argv)

    def test_dry_run_explains(self) -> None:
        """Rules test prints decision, reason, rule and next available time."""
        self.ctl("rules", "add", "100", "--name", "mary", "--action", "accept")
        out = self.ctl(
            "rules", "test", "100", "--phone", "+442079460000", "--name", "Mary",
            "--at", "2026-12-23T10:00",
        )  # fmt: skip
        self.assertIn("decision:   accept", out)
        self.assertIn("decided by: rule:1", out)
        self.assertIn("rule:       1", out)
        out = self.ctl(
            "rules", "test", "100", "--phone", "+442079460000", "--name", "Mary",
            "--at", "2026-12-26T10:00",
        )  # fmt: skip
        self.assertIn("decision:   reject", out)
        self.assertIn("reason:     unavailable", out)
        self.assertIn(
            "next available: 2026-12-28T09:00:00+00:00 owner-local"
            " (2026-12-28T09:00:00+00:00 UTC)",
            out,
        )

    def test_dry_run_times_and_busy(self) -> None:
        """--at is owner-local without an offset; default is now; --busy is a flag."""
        self.store.extensions["100"] = attrs.evolve(
            JOHN, preferences=Preferences(callnow_id="john", reject_when_busy=True)
        )
        phone = ("--phone", "+442079460000", "--name", "Mary")
        out = self.ctl("rules", "test", "100", *phone, "--at", "2026-07-01T09:00")
        self.assertIn("at:         2026-07-01T09:00:00+01:00 owner-local", out)
        out = self.ctl("rules", "test", "100", *phone, "--at", "2026-07-01T09:00Z")
        self.assertIn("at:         2026-07-01T10:00:00+01:00 owner-local", out)
        out = self.ctl("rules", "test", "100", *phone)
        self.assertIn("at:         2026-11-25T10:00:00+00:00", out)
        self.assertIn("reason:     default", out)
        out = self.ctl("rules", "test", "100", *phone, "--busy")
        self.assertIn("reason:     busy", out)
        out = self.ctl("rules", "test", "100", *phone, "--destination-refused")
        self.assertIn("reason:     destination_refused", out)

    def test_holidays(self) -> None:
        """add-holiday and remove-holiday change the stored holidays; list shows them."""
        out = self.ctl("availability", "add-holiday", "100", "2026-12-25", "2026-12-24")
        self.assertIn("holidays:        2026-12-24, 2026-12-25", out)
        stored = self.store.extensions["100"].preferences.holidays
        self.assertEqual(stored, frozenset({date(2026, 12, 24), date(2026, 12, 25)}))
        self.ctl("availability", "remove-holiday", "100", "2026-12-24")
        stored = self.store.extensions["100"].preferences.holidays
        self.assertEqual(stored, frozenset({date(2026, 12, 25)}))
        error = self.fails("availability", "remove-holiday", "100", "2026-01-01")
        self.assertIn("not a holiday of extension 100: 2026-01-01", error)
        listed = self.ctl("availability", "list", "100")
        self.assertIn("windows:         mon,tue,wed,thu,fri 09:00-17:00", listed)
        self.assertNotIn("note:", listed)

    def test_holidays_note_when_availability_off(self) -> None:
        """Holidays set while availability is off come with a note that they wait."""
        self.ctl("callnow", "set", "100", "--available-only-in-windows", "no")
        out = self.ctl("availability", "add-holiday", "100", "2026-12-25")
        self.assertIn("note: windows and holidays apply only with", out)

    def test_new_preferences_flags(self) -> None:
        """Callnow set --reject-when-busy and --show-hours store the preferences."""
        out = self.ctl(
            "callnow", "set", "100", "--reject-when-busy", "yes", "--show-hours", "yes"
        )
        prefs = self.store.extensions["100"].preferences
        self.assertTrue(prefs.reject_when_busy and prefs.show_hours)
        self.assertIn("reject when busy: yes", out)
        self.assertIn("show my hours:    yes", out)


class RulesProcessTests(SynchronousTestCase):
    """The real callnowctl: exit statuses and messages."""

    def setUp(self) -> None:
        Path("c.toml").write_text('[store]\nurl = "sqlite:var/db.sqlite3"\n')

    def run_ctl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "callnowctl"), "-c", "c.toml", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_exit_statuses(self) -> None:
        """Success is 0, a refused rule 1, a malformed argument 2; all say why."""
        added = self.run_ctl(
            "extension", "add", "100", "--name", "John", "--external", "+12125550100",
            "--dial", "PJSIP/100", "--timezone", "Europe/London",
        )  # fmt: skip
        self.assertEqual(added.returncode, 0, added.stderr)
        ok = self.run_ctl(
            "rules", "add", "100", "--prefix", "+4420", "--action", "reject"
        )
        self.assertEqual(
            (ok.returncode, ok.stdout.strip()),
            (0, "added rule 1 at 1: reject number prefix +4420"),
        )
        empty = self.run_ctl("rules", "add", "100", "--action", "accept")
        self.assertEqual(empty.returncode, 1)
        self.assertIn("callnowctl: error: a rule needs", empty.stderr)
        bad = self.run_ctl("rules", "add", "100", "--name", "[ab", "--action", "accept")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("is not closed", bad.stderr)
        dry = self.run_ctl(
            "rules", "test", "100", "--phone", "+442079460000", "--name", "Mary",
            "--at", "2026-12-24T10:00",
        )  # fmt: skip
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn("decided by: rule:1", dry.stdout)
        unknown = self.run_ctl("rules", "remove", "100", "5")
        self.assertEqual(unknown.returncode, 1)
        self.assertIn("has no rule 5", unknown.stderr)
