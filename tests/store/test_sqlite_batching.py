"""SQLite only: group commit of writes, and the checked copies of configuration rows.

The writer commits every write queued in one reactor turn in one transaction, a
write that fails undone alone (the batch runs again with a savepoint per write);
the copies of extensions and rules are dropped as soon as another process (a plain
connection here, like ``callnowctl``) changes them.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorCore
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from callnowd.models import RequestEvent, RequestState
from callnowd.rules.callers import Action, RuleSpec
from callnowd.store import sqlite
from callnowd.store.errors import StoreError
from callnowd.store.sqlite import SqliteStore
from callnowd.store.sqlite_migrate import apply_migrations
from callnowd.store.sqlite_writer import TransactionLost, run_batch
from tests.store.builders import first_event, make_extension, make_request

reactor = cast(IReactorCore, global_reactor)
S = RequestState


class _Files(TestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="callnowd-batch-"))
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.path = self.directory / "callnow.sqlite3"

    def open_store(self) -> SqliteStore:
        store = SqliteStore.open(reactor, self.path)
        self.addCleanup(store.close)
        return store

    def sql(
        self, text: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        """Run ``text`` on a connection of its own, as another process would."""
        connection = sqlite3.connect(self.path)
        try:
            with connection:
                connection.execute("PRAGMA foreign_keys=ON")
                return connection.execute(text, params).fetchall()
        finally:
            connection.close()

    def count_pool_reads(self, store: SqliteStore) -> list[object]:
        """Record every query the store sends to its read pool from now on."""
        calls: list[object] = []
        pool: Any = store._pool
        original = pool.runWithConnection

        def counting(*args: object, **kwargs: object) -> object:
            calls.append(args)
            return original(*args, **kwargs)

        pool.runWithConnection = counting
        return calls


class GroupCommitTests(_Files):
    """Writes queued together commit together; each succeeds or fails on its own."""

    async def test_writes_of_one_turn_share_a_transaction(self) -> None:
        """Twenty writes issued at once commit in fewer batches, and all land."""
        store = self.open_store()
        await store.add_extension(make_extension())
        before = store._writer.batches
        requests = [make_request(f"r{n:02}", token=f"t{n}") for n in range(20)]
        results = await DeferredList(
            [
                Deferred.fromCoroutine(store.create_request(r, first_event(r)))
                for r in requests
            ],
            fireOnOneErrback=True,
        )
        self.assertEqual([created for _, (_, created) in results], [True] * 20)
        self.assertLess(store._writer.batches - before, 20)
        self.assertEqual(self.sql("SELECT count(*) FROM call_requests"), [(20,)])
        self.assertEqual(self.sql("SELECT count(*) FROM request_events"), [(20,)])

    async def test_a_failing_write_leaves_the_rest_of_its_batch(self) -> None:
        """A clashing request fails whole; the writes queued with it commit."""
        store = self.open_store()
        first = make_request("r1", token="a")
        await store.create_request(first, first_event(first))
        clash = make_request("r1", token="b", created_at=2000.0)
        fine = make_request("r2", token="c")
        moved = RequestEvent("r1", 1001.0, S.RINGING_OWNER)
        stale = RequestEvent("r2", 1001.0, S.CALLING_VISITOR)
        attempts: list[Deferred[Any]] = [
            Deferred.fromCoroutine(store.create_request(clash, first_event(clash))),
            Deferred.fromCoroutine(store.create_request(fine, first_event(fine))),
            Deferred.fromCoroutine(store.transition("r1", (S.RECEIVED,), moved)),
            Deferred.fromCoroutine(store.transition("r2", (S.RINGING_OWNER,), stale)),
        ]
        outcomes = await DeferredList(attempts, consumeErrors=True)
        oks = [ok for ok, _ in outcomes]
        self.assertEqual(oks, [False, True, True, False])
        errors = [value for ok, value in outcomes if not ok]
        assert all(isinstance(error, Failure) for error in errors)
        self.assertIsInstance(cast(Failure, errors[0]).value, StoreError)
        self.assertEqual(
            self.sql("SELECT id, token, state FROM call_requests ORDER BY id"),
            [("r1", "a", "ringing_owner"), ("r2", "c", "received")],
        )
        self.assertEqual(
            self.sql("SELECT request_id, state FROM request_events ORDER BY id"),
            [("r1", "received"), ("r2", "received"), ("r1", "ringing_owner")],
        )

    async def test_result_only_after_commit(self) -> None:
        """When a write's result arrives, another connection already reads the row."""
        store = self.open_store()
        request = make_request()
        seen: list[list[tuple[object, ...]]] = []
        pending = Deferred.fromCoroutine(
            store.create_request(request, first_event(request))
        )
        pending.addCallback(
            lambda _: seen.append(self.sql("SELECT id FROM call_requests"))
        )
        await pending
        self.assertEqual(seen, [[("r1",)]])

    def test_lost_transaction_fails_the_whole_batch(self) -> None:
        """If SQLite abandons the transaction, no write of the batch is kept."""
        apply_migrations(self.path)
        connection = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(connection.close)

        def write(cursor: sqlite3.Cursor) -> str:
            cursor.execute("INSERT INTO config_version (id, n) VALUES (2, 0)")
            return "written"

        def abandon(cursor: sqlite3.Cursor) -> None:
            cursor.execute("ROLLBACK")
            raise ValueError("gone")

        outcomes = run_batch(connection, [write, abandon, write])
        self.assertEqual([ok for ok, _ in outcomes], [False, False, False])
        self.assertIsInstance(outcomes[0][1], TransactionLost)
        self.assertEqual(self.sql("SELECT count(*) FROM config_version"), [(1,)])


