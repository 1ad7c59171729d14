"""The call-request operations of the SQLite store (mixed into ``SqliteStore``).

Writes go through the store's writer, one ``BEGIN IMMEDIATE`` transaction each:
a new request is stored with its first event, and :meth:`SqliteRequests.transition`
checks the state, moves the request and records the event without another
process interleaving. Reads are single statements on the read pool.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from callnowd.models import CallRequest, RequestEvent, RequestState
from callnowd.store import rows
from callnowd.store import sqlite_sql as sql
from callnowd.store.errors import StoreError
from callnowd.store.interface import StaleState, UnknownRequest

_T = TypeVar("_T")
_Work = Callable[[sqlite3.Cursor], _T]


class SqliteRequests:
    """Call-request methods of :class:`callnowd.store.sqlite.SqliteStore`."""

    _path: Path  # the database file, set by SqliteStore

    async def _run(self, work: _Work[_T], *, write: bool = False) -> _T:
        raise NotImplementedError  # provided by SqliteStore

    async def create_request(
        self,
        request: CallRequest,
        event: RequestEvent,
        *,
        dedupe_since: float | None = None,
    ) -> tuple[CallRequest, bool]:
        """See :meth:`callnowd.store.interface.Store.create_request`.

        Deduplication happens only when both ``request.dedupe_key`` and
        ``dedupe_since`` are set; the newest matching request is returned.

        Raises:
            ValueError: ``event`` is not about ``request``.
            StoreError: the request's id or token is taken.
        """
        if event.request_id != request.id:
            raise ValueError(f"event for {event.request_id!r}, not {request.id!r}")

        def work(cursor: sqlite3.Cursor) -> tuple[CallRequest, bool]:
            if request.dedupe_key is not None and dedupe_since is not None:
                cursor.execute(
                    sql.SELECT_REQUEST
                    + " WHERE dedupe_key = ? AND created_at >= ?"
                    + sql.NEWEST_FIRST
                    + " LIMIT 1",
                    (request.dedupe_key, dedupe_since),
                )
                existing = cursor.fetchone()
                if existing is not None:
                    return rows.decode_request(existing), False
            try:
                cursor.execute(sql.INSERT_REQUEST, rows.request_values(request))
            except sqlite3.IntegrityError as e:
                raise StoreError(
                    f"{self._path}: request {request.id!r} or its token exists: {e}"
                ) from e
            cursor.execute(sql.INSERT_EVENT, rows.event_values(event))
            return request, True

        return await self._run(work, write=True)

    async def get_request(self, request_id: str) -> CallRequest | None:
        """See :meth:`callnowd.store.interface.Store.get_request`."""
        return await self._run(
            _fetch_request(sql.SELECT_REQUEST + " WHERE id = ?", (request_id,))
        )

    async def get_request_by_token(
        self, callnow_id: str, token: str
    ) -> CallRequest | None:
        """See :meth:`callnowd.store.interface.Store.get_request_by_token`."""
        return await self._run(
            _fetch_request(
                sql.SELECT_REQUEST + " WHERE token = ? AND callnow_id = ?",
                (token, callnow_id),
            )
        )

    async def transition(
        self,
        request_id: str,
        expected: tuple[RequestState, ...],
        event: RequestEvent,
        *,
        channel_id: str | None = None,
    ) -> CallRequest:
        """See :meth:`callnowd.store.interface.Store.transition`.

        The request's ``reason`` becomes ``event.reason`` and its ``updated_at``
        becomes ``event.at``.

        Raises:
            ValueError: ``event`` is about another request.
        """
        if event.request_id != request_id:
            raise ValueError(f"event for {event.request_id!r}, not {request_id!r}")

        moved = sql.move_request(len(expected))
        params = (
            event.state.value,
            event.reason,
            event.at,
            channel_id,
            request_id,
            *(state.value for state in expected),
        )

        def work(cursor: sqlite3.Cursor) -> CallRequest:
            # One statement checks the state, moves the request and returns it.
            cursor.execute(moved, params)
            row = cursor.fetchone()
            if row is None:
                cursor.execute(sql.SELECT_STATE, (request_id,))
                found = cursor.fetchone()
                if found is None:
                    raise UnknownRequest(request_id)
                raise StaleState(request_id, expected, RequestState(found[0]))
            cursor.execute(sql.INSERT_EVENT, rows.event_values(event))
            return rows.decode_request(row)

        return await self._run(work, write=True)

    async def request_events(self, request_id: str) -> list[RequestEvent]:
        """See :meth:`callnowd.store.interface.Store.request_events`."""

        def work(cursor: sqlite3.Cursor) -> list[RequestEvent]:
            cursor.execute(sql.SELECT_EVENTS, (request_id,))
            return [rows.decode_event(row) for row in cursor.fetchall()]

        return await self._run(work)

    async def list_requests(
        self,
        *,
        extension: str | None = None,
        states: tuple[RequestState, ...] | None = None,
        limit: int = 100,
    ) -> list[CallRequest]:
        """See :meth:`callnowd.store.interface.Store.list_requests`.

        Raises:
            ValueError: ``limit`` is negative.
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        if limit == 0 or states == ():
            return []
        conditions = []
        params: list[object] = []
        if extension is not None:
            conditions.append("extension = ?")
            params.append(extension)
        if states is not None:
            conditions.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(state.value for state in states)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        # Only "?" placeholders and fixed column names are interpolated.
        query = sql.SELECT_REQUEST + where + sql.NEWEST_FIRST + " LIMIT ?"
        params.append(limit)

        def work(cursor: sqlite3.Cursor) -> list[CallRequest]:
            cursor.execute(query, params)
            return [rows.decode_request(row) for row in cursor.fetchall()]

        return await self._run(work)


def _fetch_request(query: str, params: tuple[str, ...]) -> _Work[CallRequest | None]:
    def work(cursor: sqlite3.Cursor) -> CallRequest | None:
        cursor.execute(query, params)
        row = cursor.fetchone()
        return None if row is None else rows.decode_request(row)

    return work


__all__ = ["SqliteRequests"]
