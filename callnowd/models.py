"""Domain values: extensions, their CallNow preferences, call requests and events.

Plain frozen attrs classes with no I/O, shared by the store, the HTTP adapters, the
CLI and the call core.
"""

from __future__ import annotations

import enum
import re
from datetime import date, time

import attrs

CALLNOW_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
EXTENSION_NUMBER_RE = re.compile(r"[0-9*#]{1,32}")
# A dial string goes to AMI's Channel header: technology/resource, no separators that
# Asterisk would treat as options, extra targets or new lines.
DIAL_STRING_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*/[A-Za-z0-9_.@*#:+-]{1,120}")
ACCOUNT_RE = re.compile(r"[A-Za-z0-9_.-]{0,64}")
PUBLIC_MESSAGE_MAX = 500
DISPLAY_NAME_MAX = 64


class RequestState(enum.StrEnum):
    """The states of a call request (DESIGN §5)."""

    RECEIVED = "received"
    REJECTED = "rejected"
    RINGING_OWNER = "ringing_owner"
    OWNER_DECLINED = "owner_declined"
    OWNER_NO_ANSWER = "owner_no_answer"
    OWNER_BUSY = "owner_busy"
    FAILED = "failed"
    CALLING_VISITOR = "calling_visitor"
    VISITOR_NO_ANSWER = "visitor_no_answer"
    VISITOR_BUSY = "visitor_busy"
    CONNECTED = "connected"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RequestSource(enum.StrEnum):
    """How a request reached callnowd."""

    FORM = "form"
    ONE_STEP = "one_step"
    API = "api"


@attrs.frozen
class Window:
    """A weekly availability window in the owner's time zone.

    ``end <= start`` means the window runs across midnight into the next day.
    Days are ISO weekday numbers minus one: 0 is Monday, 6 is Sunday.
    """

    days: frozenset[int]
    start: time
    end: time


@attrs.frozen
class Preferences:
    """The CallNow preferences of one extension (the seed's list).

    ``holidays`` are dates (in the owner's time zone) on which he is unavailable all
    day; like ``windows`` they apply only when ``availability_enabled`` is on.
    ``reject_when_busy`` refuses requests while the owner is on the phone;
    ``show_hours`` shows the availability windows on the public page.
    """

    callnow_id: str
    enabled: bool = True
    availability_enabled: bool = False
    windows: tuple[Window, ...] = ()
    reject_all: bool = False
    confirmation_required: bool = True
    show_name: bool = False
    ask_name: bool = True
    image_validation: bool = True
    one_step_enabled: bool = True
    public_message: str = ""
    reject_when_busy: bool = False
    show_hours: bool = False
    holidays: frozenset[date] = frozenset()


@attrs.frozen
class Extension:
    """A PBX extension and the CallNow preferences of its owner."""

    number: str
    display_name: str
    external_number: str
    dial_string: str
    timezone: str
    preferences: Preferences
    account: str = ""


@attrs.frozen
class CallRequest:
    """A visitor's request to be called back by an extension's owner.

    ``id`` is opaque and is the only value that crosses AMI and AGI; ``token`` is
    the visitor's unguessable key to the status page and never leaves HTTP.
    """

    id: str
    token: str
    extension: str
    callnow_id: str
    phone: str
    name: str | None
    state: RequestState
    source: RequestSource
    created_at: float
    updated_at: float
    reason: str | None = None
    dedupe_key: str | None = None
    decision: str | None = None
    decided_by: str | None = None
    channel_id: str | None = None


@attrs.frozen
class RequestEvent:
    """One entry of a request's audit trail: a state it entered, when and why."""

    request_id: str
    at: float
    state: RequestState
    reason: str | None = None
    detail: str | None = None
