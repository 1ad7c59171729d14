"""Domain values for store tests: extensions, requests and their first events."""

from __future__ import annotations

from datetime import date, time
from typing import Any

import attrs

from callnowd.models import (
    CallRequest,
    Extension,
    Preferences,
    RequestEvent,
    RequestSource,
    RequestState,
    Window,
)

S = RequestState


def make_extension(
    number: str = "100", callnow_id: str = "john", **preferences: Any
) -> Extension:
    """An extension with default preferences, overridden by ``preferences``."""
    return Extension(
        number=number,
        display_name=f"Owner {number}",
        external_number="+15551230000",
        dial_string=f"PJSIP/{number}",
        timezone="Europe/Paris",
        preferences=attrs.evolve(Preferences(callnow_id=callnow_id), **preferences),
    )


def full_extension() -> Extension:
    """An extension where every field differs from its default."""
    return Extension(
        number="2001",
        display_name='Zoë Ångström-李 "the boss" O\'Neil',
        external_number="+33123456789",
        dial_string="PJSIP/zoe@office",
        timezone="America/New_York",
        account="acct-7.main",
        preferences=Preferences(
            callnow_id="Zoe.Office-7",
            enabled=False,
            availability_enabled=True,
            windows=(
                Window(frozenset({0, 1, 2, 3, 4}), time(9, 0), time(17, 30)),
                Window(frozenset({5}), time(22, 15), time(6, 0)),
                Window(frozenset({6, 0}), time(12, 0, 30), time(12, 45, 0, 250)),
            ),
            reject_all=True,
            confirmation_required=False,
            show_name=True,
            ask_name=False,
            image_validation=False,
            one_step_enabled=False,
            public_message='Back "soon" — it\'s\nline two\r\nand a \\ backslash ✓',
            reject_when_busy=True,
            show_hours=True,
            holidays=frozenset(
                {date(2026, 12, 24), date(2027, 1, 1), date(1999, 2, 28)}
            ),
        ),
    )


def make_request(
    request_id: str = "r1",
    *,
    token: str | None = None,
    extension: str = "100",
    callnow_id: str = "john",
    created_at: float = 1000.0,
    state: RequestState = S.RECEIVED,
    dedupe_key: str | None = None,
    name: str | None = "Mary",
) -> CallRequest:
    """A call request; its token defaults to ``tok-<id>``."""
    return CallRequest(
        id=request_id,
        token=token or f"tok-{request_id}",
        extension=extension,
        callnow_id=callnow_id,
        phone="+15557654321",
        name=name,
        state=state,
        source=RequestSource.FORM,
        created_at=created_at,
        updated_at=created_at,
        reason="rejected_all" if state is S.REJECTED else None,
        dedupe_key=dedupe_key,
    )


def first_event(request: CallRequest) -> RequestEvent:
    """The audit event of a request's initial state."""
    return RequestEvent(
        request.id, request.created_at, request.state, reason=request.reason
    )
