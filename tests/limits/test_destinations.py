"""Tests for the destination screen and its policy settings (THREATS.md §1)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.limits import destinations
from callnowd.limits.destination_policy import (
    DEFAULT_REFUSED_TYPES,
    TYPE_BY_NAME,
    DestinationPolicy,
    ExtensionAllow,
)
from callnowd.limits.destinations import (
    MESSAGE_EMERGENCY,
    MESSAGE_INVALID,
    MESSAGE_REFUSED,
    DestinationVerdict,
    check_destination,
)

US = DestinationPolicy(home_region="US")
GB = DestinationPolicy(home_region="GB")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")

# (input, reason) with a US home; None means allowed.
US_TABLE: list[tuple[str, str | None]] = [
    ("+12015550123", None),
    ("(201) 555-0123", None),
    ("1 201 555 0123", None),
    ("+1 415 555 2671", None),
    ("+18005551234", None),  # toll-free: allowed by default
    ("+19005551234", "number_type_refused:PREMIUM_RATE"),
    ("+15005551234", "number_type_refused:PERSONAL_NUMBER"),
    ("+44 9098 790000", "region_not_allowed"),
    ("+44 70 1234 5678", "region_not_allowed"),
    ("+33 8 99 12 34 56", "region_not_allowed"),
    ("+1 876 555 1234", "region_not_allowed"),  # Jamaica
    ("+1 809 555 1234", "region_not_allowed"),  # Dominican Republic
    ("+1 284 496 1234", "region_not_allowed"),  # British Virgin Islands
    ("+1 613 555 0123", "region_not_allowed"),  # Canada
    ("+881 6 1234 5678", "non_geographic"),  # Iridium satellite
    ("+882 345 678 9012", "non_geographic"),
    ("+800 1234 5678", "non_geographic"),
    ("911", "emergency"),
    ("112", "emergency"),
    ("9111", "emergency"),
    ("999", "emergency"),
    ("000", "emergency"),
    ("+1 911", "emergency"),
    ("+1 9111", "emergency"),
    ("+44 999", "emergency"),
    ("+112", "emergency"),
    ("411", "short_number"),
    ("611", "short_number"),
    ("+1 700 555 1234", "invalid"),
    ("555 555 5555", "invalid"),
    ("1-800-FLOWERS", "invalid"),
    ("+1 201 555 0123 ext 5", "invalid"),
    ("+12015550123\n", "invalid"),
    ("", "invalid"),
]

GB_TABLE: list[tuple[str, str | None]] = [
    ("+44 20 7946 0958", None),
    ("020 7946 0958", None),
    ("07400 123456", None),
    ("+44 56 1234 5678", None),  # VOIP: allowed by default
    ("+44 909 879 0000", "number_type_refused:PREMIUM_RATE"),
    ("+44 70 1234 5678", "number_type_refused:PERSONAL_NUMBER"),
    ("+1 212 555 0123", "region_not_allowed"),
    ("999", "emergency"),
    ("112", "emergency"),
    ("911", "emergency"),
]


def _reasons(
    table: list[tuple[str, str | None]], policy: DestinationPolicy
) -> list[tuple[str, str | None]]:
    return [(raw, check_destination(raw, policy).reason) for raw, _ in table]


class CheckDestinationTests(SynchronousTestCase):
    """check_destination against numbers whose fate THREATS.md §1 fixes."""

    def test_us_home(self) -> None:
        """With a US home, each number gets its expected reason (None = allowed)."""
        self.assertEqual(_reasons(US_TABLE, US), US_TABLE)

    def test_gb_home(self) -> None:
        """With a GB home, UK geographic numbers pass; 09, 070 and +1 do not."""
        self.assertEqual(_reasons(GB_TABLE, GB), GB_TABLE)

    def test_allowed_verdict_carries_the_number(self) -> None:
        """An allowed verdict has the E.164 number, region and type, and no reason."""
        verdict = check_destination("(201) 555-0123", US)
        self.assertEqual(
            verdict,
            DestinationVerdict(
                True,
                e164="+12015550123",
                region="US",
                number_type="FIXED_LINE_OR_MOBILE",
            ),
        )

    def test_refused_messages(self) -> None:
        """Visitors get a plain sentence; emergency and invalid input get their own."""
        self.assertEqual(check_destination("+19005551234", US).message, MESSAGE_REFUSED)
        self.assertEqual(check_destination("+18765551234", US).message, MESSAGE_REFUSED)
        self.assertEqual(check_destination("911", US).message, MESSAGE_EMERGENCY)
        self.assertEqual(check_destination("banana", US).message, MESSAGE_INVALID)
        self.assertEqual(MESSAGE_REFUSED, "This number cannot be called.")

    def test_reason_kind(self) -> None:
        """reason_kind drops the type detail; allowed verdicts have none."""
        self.assertEqual(
            check_destination("+19005551234", US).reason_kind, "number_type_refused"
        )
        self.assertIsNone(check_destination("+12015550123", US).reason_kind)

    def test_emergency_in_other_allowed_regions(self) -> None:
        """An allowed region's emergency numbers are recognised even from home."""
        policy = DestinationPolicy(home_region="US", allowed_regions=("US", "FR"))
        self.assertEqual(check_destination("15", policy).reason, "emergency")
        self.assertEqual(check_destination("+33 15", policy).reason, "emergency")

    def test_foreign_emergency_digits_inside_a_number(self) -> None:
        """A full number whose national part starts like 15 (French SAMU) is fine."""
        policy = DestinationPolicy(home_region="FR")
        self.assertTrue(check_destination("+33 1 53 00 00 00", policy).allowed)
        self.assertTrue(check_destination("01 53 00 00 00", policy).allowed)

    def test_national_input_is_read_in_home_region(self) -> None:
        """The same digits mean a US number at home in the US, a UK one in GB."""
        self.assertEqual(check_destination("5555555555", US).reason, "invalid")
        self.assertEqual(
            check_destination("5555555555", DestinationPolicy(home_region="GB")).reason,
            "number_type_refused:UAN",
        )

    def test_refused_types_configurable(self) -> None:
        """Toll-free and VOIP are refused once listed, and premium once unlisted."""
        strict = DestinationPolicy(
            refused_types=(*DEFAULT_REFUSED_TYPES, "TOLL_FREE", "VOIP")
        )
        self.assertEqual(
            check_destination("+18005551234", strict).reason,
            "number_type_refused:TOLL_FREE",
        )
        gb_strict = DestinationPolicy(home_region="GB", refused_types=("VOIP",))
        self.assertEqual(
            check_destination("+445612345678", gb_strict).reason,
            "number_type_refused:VOIP",
        )
        self.assertTrue(check_destination("+449098790000", gb_strict).allowed)

    def test_non_geographic_only_when_listed(self) -> None:
        """Region 001 passes only if the operator lists it, and then types still apply."""
        policy = DestinationPolicy(allowed_regions=("US", "001"))
        self.assertTrue(check_destination("+881612345678", policy).allowed)
        self.assertEqual(
            check_destination("+979123456789", policy).reason,
            "number_type_refused:PREMIUM_RATE",
        )

    def test_prefix_block(self) -> None:
        """A blocked prefix refuses numbers the regions and types would allow."""
        policy = DestinationPolicy(
            allowed_regions=("US", "GB", "001"),
            refused_types=(),
            blocked_prefixes=("+1900", "+44909", "+881", "+1 201"),
        )
        for raw in ("+19005551234", "+449098790000", "+881612345678", "+12015550123"):
            self.assertEqual(
                (raw, check_destination(raw, policy).reason), (raw, "prefix_blocked")
            )
        self.assertTrue(check_destination("+14155552671", policy).allowed)


