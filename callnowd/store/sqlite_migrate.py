"""Numbered schema migrations of the SQLite store, applied before the reactor runs.

Migrations are the files ``migrations/sqlite/NNNN_<name>.sql`` shipped in this
package, numbered 1, 2, 3... without gaps. Each is applied in its own
``BEGIN IMMEDIATE`` transaction together with its row in ``schema_migrations``, so a
failed migration leaves the database at the previous version, and two processes
opening the same file at once apply each migration exactly once.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path

import attrs
from twisted.logger import Logger

from callnowd.store.errors import StoreError

log = Logger()

_MIGRATION_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
BUSY_TIMEOUT_MS = 5000


@attrs.frozen
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Return the migrations shipped with callnowd, in version order.

    Raises:
        StoreError: the shipped files are not numbered 1..N without gaps.
    """
    directory = files("callnowd.store").joinpath("migrations", "sqlite")
    found = []
    for entry in directory.iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is not None:
            found.append(
                Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"SQLite migrations must be numbered 1..N, found {versions}")
    return found


def split_statements(sql: str) -> list[str]:
    """Split a migration script into single statements.

    A statement ends at the end of a line where it is complete SQL (as judged by
    SQLite itself, so ``;`` inside strings or trigger bodies does not end it).

    Raises:
        ValueError: the script ends with an incomplete statement.
    """
    statements = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [
        line
        for line in pending.splitlines()
        if line.strip() and not line.strip().startswith("--")
    ]
    if leftover:
        raise ValueError(f"incomplete SQL statement at the end: {pending.strip()!r}")
    return statements


def connect_with(
    path: Path,
    setup: Callable[[sqlite3.Connection], object],
    *,
    timeout: float = BUSY_TIMEOUT_MS / 1000,
) -> sqlite3.Connection:
    """Open a connection to ``path`` in autocommit mode, prepared by ``setup``.

    Transactions are always explicit (``BEGIN IMMEDIATE``), so Python's implicit
    ``BEGIN`` handling is turned off. When ``setup`` raises, the connection is
    closed again: none is left half set up.
    """
    connection = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    try:
        setup(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _wal(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode=WAL")


def connect(path: Path) -> sqlite3.Connection:
    """Open a plain connection to ``path`` in autocommit mode, in WAL mode."""
    return connect_with(path, _wal)


def apply_migrations(
    path: Path, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Bring the database at ``path`` to the newest schema version; blocking.

    Args:
        path: the database file (created if missing).
        migrations: the migrations to apply; the shipped ones by default.

    Returns:
        The versions applied by this call (empty when the schema was current).

    Raises:
        StoreError: the file or its directory cannot be created or opened, a
            migration failed, or the database has a newer schema version than
            ``migrations`` know.
    """
    known = load_migrations() if migrations is None else list(migrations)
    newest = max((migration.version for migration in known), default=0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{path}: cannot create the store's directory: {e}") from e
    try:
        connection = connect(path)
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot open the SQLite store: {e}") from e
    applied = []
    try:
        # Schema changes run with foreign keys off (SQLite's advice for table
        # rebuilds); foreign_key_check below verifies each migration instead.
        connection.execute("PRAGMA foreign_keys=OFF")
        current = _current_version(connection, path)
        if current > newest:
            raise StoreError(
                f"{path}: database schema version {current} is newer than this "
                f"callnowd supports ({newest}); upgrade callnowd"
            )
        for migration in known:
            if migration.version > current and _apply(connection, path, migration):
                applied.append(migration.version)
    finally:
        connection.close()
    return applied


def _current_version(connection: sqlite3.Connection, path: Path) -> int:
    try:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        row = connection.execute(
            "SELECT max(version) FROM schema_migrations"
        ).fetchone()
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot read the schema version: {e}") from e
    return int(row[0] or 0)


def _apply(connection: sqlite3.Connection, path: Path, migration: Migration) -> bool:
    """Apply one migration unless another process did; return whether we did."""
    try:
        statements = split_statements(migration.sql)
        connection.execute("BEGIN IMMEDIATE")
        try:
            done = connection.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?",
                (migration.version,),
            ).fetchone()
            if done is not None:
                connection.execute("ROLLBACK")
                return False
            for statement in statements:
                connection.execute(statement)
            problems = connection.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise StoreError(
                    f"{path}: migration {migration.name} broke foreign keys: "
                    f"{problems[:5]}"
                )
            connection.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, time.time()),
            )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    except (sqlite3.Error, ValueError) as e:
        raise StoreError(f"{path}: migration {migration.name} failed: {e}") from e
    log.info(
        "Applied store migration {migration} to {path}",
        migration=migration.name,
        path=str(path),
    )
    return True
