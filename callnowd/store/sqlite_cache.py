"""Copies of the SQLite store's small, hot configuration rows, never stale.

Every request reads its extension (by CallNow ID, then by number) and the
extension's caller rules; they change rarely, and mostly in another process
(``callnowctl``). The store keeps decoded copies here, each tagged with the value
of the ``config_version`` counter (migration 0004: triggers add one on every
change to extensions, preferences, holidays and rules, in the changing
transaction) read *in the same snapshot* as the row.

Before a copy is used, the counter is read again on a connection of this cache:
one single-row read on the reactor thread (a few microseconds, with a busy
timeout of zero so it can never wait on a lock). When the counter moved, every
copy is dropped; when it cannot be read, no copy is used. So a change committed
before a lookup starts is always seen by that lookup, exactly as without the
cache.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TypeVar

from callnowd.models import Extension
from callnowd.rules.callers import CallerRule
from callnowd.store.sqlite_migrate import connect_with

READ_VERSION = "SELECT n FROM config_version WHERE id = 1"
# More distinct entries than this and the cache starts over (bounds its memory).
MAX_ENTRIES = 10_000

_K = TypeVar("_K")
_V = TypeVar("_V")


class ConfigCache:
    """Decoded extensions and rule lists, valid while ``config_version`` is unchanged.

    Args:
        path: the database file (opened on first use, for reading only).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None  # kept: one per read costs
        self._version: int | None = None
        self.by_number: dict[str, Extension] = {}
        self.by_callnow_id: dict[str, Extension] = {}
        self.rules: dict[str, tuple[CallerRule, ...]] = {}

    def current(self) -> int | None:
        """Read the counter now; drop every copy if it moved. None: unreadable.

        Call this before every use of the copies (it is what makes them safe).
        """
        try:
            cursor = self._cursor
            if cursor is None:
                if self._connection is None:
                    self._connection = _connect(self._path)
                cursor = self._cursor = self._connection.cursor()
            row = cursor.execute(READ_VERSION).fetchone()
        except sqlite3.Error:
            self._drop()
            return None
        version = None if row is None else int(row[0])
        if version != self._version:
            self._drop()
            self._version = version
        return version

    def keep_extension(self, extension: Extension, version: int | None) -> None:
        """Keep ``extension`` if it was read at the counter value now known."""
        if version is None or version != self._version:
            return
        _bounded(self.by_number)[extension.number] = extension
        _bounded(self.by_callnow_id)[extension.preferences.callnow_id] = extension

    def keep_rules(
        self, number: str, rules: list[CallerRule], version: int | None
    ) -> None:
        """Keep extension ``number``'s rules if read at the counter value now known."""
        if version is None or version != self._version:
            return
        _bounded(self.rules)[number] = tuple(rules)

    def _drop(self) -> None:
        self._version = None
        self.by_number.clear()
        self.by_callnow_id.clear()
        self.rules.clear()

    def close(self) -> None:
        """Close the cache's connection; later lookups read the counter anew."""
        self._drop()
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _connect(path: Path) -> sqlite3.Connection:
    # timeout=0: a lock (rare for a WAL reader) fails the read instead of waiting.
    return connect_with(path, _read_only, timeout=0)


def _read_only(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA busy_timeout=0")
    connection.execute("PRAGMA query_only=ON")


def _bounded(entries: dict[_K, _V]) -> dict[_K, _V]:
    if len(entries) >= MAX_ENTRIES:
        entries.clear()
    return entries


def read_version(cursor: sqlite3.Cursor) -> int | None:
    """The counter, inside the caller's transaction; None when unreadable."""
    try:
        cursor.execute(READ_VERSION)
        row = cursor.fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else int(row[0])
