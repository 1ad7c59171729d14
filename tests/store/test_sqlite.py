"""The SQLite store: the shared contract on a real file, plus what only SQLite has.

Migrations, WAL mode, reopening after a restart, several stores (daemon + CLI) on
one file, and transactions that fail without leaving half-written rows.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import cast

import attrs
import pytest
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.internet.interfaces import IReactorCore
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from callnowd.models import RequestEvent, RequestState
from callnowd.store import sqlite as sqlite_module
from callnowd.store.interface import StaleState, Store
from callnowd.store.sqlite import (
    SqliteStore,
    StoreClosed,
    StoreError,
    StoreUnavailable,
)
from callnowd.store.sqlite_migrate import Migration, apply_migrations, load_migrations
from tests.store.builders import (
    first_event,
    full_extension,
    make_extension,
    make_request,
)
from tests.store.contract import StoreContract

reactor = cast(IReactorCore, global_reactor)
S = RequestState
ROOT = Path(__file__).resolve().parents[2]

# Another process (like callnowctl next to the daemon) writing through its own store.
CHILD_WRITER = """
import sys
from pathlib import Path
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from callnowd.store.sqlite import SqliteStore
from tests.store.builders import first_event, make_request

async def main(reactor):
    store = SqliteStore.open(reactor, Path(sys.argv[1]))
    try:
        for n in range(int(sys.argv[2])):
            request = make_request(f"child-{n:02}", created_at=2000.0 + n)
            await store.create_request(request, first_event(request))
    finally:
        await store.close()

react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""


class _SqliteFiles(TestCase):
    """Gives each test a temporary directory and closes every store it opens."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="callnowd-store-"))
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.path = self.directory / "var" / "callnow.sqlite3"

    def open_store(self) -> SqliteStore:
        store = SqliteStore.open(reactor, self.path)
        self.addCleanup(store.close)
        return store

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Run ``sql`` on a plain connection of its own, outside any store."""
        connection = sqlite3.connect(self.path)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()


class SqliteStoreContractTests(StoreContract, _SqliteFiles):
    """The shared Store contract, run against SqliteStore on a real file."""

    def make_store(self) -> Store:
        return self.open_store()


class SqliteSchemaTests(_SqliteFiles):
    """Opening files: directories, pragmas, migrations and unknown schemas."""

    async def test_open_creates_directory_and_wal_database(self) -> None:
        """Opening creates the parent directory and a database in WAL mode."""
        store = self.open_store()
        await store.ping()
        self.assertTrue(self.path.is_file())
        self.assertEqual(self.query("PRAGMA journal_mode"), [("wal",)])
        self.assertEqual(store.path, self.path)

    async def test_pool_connections_are_configured(self) -> None:
        """Pooled connections run with foreign keys, busy timeout and NORMAL sync."""
        store = self.open_store()
        pool = store._pool
        self.assertEqual(await pool.runQuery("PRAGMA foreign_keys"), [(1,)])
        self.assertEqual(await pool.runQuery("PRAGMA busy_timeout"), [(5000,)])
        self.assertEqual(await pool.runQuery("PRAGMA synchronous"), [(1,)])
        self.assertEqual(await pool.runQuery("PRAGMA journal_mode"), [("wal",)])

    async def test_removal_cascades_to_preferences(self) -> None:
        """Removing an extension deletes its preferences row (foreign keys on)."""
        store = self.open_store()
        await store.add_extension(make_extension("100", "john"))
        await store.remove_extension("100")
        self.assertEqual(self.query("SELECT count(*) FROM preferences"), [(0,)])

    def test_migrations_recorded_and_not_reapplied(self) -> None:
        """Each migration is recorded once; reopening applies nothing again."""
        versions = [migration.version for migration in load_migrations()]
        self.assertEqual(versions[0], 1)
        self.assertEqual(apply_migrations(self.path), versions)
        recorded = self.query("SELECT version, applied_at FROM schema_migrations")
        self.assertEqual([row[0] for row in recorded], versions)
        self.assertEqual(apply_migrations(self.path), [])
        self.open_store()
        self.assertEqual(
            self.query("SELECT version, applied_at FROM schema_migrations"), recorded
        )

    def test_newer_schema_is_refused(self) -> None:
        """A database from a newer callnowd raises StoreError naming the file."""
        apply_migrations(self.path)
        newer = len(load_migrations()) + 1
        connection = sqlite3.connect(self.path)
        with connection:
            connection.execute("INSERT INTO schema_migrations VALUES (?, 0)", (newer,))
        connection.close()
        with self.assertRaises(StoreError) as raised:
            SqliteStore.open(reactor, self.path)
        self.assertIn(str(self.path), str(raised.exception))
        self.assertIn(f"version {newer} is newer", str(raised.exception))

    def test_not_a_database_is_refused(self) -> None:
        """A file that is not SQLite raises StoreError naming the file."""
        self.path.parent.mkdir(parents=True)
        self.path.write_bytes(b"this is not a database" * 100)
        with self.assertRaises(StoreError) as raised:
            SqliteStore.open(reactor, self.path)
        self.assertIn(str(self.path), str(raised.exception))

    def test_unusable_directory_is_refused(self) -> None:
        """A parent path that is a file raises StoreError naming the path."""
        blocker = self.directory / "var"
        blocker.write_text("a file where the directory should be")
        with self.assertRaises(StoreError) as raised:
            SqliteStore.open(reactor, self.path)
        self.assertIn(str(self.path), str(raised.exception))

    def test_failed_migration_leaves_previous_version(self) -> None:
        """A migration that fails midway is rolled back entirely and not recorded."""
        first = Migration(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);\n")
        broken = Migration(
            2,
            "0002_b.sql",
            "CREATE TABLE b (y INTEGER);\nINSERT INTO a VALUES (1);\nNOT SQL;\n",
        )
        with self.assertRaises(StoreError) as raised:
            apply_migrations(self.path, [first, broken])
        self.assertIn(str(self.path), str(raised.exception))
        self.assertIn("0002_b.sql", str(raised.exception))
        self.assertEqual(self.query("SELECT version FROM schema_migrations"), [(1,)])
        self.assertEqual(self.query("SELECT count(*) FROM a"), [(0,)])
        tables = self.query("SELECT name FROM sqlite_master WHERE name = 'b'")
        self.assertEqual(tables, [])
        fixed = attrs.evolve(broken, sql="CREATE TABLE b (y INTEGER);\n")
        self.assertEqual(apply_migrations(self.path, [first, fixed]), [2])

    async def test_closed_store_refuses_work(self) -> None:
        """After close, calls raise StoreClosed; closing again is harmless."""
        store = SqliteStore.open(reactor, self.path)
        await store.ping()
        await store.close()
        threads = store._pool.threadpool.threads
        self.assertEqual([thread for thread in threads if thread.is_alive()], [])
        await store.close()
        with self.assertRaises(StoreClosed):
            await store.ping()
        self.assertTrue(issubclass(StoreClosed, StoreError))

    async def test_close_waits_for_queries_in_flight(self) -> None:
        """Closing lets a query already started finish with its result."""
        store = SqliteStore.open(reactor, self.path)
        await store.add_extension(make_extension())
        pending = Deferred.fromCoroutine(store.list_extensions())
        await store.close()
        self.assertEqual(await pending, [make_extension()])


