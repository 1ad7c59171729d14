"""Value checks shared by the config loader, the CLI and the HTTP forms.

Each check takes a value and raises :class:`ValueError` with a message that reads
well after a key or field name ("must be ..."); it returns nothing.
"""

from __future__ import annotations

import re
import zoneinfo
from urllib.parse import urlsplit

import phonenumbers
from twisted.internet import endpoints
from twisted.internet.testing import MemoryReactor

from callnowd.ami.sim_config import OwnerScript, VisitorScript
from callnowd.limits.destination_policy import (
    parse_number_types,
    parse_prefixes,
    parse_regions,
)
from callnowd.store.open import parse_store_url

_INSTANCE_RE = re.compile(r"[a-z0-9]{0,12}")


def positive(value: int | float) -> None:
    """Refuse zero and negative numbers."""
    if value <= 0:
        raise ValueError(f"must be greater than 0, not {value}")


def non_empty(value: str) -> None:
    """Refuse an empty or blank string."""
    if not value.strip():
        raise ValueError("must not be empty")


def instance_id(value: str) -> None:
    """An instance id is 0-12 lowercase letters and digits."""
    if not _INSTANCE_RE.fullmatch(value):
        raise ValueError(f"must be 0-12 lowercase letters or digits, not {value!r}")


def server_endpoint(value: str) -> None:
    """A Twisted server endpoint string such as ``tcp:8080:interface=127.0.0.1``."""
    try:
        endpoints.serverFromString(MemoryReactor(), value)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"is not a valid server endpoint string ({value!r}): {e}"
        ) from e


def client_endpoint(value: str) -> None:
    """A Twisted client endpoint string such as ``tcp:host=127.0.0.1:port=5038``."""
    try:
        endpoints.clientFromString(MemoryReactor(), value)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"is not a valid client endpoint string ({value!r}): {e}"
        ) from e


def http_url(value: str) -> None:
    """An absolute http(s) URL without query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")


def store_url(value: str) -> None:
    """``sqlite:<path>`` or ``postgresql://...``."""
    parse_store_url(value)


_AMI_WORD = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_SOUND = re.compile(r"[A-Za-z0-9_./-]{1,128}")
_TRUNK_SAFE = re.compile(r"[A-Za-z0-9_./@:+{}-]{3,120}")


def ami_word(value: str) -> None:
    """A username, context or extension: letters, digits and ``_.@-``."""
    if not _AMI_WORD.fullmatch(value):
        raise ValueError(f"must be 1-64 letters, digits or _.@- , not {value!r}")


def sound(value: str) -> None:
    """A sound file name without extension, e.g. ``callnow/incoming``."""
    if not _SOUND.fullmatch(value) or ".." in value:
        raise ValueError(f"must be a sound name like callnow/incoming, not {value!r}")


def agi_url(value: str) -> None:
    """Empty (derived from agi_listen) or ``agi://host[:port]`` without a path."""
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme != "agi" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"must look like agi://127.0.0.1:4573, not {value!r}")


def trunk(value: str) -> None:
    """A Dial target template with ``{e164}`` or ``{digits}``, e.g. ``PJSIP/{e164}@trunk``.

    Commas, ``&`` and ``|`` would add Dial options or targets, so they are refused.
    """
    if not _TRUNK_SAFE.fullmatch(value) or "/" not in value:
        raise ValueError(
            f"must be like PJSIP/{{e164}}@trunk (no commas, & or spaces), not {value!r}"
        )
    try:
        rendered = value.format(e164="+1", digits="1")
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"may only use {{e164}} and {{digits}}: {e}") from None
    if rendered == value:
        raise ValueError("must contain {e164} or {digits}")


def owner_scripts(value: dict[str, str]) -> None:
    """Simulator owner scripts: dial string = "answer digit=1 digit_delay=1.5"."""
    for dial, script in value.items():
        try:
            OwnerScript.parse(script)
        except ValueError as e:
            raise ValueError(f"{dial!r}: {e}") from None


def visitor_scripts(value: dict[str, str]) -> None:
    """Simulator visitor scripts: number or prefix* = "answer talk_seconds=5"."""
    for number, script in value.items():
        try:
            visitor_script(script)
        except ValueError as e:
            raise ValueError(f"{number!r}: {e}") from None


def visitor_script(value: str) -> None:
    """One simulator visitor script, e.g. ``busy`` or ``answer talk_seconds=5``."""
    VisitorScript.parse(value)


def regions(value: tuple[str, ...]) -> None:
    """Region codes such as US, GB (``001``: non-geographic numbers)."""
    parse_regions(value)


def number_types(value: tuple[str, ...]) -> None:
    """Phonenumbers number type names such as PREMIUM_RATE."""
    parse_number_types(value)


def prefixes(value: tuple[str, ...]) -> None:
    """E.164 prefixes such as +1900."""
    parse_prefixes(value)


def region(value: str) -> None:
    """A two-letter region known to phonenumbers (e.g. ``US``, ``GB``)."""
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"must be a two-letter region code such as US, not {value!r}")


def captcha_length(value: int) -> None:
    """A CAPTCHA has 4 to 8 characters."""
    if not 4 <= value <= 8:
        raise ValueError(f"must be between 4 and 8, not {value}")


def timezone(value: str) -> None:
    """An IANA time zone name such as ``America/New_York``."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"must be an IANA time zone such as Europe/London: {value!r}"
        ) from e