class ExtensionAllowTests(SynchronousTestCase):
    """An extension's allow-list narrows the operator's policy and never widens it."""

    operator = DestinationPolicy(home_region="US", allowed_regions=("US", "CA"))

    def test_region_subset(self) -> None:
        """An extension limited to CA can call Canada but no longer the US."""
        allow = ExtensionAllow(regions=("CA",))
        self.assertTrue(check_destination("+16135550123", self.operator, allow).allowed)
        self.assertEqual(
            check_destination("+12015550123", self.operator, allow).reason,
            "extension_not_allowed",
        )

    def test_cannot_widen_regions(self) -> None:
        """A region the operator does not allow stays refused even if listed."""
        allow = ExtensionAllow(regions=("CA", "JM"))
        self.assertEqual(
            check_destination("+18765551234", self.operator, allow).reason,
            "region_not_allowed",
        )
        self.assertEqual(allow.regions_outside(self.operator), ("JM",))

    def test_cannot_widen_types_or_prefixes(self) -> None:
        """Listing a premium prefix does not make premium numbers callable."""
        allow = ExtensionAllow(prefixes=("+1900",))
        self.assertEqual(
            check_destination("+19005551234", self.operator, allow).reason,
            "number_type_refused:PREMIUM_RATE",
        )

    def test_prefix_subset(self) -> None:
        """An extension limited to +1201 refuses other US area codes."""
        allow = ExtensionAllow(prefixes=("+1 201",))
        self.assertTrue(check_destination("+12015550123", self.operator, allow).allowed)
        self.assertEqual(
            check_destination("+14155552671", self.operator, allow).reason,
            "extension_not_allowed",
        )

    def test_empty_allow_list_changes_nothing(self) -> None:
        """An extension with no lists of its own gets the operator's policy."""
        for raw, _ in US_TABLE:
            self.assertEqual(
                check_destination(raw, US, ExtensionAllow()), check_destination(raw, US)
            )


