"""The decision engine: each preference, each rule type, and the evaluation order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from twisted.trial.unittest import SynchronousTestCase

from callnowd.models import Preferences
from callnowd.rules.availability import parse_window
from callnowd.rules.callers import (
    Action,
    CallerRule,
    NumberKind,
    NumberPattern,
    RuleSpec,
)
from callnowd.rules.engine import (
    Caller,
    Context,
    Decision,
    DecisionReason,
    decide,
)

LONDON = "Europe/London"
R = DecisionReason
A = Action
# Wednesday 2026-11-25 10:00 in London (GMT, so also 10:00 UTC).
WED_10 = datetime(2026, 11, 25, 10, tzinfo=ZoneInfo(LONDON)).timestamp()
MARY = Caller("+442079460000", "Mary")


def prefs(**changes: Any) -> Preferences:
    return attrs.evolve(Preferences(callnow_id="john"), **changes)


def rule(
    rule_id: int,
    action: Action,
    *,
    kind: NumberKind | None = None,
    number: str | None = None,
    name: str | None = None,
    enabled: bool = True,
    position: int | None = None,
) -> CallerRule:
    pattern = None if kind is None or number is None else NumberPattern(kind, number)
    spec = RuleSpec(action, pattern, name, enabled)
    return CallerRule(rule_id, rule_id if position is None else position, spec, 0.0)


def run(
    preferences: Preferences,
    rules: tuple[CallerRule, ...] = (),
    caller: Caller = MARY,
    context: Context = Context(),  # noqa: B008 - frozen value
    now: float = WED_10,
) -> Decision:
    return decide(preferences, rules, caller, context, now, LONDON)


class PreferenceTests(SynchronousTestCase):
    """Each preference alone, as a table."""

    def test_preferences_table(self) -> None:
        """Each preference gives its action, reason and decided_by."""
        office = (parse_window("mon-fri 09:00-17:00"),)
        table: list[tuple[str, Preferences, Caller, Context, tuple[A, R, str]]] = [
            ("defaults confirm", prefs(), MARY, Context(),
             (A.CONFIRM, R.DEFAULT, "confirmation_required")),
            ("no confirmation", prefs(confirmation_required=False), MARY, Context(),
             (A.ACCEPT, R.DEFAULT, "confirmation_required")),
            ("disabled link", prefs(enabled=False), MARY, Context(),
             (A.REJECT, R.NOT_ACCEPTING, "enabled")),
            ("reject all", prefs(reject_all=True), MARY, Context(),
             (A.REJECT, R.NOT_ACCEPTING, "reject_all")),
            ("in window", prefs(availability_enabled=True, windows=office), MARY,
             Context(), (A.CONFIRM, R.DEFAULT, "confirmation_required")),
            ("busy, preference off", prefs(), MARY, Context(busy=True),
             (A.CONFIRM, R.DEFAULT, "confirmation_required")),
            ("busy, preference on", prefs(reject_when_busy=True), MARY,
             Context(busy=True), (A.REJECT, R.BUSY, "reject_when_busy")),
            ("not busy, preference on", prefs(reject_when_busy=True), MARY,
             Context(), (A.CONFIRM, R.DEFAULT, "confirmation_required")),
            ("no name asked", prefs(ask_name=True), Caller("+15555550123"),
             Context(), (A.REJECT, R.NAME_REQUIRED, "ask_name")),
            ("blank name asked", prefs(ask_name=True), Caller("+15555550123", "  "),
             Context(), (A.REJECT, R.NAME_REQUIRED, "ask_name")),
            ("no name, not asked", prefs(ask_name=False), Caller("+15555550123"),
             Context(), (A.CONFIRM, R.DEFAULT, "confirmation_required")),
            ("destination refused", prefs(confirmation_required=False), MARY,
             Context(destination_refused=True),
             (A.REJECT, R.DESTINATION_REFUSED, "destination_policy")),
        ]  # fmt: skip
        for label, preferences, caller, context, expected in table:
            decision = run(preferences, caller=caller, context=context)
            got = (decision.action, decision.reason, decision.decided_by)
            self.assertEqual(got, expected, label)
            self.assertIsNone(decision.rule_id, label)

    def test_unavailable_gives_next_time_in_utc_and_local(self) -> None:
        """Outside the windows: reject unavailable, with the next opening."""
        p = prefs(
            availability_enabled=True, windows=(parse_window("mon-fri 09:00-17:00"),)
        )
        saturday = datetime(2026, 3, 28, 12, tzinfo=ZoneInfo(LONDON)).timestamp()
        decision = run(p, now=saturday)
        self.assertEqual(
            (decision.action, decision.reason, decision.decided_by),
            (A.REJECT, R.UNAVAILABLE, "availability"),
        )
        at = decision.available_at
        assert at is not None
        # Monday 30 March is after the clocks went forward: 09:00 BST is 08:00 UTC.
        self.assertEqual(at.utc, datetime(2026, 3, 30, 8, tzinfo=UTC))
        self.assertEqual(at.local.replace(tzinfo=None), datetime(2026, 3, 30, 9))
        self.assertEqual(at.local.utcoffset(), timedelta(hours=1))
        self.assertEqual(at.local.tzinfo, ZoneInfo(LONDON))
        self.assertIn("next available 2026-03-30T09:00:00+01:00", decision.explain())

    def test_holiday_is_unavailable_by_holidays(self) -> None:
        """Inside a window on a holiday: unavailable, decided by holidays."""
        p = prefs(
            availability_enabled=True,
            windows=(parse_window("mon-fri 09:00-17:00"),),
            holidays=frozenset({date(2026, 11, 25), date(2026, 11, 26)}),
        )
        decision = run(p)
        self.assertEqual(
            (decision.action, decision.reason, decision.decided_by),
            (A.REJECT, R.UNAVAILABLE, "holidays"),
        )
        assert decision.available_at is not None
        self.assertEqual(
            decision.available_at.local.replace(tzinfo=None), datetime(2026, 11, 27, 9)
        )

    def test_holidays_ignored_when_availability_off(self) -> None:
        """With "available only in time interval" off, holidays do not apply."""
        p = prefs(holidays=frozenset({date(2026, 11, 25)}))
        self.assertEqual(run(p).action, A.CONFIRM)

    def test_never_available(self) -> None:
        """Availability on with no window: unavailable, never available again."""
        decision = run(prefs(availability_enabled=True))
        self.assertEqual(decision.reason, R.UNAVAILABLE)
        self.assertIsNone(decision.available_at)
        self.assertIn("never available", decision.explain())


class RuleTests(SynchronousTestCase):
    """Each rule type, first match, disabled rules, and the order of steps."""

    def test_rule_types_table(self) -> None:
        """Exact, prefix, glob and name rules match as documented."""
        table: list[tuple[CallerRule, Caller, bool]] = [
            (rule(1, A.REJECT, kind=NumberKind.EXACT, number="+442079460000"), MARY, True),
            (rule(1, A.REJECT, kind=NumberKind.EXACT, number="+44207946000"), MARY, False),
            (rule(1, A.REJECT, kind=NumberKind.PREFIX, number="+4420"), MARY, True),
            (rule(1, A.REJECT, kind=NumberKind.PREFIX, number="+4421"), MARY, False),
            (rule(1, A.REJECT, kind=NumberKind.GLOB, number="+44207946*"), MARY, True),
            (rule(1, A.REJECT, kind=NumberKind.GLOB, number="+44207946000?"), MARY, True),
            (rule(1, A.REJECT, kind=NumberKind.GLOB, number="+44[3-9]*"), MARY, False),
            (rule(1, A.REJECT, kind=NumberKind.GLOB, number="+1212555*"), MARY, False),
            (rule(1, A.REJECT, name="mary"), MARY, True),
            (rule(1, A.REJECT, name="MA*"), MARY, True),
            (rule(1, A.REJECT, name="m?ry"), MARY, True),
            (rule(1, A.REJECT, name="marie"), MARY, False),
            (rule(1, A.REJECT, name="*"), Caller("+15555550123"), False),
            (rule(1, A.REJECT, name="zoë*"), Caller("+1", "ZOË Ångström"), True),
            (rule(1, A.REJECT, name="zoe*"), Caller("+1", "Zoë"), False),
            (rule(1, A.REJECT, name="*strasse"), Caller("+1", "Große Straße"), True),
            (rule(1, A.REJECT, kind=NumberKind.PREFIX, number="+44", name="mary"),
             MARY, True),
            (rule(1, A.REJECT, kind=NumberKind.PREFIX, number="+44", name="john"),
             MARY, False),
            (rule(1, A.REJECT, kind=NumberKind.PREFIX, number="+1", name="mary"),
             MARY, False),
        ]  # fmt: skip
        p = prefs(ask_name=False)
        for caller_rule, caller, matches in table:
            decision = run(p, (caller_rule,), caller)
            label = f"{caller_rule.spec.describe()} vs {caller}"
            if matches:
                self.assertEqual(
                    (decision.action, decision.reason, decision.rule_id),
                    (A.REJECT, R.CALLER_RULE, 1),
                    label,
                )
                self.assertEqual(decision.decided_by, "rule:1", label)
            else:
                self.assertEqual(decision.reason, R.DEFAULT, label)

    def test_each_action(self) -> None:
        """A matching rule's action is the decision, whatever the default."""
        for action in Action:
            for confirmation in (True, False):
                r = rule(7, action, kind=NumberKind.PREFIX, number="+44")
                decision = run(prefs(confirmation_required=confirmation), (r,))
                self.assertEqual((decision.action, decision.rule_id), (action, 7))

    def test_first_match_by_position(self) -> None:
        """The matching rule with the lowest position wins, not the first listed."""
        late = rule(1, A.ACCEPT, kind=NumberKind.PREFIX, number="+44", position=2)
        early = rule(2, A.REJECT, name="Mary", position=1)
        self.assertEqual(run(prefs(), (late, early)).rule_id, 2)
        self.assertEqual(
            run(prefs(), (late, attrs.evolve(early, position=3))).rule_id, 1
        )

    def test_disabled_rule_is_skipped(self) -> None:
        """A disabled rule never decides; the next matching rule does."""
        off = rule(1, A.REJECT, name="Mary", enabled=False)
        on = rule(2, A.ACCEPT, kind=NumberKind.PREFIX, number="+44")
        self.assertEqual(run(prefs(), (off, on)).rule_id, 2)
        self.assertEqual(run(prefs(), (off,)).reason, R.DEFAULT)

    def test_order_of_steps(self) -> None:
        """Earlier steps win: reject_all, availability, busy, name, rules, default."""
        accept_all = rule(1, A.ACCEPT, kind=NumberKind.GLOB, number="*")
        everything = prefs(
            reject_all=True,
            availability_enabled=True,
            windows=(parse_window("sat 09:00-10:00"),),
            reject_when_busy=True,
            ask_name=True,
        )
        nameless = Caller("+442079460000")
        busy = Context(busy=True)
        steps: list[tuple[dict[str, Any], R]] = [
            ({}, R.NOT_ACCEPTING),
            ({"reject_all": False}, R.UNAVAILABLE),
            ({"availability_enabled": False}, R.BUSY),
            ({"reject_when_busy": False}, R.NAME_REQUIRED),
            ({"ask_name": False}, R.CALLER_RULE),
        ]
        current = everything
        for changes, reason in steps:
            current = attrs.evolve(current, **changes)
            decision = run(current, (accept_all,), nameless, busy)
            self.assertEqual(decision.reason, reason, changes)
        self.assertEqual(run(current, (), nameless, busy).reason, R.DEFAULT)

    def test_accept_rule_cannot_pass_refused_destination(self) -> None:
        """An accept rule does not let through a number the policy refuses."""
        accept = rule(3, A.ACCEPT, kind=NumberKind.PREFIX, number="+44")
        decision = run(prefs(), (accept,), context=Context(destination_refused=True))
        self.assertEqual(
            (decision.action, decision.reason, decision.decided_by, decision.rule_id),
            (A.REJECT, R.DESTINATION_REFUSED, "destination_policy", None),
        )

    def test_earlier_reject_keeps_its_reason_over_destination(self) -> None:
        """A reject from an earlier step keeps its own reason when also refused."""
        refused = Context(destination_refused=True)
        decision = run(prefs(reject_all=True), context=refused)
        self.assertEqual(decision.reason, R.NOT_ACCEPTING)
        reject = rule(4, A.REJECT, name="Mary")
        self.assertEqual(run(prefs(), (reject,), context=refused).rule_id, 4)
