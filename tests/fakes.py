"""In-memory fakes for unit tests; each passes the same contract tests as the real thing."""

from __future__ import annotations

import attrs

from callnowd.models import CallRequest, Extension, RequestEvent, RequestState
from callnowd.store.interface import (
    DuplicateCallNowId,
    DuplicateExtension,
    StaleState,
    UnknownExtension,
    UnknownRequest,
)


class MemoryStore:
    """A Store kept in dicts; every method completes at once."""

    def __init__(self) -> None:
        self.extensions: dict[str, Extension] = {}
        self.requests: dict[str, CallRequest] = {}
        self.events: list[RequestEvent] = []
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

    async def get_extension(self, number: str) -> Extension | None:
        return self.extensions.get(number)

    async def find_by_callnow_id(self, callnow_id: str) -> Extension | None:
        for extension in self.extensions.values():
            if extension.preferences.callnow_id == callnow_id:
                return extension
        return None

    async def list_extensions(self) -> list[Extension]:
        return sorted(self.extensions.values(), key=lambda e: e.number)

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
