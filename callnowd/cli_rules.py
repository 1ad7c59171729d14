"""``callnowctl availability`` and ``callnowctl rules``: holidays and caller rules.

Also ``rules test``, a dry run of the decision engine. Registered by
:mod:`callnowd.cli` (``add_commands`` in its parser, ``run`` in its dispatch).
Input is validated by argparse types (exit status 2 with a message) or here
(:class:`RulesCliError`, which ``callnowctl`` reports with exit status 1); nothing
is written on error.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import phonenumbers

from callnowd.models import Extension
from callnowd.rules.availability import format_window, parse_holiday
from callnowd.rules.callers import (
    Action,
    CallerRule,
    NumberKind,
    NumberPattern,
    RuleSpec,
)
from callnowd.rules.engine import DecisionReason, decide_for_request
from callnowd.rules.globs import GlobError, compile_glob, fold_name
from callnowd.store.interface import RulePositionOutOfRange, Store, UnknownRule

COMMANDS = frozenset({"availability", "rules"})


class RulesCliError(Exception):
    """A user error of these commands; :mod:`callnowd.cli` prints it, exit 1."""


# -- argparse types --------------------------------------------------------------


def _typed(parse: Any) -> Any:
    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


def _phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid number in +E.164 form")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _name_glob(value: str) -> str:
    if not value.strip():
        raise GlobError("a name glob must not be blank")
    compile_glob(fold_name(value))
    return value


def _at(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"time {value!r} must look like 2026-12-24T10:00 (owner-local)"
            " or 2026-12-24T10:00+01:00"
        ) from None


def _position(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"position {value!r} must be a whole number from 1")
    return int(value)


def _rule_id(value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"rule id {value!r} must be a number (see 'rules list')")
    return int(value)


# -- the parser ------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    """Add ``availability`` and ``rules`` to callnowctl's subcommands."""
    availability = commands.add_parser(
        "availability", help="holidays (windows: 'callnow set --window')"
    ).add_subparsers(dest="verb", required=True)
    for name, text in (
        ("add-holiday", "dates (YYYY-MM-DD, owner-local) the owner is unavailable"),
        ("remove-holiday", "remove holidays"),
    ):
        sub = availability.add_parser(name, help=text)
        sub.add_argument("number")
        sub.add_argument("dates", nargs="+", type=_typed(parse_holiday), metavar="DATE")
    availability.add_parser("list", help="windows and holidays").add_argument("number")

    rules = commands.add_parser("rules", help="per-caller rules").add_subparsers(
        dest="verb", required=True
    )
    rules.add_parser("list", help="rules in evaluation order").add_argument("number")
    add = rules.add_parser("add", help="add a rule (first match wins)")
    add.add_argument("number")
    pattern = add.add_mutually_exclusive_group()
    pattern.add_argument("--phone", type=_typed(_phone), help="exact number, +E.164")
    pattern.add_argument("--prefix", help="number prefix, e.g. +4420")
    pattern.add_argument("--phone-glob", help="number glob, e.g. '+1212555*'")
    add.add_argument("--name", type=_typed(_name_glob), help="caseless name glob")
    add.add_argument(
        "--action", dest="rule_action", required=True, choices=[a.value for a in Action]
    )
    add.add_argument("--position", type=_typed(_position), help="default: last")
    add.add_argument("--disabled", action="store_true", help="add it switched off")
    move = rules.add_parser("move", help="move a rule to a position")
    move.add_argument("number")
    move.add_argument("rule_id", type=_typed(_rule_id))
    move.add_argument("position", type=_typed(_position))
    for name in ("enable", "disable", "remove"):
        sub = rules.add_parser(name, help=f"{name} a rule")
        sub.add_argument("number")
        sub.add_argument("rule_id", type=_typed(_rule_id))
    test = rules.add_parser("test", help="dry run: what would happen to a caller")
    test.add_argument("number")
    test.add_argument("--phone", required=True, type=_typed(_phone))
    test.add_argument("--name", help="the caller's name (none if omitted)")
    test.add_argument(
        "--at", type=_typed(_at), help="owner-local time unless it has an offset"
    )
    test.add_argument("--busy", action="store_true", help="the owner is on the phone")
    test.add_argument(
        "--destination-refused",
        action="store_true",
        help="as if the destination policy refused the number",
    )


# -- commands ---------------------------------------------------------------------


async def run(args: argparse.Namespace, store: Store, now: float | None = None) -> str:
    """Run an ``availability`` or ``rules`` command; return what to print.

    Args:
        args: parsed by a parser that :func:`add_commands` extended.
        store: the store.
        now: the current POSIX time (read from the system clock when omitted).

    Raises:
        RulesCliError: an unknown extension or rule, a bad position or date.
    """
    current = time.time() if now is None else now
    extension = await store.get_extension(args.number)
    if extension is None:
        raise RulesCliError(f"no extension {args.number}")
    try:
        if args.command == "availability":
            return await _availability(args, store, extension)
        return await _rules(args, store, extension, current)
    except UnknownRule as e:
        raise RulesCliError(
            f"extension {e.number} has no rule {e.rule_id} (see 'rules list')"
        ) from e
    except RulePositionOutOfRange as e:
        raise RulesCliError(
            f"position {e.position} is out of range: use 1 to {e.last}"
        ) from e


