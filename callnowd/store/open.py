"""Store URLs: which store a configuration names, and opening it.

``sqlite:<path>`` names an SQLite file (a relative path is resolved against the
directory given by the caller, normally the config file's); ``postgresql://...``
names a PostgreSQL database (not available in this version).
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.interfaces import IReactorCore

from callnowd.store.errors import StoreError
from callnowd.store.interface import Store
from callnowd.store.sqlite import SqliteStore

_EXAMPLES = "sqlite:var/callnow.sqlite3 or postgresql://user@host/dbname"


def parse_store_url(url: str) -> tuple[str, str]:
    """Split a store URL into its kind and location.

    Args:
        url: ``sqlite:<path>`` or ``postgresql://...``.

    Returns:
        ``("sqlite", path)`` with the path as written, or ``("postgresql", url)``.

    Raises:
        ValueError: the URL is neither, or its SQLite path is empty, in-memory or
            written ``sqlite://...`` (ambiguous between relative and absolute).
    """
    if url.startswith("sqlite:"):
        location = url.removeprefix("sqlite:")
        if not location.strip():
            raise ValueError(f"store URL {url!r} has no file path, e.g. {_EXAMPLES}")
        if location.startswith("//"):
            raise ValueError(
                f"store URL {url!r}: write sqlite:<path>, e.g."
                " sqlite:var/callnow.sqlite3 (relative to the config file) or"
                " sqlite:/var/lib/callnowd/callnow.sqlite3 (absolute)"
            )
        if location == ":memory:" or location.startswith("file:"):
            raise ValueError(
                f"store URL {url!r}: the store must be a file that every process"
                " can open, e.g. sqlite:var/callnow.sqlite3"
            )
        if "\0" in location:
            raise ValueError(f"store URL {url!r} contains a NUL character")
        return "sqlite", location
    if url.startswith("postgresql://"):
        return "postgresql", url
    raise ValueError(f"unsupported store URL {url!r}: use {_EXAMPLES}")


def open_store(reactor: IReactorCore, url: str, base_dir: Path) -> Store:
    """Open the store named by ``url``; blocking (call before the reactor runs).

    Args:
        reactor: runs the store's thread pool.
        url: a URL accepted by :func:`parse_store_url`.
        base_dir: the directory relative SQLite paths are resolved against.

    Returns:
        The opened store, migrated to the current schema.

    Raises:
        ValueError: the URL is not valid.
        StoreError: the store cannot be opened, or its kind is not available.
    """
    kind, location = parse_store_url(url)
    if kind == "postgresql":
        raise StoreError("PostgreSQL store is not available in this version")
    return SqliteStore.open(reactor, base_dir / Path(location))
