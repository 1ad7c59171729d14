"""The decision on an incoming call request: accept, confirm or reject, and why.

:func:`decide` is pure: no I/O, no clock (``now`` is a POSIX timestamp), no global
state. It evaluates, in this order, and the first step that decides wins:

1. the link is disabled, or "do not allow people to contact me" (``reject_all``)
   → reject ``not_accepting``;
2. outside the availability windows, or on a holiday → reject ``unavailable``,
   with the next instant the owner is available (UTC and owner-local);
3. the owner is on the phone (``context.busy``) and "reject while I am on the
   phone" (``reject_when_busy``) is on → reject ``busy``;
4. no name while "ask for the caller's name" (``ask_name``) is on → reject
   ``name_required``;
5. per-caller rules in position order, disabled rules skipped; the first rule
   whose patterns all match decides (``caller_rule``, with the rule's id);
6. otherwise confirm if "confirmation required" is on, else accept (``default``).

Then the context restrictions apply, and they can only make the outcome stricter
(accept < confirm < reject), never milder: ``context.destination_refused`` (the
destination policy refused the caller's number) turns anything that is not
already a reject into reject ``destination_refused``; an ``accept`` rule never
overrides it. Every :class:`Context` flag is such a restriction and ``False``
means "no objection", so a caller-supplied context cannot loosen a decision.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import attrs

from callnowd.models import Extension, Preferences
from callnowd.rules.availability import is_available, next_available
from callnowd.rules.callers import Action, CallerRule


class DecisionReason(enum.StrEnum):
    """Why a request got its decision; stored as the request's reason on reject."""

    NOT_ACCEPTING = "not_accepting"
    UNAVAILABLE = "unavailable"
    BUSY = "busy"
    NAME_REQUIRED = "name_required"
    CALLER_RULE = "caller_rule"
    DESTINATION_REFUSED = "destination_refused"
    DEFAULT = "default"


@attrs.frozen
class Caller:
    """Who asks: an E.164 number and the validated name, if any."""

    phone: str
    name: str | None = None


@attrs.frozen
class Context:
    """Facts from outside the preferences; each ``True`` can only tighten.

    Attributes:
        busy: the owner is on the phone now.
        destination_refused: the destination policy refuses the caller's number.
    """

    busy: bool = False
    destination_refused: bool = False


@attrs.frozen
class AvailableAt:
    """An instant the owner becomes available, in UTC and in his own zone."""

    utc: datetime
    local: datetime

    @classmethod
    def from_timestamp(cls, instant: float, timezone: str) -> AvailableAt:
        """Both readings of the POSIX timestamp ``instant``."""
        return cls(
            utc=datetime.fromtimestamp(instant, UTC),
            local=datetime.fromtimestamp(instant, ZoneInfo(timezone)),
        )


@attrs.frozen
class Decision:
    """The outcome for one request, able to explain itself.

    Attributes:
        action: accept (connect on answer), confirm (owner presses 1) or reject.
        reason: the machine-readable reason.
        decided_by: ``rule:<id>`` for a rule, else the preference (or policy) that
            decided: ``enabled``, ``reject_all``, ``availability``, ``holidays``,
            ``reject_when_busy``, ``ask_name``, ``confirmation_required``,
            ``destination_policy``.
        rule_id: the id of the rule that decided, if one did.
        available_at: for ``unavailable``, when the owner is next available
            (``None`` if never).
    """

    action: Action
    reason: DecisionReason
    decided_by: str
    rule_id: int | None = None
    available_at: AvailableAt | None = None

    def explain(self) -> str:
        """One human line: ``reject (unavailable) by availability; next ...``."""
        text = f"{self.action.value} ({self.reason.value}) by {self.decided_by}"
        if self.reason is DecisionReason.UNAVAILABLE:
            at = self.available_at
            if at is None:
                text += "; never available (no window)"
            else:
                text += (
                    f"; next available {at.local.isoformat()} owner-local"
                    f" ({at.utc.isoformat()} UTC)"
                )
        return text


