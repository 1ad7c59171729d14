"""Store URLs: parsing for config validation, and opening the store they name."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import cast

from twisted.internet import reactor as global_reactor
from twisted.internet.interfaces import IReactorCore
from twisted.trial.unittest import SynchronousTestCase, TestCase

from callnowd.store.open import open_store, parse_store_url
from callnowd.store.sqlite import SqliteStore, StoreError
from tests.store.builders import make_extension

reactor = cast(IReactorCore, global_reactor)


class ParseStoreUrlTests(SynchronousTestCase):
    """parse_store_url accepts sqlite:<path> and postgresql:// URLs only."""

    def test_sqlite_paths(self) -> None:
        """A sqlite: URL gives its path exactly as written."""
        self.assertEqual(
            parse_store_url("sqlite:var/callnow.sqlite3"),
            ("sqlite", "var/callnow.sqlite3"),
        )
        self.assertEqual(
            parse_store_url("sqlite:/var/lib/callnowd/db.sqlite3"),
            ("sqlite", "/var/lib/callnowd/db.sqlite3"),
        )

    def test_postgresql(self) -> None:
        """A postgresql:// URL is recognised and kept whole."""
        url = "postgresql://callnow@db.example/callnow"
        self.assertEqual(parse_store_url(url), ("postgresql", url))

    def test_rejected_urls_name_the_url(self) -> None:
        """Unsupported or ambiguous URLs raise ValueError quoting the URL."""
        for url in (
            "",
            "sqlite:",
            "sqlite:  ",
            "sqlite:///var/db.sqlite3",
            "sqlite://db.sqlite3",
            "sqlite::memory:",
            "sqlite:file:db.sqlite3?mode=ro",
            "sqlite:db\0.sqlite3",
            "mysql://x/y",
            "postgres://x/y",
            "var/callnow.sqlite3",
            "SQLITE:var/db.sqlite3",
        ):
            with self.assertRaises(ValueError, msg=url) as raised:
                parse_store_url(url)
            self.assertIn(repr(url), str(raised.exception))


class OpenStoreTests(TestCase):
    """open_store opens the SQLite file a URL names."""

    def setUp(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="callnowd-open-"))
        self.addCleanup(shutil.rmtree, self.base, ignore_errors=True)

    async def test_relative_path_is_under_base_dir(self) -> None:
        """A relative sqlite path is resolved against base_dir."""
        store = open_store(reactor, "sqlite:var/callnow.sqlite3", self.base)
        self.addCleanup(store.close)
        await store.add_extension(make_extension())
        self.assertIsInstance(store, SqliteStore)
        self.assertTrue((self.base / "var" / "callnow.sqlite3").is_file())

    async def test_absolute_path_ignores_base_dir(self) -> None:
        """An absolute sqlite path is used as it is."""
        target = self.base / "elsewhere" / "db.sqlite3"
        store = open_store(reactor, f"sqlite:{target}", Path("/nonexistent"))
        self.addCleanup(store.close)
        await store.ping()
        self.assertTrue(target.is_file())

    def test_postgresql_not_available(self) -> None:
        """A postgresql URL raises StoreError saying it is not available."""
        with self.assertRaises(StoreError) as raised:
            open_store(reactor, "postgresql://callnow@db/callnow", self.base)
        self.assertIn("PostgreSQL store is not available", str(raised.exception))

    def test_bad_url_is_value_error(self) -> None:
        """An unsupported URL raises ValueError before touching the disk."""
        with self.assertRaises(ValueError):
            open_store(reactor, "redis://localhost", self.base)
        self.assertEqual(list(self.base.iterdir()), [])
