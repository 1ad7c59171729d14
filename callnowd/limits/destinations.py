"""The destination screen: may callnowd call this number back? (THREATS.md §1).

This module owns :func:`check_destination`, a pure function from a number as typed
(or already E.164) and a :class:`~callnowd.limits.destination_policy.DestinationPolicy`
to a :class:`DestinationVerdict`. It never raises on any string, never touches the
network and keeps no state except caches of its own answers: the screen is a pure
function of its arguments, so a bounded LRU of verdicts (:data:`VERDICT_CACHE_SIZE`)
answers a number seen again -- a flood repeats one number -- without phonenumbers'
parse, which is most of its cost.

The checks, in order (the first that fails is the reason):

1. ``emergency``: an emergency number, or one that connects to one (``911``,
   ``112``, ``999``, ``000``, US ``9111``), read in the home region, in any allowed
   region, in the region(s) of the number's country code (``+44 999``), and, for
   input of at most six digits, in any region at all. Calling emergency services
   with the owner's caller id is a swatting tool, so this is recognised broadly.
2. ``short_number`` / ``invalid``: not a valid full number for phonenumbers (short
   codes such as ``411``; anything else that is not an assigned range).
3. ``prefix_blocked``: starts with one of the operator's E.164 prefixes.
4. ``non_geographic``: region ``001`` (``+881``, ``+882``, ``+883``, ``+800`` ...),
   unless the operator allows ``001``.
5. ``region_not_allowed``: the number's region (not its country code) is not allowed.
6. ``number_type_refused:<TYPE>``: e.g. ``number_type_refused:PREMIUM_RATE``.
7. ``extension_not_allowed``: the extension's own allow-list excludes it.
"""

from __future__ import annotations

import functools
import re

import attrs
import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType, shortnumberinfo
from phonenumbers.phonenumberutil import (
    COUNTRY_CODE_TO_REGION_CODE,
    _number_type_helper,
    country_code_for_valid_region,
    national_significant_number,
)
from phonenumbers.re_util import re_compile

from callnowd.limits.destination_policy import (
    NAME_BY_TYPE,
    NON_GEOGRAPHIC_REGION,
    DestinationPolicy,
    ExtensionAllow,
)

REASON_INVALID = "invalid"
REASON_EMERGENCY = "emergency"
REASON_SHORT_NUMBER = "short_number"
REASON_PREFIX_BLOCKED = "prefix_blocked"
REASON_NON_GEOGRAPHIC = "non_geographic"
REASON_REGION_NOT_ALLOWED = "region_not_allowed"
REASON_NUMBER_TYPE_REFUSED = "number_type_refused"
REASON_EXTENSION_NOT_ALLOWED = "extension_not_allowed"

MESSAGE_REFUSED = "This number cannot be called."
MESSAGE_INVALID = "This is not a valid phone number."
MESSAGE_EMERGENCY = (
    "This service cannot call emergency numbers. "
    "In an emergency, call your local emergency number directly."
)

# The characters validation.normalize_phone accepts; anything else (letters, which
# phonenumbers would read as vanity digits or an extension) is refused unread.
_INPUT_RE = re.compile(r"[0-9+()./ -]{1,64}")
_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
_NOT_DIGIT_RE = re.compile(r"[^0-9]+")
# Longest digit string treated as a short number; phonenumbers' emergency numbers
# have 2 to 6 digits.
_SHORT_MAX_DIGITS = 6
#: Verdicts remembered (number as typed, policy, allow-list); least recent first out.
VERDICT_CACHE_SIZE = 4096


@attrs.frozen
class DestinationVerdict:
    """The screen's answer for one number.

    Attributes:
        allowed: whether callnowd may call the number.
        e164: the number as ``+`` and digits when allowed, else ``None``.
        region: its region code (``"US"``, ``"JM"``) when allowed, else ``None``.
        number_type: its phonenumbers type name (``"MOBILE"``) when allowed.
        reason: when refused, the machine-readable reason (``"emergency"``,
            ``"number_type_refused:PREMIUM_RATE"`` ...), else ``None``.
        message: when refused, the sentence to show the visitor, else ``None``.
    """

    allowed: bool
    e164: str | None = None
    region: str | None = None
    number_type: str | None = None
    reason: str | None = None
    message: str | None = None

    @property
    def reason_kind(self) -> str | None:
        """The reason without its detail: ``"number_type_refused"`` for any type."""
        return None if self.reason is None else self.reason.partition(":")[0]


