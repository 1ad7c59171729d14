"""Creating call requests: ids, tokens, idempotency keys.

Pure apart from the randomness of ids and tokens (``secrets``); time comes in as
``now``.
"""

from __future__ import annotations

import hashlib
import secrets

from callnowd.models import (
    CallRequest,
    Extension,
    RequestEvent,
    RequestSource,
    RequestState,
)


def new_request_id() -> str:
    """An opaque request id: 16 lowercase hex digits, safe on AMI and AGI."""
    return secrets.token_hex(8)


def new_token() -> str:
    """A visitor's status-page token: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


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
    dedupe: bool = False,
) -> tuple[CallRequest, RequestEvent]:
    """Build a request in state ``received`` and its first audit event.

    Args:
        extension: the extension whose owner is asked.
        phone: the visitor's number, already E.164.
        name: the visitor's validated name, if given.
        source: how the request arrived.
        now: the current POSIX time.
        dedupe: whether identical requests within a window should collapse.

    Returns:
        The request and its first event.
    """
    callnow_id = extension.preferences.callnow_id
    request = CallRequest(
        id=new_request_id(),
        token=new_token(),
        extension=extension.number,
        callnow_id=callnow_id,
        phone=phone,
        name=name,
        state=RequestState.RECEIVED,
        source=source,
        created_at=now,
        updated_at=now,
        dedupe_key=dedupe_key(callnow_id, phone, name) if dedupe else None,
        # Connect on answer, or ask the owner to press 1 first.
        decision="confirm" if extension.preferences.confirmation_required else "accept",
        decided_by="preferences",
    )
    event = RequestEvent(
        request_id=request.id, at=now, state=RequestState.RECEIVED, detail=source.value
    )
    return request, event
