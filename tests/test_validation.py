"""Visitor names and phone numbers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.validation import FieldError, mask_phone, normalize_name, normalize_phone


class NameTests(SynchronousTestCase):
    """normalize_name."""

    def test_accepts_real_names(self) -> None:
        """Names from many scripts, with . ' - and spaces, are kept (NFC, trimmed)."""
        for raw, expected in {
            "  Mary ": "Mary",
            "Jean-Luc O'Neil Jr.": "Jean-Luc O'Neil Jr.",
            "Zoe\u0308": "Zoë",
            "李小龍": "李小龍",
            "Ελένη": "Ελένη",
            "محمد": "محمد",
            "R2 D2": "R2 D2",
        }.items():
            self.assertEqual(normalize_name(raw), expected)

    def test_refuses_hostile_names(self) -> None:
        """Controls, separators, bidi overrides and AMI/dialplan metacharacters are refused."""
        for raw in [
            "",
            "   ",
            "Mary\r\nAction: Originate",
            "Mary\x00",
            "Mary\u2028",
            "Mary\u2029",
            "\u202eMary",
            "Mary\u200b",
            "Mary,X=1",
            'Mary"',
            "Mary<1>",
            "Mary;x",
            "Mary|x",
            "Mary\\x",
            "Mary\tSmith",
            "M" * 41,
            "Mary  Smith",
        ]:
            with self.assertRaises(FieldError) as ctx:
                normalize_name(raw)
            self.assertEqual(ctx.exception.field, "name")

    @given(st.text(max_size=60))
    def test_result_is_always_safe(self, raw: str) -> None:
        """Whatever comes in, an accepted name has only safe characters."""
        try:
            name = normalize_name(raw)
        except FieldError:
            return
        self.assertTrue(1 <= len(name) <= 40)
        for char in ',|"<>;\\\r\n\x00\u2028\u202e':
            self.assertNotIn(char, name)


class PhoneTests(SynchronousTestCase):
    """normalize_phone."""

    def test_formats(self) -> None:
        """E.164 and national formats of the default region give E.164."""
        self.assertEqual(normalize_phone("+1 212 555 0123", "US"), "+12125550123")
        self.assertEqual(normalize_phone("(212) 555-0123", "US"), "+12125550123")
        self.assertEqual(normalize_phone("020 7946 0958", "GB"), "+442079460958")
        self.assertEqual(normalize_phone("+44 20 7946 0958", "US"), "+442079460958")

    def test_refusals(self) -> None:
        """Invalid, short, emergency, lettered and overlong numbers are refused."""
        for raw in [
            "",
            "12",
            "911",
            "112",
            "555-5555",
            "1-800-FLOWERS",
            "+1" + "2" * 40,
            "+12125550123,1",
            "+1212555\n0123",
        ]:
            with self.assertRaises(FieldError) as ctx:
                normalize_phone(raw, "US")
            self.assertEqual(ctx.exception.field, "phone")

    @given(st.text(max_size=40))
    def test_result_is_e164(self, raw: str) -> None:
        """An accepted number is + and digits only."""
        try:
            number = normalize_phone(raw, "US")
        except FieldError:
            return
        self.assertRegex(number, r"^\+[0-9]{6,15}$")

    def test_mask(self) -> None:
        """Masking keeps the country code start and the last four digits."""
        self.assertEqual(mask_phone("+12125550123"), "+1212•••0123")
