"""Properties of the decision engine: precedence, disabled rules, tightening."""

from __future__ import annotations

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.models import Preferences, Window
from callnowd.rules.callers import (
    Action,
    CallerRule,
    NumberKind,
    NumberPattern,
    RuleSpec,
)
from callnowd.rules.engine import Caller, Context, DecisionReason, decide

ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "UTC")

# A small alphabet, so that rules and callers meet often.
phones = st.text("012", min_size=1, max_size=4).map(lambda d: "+441" + d)
names = st.sampled_from([None, "Mary", "MARY", "mary ann", "Zoë", "ZOE", "Ann"])
callers = st.builds(Caller, phones, names)
number_patterns = st.one_of(
    st.builds(NumberPattern, st.just(NumberKind.EXACT), phones),
    st.builds(
        NumberPattern,
        st.just(NumberKind.PREFIX),
        st.text("012", max_size=2).map(lambda d: "+441" + d),
    ),
    st.builds(
        NumberPattern,
        st.just(NumberKind.GLOB),
        st.sampled_from(["+441*", "+4410*", "+441?", "+441[01]*", "*2", "+441[!0]*"]),
    ),
)
name_globs = st.sampled_from(["mary*", "*ann", "zo?", "zoë", "?ARY", "*"])


@st.composite
def specs(draw: st.DrawFn) -> RuleSpec:
    number = draw(st.none() | number_patterns)
    name = draw(name_globs if number is None else st.none() | name_globs)
    return RuleSpec(draw(st.sampled_from(Action)), number, name, draw(st.booleans()))


@st.composite
def rule_lists(draw: st.DrawFn) -> tuple[CallerRule, ...]:
    drawn = draw(st.lists(specs(), max_size=6))
    return tuple(CallerRule(n + 1, n + 1, spec, 0.0) for n, spec in enumerate(drawn))


windows = st.builds(
    Window,
    st.frozensets(st.integers(0, 6), max_size=7),
    st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    st.times().map(lambda t: t.replace(second=0, microsecond=0)),
).filter(lambda w: w.start != w.end)
preferences = st.builds(
    Preferences,
    callnow_id=st.just("john"),
    enabled=st.booleans(),
    availability_enabled=st.booleans(),
    windows=st.lists(windows, max_size=2).map(tuple),
    reject_all=st.booleans(),
    confirmation_required=st.booleans(),
    ask_name=st.booleans(),
    reject_when_busy=st.booleans(),
)
contexts = st.builds(Context, st.booleans(), st.booleans())
# 2020-01-01 .. 2030-01-01
instants = st.floats(1_577_836_800, 1_893_456_000, allow_nan=False)
zones = st.sampled_from(ZONES)


def open_prefs(p: Preferences) -> Preferences:
    """The same preferences with every step before the rules switched off."""
    return attrs.evolve(
        p, enabled=True, reject_all=False, availability_enabled=False, ask_name=False
    )


class EnginePropertyTests(SynchronousTestCase):
    """decide() over generated preferences, rules, callers and contexts."""

    @given(preferences, rule_lists(), callers, st.data())
    def test_first_match_wins(
        self,
        p: Preferences,
        rules: tuple[CallerRule, ...],
        caller: Caller,
        data: st.DataObject,
    ) -> None:
        """The decision comes from the lowest-position enabled matching rule."""
        p = open_prefs(p)
        decision = decide(p, rules, caller, Context(), 0.0, "UTC")
        matching = [
            r
            for r in rules
            if r.spec.enabled and r.spec.matches(caller.phone, caller.name)
        ]
        if not matching:
            self.assertEqual(decision.reason, DecisionReason.DEFAULT)
            return
        self.assertEqual(decision.rule_id, matching[0].id)
        self.assertEqual(decision.action, matching[0].spec.action)
        # Shuffling the sequence (positions unchanged) changes nothing.
        shuffled = data.draw(st.permutations(rules))
        self.assertEqual(decide(p, shuffled, caller, Context(), 0.0, "UTC"), decision)
        # Whatever comes after the deciding rule does not matter.
        after = data.draw(rule_lists())
        later = tuple(
            attrs.evolve(r, id=100 + r.id, position=100 + r.position) for r in after
        )
        kept = tuple(r for r in rules if r.position <= matching[0].position)
        self.assertEqual(
            decide(p, kept + later, caller, Context(), 0.0, "UTC"), decision
        )

    @given(preferences, rule_lists(), callers, contexts, instants, zones, st.data())
    def test_disabled_rule_is_absent_rule(
        self,
        p: Preferences,
        rules: tuple[CallerRule, ...],
        caller: Caller,
        context: Context,
        now: float,
        zone: str,
        data: st.DataObject,
    ) -> None:
        """Disabling a rule decides exactly as removing it."""
        assume(rules)
        index = data.draw(st.integers(0, len(rules) - 1))
        target = rules[index]
        disabled = attrs.evolve(target, spec=attrs.evolve(target.spec, enabled=False))
        with_disabled = (*rules[:index], disabled, *rules[index + 1 :])
        without = (*rules[:index], *rules[index + 1 :])
        self.assertEqual(
            decide(p, with_disabled, caller, context, now, zone),
            decide(p, without, caller, context, now, zone),
        )

    @given(preferences, rule_lists(), callers, contexts, instants, zones)
    def test_reject_all_dominates(
        self,
        p: Preferences,
        rules: tuple[CallerRule, ...],
        caller: Caller,
        context: Context,
        now: float,
        zone: str,
    ) -> None:
        """With reject_all on, every request is rejected as not accepting."""
        decision = decide(
            attrs.evolve(p, reject_all=True), rules, caller, context, now, zone
        )
        self.assertEqual(
            (decision.action, decision.reason),
            (Action.REJECT, DecisionReason.NOT_ACCEPTING),
        )

    @given(preferences, rule_lists(), callers, contexts, contexts, instants, zones)
    def test_context_flags_only_tighten(
        self,
        p: Preferences,
        rules: tuple[CallerRule, ...],
        caller: Caller,
        a: Context,
        b: Context,
        now: float,
        zone: str,
    ) -> None:
        """Raising any context flag never makes the decision milder."""
        lower = Context(
            busy=a.busy and b.busy,
            destination_refused=a.destination_refused and b.destination_refused,
        )
        higher = Context(
            busy=a.busy or b.busy,
            destination_refused=a.destination_refused or b.destination_refused,
        )
        low = decide(p, rules, caller, lower, now, zone)
        high = decide(p, rules, caller, higher, now, zone)
        self.assertGreaterEqual(high.action.strictness, low.action.strictness)
        if low.action is Action.REJECT:
            # A rejection stays one; only a raised flag may give it another reason.
            context_reasons = {DecisionReason.BUSY, DecisionReason.DESTINATION_REFUSED}
            self.assertIn(high.reason, {low.reason} | context_reasons)

    @given(preferences, rule_lists(), callers, instants, zones)
    def test_refused_destination_is_always_rejected(
        self,
        p: Preferences,
        rules: tuple[CallerRule, ...],
        caller: Caller,
        now: float,
        zone: str,
    ) -> None:
        """No rule or preference lets through a destination the policy refuses."""
        context = Context(destination_refused=True)
        self.assertIs(
            decide(p, rules, caller, context, now, zone).action, Action.REJECT
        )
