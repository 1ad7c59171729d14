"""In-memory fakes for unit tests; each passes the same contract tests as the real thing."""

from __future__ import annotations

import attrs

from callnowd.models import CallRequest, Extension, RequestEvent, RequestState
from callnowd.rules.callers import CallerRule, RuleSpec
from callnowd.store.interface import (
    DuplicateCallNowId,
    DuplicateExtension,
    RulePositionOutOfRange,
    StaleState,
    UnknownExtension,
    UnknownRequest,
    UnknownRule,
)


class MemoryStore:
    """A Store kept in dicts; every method completes at once."""

    def __init__(self) -> None:
        self.extensions: dict[str, Extension] = {}
        self.requests: dict[str, CallRequest] = {}
        self.events: list[RequestEvent] = []
        self.rules: dict[str, list[CallerRule]] = {}
        self._last_rule_id = 0
        self.closed = False

    def _id_taken(self, callnow_id: str, number: str) -> bool:
        return any(
            e.preferences.callnow_id == callnow_id and e.number != number
            for e in self.extensions.values()
        )

    async def add_extension(self, extension: Extension) -> None:
        if extension.number in self.extensions:
            raise DuplicateExtension(extension.number)
        if self._id_taken(extension.preferences.callnow_id, extension.number):
            raise DuplicateCallNowId(extension.preferences.callnow_id)
        self.extensions[extension.number] = extension

    async def update_extension(self, extension: Extension) -> None:
        if extension.number not in self.extensions:
            raise UnknownExtension(extension.number)
        if self._id_taken(extension.preferences.callnow_id, extension.number):
            raise DuplicateCallNowId(extension.preferences.callnow_id)
        self.extensions[extension.number] = extension

    async def remove_extension(self, number: str) -> None:
        if self.extensions.pop(number, None) is None:
            raise UnknownExtension(number)
        self.rules.pop(number, None)

    async def get_extension(self, number: str) -> Extension | None:
        return self.extensions.get(number)

    async def find_by_callnow_id(self, callnow_id: str) -> Extension | None:
        for extension in self.extensions.values():
            if extension.preferences.callnow_id == callnow_id:
                return extension
        return None

    async def list_extensions(self) -> list[Extension]:
        return sorted(self.extensions.values(), key=lambda e: e.number)

    async def list_rules(self, number: str) -> list[CallerRule]:
        return list(self.rules.get(number, []))

    def _renumber(self, number: str, order: list[CallerRule]) -> list[CallerRule]:
        self.rules[number] = [
            attrs.evolve(rule, position=n) for n, rule in enumerate(order, start=1)
        ]
        return list(self.rules[number])

    def _rule(self, number: str, rule_id: int) -> CallerRule:
        for rule in self.rules.get(number, []):
            if rule.id == rule_id:
                return rule
        raise UnknownRule(number, rule_id)

    async def add_rule(
        self,
        number: str,
        spec: RuleSpec,
        created_at: float,
        *,
        position: int | None = None,
    ) -> CallerRule:
        if number not in self.extensions:
            raise UnknownExtension(number)
        order = list(self.rules.get(number, []))
        last = len(order) + 1
        at = last if position is None else position
        if not 1 <= at <= last:
            raise RulePositionOutOfRange(number, at, last)
        self._last_rule_id += 1
        order.insert(at - 1, CallerRule(self._last_rule_id, at, spec, created_at))
        return self._renumber(number, order)[at - 1]

    async def update_rule(
        self, number: str, rule_id: int, spec: RuleSpec
    ) -> CallerRule:
        rule = attrs.evolve(self._rule(number, rule_id), spec=spec)
        self.rules[number] = [
            rule if r.id == rule_id else r for r in self.rules[number]
        ]
        return rule

    async def move_rule(
        self, number: str, rule_id: int, position: int
    ) -> list[CallerRule]:
        rule = self._rule(number, rule_id)
        order = list(self.rules[number])
        if not 1 <= position <= len(order):
            raise RulePositionOutOfRange(number, position, len(order))
        order.remove(rule)
        order.insert(position - 1, rule)
        return self._renumber(number, order)

    async def remove_rule(self, number: str, rule_id: int) -> None:
        rule = self._rule(number, rule_id)
        self._renumber(number, [r for r in self.rules[number] if r is not rule])

    async def create_request(
        self,
        request: CallRequest,
        event: RequestEvent,
        *,
        dedupe_since: float | None = None,
    ) -> tuple[CallRequest, bool]:
        if request.dedupe_key is not None and dedupe_since is not None:
            for existing in sorted(
                self.requests.values(), key=lambda r: r.created_at, reverse=True
            ):
                if (
                    existing.dedupe_key == request.dedupe_key
                    and existing.created_at >= dedupe_since
                ):
                    return existing, False
        self.requests[request.id] = request
        self.events.append(event)
        return request, True

    async def get_request(self, request_id: str) -> CallRequest | None:
        return self.requests.get(request_id)

    async def get_request_by_token(
        self, callnow_id: str, token: str
    ) -> CallRequest | None:
        for request in self.requests.values():
            if request.token == token and request.callnow_id == callnow_id:
                return request
        return None

    async def transition(
        self,
        request_id: str,
        expected: tuple[RequestState, ...],
        event: RequestEvent,
        *,
        channel_id: str | None = None,
    ) -> CallRequest:
        current = self.requests.get(request_id)
        if current is None:
            raise UnknownRequest(request_id)
        if current.state not in expected:
            raise StaleState(request_id, expected, current.state)
        updated = attrs.evolve(
            current,
            state=event.state,
            reason=event.reason,
            updated_at=event.at,
            channel_id=channel_id or current.channel_id,
        )
        self.requests[request_id] = updated
        self.events.append(event)
        return updated

    async def request_events(self, request_id: str) -> list[RequestEvent]:
        return [e for e in self.events if e.request_id == request_id]

    async def list_requests(
        self,
        *,
        extension: str | None = None,
        states: tuple[RequestState, ...] | None = None,
        limit: int = 100,
    ) -> list[CallRequest]:
        found = [
            r
            for r in self.requests.values()
            if (extension is None or r.extension == extension)
            and (states is None or r.state in states)
        ]
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[:limit]

    async def ping(self) -> None:
        if self.closed:
            raise RuntimeError("store closed")

    async def close(self) -> None:
        self.closed = True