def _allow(e164: str, region: str, number_type: str) -> DestinationVerdict:
    return DestinationVerdict(True, e164=e164, region=region, number_type=number_type)


def _refuse(reason: str) -> DestinationVerdict:
    if reason == REASON_INVALID:
        message = MESSAGE_INVALID
    elif reason == REASON_EMERGENCY:
        message = MESSAGE_EMERGENCY
    else:
        message = MESSAGE_REFUSED
    return DestinationVerdict(False, reason=reason, message=message)


def check_destination(
    raw_or_e164: str,
    policy: DestinationPolicy,
    extension_allow: ExtensionAllow | None = None,
) -> DestinationVerdict:
    """Decide whether callnowd may call a number back.

    Args:
        raw_or_e164: the number as typed, or E.164. Input without ``+`` is read in
            ``policy.home_region``. Only digits, spaces and ``+()./-`` are accepted.
        policy: the operator's policy.
        extension_allow: the called extension's own allow-list, if it has one; it
            can only refuse more.

    Returns:
        The verdict; refused verdicts carry no number. Never raises.
    """
    if len(raw_or_e164) > _CACHED_MAX_CHARS:
        return _screen(raw_or_e164, policy, extension_allow)  # refused unread anyway
    return _cached_screen(raw_or_e164, policy, extension_allow)


# Longer input is never a number (_INPUT_RE), so it is not worth a cache slot.
_CACHED_MAX_CHARS = 80


def _screen(
    raw_or_e164: str,
    policy: DestinationPolicy,
    extension_allow: ExtensionAllow | None,
) -> DestinationVerdict:
    text = raw_or_e164.strip(" ")
    if not _INPUT_RE.fullmatch(text):
        return _refuse(REASON_INVALID)
    digits = _NOT_DIGIT_RE.sub("", text)  # _INPUT_RE allows ASCII digits only
    international = text.startswith("+")
    try:
        number = phonenumbers.parse(text, None if international else policy.home_region)
    except phonenumbers.NumberParseException:
        number = None
    if _is_emergency(digits, international, number, policy):
        return _refuse(REASON_EMERGENCY)
    region, number_type, valid = (
        _classify(number) if number is not None else (None, 0, False)
    )
    # An extension ("ext. 5") would be dropped by E.164 formatting; refuse rather
    # than call a number other than the one the visitor wrote.
    if number is None or number.extension is not None or not valid:
        if len(digits) <= _SHORT_MAX_DIGITS:
            return _refuse(REASON_SHORT_NUMBER)
        return _refuse(REASON_INVALID)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not _E164_RE.fullmatch(e164) or region is None:
        return _refuse(REASON_INVALID)
    if any(e164.startswith(prefix) for prefix in policy.blocked_prefixes):
        return _refuse(REASON_PREFIX_BLOCKED)
    if region not in policy.allowed_regions:
        if region == NON_GEOGRAPHIC_REGION:
            return _refuse(REASON_NON_GEOGRAPHIC)
        return _refuse(REASON_REGION_NOT_ALLOWED)
    type_name = NAME_BY_TYPE.get(number_type, "UNKNOWN")
    if type_name in policy.refused_types:
        return _refuse(f"{REASON_NUMBER_TYPE_REFUSED}:{type_name}")
    if extension_allow is not None and not _extension_allows(
        extension_allow, e164, region
    ):
        return _refuse(REASON_EXTENSION_NOT_ALLOWED)
    return _allow(e164, region, type_name)


_cached_screen = functools.lru_cache(maxsize=VERDICT_CACHE_SIZE)(_screen)


