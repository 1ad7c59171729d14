"""Pieces of the public pages' answers that need no page state.

The client's address (behind a trusted proxy or not), the owner's hours, content
negotiation, the readiness and limiter seams, and the stylesheet.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from importlib.resources import files
from typing import Protocol
from zoneinfo import ZoneInfo

import phonenumbers
from twisted.web.iweb import IRequest

from callnowd.http.csrf import COOKIE_NAME
from callnowd.limits.ratelimit import Verdict
from callnowd.models import Extension
from callnowd.rules.availability import describe_window, is_available, next_available

IP_RE = re.compile(r"[0-9A-Fa-f:.]{2,45}")


def client_ip(request: IRequest, trust_forwarded_for: bool) -> str:
    """The visitor's address; behind a trusted proxy the last X-Forwarded-For."""
    if trust_forwarded_for:
        forwarded = request.getHeader(b"x-forwarded-for")
        if forwarded:
            # The last address is the one our own proxy appended.
            last: str = forwarded.decode("latin-1").split(",")[-1].strip()
            if IP_RE.fullmatch(last):
                return last
    address = request.getClientAddress()
    return str(getattr(address, "host", "unknown"))


def hours_lines(extension: Extension | None, now: float) -> list[str]:
    """The owner's hours, when he shows them and is outside them now."""
    if extension is None:
        return []
    prefs = extension.preferences
    if (
        not prefs.show_hours
        or not prefs.enabled
        or prefs.reject_all
        or not prefs.availability_enabled
        or is_available(prefs, extension.timezone, now)
    ):
        return []
    lines = [f"{describe_window(w)} ({extension.timezone} time)" for w in prefs.windows]
    upcoming = next_available(prefs, extension.timezone, now)
    if upcoming is not None:
        local = datetime.fromtimestamp(upcoming, ZoneInfo(extension.timezone))
        lines.append(f"Next available: {local:%A %d %B, %H:%M}")
    return lines


class NotReady(Exception):
    """A readiness check's "no", with the words /readyz shows as they are."""


class NotFoundLimiter(Protocol):
    """Rate limit of "not available" answers per client."""

    async def check_404(self, client_ip: str, now: float) -> Verdict:
        """Allowed, or refused with a retry delay."""


def duration(seconds: float) -> str:
    """A wait for people: "a minute", "12 minutes", "3 hours"."""
    minutes = math.ceil(seconds / 60)
    if minutes < 2:
        return "a minute"
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{math.ceil(minutes / 60)} hours"


def cookie_nonce(request: IRequest) -> str | None:
    """The CSRF cookie's value, if sent."""
    raw = request.getCookie(COOKIE_NAME)
    return raw.decode("ascii", "replace") if raw is not None else None


def wants_json(request: IRequest) -> bool:
    """Whether the client asked for JSON (``Accept: application/json``)."""
    accept = request.getHeader(b"accept") or b""
    return b"application/json" in accept


def json_bytes(value: object) -> bytes:
    """``value`` as UTF-8 JSON."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def phone_example(region: str) -> str:
    """An example mobile number of ``region``, for the form's hint."""
    example = phonenumbers.example_number_for_type(
        region, phonenumbers.PhoneNumberType.MOBILE
    )
    if example is None:
        return "+1 212 555 0123"
    return phonenumbers.format_number(
        example, phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )


def _load_stylesheet() -> bytes:
    return files("callnowd.http").joinpath("static/callnow.css").read_bytes()


STYLESHEET = _load_stylesheet()
