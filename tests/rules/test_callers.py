"""Rule patterns: strict globs, number kinds, Unicode-aware names, validation."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.rules.callers import Action, NumberKind, NumberPattern, RuleSpec
from callnowd.rules.globs import GlobError, compile_glob, fold_name


class GlobTests(SynchronousTestCase):
    """compile_glob and fold_name."""

    def test_syntax(self) -> None:
        """Stars, question marks, classes, ranges and negation match as in fnmatch."""
        table = [
            ("+1212555*", "+12125550100", True),
            ("+1212555*", "+1212556", False),
            ("a?c", "abc", True),
            ("a?c", "ac", False),
            ("[0-3]x", "2x", True),
            ("[0-3]x", "4x", False),
            ("[!0-3]x", "4x", True),
            ("[]]", "]", True),
            ("a.b", "a.b", True),
            ("a.b", "axb", False),
            ("(x)+", "(x)+", True),
            ("*", "", True),
            ("a*b*c", "a\nb\nc", True),
        ]
        for pattern, text, expected in table:
            self.assertEqual(
                compile_glob(pattern).fullmatch(text) is not None,
                expected,
                (pattern, text),
            )

    def test_malformed_globs_are_refused(self) -> None:
        """Unclosed or empty classes, reversed ranges, empty globs raise GlobError."""
        for bad in ("", "+1[2", "[", "[!]", "[9-0]", "a\x00", "x" * 201):
            with self.assertRaises(GlobError, msg=repr(bad)):
                compile_glob(bad)

    def test_fold_is_caseless_and_composed(self) -> None:
        """Decomposed and composed, upper and lower forms fold alike."""
        decomposed = unicodedata.normalize("NFD", "ZOË")
        self.assertEqual(fold_name(decomposed), fold_name("zoë"))
        self.assertEqual(fold_name("Straße"), fold_name("STRASSE"))

    @given(st.text(max_size=20))
    def test_star_matches_everything(self, text: str) -> None:
        """A lone star matches any string, control characters included."""
        self.assertIsNotNone(compile_glob("*").fullmatch(text))

    @given(st.text(max_size=20))
    def test_literal_text_matches_itself(self, text: str) -> None:
        """A glob without special characters matches exactly its own text."""
        literal = "".join(c for c in text if c not in "*?[" and c.isprintable())
        if literal:
            self.assertIsNotNone(compile_glob(literal).fullmatch(literal))
            self.assertIsNone(compile_glob(literal).fullmatch(literal + "x"))


class RuleSpecTests(SynchronousTestCase):
    """Validation on construction and matching."""

    def test_number_kinds_validate(self) -> None:
        """Each kind accepts its own form and refuses others."""
        good = [
            (NumberKind.EXACT, "+12125550100"),
            (NumberKind.PREFIX, "+4420"),
            (NumberKind.PREFIX, "+0"),
            (NumberKind.GLOB, "+1212555*"),
            (NumberKind.GLOB, "*99"),
        ]
        for kind, pattern in good:
            self.assertEqual(NumberPattern(kind, pattern).pattern, pattern)
        bad = [
            (NumberKind.EXACT, "+4420*"),
            (NumberKind.EXACT, "12125550100"),
            (NumberKind.EXACT, "+0125550100"),
            (NumberKind.PREFIX, "4420"),
            (NumberKind.PREFIX, "+44 20"),
            (NumberKind.GLOB, "+1212[555"),
            (NumberKind.GLOB, "+1212abc*"),
        ]
        for kind, pattern in bad:
            with self.assertRaises(ValueError, msg=pattern):
                NumberPattern(kind, pattern)

    def test_empty_rule_is_refused(self) -> None:
        """A rule needs a number or a name pattern; a blank name glob is refused."""
        with self.assertRaises(ValueError):
            RuleSpec(Action.ACCEPT)
        with self.assertRaises(GlobError):
            RuleSpec(Action.ACCEPT, name_glob="  ")
        with self.assertRaises(GlobError):
            RuleSpec(Action.ACCEPT, name_glob="[ma")

    def test_name_matches_composed_or_not(self) -> None:
        """A composed glob matches a decomposed name and the reverse."""
        spec = RuleSpec(Action.REJECT, name_glob="Zoë *")
        self.assertTrue(spec.matches("+1", unicodedata.normalize("NFD", "ZOË Smith")))
        nfd = RuleSpec(Action.REJECT, name_glob=unicodedata.normalize("NFD", "zoë"))
        self.assertTrue(nfd.matches("+1", "Zoë"))
        self.assertFalse(spec.matches("+1", None))

    def test_describe(self) -> None:
        """describe() names the action, the patterns and a disabled state."""
        spec = RuleSpec(
            Action.CONFIRM,
            NumberPattern(NumberKind.PREFIX, "+4420"),
            "mary*",
            enabled=False,
        )
        self.assertEqual(
            spec.describe(), "confirm number prefix +4420 name 'mary*' (disabled)"
        )