def _classify(number: phonenumbers.PhoneNumber) -> tuple[str | None, int, bool]:
    """``region_code_for_number``, ``number_type`` and ``is_valid_number``, at once.

    phonenumbers works out the number's region three times for these (and its
    type twice more), each time matching the national number against up to ten
    patterns of a region; this does it once, the same steps in the same order
    (phonenumbers' own code, shared calling codes such as +1 included), and
    reuses the type found while picking the region. Tested against the three
    public functions.
    """
    country_code = number.country_code
    if country_code is None:
        return None, PhoneNumberType.UNKNOWN, False  # no region, hence no metadata
    nsn = national_significant_number(number)
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    region: str | None = None
    known: tuple[object, int] | None = None  # metadata, the type it gave
    if regions is None:
        pass
    elif len(regions) == 1:
        region = regions[0]
    else:
        for candidate in regions:  # _region_code_for_number_from_list
            metadata = PhoneMetadata.metadata_for_region(candidate.upper(), None)
            if metadata is None:
                continue
            if metadata.leading_digits is not None:
                if re_compile(metadata.leading_digits).match(nsn):
                    region = candidate
                    break
            else:
                found = _number_type_helper(nsn, metadata)
                if found != PhoneNumberType.UNKNOWN:
                    region, known = candidate, (metadata, found)
                    break
    # number_type (no region: no metadata)
    metadata = (
        None
        if region is None
        else PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    )
    if metadata is None:
        number_type = PhoneNumberType.UNKNOWN
    elif known is not None and known[0] is metadata:
        number_type = known[1]
    else:
        number_type = _number_type_helper(nsn, metadata)
    # is_valid_number (is_valid_number_for_region with that region)
    valid = (
        region is not None
        and metadata is not None
        and (
            region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
            or country_code == country_code_for_valid_region(region)
        )
        and number_type != PhoneNumberType.UNKNOWN
    )
    return region, number_type, valid


def _extension_allows(allow: ExtensionAllow, e164: str, region: str) -> bool:
    if allow.regions and region not in allow.regions:
        return False
    return not allow.prefixes or any(e164.startswith(p) for p in allow.prefixes)


def _is_emergency(
    digits: str,
    international: bool,
    number: phonenumbers.PhoneNumber | None,
    policy: DestinationPolicy,
) -> bool:
    if not digits:
        return False
    if not international:
        # As dialled at home: prefix matches count (US "9111" reaches 911).
        if _emergency_in(digits, policy.home_region, prefix=True):
            return True
        if any(_emergency_in(digits, r, prefix=False) for r in policy.allowed_regions):
            return True
    if len(digits) <= _SHORT_MAX_DIGITS and _emergency_anywhere(digits):
        return True
    if number is None or number.country_code is None:
        return False
    # "+44 999", "+1 9111": a short national part, as dialled in the country code's
    # own regions (prefix matches count: it is not a valid number anyway).
    national = phonenumbers.national_significant_number(number)
    return len(national) <= _SHORT_MAX_DIGITS and any(
        _emergency_in(national, r, prefix=True)
        for r in phonenumbers.region_codes_for_country_code(number.country_code)
    )


@functools.lru_cache(maxsize=4096)
def _emergency_anywhere(digits: str) -> bool:
    return any(
        _emergency_in(digits, r, prefix=False)
        for r in shortnumberinfo.SUPPORTED_SHORT_REGIONS
    )


_SHORT_REGIONS = frozenset(shortnumberinfo.SUPPORTED_SHORT_REGIONS)


def _emergency_in(digits: str, region: str, *, prefix: bool) -> bool:
    # prefix=True is phonenumbers' "connects to" (US "9111"), used only where the
    # digits are read as dialled in that region. Elsewhere only exact matches count:
    # a full number may begin with a foreign region's emergency digits (the national
    # part of a Paris number starts with France's "15").
    if region not in _SHORT_REGIONS:
        return False
    if prefix:
        return shortnumberinfo.connects_to_emergency_number(digits, region)
    return shortnumberinfo.is_emergency_number(digits, region)