def decide(
    preferences: Preferences,
    rules: Sequence[CallerRule],
    caller: Caller,
    context: Context,
    now: float,
    timezone: str,
) -> Decision:
    """Decide what happens to a request (the order is in the module docstring).

    Args:
        preferences: the owner's CallNow preferences.
        rules: the extension's rules; evaluated in ``position`` order.
        caller: the visitor's E.164 number and name.
        context: restrictions from outside (busy owner, destination policy).
        now: the POSIX time of the request.
        timezone: the owner's IANA time zone.

    Returns:
        The decision, with its reason and what decided it.
    """
    base = _decide_preferences(preferences, rules, caller, context, now, timezone)
    return _restrict(base, context)


def _decide_preferences(
    preferences: Preferences,
    rules: Sequence[CallerRule],
    caller: Caller,
    context: Context,
    now: float,
    timezone: str,
) -> Decision:
    reject, reason = Action.REJECT, DecisionReason
    if not preferences.enabled:
        return Decision(reject, reason.NOT_ACCEPTING, "enabled")
    if preferences.reject_all:
        return Decision(reject, reason.NOT_ACCEPTING, "reject_all")
    if not is_available(preferences, timezone, now):
        local = datetime.fromtimestamp(now, ZoneInfo(timezone)).date()
        by = "holidays" if local in preferences.holidays else "availability"
        instant = next_available(preferences, timezone, now)
        return Decision(
            reject,
            reason.UNAVAILABLE,
            by,
            available_at=(
                None
                if instant is None
                else AvailableAt.from_timestamp(instant, timezone)
            ),
        )
    if context.busy and preferences.reject_when_busy:
        return Decision(reject, reason.BUSY, "reject_when_busy")
    if preferences.ask_name and not (caller.name and caller.name.strip()):
        return Decision(reject, reason.NAME_REQUIRED, "ask_name")
    rule = first_match(rules, caller)
    if rule is not None:
        return Decision(
            rule.spec.action, reason.CALLER_RULE, rule.decided_by, rule_id=rule.id
        )
    if preferences.confirmation_required:
        return Decision(Action.CONFIRM, reason.DEFAULT, "confirmation_required")
    return Decision(Action.ACCEPT, reason.DEFAULT, "confirmation_required")


def first_match(rules: Sequence[CallerRule], caller: Caller) -> CallerRule | None:
    """The first enabled rule, by position, whose patterns all match ``caller``."""
    for rule in sorted(rules, key=lambda r: r.position):
        if rule.spec.enabled and rule.spec.matches(caller.phone, caller.name):
            return rule
    return None


def _restrict(decision: Decision, context: Context) -> Decision:
    """Apply the context restrictions; the result is never milder than ``decision``."""
    restrictions = []
    if context.destination_refused:
        restrictions.append(
            Decision(
                Action.REJECT, DecisionReason.DESTINATION_REFUSED, "destination_policy"
            )
        )
    for restriction in restrictions:
        if restriction.action.strictness > decision.action.strictness:
            decision = restriction
    return decision


def decide_for_request(
    extension: Extension,
    rules: Sequence[CallerRule],
    phone: str,
    name: str | None,
    busy: bool,
    now: float,
    *,
    destination_refused: bool = False,
) -> Decision:
    """:func:`decide` for one extension, as the request path calls it.

    Args:
        extension: the asked extension (preferences and time zone).
        rules: its rules (``Store.list_rules``).
        phone: the visitor's E.164 number.
        name: the visitor's validated name, if given.
        busy: whether the owner is on the phone now.
        now: the POSIX time of the request.
        destination_refused: whether the destination policy refused ``phone``.

    Returns:
        The decision.
    """
    return decide(
        extension.preferences,
        rules,
        Caller(phone, name),
        Context(busy=busy, destination_refused=destination_refused),
        now,
        extension.timezone,
    )


__all__ = [
    "AvailableAt",
    "Caller",
    "Context",
    "Decision",
    "DecisionReason",
    "decide",
    "decide_for_request",
    "first_match",
]
