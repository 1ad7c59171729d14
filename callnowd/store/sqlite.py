"""The SQLite store: :class:`callnowd.store.interface.Store` on one database file.

No query runs on the reactor thread except the one-row configuration counter of
:mod:`callnowd.store.sqlite_cache`. Reads run in the threads of a
``twisted.enterprise.adbapi`` pool; writes are grouped by
:mod:`callnowd.store.sqlite_writer` (one thread, one ``BEGIN IMMEDIATE``
transaction per batch, a failing write undone alone, results only after the
commit). Several processes (daemons, ``callnowctl``) may use the same file at
once: connections run in WAL mode with a busy timeout, every write is atomic (so
read-modify-write steps such as :meth:`SqliteStore.transition` cannot
interleave), and reads are single statements or snapshots. Extensions and rules
are served from copies checked against the configuration counter before use.
The call-request and caller-rule operations are mixed in from
:mod:`callnowd.store.sqlite_requests` and :mod:`callnowd.store.sqlite_rules`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python.failure import Failure

from callnowd.models import Extension
from callnowd.rules.callers import CallerRule
from callnowd.store import rows
from callnowd.store import sqlite_sql as sql
from callnowd.store.errors import StoreClosed, StoreError, StoreUnavailable
from callnowd.store.interface import (
    DuplicateCallNowId,
    DuplicateExtension,
    UnknownExtension,
)
from callnowd.store.sqlite_cache import ConfigCache, read_version
from callnowd.store.sqlite_checkpoint import Checkpointer
from callnowd.store.sqlite_migrate import BUSY_TIMEOUT_MS, apply_migrations
from callnowd.store.sqlite_requests import SqliteRequests
from callnowd.store.sqlite_rules import SqliteRules, ordered_rules
from callnowd.store.sqlite_writer import SqliteWriter

__all__ = ["SqliteStore", "StoreClosed", "StoreError", "StoreUnavailable"]

_T = TypeVar("_T")
_log = Logger()
_Work = Callable[[sqlite3.Cursor], _T]


def _setup_connection(connection: sqlite3.Connection) -> None:
    """Prepare every pooled connection (adbapi's ``cp_openfun``)."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA synchronous=NORMAL")


#: Writes between two WAL checkpoints (each write touches a few pages; SQLite's
#: own automatic checkpoint comes every 1000 pages).
CHECKPOINT_EVERY = 300


#: WAL pages (4 KiB each by default) past which the writer checkpoints itself.
WAL_BOUND_PAGES = 8192


def _setup_writer(connection: sqlite3.Connection) -> None:
    """The writer's connection: as the others, but it seldom checkpoints itself.

    A checkpoint copies the WAL into the database and syncs it (milliseconds);
    done by the committing connection, every write queued behind that commit
    would wait for it. The store runs them in a thread of their own instead
    (:mod:`callnowd.store.sqlite_checkpoint`), at the lowest priority. That
    thread may get no CPU at all while the daemon is saturated; SQLite's own
    automatic checkpoint, after a commit that leaves ``WAL_BOUND_PAGES`` or more
    pages in the WAL, is the bound on the WAL's size then (never reached while
    the checkpoint thread keeps up: it runs every ``CHECKPOINT_EVERY`` writes).
    The bound is not strict: SQLite runs one checkpoint at a time, so while the
    thread is starved in the middle of one, the writer's attempts find the
    checkpoint lock taken and the WAL grows until that one ends (36-66 MB after
    15 s of 2,500 requests/s offered to a daemon serving ~1,300/s; 211-260 MB
    without the bound).
    """
    _setup_connection(connection)
    connection.execute(f"PRAGMA wal_autocheckpoint={WAL_BOUND_PAGES}")


def _read_in_thread(connection: Any, work: _Work[_T]) -> _T:
    """Run the read ``work`` on a pool thread.

    ``connection`` is adbapi's wrapper of an autocommit ``sqlite3.Connection``;
    adbapi's own commit/rollback afterwards are no-ops.
    """
    cursor: sqlite3.Cursor = connection.cursor()
    try:
        return work(cursor)
    finally:
        cursor.close()


def _snapshot(read: _Work[_T]) -> _Work[tuple[_T, int | None]]:
    """``read`` and the configuration counter, from one read transaction."""

    def work(cursor: sqlite3.Cursor) -> tuple[_T, int | None]:
        cursor.execute("BEGIN")
        try:
            version = read_version(cursor)
            return read(cursor), version
        finally:
            cursor.execute("COMMIT")

    return work


class SqliteStore(SqliteRequests, SqliteRules):
    """The :class:`~callnowd.store.interface.Store` on one SQLite file.

    Build it with :meth:`open`; close it with :meth:`close`. Besides the domain
    exceptions of the interface, every method raises :class:`StoreError` when
    SQLite fails (e.g. the file stays locked past the busy timeout).
    """

    def __init__(
        self, pool: ConnectionPool, path: Path, writer: SqliteWriter, reactor: Any
    ) -> None:
        self._pool = pool
        self._path = path
        self._writer = writer
        self._checkpointer = Checkpointer(
            reactor, path, _setup_connection, self._checkpointed
        )
        self._cache = ConfigCache(path)
        self._closed = False
        self._in_flight = 0  # queries started and not yet finished
        self._drained: list[Deferred[None]] = []  # waiting for _in_flight == 0
        self._checkpointed_at = 0  # the writer's job count at the last checkpoint

    @classmethod
    def open(cls, reactor: IReactorCore, path: Path) -> SqliteStore:
        """Open (creating if needed) the store at ``path``; blocking.

        Creates the parent directory and applies pending migrations with a plain
        connection, so call it before the reactor runs (``makeService``, the CLI).

        Args:
            reactor: runs the pool; must also provide ``IReactorFromThreads`` (every
                real reactor does).
            path: the database file.

        Returns:
            The store; its thread pool starts when the reactor runs.

        Raises:
            StoreError: the file cannot be created or opened, a migration failed, or
                its schema is newer than this code knows.
        """
        apply_migrations(path)
        pool = ConnectionPool(
            "sqlite3",
            str(path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
            isolation_level=None,
            cp_min=1,
            cp_max=4,
            cp_openfun=_setup_connection,
            cp_reactor=reactor,
        )
        writer = SqliteWriter(reactor, path, _setup_writer, BUSY_TIMEOUT_MS / 1000)
        return cls(pool, path, writer, reactor)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def _run(self, work: _Work[_T], *, write: bool = False) -> _T:
        """Run ``work``: writes by the writer (committed), reads in the pool.

        SQLite's own errors become StoreError, those that pass by themselves
        (:func:`_passing`) StoreUnavailable.
        """
        if self._closed:
            raise StoreClosed(f"{self._path}: the store is closed")
        self._in_flight += 1
        try:
            if write:
                result = self._writer.submit(work)
            else:
                result = self._pool.runWithConnection(_read_in_thread, work)
            return await cast("Deferred[_T]", result)
        except sqlite3.Error as e:
            # Locked past the busy timeout, disk full, damaged file...: callers
            # handle one error type for "the store is not usable", and may tell
            # the passing ones apart.
            error = StoreUnavailable if _passing(e) else StoreError
            raise error(f"{self._path}: {e}") from e
        finally:
            if write and self._writer.jobs - self._checkpointed_at >= CHECKPOINT_EVERY:
                self._start_checkpoint()
            self._finished()

    def _finished(self) -> None:
        """One query (or checkpoint) less in flight; wake ``close`` at zero."""
        self._in_flight -= 1
        if not self._in_flight and self._drained:
            drained, self._drained = self._drained, []
            for waiter in drained:
                waiter.callback(None)

    def _start_checkpoint(self) -> None:
        """Checkpoint the WAL on the checkpoint thread (one at a time)."""
        if self._closed or not self._checkpointer.start():
            return
        self._checkpointed_at = self._writer.jobs
        self._in_flight += 1  # close waits for it

    def _checkpointed(self, error: Exception | None) -> None:
        if error is not None:
            _log.failure(
                "WAL checkpoint of {path} failed",
                Failure(error),
                path=self._path,
            )
        self._finished()

    async def add_extension(self, extension: Extension) -> None:
        """See :meth:`callnowd.store.interface.Store.add_extension`."""

        def work(cursor: sqlite3.Cursor) -> None:
            if sql.extension_exists(cursor, extension.number):
                raise DuplicateExtension(extension.number)
            callnow_id = extension.preferences.callnow_id
            if sql.callnow_id_owner(cursor, callnow_id) is not None:
                raise DuplicateCallNowId(callnow_id)
            cursor.execute(sql.INSERT_EXTENSION, rows.extension_values(extension))
            cursor.execute(
                sql.INSERT_PREFERENCES,
                (extension.number, *rows.preferences_values(extension.preferences)),
            )
            sql.write_holidays(
                cursor,
                extension.number,
                rows.encode_holidays(extension.preferences.holidays),
            )

        await self._run(work, write=True)

    async def update_extension(self, extension: Extension) -> None:
        """See :meth:`callnowd.store.interface.Store.update_extension`."""

        def work(cursor: sqlite3.Cursor) -> None:
            if not sql.extension_exists(cursor, extension.number):
                raise UnknownExtension(extension.number)
            callnow_id = extension.preferences.callnow_id
            owner = sql.callnow_id_owner(cursor, callnow_id)
            if owner is not None and owner != extension.number:
                raise DuplicateCallNowId(callnow_id)
            number, *values = rows.extension_values(extension)
            cursor.execute(sql.UPDATE_EXTENSION, (*values, number))
            cursor.execute(
                sql.UPDATE_PREFERENCES,
                (*rows.preferences_values(extension.preferences), number),
            )
            sql.write_holidays(
                cursor, number, rows.encode_holidays(extension.preferences.holidays)
            )

        await self._run(work, write=True)

    async def remove_extension(self, number: str) -> None:
        """See :meth:`callnowd.store.interface.Store.remove_extension`."""

        def work(cursor: sqlite3.Cursor) -> None:
            cursor.execute(sql.DELETE_EXTENSION, (number,))
            if cursor.rowcount == 0:
                raise UnknownExtension(number)

        await self._run(work, write=True)

    async def get_extension(self, number: str) -> Extension | None:
        """See :meth:`callnowd.store.interface.Store.get_extension`."""
        if self._cache.current() is not None:
            kept = self._cache.by_number.get(number)
            if kept is not None:
                return kept
        return await self._read_extension(
            sql.SELECT_EXTENSION + " WHERE e.number = ?", number
        )

    async def find_by_callnow_id(self, callnow_id: str) -> Extension | None:
        """See :meth:`callnowd.store.interface.Store.find_by_callnow_id`."""
        if self._cache.current() is not None:
            kept = self._cache.by_callnow_id.get(callnow_id)
            if kept is not None:
                return kept
        return await self._read_extension(
            sql.SELECT_EXTENSION + " WHERE p.callnow_id = ?", callnow_id
        )

    async def _read_extension(self, query: str, key: str) -> Extension | None:
        found, version = await self._run(_snapshot(_fetch_extension(query, key)))
        if found is not None:
            self._cache.keep_extension(found, version)
        return found

    async def list_rules(self, number: str) -> list[CallerRule]:
        """See :meth:`callnowd.store.interface.Store.list_rules`."""
        if self._cache.current() is not None:
            kept = self._cache.rules.get(number)
            if kept is not None:
                return list(kept)
        found, version = await self._run(
            _snapshot(lambda cursor: ordered_rules(cursor, number))
        )
        self._cache.keep_rules(number, found, version)
        return found

    async def list_extensions(self) -> list[Extension]:
        """See :meth:`callnowd.store.interface.Store.list_extensions`."""

        def work(cursor: sqlite3.Cursor) -> list[Extension]:
            cursor.execute(sql.SELECT_EXTENSION + " ORDER BY e.number")
            return [rows.decode_extension(row) for row in cursor.fetchall()]

        return await self._run(work)

    async def ping(self) -> None:
        """See :meth:`callnowd.store.interface.Store.ping`."""

        def work(cursor: sqlite3.Cursor) -> None:
            cursor.execute("SELECT count(*) FROM schema_migrations").fetchone()

        await self._run(work)

    async def close(self) -> None:
        """Wait for queries in flight, then stop the pool's threads.

        Later calls raise :class:`StoreClosed` (a :class:`StoreError`); closing
        twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        if self._in_flight:
            drained: Deferred[None] = Deferred()
            self._drained.append(drained)
            await drained
        # The threads are idle now, so joining them does not stall the reactor.
        self._writer.stop()
        self._checkpointer.stop()
        self._pool.close()
        self._cache.close()


# SQLite's primary result codes of errors that pass by themselves: the database
# busy or locked (past the busy timeout), an I/O error, a full disk.
_PASSING_CODES = frozenset(
    (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
    )
)


def _passing(error: BaseException) -> bool:
    """Whether ``error`` (or the SQLite error behind it) may pass if tried again.

    The writer's TransactionLost carries the error that ended the transaction
    as its cause.
    """
    while error is not None:
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _PASSING_CODES
        error = error.__cause__  # type: ignore[assignment]
    return False


def _fetch_extension(query: str, key: str) -> _Work[Extension | None]:
    def work(cursor: sqlite3.Cursor) -> Extension | None:
        cursor.execute(query, (key,))
        row = cursor.fetchone()
        return None if row is None else rows.decode_extension(row)

    return work
