"""What the visitor's status page says about a request, in HTML and JSON.

The visitor sees progress in plain words and nothing more: every refusal reads as
"not available", whatever its stored reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from callnowd.calls.states import FINAL
from callnowd.models import CallRequest, RequestEvent, RequestState
from callnowd.validation import mask_phone

_TEXT: dict[RequestState, str] = {
    RequestState.RECEIVED: "Your request has been received. {owner} will be called shortly.",
    RequestState.RINGING_OWNER: "Calling {owner}…",
    RequestState.CALLING_VISITOR: "{owner} accepted, calling you…",
    RequestState.CONNECTED: "Connected.",
    RequestState.COMPLETED: "The call is over. Thank you.",
    RequestState.VISITOR_NO_ANSWER: "We called you but nobody answered.",
    RequestState.VISITOR_BUSY: "We called you but your line was busy.",
    RequestState.CANCELLED: "This request was cancelled.",
}
_NOT_AVAILABLE = "{owner} is not available right now."


def describe(state: RequestState, owner: str | None) -> str:
    """The visitor-facing sentence for a state."""
    who = owner or "The person you asked for"
    text = _TEXT.get(state, _NOT_AVAILABLE).format(owner=who)
    return text[0].upper() + text[1:]


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def status_json(
    request: CallRequest, events: list[RequestEvent], owner: str | None
) -> bytes:
    """The JSON document of the status URL."""
    document: dict[str, Any] = {
        "state": request.state.value,
        "final": request.state in FINAL,
        "message": describe(request.state, owner),
        "phone": mask_phone(request.phone),
        "created_at": _iso(request.created_at),
        "updated_at": _iso(request.updated_at),
        "events": [
            {
                "state": e.state.value,
                "at": _iso(e.at),
                "message": describe(e.state, owner),
            }
            for e in events
        ],
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def status_page_context(
    request: CallRequest,
    events: list[RequestEvent],
    owner: str | None,
) -> dict[str, Any]:
    """The template values of the HTML status page."""
    return {
        "state": request.state.value,
        "final": request.state in FINAL,
        "headline": describe(request.state, owner),
        "phone": mask_phone(request.phone),
        "events": [
            {
                "iso": _iso(e.at),
                "clock": datetime.fromtimestamp(e.at, UTC).strftime("%H:%M:%S UTC"),
                "text": describe(e.state, owner),
            }
            for e in events
        ],
    }
