"""Creating call requests: ids, tokens, idempotency keys, the decision they carry.

Pure apart from the randomness of ids and tokens (``secrets``); time comes in as
``now``. A request the rules reject is created directly in state ``rejected`` (its
one audit event says ``rejected`` with the reason), so a refused request is never
``received`` and nothing can dispatch it, even for an instant.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from callnowd.models import (
    CallRequest,
    Extension,
    RequestEvent,
    RequestSource,
    RequestState,
)
from callnowd.rules.callers import Action
from callnowd.rules.engine import Decision, decide_for_request


def new_request_id() -> str:
    """An opaque request id: 16 lowercase hex digits, safe on AMI and AGI."""
    return secrets.token_hex(8)


def new_token() -> str:
    """A visitor's status-page token: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def new_id_and_token() -> tuple[str, str]:
    """A request id and a status token as the two functions above make them.

    From one read of the system's randomness (bytes 0-7 the id, 8-23 the token).
    """
    raw = secrets.token_bytes(24)
    token = base64.urlsafe_b64encode(raw[8:]).rstrip(b"=").decode("ascii")
    return raw[:8].hex(), token


def dedupe_key(callnow_id: str, phone: str, name: str | None) -> str:
    """The key under which identical one-step requests are recognised."""
    material = "\x1f".join((callnow_id, phone, name or "")).encode()
    return hashlib.sha256(material).hexdigest()


def new_request(
    extension: Extension,
    phone: str,
    name: str | None,
    source: RequestSource,
    now: float,
    *,
    decision: Decision | None = None,
    dedupe: bool = False,
) -> tuple[CallRequest, RequestEvent]:
    """Build a request as the rules decided, and its first audit event.

    Accepted and confirmed requests start ``received``; rejected ones start
    ``rejected`` with the decision's reason. Either way the request records the
    action (``accept``, ``confirm``, ``reject``) and what decided it.

    Args:
        extension: the extension whose owner is asked.
        phone: the visitor's number, already E.164.
        name: the visitor's validated name, if given.
        source: how the request arrived.
        now: the current POSIX time.
        decision: the rules' decision; when omitted, the extension's preferences
            alone decide (no per-caller rules, owner not busy).
        dedupe: whether identical requests within a window should collapse.

    Returns:
        The request and its first event.
    """
    if decision is None:
        decision = decide_for_request(extension, (), phone, name, False, now)
    rejected = decision.action is Action.REJECT
    state = RequestState.REJECTED if rejected else RequestState.RECEIVED
    reason = decision.reason.value if rejected else None
    callnow_id = extension.preferences.callnow_id
    request_id, token = new_id_and_token()
    request = CallRequest(
        id=request_id,
        token=token,
        extension=extension.number,
        callnow_id=callnow_id,
        phone=phone,
        name=name,
        state=state,
        source=source,
        created_at=now,
        updated_at=now,
        reason=reason,
        dedupe_key=dedupe_key(callnow_id, phone, name) if dedupe else None,
        # Connect on answer, or ask the owner to press 1 first (or never ring).
        decision=decision.action.value,
        decided_by=decision.decided_by,
    )
    event = RequestEvent(
        request_id=request.id,
        at=now,
        state=state,
        reason=reason,
        detail=source.value,
    )
    return request, event
