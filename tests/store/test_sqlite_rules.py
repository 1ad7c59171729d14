"""SQLite only: migration 3 (rules, holidays, new preferences) on existing data."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from datetime import date
from pathlib import Path
from typing import cast

from twisted.internet import reactor as global_reactor
from twisted.internet.interfaces import IReactorCore
from twisted.trial.unittest import TestCase

from callnowd.models import Preferences
from callnowd.rules.callers import Action, RuleSpec
from callnowd.store.sqlite import SqliteStore
from callnowd.store.sqlite_migrate import apply_migrations, load_migrations
from tests.store.builders import make_extension

reactor = cast(IReactorCore, global_reactor)


class SqliteRulesSchemaTests(TestCase):
    """The schema of version 3 on a real file."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="callnowd-rules-"))
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.path = self.directory / "callnow.sqlite3"

    def sql(
        self, text: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        connection = sqlite3.connect(self.path)
        try:
            with connection:
                connection.execute("PRAGMA foreign_keys=ON")
                return connection.execute(text, params).fetchall()
        finally:
            connection.close()

    async def test_upgrade_from_version_2_keeps_extensions(self) -> None:
        """An extension stored before migration 3 reads back with the new defaults."""
        apply_migrations(self.path, load_migrations()[:2])
        self.sql(
            "INSERT INTO extensions VALUES"
            " ('100', 'Owner 100', '+15551230000', 'PJSIP/100', 'Europe/Paris', '')"
        )
        self.sql(
            "INSERT INTO preferences VALUES"
            " ('100', 'john', 1, 0, '[]', 0, 1, 0, 1, 1, 1, '')"
        )
        store = SqliteStore.open(reactor, self.path)
        self.addCleanup(store.close)
        extension = await store.get_extension("100")
        self.assertEqual(extension, make_extension())
        assert extension is not None
        self.assertEqual(
            extension.preferences,
            Preferences(callnow_id="john", reject_when_busy=False, show_hours=False),
        )
        self.assertEqual(await store.list_rules("100"), [])
        newest = len(load_migrations())
        self.assertEqual(
            self.sql("SELECT max(version) FROM schema_migrations"), [(newest,)]
        )

    async def test_removal_cascades_to_rules_and_holidays(self) -> None:
        """Removing an extension deletes its rule and holiday rows."""
        store = SqliteStore.open(reactor, self.path)
        self.addCleanup(store.close)
        await store.add_extension(
            make_extension(holidays=frozenset({date(2026, 1, 1)}))
        )
        await store.add_rule("100", RuleSpec(Action.REJECT, name_glob="x"), 1.0)
        self.assertEqual(self.sql("SELECT count(*) FROM holidays"), [(1,)])
        await store.remove_extension("100")
        self.assertEqual(self.sql("SELECT count(*) FROM holidays"), [(0,)])
        self.assertEqual(self.sql("SELECT count(*) FROM caller_rules"), [(0,)])

    def test_schema_refuses_rules_without_pattern(self) -> None:
        """The table itself refuses a rule with no pattern or a half number pattern."""
        apply_migrations(self.path)
        self.sql("INSERT INTO extensions VALUES ('100', 'n', '+1', 'P/1', 'UTC', '')")
        insert = (
            "INSERT INTO caller_rules (extension, position, enabled, number_kind,"
            " number_pattern, name_glob, action, created_at)"
            " VALUES ('100', 1, 1, ?, ?, ?, 'accept', 0)"
        )
        for values in [(None, None, None), ("prefix", None, "x"), (None, "+44", None)]:
            with self.assertRaises(sqlite3.IntegrityError, msg=str(values)):
                self.sql(insert, values)
        self.sql(insert, ("prefix", "+44", None))
        self.assertEqual(self.sql("SELECT count(*) FROM caller_rules"), [(1,)])
