"""The typed seam between callnowd and its persistence.

Every implementation (SQLite, the embedded default; PostgreSQL for several daemons)
provides :class:`Store` and passes the shared contract tests in
``tests/store/contract.py``.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from callnowd.models import CallRequest, Extension, RequestEvent, RequestState
from callnowd.rules.callers import CallerRule, RuleSpec


@attrs.frozen
class UnknownExtension(Exception):
    """No extension has this number."""

    number: str


@attrs.frozen
class DuplicateExtension(Exception):
    """An extension with this number exists already."""

    number: str


@attrs.frozen
class DuplicateCallNowId(Exception):
    """Another extension uses this CallNow ID."""

    callnow_id: str


@attrs.frozen
class UnknownRequest(Exception):
    """No call request has this id."""

    request_id: str


@attrs.frozen
class StaleState(Exception):
    """A transition expected the request in another state than it is."""

    request_id: str
    expected: tuple[RequestState, ...]
    actual: RequestState


@attrs.frozen
class UnknownRule(Exception):
    """The extension has no rule with this id."""

    number: str
    rule_id: int


@attrs.frozen
class RulePositionOutOfRange(Exception):
    """A rule position outside 1..``last`` was asked for."""

    number: str
    position: int
    last: int


class Store(Protocol):
    """Persistence of extensions, preferences, caller rules, requests and events.

    Preferences include the holidays. Rules of an extension are numbered by
    position 1..N without gaps; every rule operation keeps it so.
    """

    async def add_extension(self, extension: Extension) -> None:
        """Store a new extension with its preferences.

        Raises:
            DuplicateExtension: the number is taken.
            DuplicateCallNowId: the CallNow ID is taken.
        """

    async def update_extension(self, extension: Extension) -> None:
        """Replace an extension (found by number) and its preferences.

        Raises:
            UnknownExtension: no such number.
            DuplicateCallNowId: the new CallNow ID is taken by another extension.
        """

    async def remove_extension(self, number: str) -> None:
        """Delete an extension; its past requests are kept.

        Raises:
            UnknownExtension: no such number.
        """

    async def get_extension(self, number: str) -> Extension | None:
        """Return the extension with this number, if any."""

    async def find_by_callnow_id(self, callnow_id: str) -> Extension | None:
        """Return the extension whose CallNow ID is ``callnow_id`` (exact match)."""

    async def list_extensions(self) -> list[Extension]:
        """Return every extension, ordered by number."""

    async def list_rules(self, number: str) -> list[CallerRule]:
        """Return the rules of extension ``number`` by position (none if unknown)."""

    async def add_rule(
        self,
        number: str,
        spec: RuleSpec,
        created_at: float,
        *,
        position: int | None = None,
    ) -> CallerRule:
        """Store a new rule at ``position`` (default: last); later ones move down.

        Returns:
            The stored rule with its new id (never reused) and position.

        Raises:
            UnknownExtension: no such number.
            RulePositionOutOfRange: ``position`` is not in 1..N+1.
        """

    async def update_rule(
        self, number: str, rule_id: int, spec: RuleSpec
    ) -> CallerRule:
        """Replace a rule's spec (patterns, action, enabled); keep id and position.

        Raises:
            UnknownRule: the extension has no such rule.
        """

    async def move_rule(
        self, number: str, rule_id: int, position: int
    ) -> list[CallerRule]:
        """Move a rule to ``position``; the others keep their relative order.

        Returns:
            The extension's rules in their new order.

        Raises:
            UnknownRule: the extension has no such rule.
            RulePositionOutOfRange: ``position`` is not in 1..N.
        """

    async def remove_rule(self, number: str, rule_id: int) -> None:
        """Delete a rule; the later ones move up.

        Raises:
            UnknownRule: the extension has no such rule.
        """

    async def create_request(
        self,
        request: CallRequest,
        event: RequestEvent,
        *,
        dedupe_since: float | None = None,
    ) -> tuple[CallRequest, bool]:
        """Store a new request and its first event in one transaction.

        When ``request.dedupe_key`` is set and a request with the same key was created
        at or after ``dedupe_since``, nothing is written and that request is returned.

        Returns:
            The stored (or existing) request, and whether it was created now.
        """

    async def get_request(self, request_id: str) -> CallRequest | None:
        """Return the request with this opaque id, if any."""

    async def get_request_by_token(
        self, callnow_id: str, token: str
    ) -> CallRequest | None:
        """Return the request with this status token under this CallNow ID."""

    async def transition(
        self,
        request_id: str,
        expected: tuple[RequestState, ...],
        event: RequestEvent,
        *,
        channel_id: str | None = None,
    ) -> CallRequest:
        """Move a request to ``event.state`` if it is in one of ``expected``.

        The state change and its audit event are written in one transaction; a
        ``channel_id`` given is recorded on the request (the PBX channel it dials).

        Raises:
            UnknownRequest: no such request.
            StaleState: the request is in another state.
        """

    async def request_events(self, request_id: str) -> list[RequestEvent]:
        """Return the audit trail of a request, oldest first."""

    async def list_requests(
        self,
        *,
        extension: str | None = None,
        states: tuple[RequestState, ...] | None = None,
        limit: int = 100,
    ) -> list[CallRequest]:
        """Return requests, newest first, optionally filtered."""

    async def ping(self) -> None:
        """Run a trivial query; raise if the store is not usable."""

    async def close(self) -> None:
        """Release connections and threads."""
