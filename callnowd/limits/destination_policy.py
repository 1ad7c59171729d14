"""The operator's destination policy and an extension's narrower allow-list, as values.

This module owns the *settings* of the toll-fraud destination screen (THREATS.md §1)
and the parsing of their configuration values: lists of region codes, phone number
type names and E.164 prefixes, each refused with a :class:`ValueError` that names the
bad item. :mod:`callnowd.limits.destinations` applies them to a number.

Why the defaults are what they are:

* Regions, not country codes: ``+1`` covers 25 regions, and ``+1 876`` (Jamaica),
  ``+1 809`` (Dominican Republic) and ``+1 284`` (British Virgin Islands) are classic
  one-ring and revenue-share destinations that look like domestic US numbers.
* Refused types are the ones whose tariff the owner does not control or that exist to
  share revenue: premium rate, shared cost, UAN, personal numbers (UK ``070`` looks
  like a mobile and costs like a premium line), pagers and voicemail.
* ``VOIP`` is allowed: in many countries it is an ordinary consumer line billed like a
  landline (France ``09``, UK ``056``), and refusing it turns away real callers.
* ``TOLL_FREE`` is allowed: a call to a freephone number is paid by the number's
  holder, not the caller, so the owner is not exposed; a visitor may well leave an
  office freephone line. The cost lands on that third party instead, which is why
  the per-destination rate limits (THREATS.md §2) matter; operators who do not want
  that add ``TOLL_FREE`` to the refused types. International freephone (``+800``) is
  non-geographic and refused anyway.
* Non-geographic numbers (region ``001``: ``+881`` satellite, ``+882``/``+883``
  international networks, ``+800``/``+808``/``+979``) are refused unless the
  operator lists ``001`` among the allowed regions explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import attrs
import phonenumbers

#: The region phonenumbers gives numbers that belong to no country.
NON_GEOGRAPHIC_REGION = "001"

_In = TypeVar("_In")
_Out = TypeVar("_Out")

#: Number types refused unless the operator says otherwise.
DEFAULT_REFUSED_TYPES: tuple[str, ...] = (
    "PREMIUM_RATE",
    "SHARED_COST",
    "UAN",
    "PERSONAL_NUMBER",
    "PAGER",
    "VOICEMAIL",
)

#: Every ``phonenumbers.PhoneNumberType`` by name, and back.
TYPE_BY_NAME: dict[str, int] = {
    name: value
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}
NAME_BY_TYPE: dict[int, str] = {value: name for name, value in TYPE_BY_NAME.items()}

# An E.164 prefix: "+", a country code's first digit (never 0), at most 15 digits.
_PREFIX_RE = re.compile(r"\+[1-9][0-9]{0,14}")


def _items(values: Iterable[object], what: str) -> list[str]:
    if isinstance(values, str | bytes | Mapping):
        raise ValueError(f"must be a list of {what}, not {values!r}")
    items: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string; expected {what}")
        items.append(value)
    return items


def parse_regions(values: Iterable[object]) -> tuple[str, ...]:
    """Read a list of region codes (``["US", "CA"]``), ``"001"`` for non-geographic.

    Args:
        values: the configured list.

    Returns:
        The regions, in order, without repeats.

    Raises:
        ValueError: not a list, or an item that is not a region phonenumbers knows;
            the message names the item.
    """
    regions: list[str] = []
    for item in _items(values, "region codes such as US"):
        if item != NON_GEOGRAPHIC_REGION and item not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{item!r} is not a region code (two capital letters such as US or "
                f"GB, or {NON_GEOGRAPHIC_REGION} for non-geographic numbers)"
            )
        if item not in regions:
            regions.append(item)
    return tuple(regions)


def parse_number_types(values: Iterable[object]) -> frozenset[str]:
    """Read a list of phone number type names (``["PREMIUM_RATE", "UAN"]``).

    Args:
        values: the configured list.

    Returns:
        The type names.

    Raises:
        ValueError: not a list, or an item that is not a type name; the message
            names the item and lists the valid names.
    """
    names = _items(values, "number type names such as PREMIUM_RATE")
    for item in names:
        if item not in TYPE_BY_NAME:
            valid = ", ".join(TYPE_BY_NAME)
            raise ValueError(f"{item!r} is not a number type; valid types: {valid}")
    return frozenset(names)


def parse_prefixes(values: Iterable[object]) -> tuple[str, ...]:
    """Read a list of E.164 prefixes (``["+1900", "+44 909"]``); spaces are dropped.

    Args:
        values: the configured list.

    Returns:
        The prefixes as ``+`` and digits, in order, without repeats.

    Raises:
        ValueError: not a list, or an item that is not ``+`` followed by 1-15 digits
            (the first one not 0); the message names the item.
    """
    prefixes: list[str] = []
    for item in _items(values, "E.164 prefixes such as +1900"):
        prefix = item.replace(" ", "")
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(
                f"{item!r} is not an E.164 prefix ('+' and digits, such as '+1900')"
            )
        if prefix not in prefixes:
            prefixes.append(prefix)
    return tuple(prefixes)


def _home_region(value: str) -> str:
    if not isinstance(value, str) or value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region code such as US or GB")
    return value


def _non_empty(
    _instance: object,
    attribute: attrs.Attribute[tuple[str, ...]],
    value: tuple[str, ...],
) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must list at least one region")


# cache_hash: the policy is a key of the destination screen's answer cache.
@attrs.frozen(cache_hash=True)
class DestinationPolicy:
    """Which numbers the operator lets callnowd call back.

    Attributes:
        home_region: where national-format input (no ``+``) is read, and whose
            emergency numbers are always recognised.
        allowed_regions: the regions a number may belong to; defaults to
            ``(home_region,)``. ``"001"`` admits non-geographic numbers.
        refused_types: phone number type names refused even in an allowed region.
        blocked_prefixes: E.164 prefixes refused whatever their region and type.
    """

    home_region: str = attrs.field(default="US", converter=_home_region)
    allowed_regions: tuple[str, ...] = attrs.field(
        default=attrs.Factory(lambda self: (self.home_region,), takes_self=True),
        converter=parse_regions,
        validator=_non_empty,
    )
    refused_types: frozenset[str] = attrs.field(
        default=frozenset(DEFAULT_REFUSED_TYPES), converter=parse_number_types
    )
    blocked_prefixes: tuple[str, ...] = attrs.field(
        default=(), converter=parse_prefixes
    )


@attrs.frozen(cache_hash=True)
class ExtensionAllow:
    """An extension's own allow-list; it can only narrow the operator's policy.

    A number must pass the operator's :class:`DestinationPolicy` first, so a region
    listed here but not by the operator stays refused.

    Attributes:
        regions: if not empty, the number's region must be one of these.
        prefixes: if not empty, the number must start with one of these.
    """

    regions: tuple[str, ...] = attrs.field(default=(), converter=parse_regions)
    prefixes: tuple[str, ...] = attrs.field(default=(), converter=parse_prefixes)

    def regions_outside(self, policy: DestinationPolicy) -> tuple[str, ...]:
        """Return the regions listed here that the operator does not allow.

        They can never be called from this extension; provisioning can warn about
        them.

        Args:
            policy: the operator's policy.

        Returns:
            Those regions, in the order listed here.
        """
        return tuple(r for r in self.regions if r not in policy.allowed_regions)


def policy_from_config(
    *,
    home_region: str,
    allowed_regions: Iterable[object] | None = None,
    refused_types: Iterable[object] | None = None,
    blocked_prefixes: Iterable[object] = (),
) -> DestinationPolicy:
    """Build a policy from configuration values; ``None`` means the default.

    Args:
        home_region: the configured home region (e.g. ``[phone] default_region``).
        allowed_regions: region codes; default ``[home_region]``.
        refused_types: number type names; default :data:`DEFAULT_REFUSED_TYPES`.
        blocked_prefixes: E.164 prefixes; default none.

    Returns:
        The policy.

    Raises:
        ValueError: a bad value; the message names the setting and the item.
    """
    home = _named("home_region", _home_region, home_region)
    regions = _named(
        "allowed_regions",
        parse_regions,
        (home,) if allowed_regions is None else allowed_regions,
    )
    if not regions:
        raise ValueError("allowed_regions: must list at least one region")
    types = _named(
        "refused_types",
        parse_number_types,
        DEFAULT_REFUSED_TYPES if refused_types is None else refused_types,
    )
    prefixes = _named("blocked_prefixes", parse_prefixes, blocked_prefixes)
    return DestinationPolicy(
        home_region=home,
        allowed_regions=regions,
        refused_types=types,
        blocked_prefixes=prefixes,
    )


def _named(name: str, parse: Callable[[_In], _Out], values: _In) -> _Out:
    try:
        return parse(values)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
