"""The error every store raises when it cannot do its job at all.

Domain outcomes (unknown extension, stale state, ...) are the typed exceptions of
:mod:`callnowd.store.interface`; :class:`StoreError` is for an unusable store: a file
that cannot be opened, a schema this code does not know, a failed migration, a store
used after ``close()`` (:class:`StoreClosed`). It lives apart from any one backend so
that every backend can raise it without importing another.
"""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or used; the message names the database."""


class StoreClosed(StoreError):
    """The store was used after ``close()``: the daemon is stopping.

    Work still running then (calls in flight) may meet it, and may treat it as
    expected while it knows the daemon stops; at any other time it is a bug.
    """
