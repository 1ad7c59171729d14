"""Tests for the destination policy settings and their configuration values."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from callnowd.limits.destination_policy import (
    DEFAULT_REFUSED_TYPES,
    DestinationPolicy,
    ExtensionAllow,
    parse_number_types,
    parse_prefixes,
    parse_regions,
    policy_from_config,
)


class PolicyConfigTests(SynchronousTestCase):
    """Configuration values become a policy, or a ValueError naming the bad item."""

    def test_defaults(self) -> None:
        """Home region only, the six refused types, no blocked prefixes."""
        policy = policy_from_config(home_region="GB")
        self.assertEqual(policy.allowed_regions, ("GB",))
        self.assertEqual(policy.refused_types, frozenset(DEFAULT_REFUSED_TYPES))
        self.assertEqual(policy.blocked_prefixes, ())
        self.assertEqual(DestinationPolicy(), policy_from_config(home_region="US"))

    def test_values(self) -> None:
        """Lists are read, prefixes lose their spaces, repeats are dropped."""
        policy = policy_from_config(
            home_region="US",
            allowed_regions=["US", "CA", "US", "001"],
            refused_types=["PREMIUM_RATE", "TOLL_FREE"],
            blocked_prefixes=["+1 900", "+44909", "+1900"],
        )
        self.assertEqual(policy.allowed_regions, ("US", "CA", "001"))
        self.assertEqual(policy.refused_types, {"PREMIUM_RATE", "TOLL_FREE"})
        self.assertEqual(policy.blocked_prefixes, ("+1900", "+44909"))

    def test_errors_name_the_setting_and_item(self) -> None:
        """Each bad value is refused with its setting and the offending item."""
        cases: list[tuple[dict[str, object], str]] = [
            ({"home_region": "XX"}, "home_region: 'XX' is not a region code"),
            ({"home_region": "001"}, "home_region: '001' is not a region code"),
            (
                {"allowed_regions": ["US", "us"]},
                "allowed_regions: 'us' is not a region",
            ),
            ({"allowed_regions": "US"}, "allowed_regions: must be a list"),
            ({"refused_types": {"UAN": 1}}, "refused_types: must be a list"),
            ({"allowed_regions": ["US", 1]}, "allowed_regions: 1 is not a string"),
            ({"allowed_regions": []}, "allowed_regions: must list at least one"),
            (
                {"refused_types": ["PREMIUM"]},
                "refused_types: 'PREMIUM' is not a number",
            ),
            (
                {"blocked_prefixes": ["+44-909"]},
                "blocked_prefixes: '+44-909' is not an",
            ),
            (
                {"blocked_prefixes": ["1900"]},
                "blocked_prefixes: '1900' is not an E.164",
            ),
            ({"blocked_prefixes": ["+"]}, "blocked_prefixes: '+' is not an E.164"),
            ({"blocked_prefixes": ["+0"]}, "blocked_prefixes: '+0' is not an E.164"),
        ]
        for overrides, expected in cases:
            values: dict[str, object] = {"home_region": "US", **overrides}
            error = self.assertRaises(ValueError, policy_from_config, **values)
            self.assertTrue(str(error).startswith(expected), (str(error), expected))

    def test_type_error_lists_valid_names(self) -> None:
        """A bad type name's message lists the names that would work."""
        error = self.assertRaises(ValueError, parse_number_types, ["premium_rate"])
        self.assertIn("PREMIUM_RATE", str(error))
        self.assertIn("TOLL_FREE", str(error))

    def test_constructors_validate(self) -> None:
        """Policies and allow-lists built in code are checked like configured ones."""
        self.assertRaises(ValueError, DestinationPolicy, allowed_regions=())
        self.assertRaises(ValueError, DestinationPolicy, refused_types=("PREMIUM",))
        self.assertRaises(ValueError, ExtensionAllow, regions=("Narnia",))
        self.assertRaises(ValueError, ExtensionAllow, prefixes=("44",))
        self.assertEqual(parse_regions(("001",)), ("001",))
        self.assertEqual(parse_prefixes(["+44 909"]), ("+44909",))
