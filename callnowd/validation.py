"""Visitor input: names and phone numbers, normalised or refused with a reason.

The rules come from THREATS.md §3: a name is NFC letters, marks, digits, spaces and
``.'-`` (1-40 characters after trimming); a phone number is re-formatted E.164. Nothing
else a visitor types is ever stored or sent on.
"""

from __future__ import annotations

import re
import unicodedata

import attrs
import phonenumbers

NAME_MAX = 40
PHONE_INPUT_MAX = 32
_NAME_PUNCTUATION = frozenset(" .'-")
_PHONE_INPUT_RE = re.compile(r"[0-9+()./ -]+")


@attrs.frozen
class FieldError(Exception):
    """A visitor-supplied field was refused; ``message`` is shown next to it."""

    field: str
    message: str


def normalize_name(raw: str) -> str:
    """Return the visitor's name in NFC, trimmed, or refuse it.

    Args:
        raw: the name as typed.

    Returns:
        The normalised name (1-40 characters).

    Raises:
        FieldError: empty, too long, or with a character outside letters, marks,
            digits, space and ``.'-``.
    """
    name = unicodedata.normalize("NFC", raw).strip(" ")
    if not name:
        raise FieldError("name", "Please enter your name.")
    if len(name) > NAME_MAX:
        raise FieldError("name", f"Your name can have at most {NAME_MAX} characters.")
    for char in name:
        category = unicodedata.category(char)
        if char in _NAME_PUNCTUATION or category[0] in "LM" or category == "Nd":
            continue
        raise FieldError(
            "name",
            "Your name may contain only letters, digits, spaces and . ' -",
        )
    if "  " in name:
        raise FieldError("name", "Your name has repeated spaces.")
    return name


def normalize_phone(raw: str, default_region: str) -> str:
    """Return the visitor's number in E.164, or refuse it.

    National formats are read in ``default_region``; ``+`` numbers in any region.

    Args:
        raw: the number as typed (digits, spaces, ``+()./-``).
        default_region: the two-letter region for national numbers.

    Returns:
        The number as ``+`` and digits.

    Raises:
        FieldError: empty, too long, with other characters, or not a valid number.
    """
    text = check_phone_text(raw)
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as e:
        raise FieldError("phone", "This is not a valid phone number.") from e
    if not phonenumbers.is_valid_number(number):
        raise FieldError("phone", "This is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_phone_text(raw: str) -> str:
    """The number as typed, trimmed, if it is made of phone-number characters.

    Raises:
        FieldError: empty, longer than 32 characters, or with other characters.
    """
    text = raw.strip(" ")
    if not text:
        raise FieldError("phone", "Please enter your phone number.")
    if len(text) > PHONE_INPUT_MAX or not _PHONE_INPUT_RE.fullmatch(text):
        raise FieldError(
            "phone", "Enter a phone number using digits, spaces and + ( ) . - only."
        )
    return text


def mask_phone(e164: str) -> str:
    """Show a stored number with its middle digits hidden, e.g. ``+1212•••0123``."""
    if len(e164) <= 6:
        return e164
    keep_head = min(5, len(e164) - 4)
    hidden = len(e164) - keep_head - 4
    return e164[:keep_head] + "•" * hidden + e164[-4:]