class RunBatchTests(_Files):
    """One batch on a plain connection: no savepoints unless a job raises."""

    def connect(self) -> tuple[sqlite3.Connection, list[str]]:
        """A writer-like connection to a table ``t``, and the statements it runs."""
        connection = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(connection.close)
        connection.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        statements: list[str] = []
        connection.set_trace_callback(statements.append)
        return connection, statements

    def rows(self) -> list[tuple[object, ...]]:
        return self.sql("SELECT n FROM t ORDER BY n")

    def test_no_savepoint_without_a_failure(self) -> None:
        """A batch whose jobs all succeed runs in one transaction, no savepoint."""
        connection, statements = self.connect()
        outcomes = run_batch(connection, [_insert(1), _insert(2), _insert(3)])
        self.assertEqual(outcomes, [(True, 1), (True, 2), (True, 3)])
        self.assertEqual(statements[0], "BEGIN IMMEDIATE")
        self.assertEqual(statements[-1], "COMMIT")
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 1)
        self.assertEqual([s for s in statements if "SAVEPOINT" in s], [])
        self.assertEqual(self.rows(), [(1,), (2,), (3,)])

    def test_failing_job_in_the_middle_is_undone_alone(self) -> None:
        """A job that writes then raises loses its changes; the others commit."""
        connection, statements = self.connect()
        broken = ValueError("broken")

        def write_then_fail(cursor: sqlite3.Cursor) -> None:
            cursor.execute("INSERT INTO t (n) VALUES (20)")
            raise broken

        def clash(cursor: sqlite3.Cursor) -> None:
            cursor.execute("INSERT INTO t (n) VALUES (30)")
            cursor.execute("INSERT INTO t (n) VALUES (1)")  # taken: IntegrityError

        batch = [_insert(1), write_then_fail, _insert(2), clash, _insert(3)]
        outcomes = run_batch(connection, batch)
        self.assertEqual([ok for ok, _ in outcomes], [True, False, True, False, True])
        self.assertIs(outcomes[1][1], broken)
        self.assertIsInstance(outcomes[3][1], sqlite3.IntegrityError)
        self.assertEqual(
            [outcomes[0], outcomes[2], outcomes[4]], [(True, n) for n in (1, 2, 3)]
        )
        self.assertEqual(self.rows(), [(1,), (2,), (3,)])
        # Tried without savepoints, rolled back, then run again with them.
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 2)
        self.assertEqual(statements.count("ROLLBACK"), 1)
        self.assertEqual(statements.count("SAVEPOINT job"), len(batch))
        self.assertEqual(statements.count("ROLLBACK TO job"), 2)
        self.assertEqual(statements[-1], "COMMIT")

    def test_job_failing_only_on_its_first_run(self) -> None:
        """A job that succeeds when run again is committed once, with its batch."""
        connection, _ = self.connect()
        runs: list[int] = []

        def flaky(cursor: sqlite3.Cursor) -> int:
            runs.append(len(runs))
            cursor.execute("INSERT INTO t (n) VALUES (10)")
            if len(runs) == 1:
                raise ValueError("first run")
            return len(runs)

        outcomes = run_batch(connection, [_insert(1), flaky, _insert(2)])
        self.assertEqual(outcomes, [(True, 1), (True, 2), (True, 2)])
        self.assertEqual(runs, [0, 1])
        self.assertEqual(self.rows(), [(1,), (2,), (10,)])

    def test_lost_transaction_after_writes(self) -> None:
        """Writes done before SQLite abandons the transaction are not kept."""
        connection, statements = self.connect()

        def abandon(cursor: sqlite3.Cursor) -> None:
            cursor.execute("ROLLBACK")
            raise ValueError("gone")

        outcomes = run_batch(connection, [_insert(1), abandon, _insert(2)])
        self.assertEqual([ok for ok, _ in outcomes], [False, False, False])
        self.assertIsInstance(outcomes[0][1], TransactionLost)
        self.assertFalse(connection.in_transaction)
        self.assertEqual(self.rows(), [])
        self.assertEqual(statements.count("BEGIN IMMEDIATE"), 1)

    def test_begin_failure_fails_every_job(self) -> None:
        """When the transaction cannot begin, every job fails with that error."""
        connection, _ = self.connect()
        connection.execute("PRAGMA busy_timeout=0")
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        outcomes = run_batch(connection, [_insert(1), _insert(2)])
        other.execute("ROLLBACK")
        self.assertEqual([ok for ok, _ in outcomes], [False, False])
        self.assertIsInstance(outcomes[0][1], sqlite3.OperationalError)
        self.assertEqual(self.rows(), [])


