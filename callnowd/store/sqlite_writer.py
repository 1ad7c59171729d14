"""Group commit for the SQLite store: one thread, one connection, one transaction per batch.

Every write of :class:`callnowd.store.sqlite.SqliteStore` is a *job*, a function of
a cursor. Jobs queued while the reactor handles one turn's events go to the writer
thread together, run there in one ``BEGIN IMMEDIATE`` transaction and are committed
at once; a job that raises undoes only its own changes, the others are kept. Only
then are the jobs' Deferreds fired, on the reactor thread: a result is never seen
before it is durable. While a batch runs, the next jobs wait and form the next
batch, so under light load a batch holds one job (no added latency) and under heavy
load one commit and two thread hand-offs serve many.

Undoing one job alone takes a ``SAVEPOINT`` around every job, which costs about a
quarter of the store's typical write. So a batch first runs without them; only
when one of its jobs raises is that transaction rolled back and the batch run again
with each job in its own savepoint (such a batch costs about one and a half times
what it did with savepoints alone). Jobs must therefore be re-runnable: they act
on the database through the cursor only, and each run starts from scratch.

The second run starts a new transaction, so another writer of the file (say
``callnowctl``) may take the lock in between and the batch wait for it, as any
batch may at its start; nothing of the first run was kept. Keeping the lock with
one savepoint around the whole first run was measured and rejected: any open
savepoint makes SQLite journal every page it changes, which cost as much as the
savepoints per job (130-148 against 97-108 us per request).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from callnowd.store.sqlite_migrate import connect_with

Job = Callable[[sqlite3.Cursor], Any]
# A job's outcome: (succeeded, result or exception).
_Outcome = tuple[bool, Any]


class TransactionLost(sqlite3.OperationalError):
    """SQLite ended the batch's transaction itself (e.g. disk full); nothing was kept."""


class SqliteWriter:
    """Runs write jobs on one thread, committing each batch in one transaction.

    Args:
        reactor: delivers results (``callLater``, ``callFromThread``).
        path: the database file.
        setup: prepares the writer's connection (pragmas), in its thread.
        timeout: SQLite's busy timeout in seconds.
    """

    def __init__(
        self,
        reactor: Any,
        path: Path,
        setup: Callable[[sqlite3.Connection], None],
        timeout: float,
    ) -> None:
        self._reactor = reactor
        self._path = path
        self._setup = setup
        self._timeout = timeout
        self._pending: list[tuple[Job, Deferred[Any]]] = []
        self._running = False  # a batch is in the thread
        self._scheduled = False  # a flush is due at the next reactor turn
        self._queue: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._waiting: list[tuple[Job, Deferred[Any]]] = []
        self.batches = 0  # committed (or failed) batches, for tests and metrics
        self.jobs = 0

    def submit(self, job: Job) -> Deferred[Any]:
        """Queue ``job``; the Deferred fires with its result once committed.

        It fails with the job's own exception (its changes undone, the rest of the
        batch unaffected), or with a ``sqlite3.Error`` when the batch could not be
        committed (then nothing of the batch was kept).

        ``job`` may be called more than once, each call but the last in a
        transaction that is rolled back (see the module's docstring): it must act
        only through its cursor, with no other effect (no change to objects that
        outlive the call, no I/O), so that only the committed call counts.
        """
        done: Deferred[Any] = Deferred()
        self._pending.append((job, done))
        if not self._running and not self._scheduled:
            self._scheduled = True
            self._reactor.callLater(0, self._flush)
        return done

    def _flush(self) -> None:
        self._scheduled = False
        if self._running or not self._pending:
            return
        self._waiting, self._pending = self._pending, []
        self._running = True
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"sqlite-writer {self._path.name}", daemon=True
            )
            self._thread.start()
        self._queue.put([job for job, _ in self._waiting])

    def _delivered(self, outcomes: list[_Outcome]) -> None:
        """On the reactor thread: fire the batch's Deferreds, then send the next."""
        waiting, self._waiting = self._waiting, []
        self._running = False
        self.batches += 1
        self.jobs += len(waiting)
        for (_, done), (ok, value) in zip(waiting, outcomes, strict=True):
            if ok:
                done.callback(value)
            else:
                done.errback(value)
        # Jobs queued by those callbacks (the next step of the same requests) and
        # during the batch go out now, together.
        self._flush()

    def stop(self) -> None:
        """End the thread once its batch is done; blocking, call when idle."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    # -- the writer thread -------------------------------------------------------

    def _loop(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                batch = self._queue.get()
                if batch is None:
                    return
                try:
                    if connection is None:
                        connection = self._connect()
                    outcomes = run_batch(connection, batch)
                except sqlite3.Error as e:
                    outcomes = [(False, e)] * len(batch)
                self._reactor.callFromThread(self._delivered, outcomes)
        finally:
            if connection is not None:
                connection.close()

    def _connect(self) -> sqlite3.Connection:
        return connect_with(self._path, self._setup, timeout=self._timeout)


def run_batch(connection: sqlite3.Connection, batch: list[Job]) -> list[_Outcome]:
    """Run ``batch`` in one transaction, undoing a job that raises on its own.

    The jobs run first without savepoints; if one raises, that transaction is
    rolled back and the batch run again in a new one, every job in a savepoint of
    its own (see :meth:`SqliteWriter.submit` for what that asks of jobs).

    Returns:
        One outcome per job. When the transaction cannot be begun or committed, or
        SQLite abandons it midway, every job fails with that error.
    """
    cursor = connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
        outcomes = _run_plain(connection, cursor, batch)
        if outcomes is None:
            cursor.execute("ROLLBACK")
            cursor.execute("BEGIN IMMEDIATE")
            outcomes = _run_savepoints(connection, cursor, batch)
        cursor.execute("COMMIT")
        return outcomes
    except sqlite3.Error as e:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        return [(False, e)] * len(batch)
    finally:
        cursor.close()


def _run_plain(
    connection: sqlite3.Connection, cursor: sqlite3.Cursor, batch: list[Job]
) -> list[_Outcome] | None:
    """Run every job in the open transaction; None as soon as one raises."""
    outcomes: list[_Outcome] = []
    for job in batch:
        try:
            outcomes.append((True, job(cursor)))
        except Exception as e:  # run again in savepoints, or the batch is lost
            _check_transaction(connection, e)
            return None
    return outcomes


def _run_savepoints(
    connection: sqlite3.Connection, cursor: sqlite3.Cursor, batch: list[Job]
) -> list[_Outcome]:
    """Run every job in the open transaction, each in a savepoint of its own."""
    outcomes: list[_Outcome] = []
    for job in batch:
        cursor.execute("SAVEPOINT job")
        try:
            result = job(cursor)
        except Exception as e:  # the job's own failure, handed to its caller
            _check_transaction(connection, e)
            cursor.execute("ROLLBACK TO job")
            cursor.execute("RELEASE job")
            outcomes.append((False, e))
        else:
            cursor.execute("RELEASE job")
            outcomes.append((True, result))
    return outcomes


def _check_transaction(connection: sqlite3.Connection, error: Exception) -> None:
    """Raise TransactionLost if ``error`` left no transaction open."""
    if not connection.in_transaction:
        raise TransactionLost(f"the transaction was rolled back: {error}") from error