async def _availability(
    args: argparse.Namespace, store: Store, extension: Extension
) -> str:
    prefs = extension.preferences
    if args.verb == "list":
        return describe_availability(extension)
    dates: set[date] = set(args.dates)
    if args.verb == "add-holiday":
        holidays = prefs.holidays | dates
    else:
        missing = sorted(dates - prefs.holidays)
        if missing:
            listed = ", ".join(day.isoformat() for day in missing)
            raise RulesCliError(
                f"not a holiday of extension {extension.number}: {listed}"
            )
        holidays = prefs.holidays - dates
    extension = attrs.evolve(
        extension, preferences=attrs.evolve(prefs, holidays=holidays)
    )
    await store.update_extension(extension)
    return describe_availability(extension)


def describe_availability(extension: Extension) -> str:
    """Windows and holidays of one extension, with a note when they do not apply."""
    p = extension.preferences
    windows = ", ".join(format_window(w) for w in p.windows) or "(none)"
    holidays = ", ".join(day.isoformat() for day in sorted(p.holidays)) or "(none)"
    lines = [
        f"extension:       {extension.number} ({extension.timezone})",
        f"only in windows: {'yes' if p.availability_enabled else 'no'}",
        f"windows:         {windows}",
        f"holidays:        {holidays}",
    ]
    if p.holidays and not p.availability_enabled:
        lines.append(
            "note: windows and holidays apply only with"
            " 'callnow set --available-only-in-windows yes'"
        )
    return "\n".join(lines)


async def _rules(
    args: argparse.Namespace, store: Store, extension: Extension, now: float
) -> str:
    number = extension.number
    if args.verb == "list":
        return describe_rules(await store.list_rules(number))
    if args.verb == "add":
        rule = await store.add_rule(number, _spec(args), now, position=args.position)
        return f"added {describe_rule(rule)}"
    if args.verb == "move":
        return describe_rules(
            await store.move_rule(number, args.rule_id, args.position)
        )
    if args.verb == "remove":
        await store.remove_rule(number, args.rule_id)
        return f"removed rule {args.rule_id}"
    if args.verb in ("enable", "disable"):
        rule = _find(await store.list_rules(number), number, args.rule_id)
        spec = attrs.evolve(rule.spec, enabled=args.verb == "enable")
        return describe_rule(await store.update_rule(number, rule.id, spec))
    return _dry_run(args, extension, await store.list_rules(number), now)


def _spec(args: argparse.Namespace) -> RuleSpec:
    numbers = (
        (NumberKind.EXACT, args.phone),
        (NumberKind.PREFIX, args.prefix),
        (NumberKind.GLOB, args.phone_glob),
    )
    given = [(kind, text) for kind, text in numbers if text is not None]
    if not given and args.name is None:
        raise RulesCliError(
            "a rule needs --phone, --prefix or --phone-glob, or --name, or both"
        )
    try:
        pattern = NumberPattern(*given[0]) if given else None
        return RuleSpec(Action(args.rule_action), pattern, args.name, not args.disabled)
    except ValueError as e:
        raise RulesCliError(str(e)) from e


def _find(rules: list[CallerRule], number: str, rule_id: int) -> CallerRule:
    for rule in rules:
        if rule.id == rule_id:
            return rule
    raise UnknownRule(number, rule_id)


def _dry_run(
    args: argparse.Namespace, extension: Extension, rules: list[CallerRule], now: float
) -> str:
    at: datetime | None = args.at
    zone = ZoneInfo(extension.timezone)
    if at is None:
        instant = now
    elif at.tzinfo is None:
        instant = at.replace(tzinfo=zone).timestamp()
    else:
        instant = at.timestamp()
    name = args.name.strip() if args.name and args.name.strip() else None
    decision = decide_for_request(
        extension,
        rules,
        args.phone,
        name,
        args.busy,
        instant,
        destination_refused=args.destination_refused,
    )
    local = datetime.fromtimestamp(instant, zone)
    lines = [
        f"decision:   {decision.action.value}",
        f"reason:     {decision.reason.value}",
        f"decided by: {decision.decided_by}",
        f"rule:       {decision.rule_id if decision.rule_id is not None else '(none)'}",
        f"at:         {local.isoformat()} owner-local"
        f" ({datetime.fromtimestamp(instant, UTC).isoformat()} UTC)",
    ]
    if decision.available_at is not None:
        next_at = decision.available_at
        lines.append(
            f"next available: {next_at.local.isoformat()} owner-local"
            f" ({next_at.utc.isoformat()} UTC)"
        )
    elif decision.reason is DecisionReason.UNAVAILABLE:
        lines.append("next available: never (no availability window)")
    return "\n".join(lines)


def describe_rule(rule: CallerRule) -> str:
    """``rule 7 at 2: reject number prefix +4420``."""
    return f"rule {rule.id} at {rule.position}: {rule.spec.describe()}"


def describe_rules(rules: list[CallerRule]) -> str:
    """Rules in evaluation order, one a line."""
    if not rules:
        return "(no rules)"
    return "\n".join(describe_rule(rule) for rule in rules)


__all__ = ["COMMANDS", "RulesCliError", "add_commands", "describe_rules", "run"]
