"""The caller-rule operations of the SQLite store (mixed into ``SqliteStore``).

Each operation is one ``BEGIN IMMEDIATE`` transaction that leaves the extension's
positions numbered 1..N without gaps: reorders read the current order, compute the
new one and write every position that changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from callnowd.rules.callers import CallerRule, RuleSpec
from callnowd.store import rows
from callnowd.store import sqlite_sql as sql
from callnowd.store.errors import StoreError
from callnowd.store.interface import (
    RulePositionOutOfRange,
    UnknownExtension,
    UnknownRule,
)

_T = TypeVar("_T")


def ordered_rules(cursor: sqlite3.Cursor, number: str) -> list[CallerRule]:
    """The rules of extension ``number`` by position (none if unknown)."""
    cursor.execute(sql.RULES_IN_ORDER, (number,))
    return [rows.decode_rule(row) for row in cursor.fetchall()]


def _renumber(cursor: sqlite3.Cursor, order: list[CallerRule]) -> list[CallerRule]:
    """Write positions 1..N for ``order``; return the rules as now stored."""
    renumbered = []
    for position, rule in enumerate(order, start=1):
        if rule.position != position:
            cursor.execute(sql.SET_RULE_POSITION, (position, rule.id))
        renumbered.append(CallerRule(rule.id, position, rule.spec, rule.created_at))
    return renumbered


def _find(order: list[CallerRule], number: str, rule_id: int) -> CallerRule:
    for rule in order:
        if rule.id == rule_id:
            return rule
    raise UnknownRule(number, rule_id)


class SqliteRules:
    """Rule methods of :class:`callnowd.store.sqlite.SqliteStore`."""

    async def _run(
        self, work: Callable[[sqlite3.Cursor], _T], *, write: bool = False
    ) -> _T:
        raise NotImplementedError  # provided by SqliteStore

    async def add_rule(
        self,
        number: str,
        spec: RuleSpec,
        created_at: float,
        *,
        position: int | None = None,
    ) -> CallerRule:
        """See :meth:`callnowd.store.interface.Store.add_rule`."""

        def work(cursor: sqlite3.Cursor) -> CallerRule:
            if not sql.extension_exists(cursor, number):
                raise UnknownExtension(number)
            order = ordered_rules(cursor, number)
            last = len(order) + 1
            at = last if position is None else position
            if not 1 <= at <= last:
                raise RulePositionOutOfRange(number, at, last)
            cursor.execute(
                sql.INSERT_RULE, (number, last, *rows.rule_values(spec), created_at)
            )
            rule_id = cursor.lastrowid
            if rule_id is None:  # pragma: no cover - an INSERT always sets it
                raise StoreError("SQLite gave the new rule no id")
            rule = CallerRule(rule_id, last, spec, created_at)
            order.insert(at - 1, rule)
            return _renumber(cursor, order)[at - 1]

        return await self._run(work, write=True)

    async def update_rule(
        self, number: str, rule_id: int, spec: RuleSpec
    ) -> CallerRule:
        """See :meth:`callnowd.store.interface.Store.update_rule`."""

        def work(cursor: sqlite3.Cursor) -> CallerRule:
            cursor.execute(sql.UPDATE_RULE, (*rows.rule_values(spec), rule_id, number))
            if cursor.rowcount == 0:
                raise UnknownRule(number, rule_id)
            cursor.execute(sql.SELECT_RULE + " WHERE id = ?", (rule_id,))
            return rows.decode_rule(cursor.fetchone())

        return await self._run(work, write=True)

    async def move_rule(
        self, number: str, rule_id: int, position: int
    ) -> list[CallerRule]:
        """See :meth:`callnowd.store.interface.Store.move_rule`."""

        def work(cursor: sqlite3.Cursor) -> list[CallerRule]:
            order = ordered_rules(cursor, number)
            rule = _find(order, number, rule_id)
            if not 1 <= position <= len(order):
                raise RulePositionOutOfRange(number, position, len(order))
            order.remove(rule)
            order.insert(position - 1, rule)
            return _renumber(cursor, order)

        return await self._run(work, write=True)

    async def remove_rule(self, number: str, rule_id: int) -> None:
        """See :meth:`callnowd.store.interface.Store.remove_rule`."""

        def work(cursor: sqlite3.Cursor) -> None:
            order = ordered_rules(cursor, number)
            rule = _find(order, number, rule_id)
            cursor.execute(sql.DELETE_RULE, (rule_id, number))
            order.remove(rule)
            _renumber(cursor, order)

        await self._run(work, write=True)


__all__ = ["SqliteRules", "ordered_rules"]
