"""The error every store raises when it cannot do its job at all.

Domain outcomes (unknown extension, stale state, ...) are the typed exceptions of
:mod:`callnowd.store.interface`; :class:`StoreError` is for an unusable store: a file
that cannot be opened, a schema this code does not know, a failed migration, a store
used after ``close()`` (:class:`StoreClosed`). :class:`StoreUnavailable` marks the
errors that pass by themselves (a lock held past the busy timeout, a full disk, the
daemon stopping): the same work may succeed when tried again. It lives apart from
any one backend so that every backend can raise it without importing another.
"""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or used; the message names the database."""


class StoreUnavailable(StoreError):
    """The store cannot be used right now, for a reason that passes; nothing was kept.

    Locked by another writer past the busy timeout, a full disk, an I/O error, or
    closed (:class:`StoreClosed`). Any other :class:`StoreError` (a schema this code
    does not know, a statement SQLite refuses) fails the same way every time.
    """


class StoreClosed(StoreUnavailable):
    """The store was used after ``close()``: the daemon is stopping.

    Work still running then (calls in flight) may meet it, and may treat it as
    expected while it knows the daemon stops; at any other time it is a bug.
    """
