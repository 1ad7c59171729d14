"""Reading request parameters strictly: UTF-8 only, known fields, no repeats.

Twisted hands us raw bytes; anything that is not what a browser sends for our forms
(bad UTF-8, repeated fields, other content types, too many fields) is refused here
with a :class:`BadInput` naming the problem, before any value is interpreted.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import unquote_to_bytes

import attrs
from twisted.web.iweb import IRequest

FORM_CONTENT_TYPE = b"application/x-www-form-urlencoded"
MAX_FIELDS = 16


@attrs.frozen
class BadInput(Exception):
    """Request parameters that cannot be read; ``status`` is 400 or 415."""

    message: str
    field: str | None = None
    status: int = 400


def query_params(request: IRequest, allowed: Collection[str]) -> dict[str, str]:
    """The query string's parameters, decoded strictly.

    Unknown parameters are ignored (links get decorated by mailers and chat apps);
    known ones must be valid UTF-8 and appear once.

    Raises:
        BadInput: invalid UTF-8 or a repeated known parameter.
    """
    _, _, query = request.uri.partition(b"?")
    return _decode_pairs(_parse(query), allowed)


def form_params(request: IRequest, allowed: Collection[str]) -> dict[str, str]:
    """The urlencoded body's fields, decoded strictly.

    Raises:
        BadInput: another content type (415), invalid UTF-8, a repeated or unknown
            field, or too many fields.
    """
    content_type = request.getHeader(b"content-type") or b""
    media_type = content_type.split(b";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise BadInput(
            "This form must be sent as application/x-www-form-urlencoded.",
            status=415,
        )
    body = request.content.read() if request.content is not None else b""
    pairs = _parse(body)
    for name, _value in pairs:
        if name.decode("utf-8", "replace") not in allowed:
            raise BadInput("The form has a field this page does not know.")
    return _decode_pairs(pairs, allowed)


def _parse(data: bytes) -> list[tuple[bytes, bytes]]:
    # urllib's parse_qsl round-trips bytes through ASCII and fails on %FF, so the
    # raw bytes are unquoted here and decoded later, strictly, per parameter.
    parts = [p for p in data.split(b"&") if p]
    if len(parts) > MAX_FIELDS:
        raise BadInput("Too many parameters.")
    pairs = []
    for part in parts:
        name, _, value = part.partition(b"=")
        pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(raw: bytes) -> bytes:
    if b"%" not in raw and b"+" not in raw:
        return raw  # nothing to unquote (field names, most values)
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _decode_pairs(
    pairs: list[tuple[bytes, bytes]], allowed: Collection[str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = raw_name.decode("utf-8", "replace")
        if name not in allowed:
            continue
        if name in values:
            raise BadInput(f"The parameter {name!r} was given more than once.", name)
        try:
            values[name] = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(
                f"The parameter {name!r} is not valid UTF-8 text.", name
            ) from None
    return values