# Numbers from phonenumbers' own examples: every type in regions that share +1, two
# European regions and the non-geographic entities, plus raw digit strings.
_SAMPLE_REGIONS = ("US", "CA", "JM", "DO", "VG", "GB", "FR", "DE")


def _library_examples(regions: Iterable[str]) -> list[phonenumbers.PhoneNumber]:
    """Phonenumbers' example of every type of ``regions``, and of every non-geo code."""
    examples = []
    for region in regions:
        for number_type in TYPE_BY_NAME.values():
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                examples.append(example)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            examples.append(example)
    return examples


def _examples() -> list[str]:
    numbers = _library_examples(_SAMPLE_REGIONS)
    e164 = phonenumbers.PhoneNumberFormat.E164
    return sorted({phonenumbers.format_number(n, e164) for n in numbers})


EXAMPLES = _examples()
numbers = st.one_of(
    st.sampled_from(EXAMPLES),
    st.sampled_from(["911", "112", "999", "9111", "411", "+1911"]),
    st.text(alphabet="0123456789+()- ", max_size=20),
)
regions = st.lists(st.sampled_from((*_SAMPLE_REGIONS, "001")), min_size=1, unique=True)
type_names = st.frozensets(st.sampled_from(sorted(TYPE_BY_NAME)))
prefixes = st.lists(st.sampled_from(["+1", "+1900", "+1201", "+44", "+4420", "+33"]))


class DestinationPropertyTests(SynchronousTestCase):
    """Properties of the screen over arbitrary input and policies."""

    def test_examples_cover_every_verdict(self) -> None:
        """The sample numbers reach allowed, region, type and non-geographic answers."""
        kinds = {check_destination(n, US).reason_kind for n in EXAMPLES}
        self.assertLessEqual(
            {None, "region_not_allowed", "number_type_refused", "non_geographic"},
            kinds,
        )

    @given(st.text(max_size=80), st.sampled_from([US, GB]))
    def test_never_raises_on_any_text(
        self, raw: str, policy: DestinationPolicy
    ) -> None:
        """Any text gets a verdict; a refusal has a reason and a message."""
        verdict = check_destination(raw, policy)
        self.assertEqual(verdict.allowed, verdict.reason is None)
        self.assertEqual(verdict.allowed, verdict.message is None)

    @given(numbers, regions, type_names, prefixes)
    def test_verdict_shape(
        self,
        raw: str,
        allowed: list[str],
        refused: frozenset[str],
        blocked: list[str],
    ) -> None:
        """Allowed: E.164, an allowed region and type. Refused: no number at all."""
        policy = DestinationPolicy(
            home_region="US",
            allowed_regions=allowed,
            refused_types=refused,
            blocked_prefixes=blocked,
        )
        verdict = check_destination(raw, policy)
        if verdict.allowed:
            assert verdict.e164 is not None
            self.assertTrue(E164.fullmatch(verdict.e164), verdict.e164)
            self.assertIn(verdict.region, allowed)
            self.assertNotIn(verdict.number_type, refused)
            self.assertFalse(any(verdict.e164.startswith(p) for p in blocked))
        else:
            self.assertEqual(
                (verdict.e164, verdict.region, verdict.number_type), (None, None, None)
            )
            self.assertIsNotNone(verdict.reason)

    @given(numbers, regions, st.data())
    def test_fewer_regions_refuse_more(
        self, raw: str, wide: list[str], data: st.DataObject
    ) -> None:
        """A policy with a subset of the regions allows a subset of the numbers."""
        narrow = data.draw(st.lists(st.sampled_from(wide), min_size=1, unique=True))
        wide_verdict = check_destination(raw, DestinationPolicy(allowed_regions=wide))
        narrow_verdict = check_destination(
            raw, DestinationPolicy(allowed_regions=narrow)
        )
        if narrow_verdict.allowed:
            self.assertEqual(wide_verdict, narrow_verdict)

    @given(numbers, regions, type_names, prefixes, regions, prefixes)
    def test_extension_only_narrows(
        self,
        raw: str,
        allowed: list[str],
        refused: frozenset[str],
        blocked: list[str],
        extension_regions: list[str],
        extension_prefixes: list[str],
    ) -> None:
        """Whatever an extension lists, it allows nothing the operator refuses."""
        policy = DestinationPolicy(
            allowed_regions=allowed, refused_types=refused, blocked_prefixes=blocked
        )
        allow = ExtensionAllow(regions=extension_regions, prefixes=extension_prefixes)
        verdict = check_destination(raw, policy, allow)
        if verdict.allowed:
            self.assertEqual(check_destination(raw, policy), verdict)

    @given(numbers, regions, type_names, prefixes, st.sampled_from(["", "  "]))
    def test_remembered_verdicts_are_the_screens(
        self,
        raw: str,
        allowed: list[str],
        refused: frozenset[str],
        blocked: list[str],
        padding: str,
    ) -> None:
        """Asked again (from the cache), the screen says what it says uncached.

        And it answers for this policy, not for another's.
        """
        policy = DestinationPolicy(
            home_region="US",
            allowed_regions=allowed,
            refused_types=refused,
            blocked_prefixes=blocked,
        )
        text = padding + raw
        first = check_destination(text, policy)
        self.assertEqual(check_destination(text, policy), first)
        self.assertEqual(destinations._screen(text, policy, None), first)
        for other in (US, GB):
            self.assertEqual(
                check_destination(text, other), destinations._screen(text, other, None)
            )

    def test_the_cache_is_bounded(self) -> None:
        """The screen remembers at most VERDICT_CACHE_SIZE answers."""
        for i in range(destinations.VERDICT_CACHE_SIZE + 10):
            check_destination(f"+1201555{i:04d}", US)
        info = destinations._cached_screen.cache_info()
        self.assertEqual(info.maxsize, destinations.VERDICT_CACHE_SIZE)
        self.assertLessEqual(info.currsize, destinations.VERDICT_CACHE_SIZE)


