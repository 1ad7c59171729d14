"""The caller-rule and holiday part of the Store contract.

:class:`RulesContract` is a base of :class:`tests.store.contract.StoreContract`, so
every store that runs the contract runs these tests too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date
from typing import TYPE_CHECKING

import attrs

from callnowd.rules.callers import (
    Action,
    CallerRule,
    NumberKind,
    NumberPattern,
    RuleSpec,
)
from callnowd.store.interface import (
    RulePositionOutOfRange,
    Store,
    UnknownExtension,
    UnknownRule,
)
from tests.store.builders import make_extension

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object

PREFIX = RuleSpec(Action.REJECT, NumberPattern(NumberKind.PREFIX, "+4420"))
EXACT = RuleSpec(Action.ACCEPT, NumberPattern(NumberKind.EXACT, "+12125550100"))
GLOB_AND_NAME = RuleSpec(
    Action.CONFIRM,
    NumberPattern(NumberKind.GLOB, "+1212555[0-4]*"),
    name_glob="Zoë*",
    enabled=False,
)
NAME_ONLY = RuleSpec(Action.ACCEPT, name_glob="mary ?")


class RulesContract(ABC, _Base):
    """Rules and holidays, shared by every Store implementation."""

    @abstractmethod
    def make_store(self) -> Store:
        """Return a new, empty, usable store, closed by the test's cleanup."""

    async def _with_rules(self, *specs: RuleSpec) -> tuple[Store, list[CallerRule]]:
        store = self.make_store()
        await store.add_extension(make_extension("100", "john"))
        added = [
            await store.add_rule("100", spec, 1000.0 + n)
            for n, spec in enumerate(specs)
        ]
        return store, added

    async def _ids(self, store: Store, number: str = "100") -> list[int]:
        found = await store.list_rules(number)
        self.assertEqual([r.position for r in found], list(range(1, len(found) + 1)))
        return [r.id for r in found]

    async def test_holidays_round_trip_and_update(self) -> None:
        """Holidays are stored with the preferences and replaced by an update."""
        days = frozenset({date(2026, 12, 24), date(2026, 12, 25)})
        extension = make_extension(holidays=days, reject_when_busy=True)
        store = self.make_store()
        await store.add_extension(extension)
        self.assertEqual(await store.get_extension("100"), extension)
        fewer = make_extension(holidays=frozenset({date(2027, 1, 1)}), show_hours=True)
        await store.update_extension(fewer)
        self.assertEqual(await store.get_extension("100"), fewer)
        self.assertEqual(await store.find_by_callnow_id("john"), fewer)
        none = make_extension()
        await store.update_extension(none)
        self.assertEqual(await store.list_extensions(), [none])

    async def test_holidays_belong_to_their_extension(self) -> None:
        """Two extensions keep separate holidays."""
        john = make_extension("100", "john", holidays=frozenset({date(2026, 5, 1)}))
        mary = make_extension("101", "mary", holidays=frozenset({date(2026, 7, 14)}))
        store = self.make_store()
        await store.add_extension(john)
        await store.add_extension(mary)
        self.assertEqual(await store.list_extensions(), [john, mary])

    async def test_add_rules_round_trip_in_order(self) -> None:
        """Added rules read back equal, every field kept, positions 1..N."""
        store, added = await self._with_rules(PREFIX, EXACT, GLOB_AND_NAME, NAME_ONLY)
        self.assertEqual(await store.list_rules("100"), added)
        self.assertEqual(
            [r.spec for r in added], [PREFIX, EXACT, GLOB_AND_NAME, NAME_ONLY]
        )
        self.assertEqual([r.position for r in added], [1, 2, 3, 4])
        self.assertEqual(
            [r.created_at for r in added], [1000.0, 1001.0, 1002.0, 1003.0]
        )
        self.assertEqual(len({r.id for r in added}), 4)

    async def test_add_rule_at_position(self) -> None:
        """A rule added at a position pushes the later ones down."""
        store, (a, b) = await self._with_rules(PREFIX, EXACT)
        c = await store.add_rule("100", NAME_ONLY, 2000.0, position=1)
        self.assertEqual(c.position, 1)
        self.assertEqual(await self._ids(store), [c.id, a.id, b.id])
        d = await store.add_rule("100", GLOB_AND_NAME, 2001.0, position=4)
        self.assertEqual(await self._ids(store), [c.id, a.id, b.id, d.id])

    async def test_add_rule_bad_position_or_extension(self) -> None:
        """Positions outside 1..N+1 and unknown extensions are refused; nothing added."""
        store, (a,) = await self._with_rules(PREFIX)
        for position in (0, 3, -1):
            with self.assertRaises(RulePositionOutOfRange) as raised:
                await store.add_rule("100", EXACT, 1.0, position=position)
            refused = raised.exception
            self.assertEqual(
                (refused.number, refused.position, refused.last), ("100", position, 2)
            )
        with self.assertRaises(UnknownExtension):
            await store.add_rule("999", EXACT, 1.0)
        self.assertEqual(await store.list_rules("100"), [a])
        self.assertEqual(await store.list_rules("999"), [])

    async def test_rule_ids_are_never_reused(self) -> None:
        """A rule added after a removal gets a new id."""
        store, (a, b) = await self._with_rules(PREFIX, EXACT)
        await store.remove_rule("100", b.id)
        c = await store.add_rule("100", EXACT, 3.0)
        self.assertNotIn(c.id, (a.id, b.id))

    async def test_update_rule_keeps_id_and_position(self) -> None:
        """update_rule replaces the spec, enabled flag included; id, position stay."""
        store, (a, b) = await self._with_rules(PREFIX, EXACT)
        disabled = attrs.evolve(NAME_ONLY, enabled=False)
        updated = await store.update_rule("100", b.id, disabled)
        self.assertEqual(updated, attrs.evolve(b, spec=disabled))
        self.assertEqual(await store.list_rules("100"), [a, updated])

    async def test_move_rule(self) -> None:
        """Moving a rule keeps the others in order and positions without gaps."""
        store, (a, b, c, d) = await self._with_rules(
            PREFIX, EXACT, GLOB_AND_NAME, NAME_ONLY
        )
        moved = await store.move_rule("100", d.id, 1)
        self.assertEqual([r.id for r in moved], [d.id, a.id, b.id, c.id])
        self.assertEqual(moved, await store.list_rules("100"))
        await store.move_rule("100", d.id, 4)
        self.assertEqual(await self._ids(store), [a.id, b.id, c.id, d.id])
        await store.move_rule("100", a.id, 3)
        self.assertEqual(await self._ids(store), [b.id, c.id, a.id, d.id])
        await store.move_rule("100", a.id, 3)
        self.assertEqual(await self._ids(store), [b.id, c.id, a.id, d.id])

    async def test_move_rule_refusals(self) -> None:
        """Bad positions and unknown rules are refused and change nothing."""
        store, (a, b) = await self._with_rules(PREFIX, EXACT)
        for position in (0, 3):
            with self.assertRaises(RulePositionOutOfRange) as raised:
                await store.move_rule("100", a.id, position)
            self.assertEqual(raised.exception.last, 2)
        with self.assertRaises(UnknownRule) as unknown:
            await store.move_rule("100", 10_000, 1)
        self.assertEqual(
            (unknown.exception.number, unknown.exception.rule_id), ("100", 10_000)
        )
        self.assertEqual(await store.list_rules("100"), [a, b])

    async def test_rules_are_scoped_to_their_extension(self) -> None:
        """Another extension's rule id is unknown under this extension."""
        store, (a,) = await self._with_rules(PREFIX)
        await store.add_extension(make_extension("101", "mary"))
        theirs = await store.add_rule("101", EXACT, 5.0)
        self.assertEqual(theirs.position, 1)
        for attempt in (
            store.update_rule("100", theirs.id, NAME_ONLY),
            store.move_rule("100", theirs.id, 1),
            store.remove_rule("100", theirs.id),
        ):
            with self.assertRaises(UnknownRule):
                await attempt
        self.assertEqual(await store.list_rules("101"), [theirs])
        self.assertEqual(await store.list_rules("100"), [a])

    async def test_remove_rule_closes_the_gap(self) -> None:
        """Removing a rule moves the later ones up; an unknown id raises."""
        store, (a, b, c) = await self._with_rules(PREFIX, EXACT, NAME_ONLY)
        await store.remove_rule("100", b.id)
        self.assertEqual(await self._ids(store), [a.id, c.id])
        with self.assertRaises(UnknownRule):
            await store.remove_rule("100", b.id)
        self.assertEqual(await self._ids(store), [a.id, c.id])

    async def test_removing_extension_removes_rules(self) -> None:
        """Rules go with their extension; a new extension on the number has none."""
        store, _ = await self._with_rules(PREFIX, EXACT)
        await store.remove_extension("100")
        self.assertEqual(await store.list_rules("100"), [])
        await store.add_extension(make_extension("100", "john"))
        self.assertEqual(await store.list_rules("100"), [])
        got = await store.get_extension("100")
        self.assertEqual(got, make_extension("100", "john"))

    async def test_holidays_removed_with_extension(self) -> None:
        """A re-added extension does not inherit the removed one's holidays."""
        store = self.make_store()
        extension = make_extension(holidays=frozenset({date(2026, 1, 1)}))
        await store.add_extension(extension)
        await store.remove_extension("100")
        await store.add_extension(make_extension())
        self.assertEqual(await store.get_extension("100"), make_extension())
