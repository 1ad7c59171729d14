"""Codecs between SQL rows and the domain values of :mod:`callnowd.models`.

Owns the column order of rows (the SELECT lists in ``sqlite_sql`` follow it), the
JSON form of availability windows:
``[{"days": [0, 1], "start": "09:00", "end": "17:00"}]``, holidays as ISO dates,
and caller rules. Booleans travel as 0/1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, time
from typing import Any

from callnowd.models import (
    CallRequest,
    Extension,
    Preferences,
    RequestEvent,
    RequestSource,
    RequestState,
    Window,
)
from callnowd.rules.callers import (
    Action,
    CallerRule,
    NumberKind,
    NumberPattern,
    RuleSpec,
)

Row = Sequence[Any]


def encode_time(value: time) -> str:
    """Return ``HH:MM`` for whole minutes, the full ISO form otherwise."""
    if value.second == 0 and value.microsecond == 0 and value.tzinfo is None:
        return value.strftime("%H:%M")
    return value.isoformat()


def encode_windows(windows: Sequence[Window]) -> str:
    """Return the JSON text stored for ``windows`` (days sorted)."""
    return json.dumps(
        [
            {
                "days": sorted(window.days),
                "start": encode_time(window.start),
                "end": encode_time(window.end),
            }
            for window in windows
        ],
        separators=(",", ":"),
    )


def decode_windows(text: str) -> tuple[Window, ...]:
    """Parse the JSON text written by :func:`encode_windows`.

    Raises:
        ValueError: the text is not a list of windows.
    """
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError(f"windows must be a JSON list, not {text!r}")
    windows = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError(f"a window must be a JSON object, not {item!r}")
        windows.append(
            Window(
                days=frozenset(int(day) for day in item["days"]),
                start=time.fromisoformat(item["start"]),
                end=time.fromisoformat(item["end"]),
            )
        )
    return tuple(windows)


def extension_values(extension: Extension) -> tuple[Any, ...]:
    """Return the values of the ``extensions`` table row, in column order.

    The order is number, display_name, external_number, dial_string, timezone,
    account.
    """
    return (
        extension.number,
        extension.display_name,
        extension.external_number,
        extension.dial_string,
        extension.timezone,
        extension.account,
    )


def preferences_values(preferences: Preferences) -> tuple[Any, ...]:
    """Return the values of a ``preferences`` row after its extension column.

    The order is callnow_id, enabled, availability_enabled, windows, reject_all,
    confirmation_required, show_name, ask_name, image_validation,
    one_step_enabled, public_message, reject_when_busy, show_hours. Holidays
    are a table of their own (:func:`encode_holidays`).
    """
    return (
        preferences.callnow_id,
        int(preferences.enabled),
        int(preferences.availability_enabled),
        encode_windows(preferences.windows),
        int(preferences.reject_all),
        int(preferences.confirmation_required),
        int(preferences.show_name),
        int(preferences.ask_name),
        int(preferences.image_validation),
        int(preferences.one_step_enabled),
        preferences.public_message,
        int(preferences.reject_when_busy),
        int(preferences.show_hours),
    )


def encode_holidays(days: frozenset[date]) -> list[str]:
    """Return the ``holidays`` rows' ``day`` values, sorted."""
    return sorted(day.isoformat() for day in days)


def decode_holidays(text: str | None) -> frozenset[date]:
    """Parse the comma-joined ISO dates of ``SELECT_EXTENSION`` (NULL: none)."""
    if not text:
        return frozenset()
    return frozenset(date.fromisoformat(day) for day in text.split(","))


def decode_extension(row: Row) -> Extension:
    """Build an :class:`Extension` from a ``SELECT_EXTENSION`` row."""
    return Extension(
        number=row[0],
        display_name=row[1],
        external_number=row[2],
        dial_string=row[3],
        timezone=row[4],
        account=row[5],
        preferences=Preferences(
            callnow_id=row[6],
            enabled=bool(row[7]),
            availability_enabled=bool(row[8]),
            windows=decode_windows(row[9]),
            reject_all=bool(row[10]),
            confirmation_required=bool(row[11]),
            show_name=bool(row[12]),
            ask_name=bool(row[13]),
            image_validation=bool(row[14]),
            one_step_enabled=bool(row[15]),
            public_message=row[16],
            reject_when_busy=bool(row[17]),
            show_hours=bool(row[18]),
            holidays=decode_holidays(row[19]),
        ),
    )


def request_values(request: CallRequest) -> tuple[Any, ...]:
    """Return the values of a ``call_requests`` row, in column order."""
    return (
        request.id,
        request.token,
        request.extension,
        request.callnow_id,
        request.phone,
        request.name,
        request.state.value,
        request.reason,
        request.source.value,
        request.created_at,
        request.updated_at,
        request.dedupe_key,
        request.decision,
        request.decided_by,
        request.channel_id,
    )


def decode_request(row: Row) -> CallRequest:
    """Build a :class:`CallRequest` from a ``SELECT_REQUEST`` row."""
    return CallRequest(
        id=row[0],
        token=row[1],
        extension=row[2],
        callnow_id=row[3],
        phone=row[4],
        name=row[5],
        state=RequestState(row[6]),
        reason=row[7],
        source=RequestSource(row[8]),
        created_at=row[9],
        updated_at=row[10],
        dedupe_key=row[11],
        decision=row[12],
        decided_by=row[13],
        channel_id=row[14],
    )


def event_values(event: RequestEvent) -> tuple[Any, ...]:
    """Return the values of a ``request_events`` row, in column order."""
    return (event.request_id, event.at, event.state.value, event.reason, event.detail)


def decode_event(row: Row) -> RequestEvent:
    """Build a :class:`RequestEvent` from a ``SELECT_EVENTS`` row."""
    return RequestEvent(
        request_id=row[0],
        at=row[1],
        state=RequestState(row[2]),
        reason=row[3],
        detail=row[4],
    )


def rule_values(rule: RuleSpec) -> tuple[Any, ...]:
    """Return enabled, number_kind, number_pattern, name_glob, action of a rule."""
    number = rule.number
    return (
        int(rule.enabled),
        None if number is None else number.kind.value,
        None if number is None else number.pattern,
        rule.name_glob,
        rule.action.value,
    )


def decode_rule(row: Row) -> CallerRule:
    """Build a :class:`CallerRule` from a ``SELECT_RULE`` row."""
    kind, pattern = row[3], row[4]
    return CallerRule(
        id=row[0],
        position=row[1],
        spec=RuleSpec(
            action=Action(row[6]),
            number=None if kind is None else NumberPattern(NumberKind(kind), pattern),
            name_glob=row[5],
            enabled=bool(row[2]),
        ),
        created_at=row[7],
    )