class SqliteDurabilityTests(_SqliteFiles):
    """Data survives restarts, is shared between stores and is never half-written."""

    async def test_restart_keeps_everything(self) -> None:
        """Everything written before close is there after reopening the file."""
        store = SqliteStore.open(reactor, self.path)
        extension, request = full_extension(), make_request(dedupe_key="k")
        await store.add_extension(extension)
        await store.create_request(request, first_event(request))
        moved = await store.transition(
            "r1", (S.RECEIVED,), RequestEvent("r1", 1001.0, S.RINGING_OWNER)
        )
        events = await store.request_events("r1")
        await store.close()

        reopened = self.open_store()
        self.assertEqual(await reopened.list_extensions(), [extension])
        self.assertEqual(await reopened.get_request("r1"), moved)
        self.assertEqual(await reopened.request_events("r1"), events)
        self.assertEqual(len(events), 2)
        again = make_request("r2", dedupe_key="k")
        result = await reopened.create_request(
            again, first_event(again), dedupe_since=0.0
        )
        self.assertEqual(result, (moved, False))

    async def test_two_stores_see_each_others_writes(self) -> None:
        """A daemon's store and a CLI's store on one file read each other's writes."""
        daemon, cli = self.open_store(), self.open_store()
        await cli.add_extension(make_extension("100", "john"))
        self.assertEqual(await daemon.get_extension("100"), make_extension())
        request = make_request()
        await daemon.create_request(request, first_event(request))
        self.assertEqual(await cli.get_request("r1"), request)
        await cli.remove_extension("100")
        self.assertIsNone(await daemon.find_by_callnow_id("john"))

    async def test_concurrent_writes_from_two_stores_all_land(self) -> None:
        """Many writes at once from two stores all commit; none is lost or locked."""
        stores = [self.open_store(), self.open_store()]
        await stores[0].add_extension(make_extension())
        requests = [make_request(f"r{n:02}", created_at=1000.0 + n) for n in range(40)]
        await gatherResults(
            [
                Deferred.fromCoroutine(
                    stores[n % 2].create_request(request, first_event(request))
                )
                for n, request in enumerate(requests)
            ]
        )
        found = await stores[1].list_requests()
        self.assertEqual(sorted(found, key=lambda r: r.id), requests)
        counts = self.query("SELECT count(*) FROM request_events")
        self.assertEqual(counts, [(40,)])

    @pytest.mark.integration
    async def test_another_process_writes_at_the_same_time(self) -> None:
        """Writes from another process interleave with ours; every one commits."""
        store = self.open_store()
        await store.add_extension(make_extension())
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = getProcessOutputAndValue(
            sys.executable,
            ["-c", CHILD_WRITER, str(self.path), "200"],
            env=env,
            path=str(ROOT),
        )
        # Keep writing until the child is done, so the two writers overlap.
        ours: list[str] = []
        while not child.called or len(ours) < 30:
            request = make_request(f"ours-{len(ours):04}", created_at=1000.0)
            await store.create_request(request, first_event(request))
            ours.append(request.id)
        _out, err, code = await child
        self.assertEqual(code, 0, err.decode(errors="replace"))
        found = {request.id for request in await store.list_requests(limit=10**6)}
        self.assertEqual(found, {*ours, *(f"child-{n:02}" for n in range(200))})
        events = self.query("SELECT count(*) FROM request_events")
        self.assertEqual(events, [(len(ours) + 200,)])

    async def test_racing_transitions_one_wins(self) -> None:
        """Two stores moving the same request from one state: exactly one succeeds."""
        daemon, cli = self.open_store(), self.open_store()
        await daemon.add_extension(make_extension())
        for n in range(10):
            request = make_request(f"r{n}")
            await daemon.create_request(request, first_event(request))
            attempts = [
                Deferred.fromCoroutine(
                    store.transition(
                        request.id,
                        (S.RECEIVED,),
                        RequestEvent(request.id, 1001.0, state),
                    )
                )
                for store, state in ((daemon, S.RINGING_OWNER), (cli, S.CANCELLED))
            ]
            outcomes = await DeferredList(attempts, consumeErrors=True)
            winners = [value for ok, value in outcomes if ok]
            losers = [value for ok, value in outcomes if not ok]
            self.assertEqual(len(winners), 1)
            self.assertEqual(len(losers), 1)
            failure = losers[0]
            assert isinstance(failure, Failure)
            self.assertIsInstance(failure.value, StaleState)
            events = await cli.request_events(request.id)
            self.assertEqual(
                [event.state for event in events], [S.RECEIVED, winners[0].state]
            )

    async def test_duplicate_request_writes_nothing(self) -> None:
        """A request whose id is taken fails whole: no request, no event written."""
        store = self.open_store()
        request = make_request("r1")
        await store.create_request(request, first_event(request))
        clash = make_request("r1", token="another-token", created_at=2000.0)
        with self.assertRaises(StoreError):
            await store.create_request(clash, first_event(clash))
        self.assertEqual(await store.get_request("r1"), request)
        self.assertIsNone(await store.get_request_by_token("john", "another-token"))
        self.assertEqual(await store.request_events("r1"), [first_event(request)])

    async def test_duplicate_token_writes_nothing(self) -> None:
        """A request whose token is taken fails whole: no request, no event written."""
        store = self.open_store()
        request = make_request("r1", token="shared")
        await store.create_request(request, first_event(request))
        clash = make_request("r2", token="shared")
        with self.assertRaises(StoreError):
            await store.create_request(clash, first_event(clash))
        self.assertIsNone(await store.get_request("r2"))
        self.assertEqual(await store.request_events("r2"), [])

    async def test_event_for_another_request_is_refused(self) -> None:
        """create_request and transition refuse an event about another request."""
        store = self.open_store()
        request = make_request("r1")
        with self.assertRaises(ValueError):
            await store.create_request(request, first_event(make_request("r2")))
        self.assertIsNone(await store.get_request("r1"))
        await store.create_request(request, first_event(request))
        with self.assertRaises(ValueError):
            await store.transition(
                "r1", (S.RECEIVED,), RequestEvent("r2", 1.0, S.CANCELLED)
            )
        self.assertEqual(await store.get_request("r1"), request)

    async def test_sqlite_failure_is_store_error(self) -> None:
        """An error inside SQLite reaches the caller as StoreError naming the file."""
        store = self.open_store()
        connection = sqlite3.connect(self.path)
        with connection:
            connection.execute("DROP TABLE request_events")
        connection.close()
        with self.assertRaises(StoreError) as raised:
            await store.request_events("r1")
        self.assertIn(str(self.path), str(raised.exception))
        self.assertIn("no such table", str(raised.exception))
        self.assertNotIsInstance(raised.exception, StoreUnavailable)  # it lasts
        self.assertIsInstance(raised.exception.__cause__, sqlite3.OperationalError)

    async def test_write_locked_out_is_store_error(self) -> None:
        """A write locked out past the busy timeout is a StoreError; nothing is kept.

        Once the other writer lets go, the same write succeeds.
        """
        self.patch(sqlite_module, "BUSY_TIMEOUT_MS", 200)
        store = self.open_store()
        request = make_request("locked-1")
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        with self.assertRaises(StoreUnavailable) as raised:
            await store.create_request(request, first_event(request))
        self.assertIn("locked", str(raised.exception))
        other.execute("ROLLBACK")
        self.assertEqual(self.query("SELECT count(*) FROM call_requests"), [(0,)])
        self.assertEqual(self.query("SELECT count(*) FROM request_events"), [(0,)])
        stored, created = await store.create_request(request, first_event(request))
        self.assertTrue(created)
        self.assertEqual(stored.id, "locked-1")

    async def test_negative_limit_is_refused(self) -> None:
        """A negative limit is a ValueError, not SQLite's 'no limit'."""
        store = self.open_store()
        with self.assertRaises(ValueError):
            await store.list_requests(limit=-1)