def _insert(n: int) -> Callable[[sqlite3.Cursor], int]:
    def job(cursor: sqlite3.Cursor) -> int:
        cursor.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n

    return job


class CheckpointTests(_Files):
    """The committing writer checkpoints only past the bound (test_sqlite_checkpoint)."""

    def test_the_writer_checkpoints_only_past_the_bound(self) -> None:
        """SQLite's automatic checkpoint waits for WAL_BOUND_PAGES, not its 1000."""
        writer = sqlite3.connect(":memory:")
        self.addCleanup(writer.close)
        sqlite._setup_writer(writer)
        self.assertEqual(
            writer.execute("PRAGMA wal_autocheckpoint").fetchone(),
            (sqlite.WAL_BOUND_PAGES,),
        )
        self.assertGreater(sqlite.WAL_BOUND_PAGES, 1000)


class ConfigCopyTests(_Files):
    """Extensions and rules come from copies that never outlive a change."""

    async def test_repeated_lookups_do_not_query(self) -> None:
        """Once read, an extension and its rules come back without a pool query."""
        store = self.open_store()
        await store.add_extension(make_extension())
        await store.add_rule("100", RuleSpec(Action.REJECT, name_glob="x*"), 1.0)
        first = await store.find_by_callnow_id("john")
        rules = await store.list_rules("100")
        reads = self.count_pool_reads(store)
        self.assertEqual(await store.find_by_callnow_id("john"), first)
        self.assertEqual(await store.get_extension("100"), first)
        self.assertEqual(await store.list_rules("100"), rules)
        self.assertEqual(reads, [])

    async def test_change_by_another_process_is_seen_at_once(self) -> None:
        """Disabling, new holidays, new rules, removal: the next lookup sees each."""
        store = self.open_store()
        await store.add_extension(make_extension())
        extension = await store.find_by_callnow_id("john")
        assert extension is not None
        self.assertEqual(await store.list_rules("100"), [])

        self.sql("UPDATE preferences SET enabled = 0 WHERE extension = '100'")
        disabled = await store.find_by_callnow_id("john")
        assert disabled is not None
        self.assertFalse(disabled.preferences.enabled)
        self.assertEqual(await store.get_extension("100"), disabled)

        self.sql("INSERT INTO holidays VALUES ('100', '2026-01-01')")
        found = await store.get_extension("100")
        assert found is not None
        self.assertEqual(found.preferences.holidays, frozenset({date(2026, 1, 1)}))

        self.sql(
            "INSERT INTO caller_rules (extension, position, enabled, name_glob,"
            " action, created_at) VALUES ('100', 1, 1, 'x*', 'reject', 1.0)"
        )
        [rule] = await store.list_rules("100")
        self.assertEqual(rule.spec.action, Action.REJECT)

        self.sql("DELETE FROM extensions WHERE number = '100'")
        self.assertIsNone(await store.find_by_callnow_id("john"))
        self.assertIsNone(await store.get_extension("100"))
        self.assertEqual(await store.list_rules("100"), [])

    async def test_own_changes_are_seen_at_once(self) -> None:
        """A change through the same store is seen by its next lookup."""
        store = self.open_store()
        extension = make_extension()
        await store.add_extension(extension)
        await store.find_by_callnow_id("john")
        renamed = attrs.evolve(
            extension,
            preferences=attrs.evolve(extension.preferences, callnow_id="jane"),
        )
        await store.update_extension(renamed)
        self.assertIsNone(await store.find_by_callnow_id("john"))
        self.assertEqual(await store.find_by_callnow_id("jane"), renamed)
        await store.add_rule("100", RuleSpec(Action.ACCEPT, name_glob="a*"), 1.0)
        self.assertEqual(len(await store.list_rules("100")), 1)

    async def test_unreadable_counter_means_no_copies(self) -> None:
        """Without a readable counter every lookup reads the store itself."""
        store = self.open_store()
        await store.add_extension(make_extension())
        await store.find_by_callnow_id("john")
        triggers = self.sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (name,) in triggers:
            self.sql(f"DROP TRIGGER {name}")
        self.sql("DROP TABLE config_version")
        reads = self.count_pool_reads(store)
        self.assertIsNotNone(await store.find_by_callnow_id("john"))
        self.sql("UPDATE preferences SET enabled = 0 WHERE extension = '100'")
        found = await store.find_by_callnow_id("john")
        assert found is not None
        self.assertFalse(found.preferences.enabled)
        self.assertEqual(len(reads), 2)