def _example_numbers() -> list[phonenumbers.PhoneNumber]:
    """Examples of every type of every region and code, and their neighbours."""
    numbers = []
    for example in _library_examples(phonenumbers.SUPPORTED_REGIONS):
        national = example.national_number or 0
        for other in (national, national + 7, national // 10, national * 10 + 3):
            numbers.append(
                phonenumbers.PhoneNumber(
                    country_code=example.country_code,
                    national_number=other,
                    italian_leading_zero=example.italian_leading_zero,
                )
            )
    return numbers


def _public_answers(number: phonenumbers.PhoneNumber) -> tuple[str | None, int, bool]:
    return (
        phonenumbers.region_code_for_number(number),
        phonenumbers.number_type(number),
        phonenumbers.is_valid_number(number),
    )


class ClassifyTests(SynchronousTestCase):
    def test_same_as_phonenumbers_for_every_region_and_type(self) -> None:
        """Region, type and validity are phonenumbers' own for every kind of number."""
        numbers = _example_numbers()
        self.assertGreater(len(numbers), 2000)
        valid = 0
        for number in numbers:
            answers = destinations._classify(number)
            self.assertEqual(answers, _public_answers(number), number)
            valid += answers[2]
        self.assertGreater(valid, 1000)  # the examples themselves

    @given(
        st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
        st.integers(0, 10**12),
    )
    def test_same_as_phonenumbers_for_any_digits(
        self, country_code: int, national: int
    ) -> None:
        """Any national number under any calling code gets phonenumbers' answers."""
        number = phonenumbers.PhoneNumber(
            country_code=country_code, national_number=national
        )
        self.assertEqual(destinations._classify(number), _public_answers(number))

    def test_shared_calling_code_regions(self) -> None:
        """+1 numbers get their own region (and type) among the NANP regions."""
        for text, region in [
            ("+1 212 555 0123", "US"),
            ("+1 416 555 0123", "CA"),
            ("+1 876 555 0123", "JM"),
            ("+1 809 555 0123", "DO"),
        ]:
            number = phonenumbers.parse(text)
            self.assertEqual(destinations._classify(number)[0], region)
            self.assertEqual(destinations._classify(number), _public_answers(number))
