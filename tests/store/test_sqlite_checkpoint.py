"""The WAL checkpoint thread: copies the WAL into the database, at the lowest priority."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path
from typing import cast

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.trial.unittest import SynchronousTestCase, TestCase

from callnowd.store import sqlite
from callnowd.store.sqlite import SqliteStore
from callnowd.store.sqlite_checkpoint import (
    CHECKPOINT_NICENESS,
    Checkpointer,
    lower_thread_priority,
)
from callnowd.store.sqlite_migrate import connect_with
from tests.store.builders import first_event, make_extension, make_request

reactor = cast(IReactorCore, global_reactor)


class _Database(TestCase):
    def setUp(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="callnowd-checkpoint-"))
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        self.path = directory / "callnow.sqlite3"


class CheckpointerTests(_Database):
    """One checkpoint at a time, on a thread of its own, outcome on the reactor."""

    def fill_wal(self) -> sqlite3.Connection:
        """A writer that never checkpoints, and a WAL with a thousand rows in it."""
        writer = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(writer.close)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE t (x TEXT)")
        for n in range(1000):
            writer.execute("INSERT INTO t VALUES (?)", (f"row {n:04} " + "x" * 200,))
        return writer

    async def run_one(self, checkpointer: Checkpointer, outcomes: list[object]) -> None:
        finished: Deferred[None] = Deferred()
        before = len(outcomes)

        def poll() -> None:
            if len(outcomes) > before:
                finished.callback(None)
            else:
                reactor.callLater(0.01, poll)  # type: ignore[attr-defined]

        self.assertTrue(checkpointer.start())
        self.assertFalse(checkpointer.start())  # one at a time
        poll()
        await finished

    async def test_copies_the_wal_into_the_database_file(self) -> None:
        """The database file holds the rows afterwards; the outcome is reported."""
        self.fill_wal()
        size_before = self.path.stat().st_size
        outcomes: list[object] = []
        checkpointer = Checkpointer(
            reactor, self.path, sqlite._setup_connection, outcomes.append
        )
        self.addCleanup(checkpointer.stop)
        await self.run_one(checkpointer, outcomes)
        self.assertEqual(outcomes, [None])
        self.assertFalse(checkpointer.running)
        self.assertGreater(self.path.stat().st_size, size_before + 200 * 1000)
        await self.run_one(checkpointer, outcomes)  # the same thread, again
        self.assertEqual(outcomes, [None, None])

    async def test_the_thread_runs_at_the_lowest_priority(self) -> None:
        """On Linux the checkpoint thread is at nice 19; the caller's is unchanged."""
        if not sys.platform.startswith("linux"):
            self.skipTest("per-thread priorities are Linux's")
        self.fill_wal()
        outcomes: list[object] = []
        checkpointer = Checkpointer(
            reactor, self.path, sqlite._setup_connection, outcomes.append
        )
        self.addCleanup(checkpointer.stop)
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        await self.run_one(checkpointer, outcomes)
        assert checkpointer.native_id is not None
        self.assertEqual(
            os.getpriority(os.PRIO_PROCESS, checkpointer.native_id),
            max(mine, CHECKPOINT_NICENESS),
        )
        self.assertEqual(
            os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), mine
        )

    async def test_a_failed_checkpoint_is_reported(self) -> None:
        """An SQLite error reaches the callback; the next checkpoint may run."""
        outcomes: list[object] = []

        def broken(connection: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        checkpointer = Checkpointer(reactor, self.path, broken, outcomes.append)
        self.addCleanup(checkpointer.stop)
        await self.run_one(checkpointer, outcomes)
        self.assertIsInstance(outcomes[0], sqlite3.OperationalError)
        self.assertFalse(checkpointer.running)

    async def test_a_failed_setup_is_tried_again(self) -> None:
        """Any error is reported, the connection is not kept, the next one sets up anew."""
        self.fill_wal()
        outcomes: list[object] = []
        setups: list[int] = []

        def flaky(connection: sqlite3.Connection) -> None:
            setups.append(len(setups))
            if len(setups) == 1:
                raise RuntimeError("not yet")
            sqlite._setup_connection(connection)

        checkpointer = Checkpointer(reactor, self.path, flaky, outcomes.append)
        self.addCleanup(checkpointer.stop)
        await self.run_one(checkpointer, outcomes)
        await self.run_one(checkpointer, outcomes)
        self.assertIsInstance(outcomes[0], RuntimeError)
        self.assertEqual(outcomes[1:], [None])
        self.assertEqual(setups, [0, 1])


class StoreCheckpointTests(_Database):
    """The store checkpoints on that thread every so many writes, never in the pool."""

    async def test_checkpoint_every_so_many_writes_and_close_waits(self) -> None:
        store = SqliteStore.open(reactor, self.path)
        self.addCleanup(store.close)
        started: list[bool] = []
        checkpointer = store._checkpointer
        start = checkpointer.start

        def counting() -> bool:
            started.append(start())
            return started[-1]

        checkpointer.start = counting  # type: ignore[method-assign]
        pool_calls: list[object] = []
        run = store._pool.runWithConnection

        def spy(*args: object, **kwargs: object) -> object:
            pool_calls.append(args[1])
            return run(*args, **kwargs)

        store._pool.runWithConnection = spy  # type: ignore[method-assign]
        await store.add_extension(make_extension())
        for n in range(sqlite.CHECKPOINT_EVERY + 1):
            request = make_request(f"c{n:04}", token=f"c{n}")
            await store.create_request(request, first_event(request))
        self.assertEqual(started, [True])
        self.assertEqual(pool_calls, [])  # no checkpoint (nor any read) in the pool
        await store.close()  # waits for the checkpoint
        self.assertFalse(checkpointer.running)

    async def test_the_wal_stays_bounded_when_the_thread_gets_no_cpu(self) -> None:
        """With the checkpoint thread starved, the writer bounds the WAL itself."""
        sizes = {}
        for bound, path in ((64, self.path), (0, self.path.with_name("unbounded.db"))):
            self.patch(sqlite, "WAL_BOUND_PAGES", bound)  # 0: what there was before
            store = SqliteStore.open(reactor, path)
            # Never started: as if the thread at nice 19 got no CPU at all.
            store._checkpointer.start = lambda: False  # type: ignore[method-assign]
            await store.add_extension(make_extension())
            for n in range(400):
                request = make_request(f"w{n:04}", token=f"w{n}")
                await store.create_request(request, first_event(request))
            sizes[bound] = Path(f"{path}-wal").stat().st_size
            await store.close()
        # Bounded, the WAL is restarted after each automatic checkpoint, so it
        # never holds much more than the bound (plus one commit's pages).
        self.assertLess(sizes[64], 4 * 64 * 4096)
        self.assertGreater(sizes[0], 4 * sizes[64])


class PriorityTests(SynchronousTestCase):
    def test_other_systems_are_left_alone(self) -> None:
        """Elsewhere setpriority would renice a whole process: nothing is done."""
        self.patch(sys, "platform", "darwin")
        self.assertFalse(lower_thread_priority())


class ConnectWithTests(SynchronousTestCase):
    """sqlite_migrate.connect_with, shared by the writer, checkpoint and cache."""

    def test_a_failed_setup_leaves_no_connection_open(self) -> None:
        """The connection is closed before the setup's error is raised."""
        seen: list[sqlite3.Connection] = []

        def setup(connection: sqlite3.Connection) -> None:
            seen.append(connection)
            raise sqlite3.OperationalError("database is locked")

        path = Path(tempfile.mkdtemp(prefix="callnowd-connect-")) / "db.sqlite3"
        self.addCleanup(shutil.rmtree, path.parent, ignore_errors=True)
        with self.assertRaises(sqlite3.OperationalError):
            connect_with(path, setup)
        with self.assertRaises(sqlite3.ProgrammingError):  # closed
            seen[0].execute("SELECT 1")

    def test_autocommit_and_timeout(self) -> None:
        """No implicit BEGIN; the timeout given is the one used."""
        path = Path(tempfile.mkdtemp(prefix="callnowd-connect-")) / "db.sqlite3"
        self.addCleanup(shutil.rmtree, path.parent, ignore_errors=True)
        connection = connect_with(path, lambda c: None, timeout=0)
        self.addCleanup(connection.close)
        self.assertIsNone(connection.isolation_level)
        self.assertEqual(connection.execute("PRAGMA busy_timeout").fetchone(), (0,))
