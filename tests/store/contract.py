"""The behaviour every :class:`callnowd.store.interface.Store` must have.

Mix :class:`StoreContract` into a ``twisted.trial.unittest.TestCase`` and implement
``make_store`` (an empty store that the test case closes in its cleanup).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import attrs

from callnowd.models import CallRequest, Extension, RequestEvent, RequestState
from callnowd.store.interface import (
    DuplicateCallNowId,
    DuplicateExtension,
    StaleState,
    Store,
    UnknownExtension,
    UnknownRequest,
)
from tests.store.builders import (
    first_event,
    full_extension,
    make_extension,
    make_request,
)
from tests.store.contract_rules import RulesContract

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object

S = RequestState


class StoreContract(RulesContract, ABC, _Base):
    """Tests of the :class:`Store` protocol, shared by every implementation.

    The rule and holiday tests come from :class:`RulesContract`.
    """

    @abstractmethod
    def make_store(self) -> Store:
        """Return a new, empty, usable store, closed by the test's cleanup."""

    async def _store_with(self, *extensions: Extension) -> Store:
        store = self.make_store()
        for extension in extensions:
            await store.add_extension(extension)
        return store

    async def _store_with_request(self, request: CallRequest) -> Store:
        store = await self._store_with(make_extension())
        await store.create_request(request, first_event(request))
        return store

    # Extensions and preferences.

    async def test_add_and_get_round_trips_every_field(self) -> None:
        """Every extension and preference field reads back exactly as written."""
        extension = full_extension()
        store = await self._store_with(extension)
        self.assertEqual(await store.get_extension("2001"), extension)
        self.assertEqual(await store.find_by_callnow_id("Zoe.Office-7"), extension)
        self.assertEqual(await store.list_extensions(), [extension])

    async def test_defaults_round_trip(self) -> None:
        """An extension with default preferences and no windows reads back equal."""
        extension = make_extension()
        store = await self._store_with(extension)
        self.assertEqual(await store.get_extension("100"), extension)

    async def test_get_unknown_extension(self) -> None:
        """Looking up a number nobody has gives None."""
        store = await self._store_with(make_extension())
        self.assertIsNone(await store.get_extension("101"))

    async def test_list_extensions_ordered_by_number(self) -> None:
        """list_extensions returns every extension ordered by number."""
        store = await self._store_with(
            make_extension("300", "c"),
            make_extension("100", "a"),
            make_extension("200"),
        )
        numbers = [extension.number for extension in await store.list_extensions()]
        self.assertEqual(numbers, ["100", "200", "300"])

    async def test_add_duplicate_number(self) -> None:
        """Adding a taken number raises DuplicateExtension and changes nothing."""
        original = make_extension("100", "john")
        store = await self._store_with(original)
        with self.assertRaises(DuplicateExtension) as raised:
            await store.add_extension(make_extension("100", "other", enabled=False))
        self.assertEqual(raised.exception.number, "100")
        self.assertEqual(await store.list_extensions(), [original])
        self.assertIsNone(await store.find_by_callnow_id("other"))

    async def test_add_duplicate_callnow_id(self) -> None:
        """Adding a taken CallNow ID raises DuplicateCallNowId and adds nothing."""
        store = await self._store_with(make_extension("100", "john"))
        with self.assertRaises(DuplicateCallNowId) as raised:
            await store.add_extension(make_extension("101", "john"))
        self.assertEqual(raised.exception.callnow_id, "john")
        self.assertIsNone(await store.get_extension("101"))

    async def test_update_replaces_every_field(self) -> None:
        """update_extension replaces the extension and all its preferences."""
        store = await self._store_with(make_extension("2001", "before"))
        updated = full_extension()
        await store.update_extension(updated)
        self.assertEqual(await store.get_extension("2001"), updated)
        self.assertEqual(await store.find_by_callnow_id("Zoe.Office-7"), updated)
        self.assertIsNone(await store.find_by_callnow_id("before"))

    async def test_update_keeping_own_callnow_id(self) -> None:
        """An update that keeps the extension's own CallNow ID is accepted."""
        store = await self._store_with(make_extension("100", "john"))
        updated = attrs.evolve(make_extension("100", "john"), display_name="John B")
        await store.update_extension(updated)
        self.assertEqual(await store.get_extension("100"), updated)

    async def test_update_to_taken_callnow_id(self) -> None:
        """Taking another extension's CallNow ID raises and changes nothing."""
        john, mary = make_extension("100", "john"), make_extension("101", "mary")
        store = await self._store_with(john, mary)
        with self.assertRaises(DuplicateCallNowId) as raised:
            await store.update_extension(
                attrs.evolve(make_extension("101", "john"), display_name="changed")
            )
        self.assertEqual(raised.exception.callnow_id, "john")
        self.assertEqual(await store.list_extensions(), [john, mary])

    async def test_update_unknown_extension(self) -> None:
        """Updating a number nobody has raises UnknownExtension and adds nothing."""
        store = self.make_store()
        with self.assertRaises(UnknownExtension) as raised:
            await store.update_extension(make_extension("100"))
        self.assertEqual(raised.exception.number, "100")
        self.assertEqual(await store.list_extensions(), [])

    async def test_remove_extension(self) -> None:
        """A removed extension and its CallNow ID are gone; others stay."""
        mary = make_extension("101", "mary")
        store = await self._store_with(make_extension("100", "john"), mary)
        await store.remove_extension("100")
        self.assertIsNone(await store.get_extension("100"))
        self.assertIsNone(await store.find_by_callnow_id("john"))
        self.assertEqual(await store.list_extensions(), [mary])

    async def test_removed_callnow_id_is_free_again(self) -> None:
        """After a removal its CallNow ID can be given to another extension."""
        store = await self._store_with(make_extension("100", "john"))
        await store.remove_extension("100")
        replacement = make_extension("102", "john")
        await store.add_extension(replacement)
        self.assertEqual(await store.find_by_callnow_id("john"), replacement)

    async def test_remove_unknown_extension(self) -> None:
        """Removing a number nobody has raises UnknownExtension."""
        store = await self._store_with(make_extension("100"))
        with self.assertRaises(UnknownExtension) as raised:
            await store.remove_extension("101")
        self.assertEqual(raised.exception.number, "101")
        self.assertEqual(len(await store.list_extensions()), 1)

    async def test_find_by_callnow_id_is_exact_and_case_sensitive(self) -> None:
        """Only the exact CallNow ID matches: no case folding, prefix or padding."""
        upper, lower = make_extension("100", "John"), make_extension("101", "john")
        store = await self._store_with(upper, lower)
        self.assertEqual(await store.find_by_callnow_id("John"), upper)
        self.assertEqual(await store.find_by_callnow_id("john"), lower)
        for near_miss in ("JOHN", "jo", "john ", "joh%", "_ohn", ""):
            self.assertIsNone(await store.find_by_callnow_id(near_miss), near_miss)

    # Call requests.

    async def test_create_request_stores_request_and_first_event(self) -> None:
        """create_request stores the request and its first audit event."""
        store = await self._store_with(make_extension())
        request = make_request(dedupe_key="k1")
        event = attrs.evolve(first_event(request), detail="from 192.0.2.1")
        stored, created = await store.create_request(request, event)
        self.assertEqual((stored, created), (request, True))
        self.assertEqual(await store.get_request("r1"), request)
        self.assertEqual(await store.request_events("r1"), [event])

    async def test_get_unknown_request(self) -> None:
        """Looking up an unknown request id gives None."""
        store = await self._store_with_request(make_request("r1"))
        self.assertIsNone(await store.get_request("r2"))

    async def test_request_without_name_round_trips(self) -> None:
        """A request with no name and a rejected state reads back equal."""
        request = make_request(name=None, state=S.REJECTED)
        store = await self._store_with_request(request)
        self.assertEqual(await store.get_request("r1"), request)

    async def test_dedupe_within_window_returns_existing(self) -> None:
        """A same-key request inside the window returns the first; writes nothing."""
        first = make_request("r1", dedupe_key="k", created_at=1000.0)
        store = await self._store_with_request(first)
        again = make_request("r2", dedupe_key="k", created_at=1030.0)
        result = await store.create_request(
            again, first_event(again), dedupe_since=1000.0
        )
        self.assertEqual(result, (first, False))
        self.assertIsNone(await store.get_request("r2"))
        self.assertEqual(await store.request_events("r2"), [])
        self.assertEqual(await store.request_events("r1"), [first_event(first)])
        self.assertEqual(await store.list_requests(), [first])

    async def test_dedupe_outside_window_creates(self) -> None:
        """A same-key request older than the window does not block a new one."""
        first = make_request("r1", dedupe_key="k", created_at=1000.0)
        store = await self._store_with_request(first)
        again = make_request("r2", dedupe_key="k", created_at=1100.0)
        result = await store.create_request(
            again, first_event(again), dedupe_since=1000.5
        )
        self.assertEqual(result, (again, True))
        self.assertEqual(await store.request_events("r2"), [first_event(again)])

    async def test_dedupe_needs_same_key_and_a_window(self) -> None:
        """Other keys, no key or no window never deduplicate."""
        store = await self._store_with_request(make_request("r1", dedupe_key="k"))
        cases = [
            (make_request("r2", dedupe_key="other"), 0.0),
            (make_request("r3", dedupe_key=None), 0.0),
            (make_request("r4", dedupe_key="k"), None),
        ]
        for request, since in cases:
            result = await store.create_request(
                request, first_event(request), dedupe_since=since
            )
            self.assertEqual(result, (request, True))
        self.assertEqual(len(await store.list_requests()), 4)

    async def test_get_request_by_token_needs_matching_callnow_id(self) -> None:
        """A status token finds its request only under its own CallNow ID."""
        request = make_request("r1", token="secret-token")
        store = await self._store_with_request(request)
        self.assertEqual(
            await store.get_request_by_token("john", "secret-token"), request
        )
        self.assertIsNone(await store.get_request_by_token("mary", "secret-token"))
        self.assertIsNone(await store.get_request_by_token("John", "secret-token"))
        self.assertIsNone(await store.get_request_by_token("john", "secret-tokem"))
        self.assertIsNone(await store.get_request_by_token("john", "r1"))

    async def test_transition_moves_state_and_records_event(self) -> None:
        """A transition from an expected state stores the state and its event."""
        request = make_request()
        store = await self._store_with_request(request)
        event = RequestEvent("r1", 1005.0, S.FAILED, reason="congestion", detail="8")
        moved = await store.transition("r1", (S.RECEIVED, S.RINGING_OWNER), event)
        expected = attrs.evolve(
            request, state=S.FAILED, reason="congestion", updated_at=1005.0
        )
        self.assertEqual(moved, expected)
        self.assertEqual(await store.get_request("r1"), expected)
        self.assertEqual(
            await store.request_events("r1"), [first_event(request), event]
        )

    async def test_decision_and_channel_id(self) -> None:
        """The decision is stored with the request; a transition records a channel."""
        request = attrs.evolve(make_request(), decision="confirm", decided_by="rule-3")
        store = await self._store_with_request(request)
        self.assertEqual(await store.get_request("r1"), request)
        event = RequestEvent("r1", 1001.0, S.RINGING_OWNER)
        moved = await store.transition(
            "r1", (S.RECEIVED,), event, channel_id="callnow-a1-r1"
        )
        self.assertEqual(moved.channel_id, "callnow-a1-r1")
        later = RequestEvent("r1", 1002.0, S.CALLING_VISITOR)
        moved = await store.transition("r1", (S.RINGING_OWNER,), later)
        self.assertEqual(moved.channel_id, "callnow-a1-r1")
        self.assertEqual(await store.get_request("r1"), moved)

    async def test_transition_from_unexpected_state_is_stale(self) -> None:
        """A transition from a state not expected raises StaleState; writes nothing."""
        request = make_request()
        store = await self._store_with_request(request)
        event = RequestEvent("r1", 1005.0, S.CONNECTED)
        expected_states = (S.CALLING_VISITOR, S.RINGING_OWNER)
        with self.assertRaises(StaleState) as raised:
            await store.transition("r1", expected_states, event)
        stale = raised.exception
        self.assertEqual(
            (stale.request_id, stale.expected, stale.actual),
            ("r1", expected_states, S.RECEIVED),
        )
        self.assertEqual(await store.get_request("r1"), request)
        self.assertEqual(await store.request_events("r1"), [first_event(request)])

    async def test_transition_unknown_request(self) -> None:
        """A transition of an unknown request raises UnknownRequest; writes nothing."""
        store = await self._store_with_request(make_request("r1"))
        with self.assertRaises(UnknownRequest) as raised:
            await store.transition(
                "r2", (S.RECEIVED,), RequestEvent("r2", 1001.0, S.CANCELLED)
            )
        self.assertEqual(raised.exception.request_id, "r2")
        self.assertEqual(await store.request_events("r2"), [])

    async def test_request_events_oldest_first(self) -> None:
        """The audit trail lists every transition in the order it happened."""
        request = make_request()
        store = await self._store_with_request(request)
        path = [
            RequestEvent("r1", 1001.0, S.RINGING_OWNER, detail="originate"),
            RequestEvent("r1", 1009.0, S.CALLING_VISITOR),
            RequestEvent("r1", 1020.0, S.CONNECTED),
            RequestEvent("r1", 1080.0, S.COMPLETED, reason="hangup"),
        ]
        previous = request.state
        for event in path:
            await store.transition("r1", (previous,), event)
            previous = event.state
        self.assertEqual(
            await store.request_events("r1"), [first_event(request), *path]
        )
        final = await store.get_request("r1")
        assert final is not None
        self.assertEqual((final.state, final.reason), (S.COMPLETED, "hangup"))

    async def test_list_requests_newest_first_with_filters(self) -> None:
        """list_requests orders newest first and filters by extension, state, limit."""
        store = await self._store_with(
            make_extension("100"), make_extension("101", "b")
        )
        specs = [
            ("r1", "100", 1000.0, S.RECEIVED),
            ("r2", "101", 1001.0, S.REJECTED),
            ("r3", "100", 1003.0, S.REJECTED),
            ("r4", "100", 1002.0, S.COMPLETED),
            ("r5", "101", 1004.0, S.RECEIVED),
        ]
        made = {}
        for request_id, extension, created_at, state in specs:
            request = make_request(
                request_id, extension=extension, created_at=created_at, state=state
            )
            made[request_id] = request
            await store.create_request(request, first_event(request))

        async def ids(
            extension: str | None = None,
            states: tuple[RequestState, ...] | None = None,
            limit: int = 100,
        ) -> list[str]:
            found = await store.list_requests(
                extension=extension, states=states, limit=limit
            )
            for request in found:
                self.assertEqual(request, made[request.id])
            return [request.id for request in found]

        self.assertEqual(await ids(), ["r5", "r3", "r4", "r2", "r1"])
        self.assertEqual(await ids(extension="100"), ["r3", "r4", "r1"])
        self.assertEqual(await ids(states=(S.REJECTED,)), ["r3", "r2"])
        self.assertEqual(
            await ids(states=(S.RECEIVED, S.COMPLETED)), ["r5", "r4", "r1"]
        )
        self.assertEqual(await ids(extension="101", states=(S.RECEIVED,)), ["r5"])
        self.assertEqual(await ids(limit=2), ["r5", "r3"])
        self.assertEqual(await ids(extension="100", limit=1), ["r3"])
        self.assertEqual(await ids(extension="999"), [])
        self.assertEqual(await ids(states=()), [])

    async def test_list_requests_default_limit_is_100(self) -> None:
        """Without a limit, list_requests returns at most the newest 100."""
        store = await self._store_with(make_extension())
        for n in range(105):
            request = make_request(f"r{n:03}", created_at=1000.0 + n)
            await store.create_request(request, first_event(request))
        found = await store.list_requests()
        self.assertEqual(len(found), 100)
        self.assertEqual((found[0].id, found[-1].id), ("r104", "r005"))

    async def test_removing_extension_keeps_its_requests(self) -> None:
        """Requests and their events outlive the extension they were made to."""
        request = make_request()
        store = await self._store_with_request(request)
        await store.remove_extension("100")
        self.assertEqual(await store.get_request("r1"), request)
        self.assertEqual(await store.get_request_by_token("john", "tok-r1"), request)
        self.assertEqual(await store.request_events("r1"), [first_event(request)])
        self.assertEqual(await store.list_requests(extension="100"), [request])

    async def test_ping(self) -> None:
        """A usable store answers a ping without raising."""
        store = self.make_store()
        await store.ping()
