"""``callnowctl``: provisioning extensions and their CallNow preferences from a shell.

It opens the same store as the daemon (safe while the daemon runs) and prints the
extension's CallNow URLs after each change. Errors end with a non-zero exit and one
line saying what is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import phonenumbers
from twisted.internet import task
from twisted.internet.defer import Deferred

from callnowd import checks, cli_blocks, cli_rules
from callnowd.calls.requests import new_request_id
from callnowd.config import Config, ConfigError, default_config_path, load_config
from callnowd.models import (
    ACCOUNT_RE,
    CALLNOW_ID_RE,
    DIAL_STRING_RE,
    DISPLAY_NAME_MAX,
    EXTENSION_NUMBER_RE,
    PUBLIC_MESSAGE_MAX,
    Extension,
    Preferences,
)
from callnowd.rules.availability import format_window, parse_window
from callnowd.store.errors import StoreError
from callnowd.store.interface import (
    DuplicateCallNowId,
    DuplicateExtension,
    Store,
    UnknownExtension,
)
from callnowd.store.open import open_store


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


# -- value parsers (argparse "type" functions) -----------------------------------


def _matching(pattern: Any, what: str) -> Any:
    def parse(value: str) -> str:
        if not pattern.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{value!r} is not a valid {what}")
        return value

    return parse


def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid number in +E.164 form (e.g. +12125550100)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _display_name(value: str) -> str:
    if not value.strip() or len(value) > DISPLAY_NAME_MAX or not value.isprintable():
        raise argparse.ArgumentTypeError(
            f"the name must be 1-{DISPLAY_NAME_MAX} printable characters"
        )
    return value.strip()


def _timezone(value: str) -> str:
    try:
        checks.timezone(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _yes_no(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("yes", "on", "true", "1"):
        return True
    if lowered in ("no", "off", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r}: use yes or no")


def _message(value: str) -> str:
    if len(value) > PUBLIC_MESSAGE_MAX:
        raise argparse.ArgumentTypeError(
            f"the public message can have at most {PUBLIC_MESSAGE_MAX} characters"
        )
    if any(not (c.isprintable() or c == "\n") for c in value):
        raise argparse.ArgumentTypeError("the public message has control characters")
    return value


def _window(value: str) -> Any:
    try:
        return parse_window(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -- the parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``callnowctl``."""
    parser = argparse.ArgumentParser(
        prog="callnowctl", description="Provision callnowd extensions."
    )
    parser.add_argument("-c", "--config", type=Path, help="the daemon's TOML config")
    commands = parser.add_subparsers(dest="command", required=True)

    ext = commands.add_parser("extension", help="extensions").add_subparsers(
        dest="action", required=True
    )
    add = ext.add_parser("add", help="add an extension")
    add.add_argument("number", type=_matching(EXTENSION_NUMBER_RE, "extension number"))
    _extension_options(add, required=True)
    add.add_argument("--callnow-id", type=_matching(CALLNOW_ID_RE, "CallNow ID"))
    ext.add_parser("list", help="list extensions")
    for name in ("show", "remove"):
        sub = ext.add_parser(name, help=f"{name} an extension")
        sub.add_argument("number")
    set_ = ext.add_parser("set", help="change an extension")
    set_.add_argument("number")
    _extension_options(set_, required=False)

    callnow = commands.add_parser("callnow", help="CallNow preferences")
    cn_set = callnow.add_subparsers(dest="action", required=True).add_parser(
        "set", help="change CallNow preferences"
    )
    cn_set.add_argument("number")
    cn_set.add_argument(
        "--id", dest="callnow_id", type=_matching(CALLNOW_ID_RE, "CallNow ID")
    )
    for flag, dest, text in _PREFERENCE_FLAGS:
        cn_set.add_argument(flag, dest=dest, type=_yes_no, metavar="yes|no", help=text)
    cn_set.add_argument("--message", type=_message, help="public message (plain text)")
    cn_set.add_argument(
        "--window",
        dest="windows",
        action="append",
        type=_window,
        help="availability window, e.g. 'mon-fri 09:00-17:00' (repeatable)",
    )
    cn_set.add_argument(
        "--clear-windows", action="store_true", help="remove all windows"
    )

    cli_rules.add_commands(commands)
    cli_blocks.add_commands(commands)
    commands.add_parser("demo", help="provision the demo extension (idempotent)")
    return parser


_PREFERENCE_FLAGS = (
    ("--enabled", "enabled", "the link takes requests"),
    ("--available-only-in-windows", "availability_enabled", "only inside windows"),
    ("--reject-all", "reject_all", "do not allow people to contact me"),
    ("--confirm", "confirmation_required", "confirmation required"),
    ("--show-name", "show_name", "show my name on the public page"),
    ("--ask-name", "ask_name", "ask for the caller's name"),
    ("--captcha", "image_validation", "image validation"),
    ("--one-step", "one_step_enabled", "allow the one-step link"),
    ("--reject-when-busy", "reject_when_busy", "reject while I am on the phone"),
    ("--show-hours", "show_hours", "show my hours on the public page"),
)


def _extension_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--name", type=_display_name, required=required)
    parser.add_argument("--external", type=_e164, required=required)
    parser.add_argument(
        "--dial", type=_matching(DIAL_STRING_RE, "dial string"), required=required
    )
    parser.add_argument("--timezone", type=_timezone, default=None)
    parser.add_argument("--account", type=_matching(ACCOUNT_RE, "account code"))


# -- commands ---------------------------------------------------------------------


async def run_command(
    args: argparse.Namespace, store: Store, config: Config, now: float | None = None
) -> str:
    """Run one parsed command against ``store`` and return what to print.

    ``now`` (POSIX time) stamps new rules and is the default instant of
    ``rules test``; the system clock when omitted.

    Raises:
        CliError: an unknown extension, a duplicate number or CallNow ID.
    """
    try:
        if args.command in cli_rules.COMMANDS:
            return await cli_rules.run(args, store, now)
        return await _dispatch(args, store, config)
    except cli_rules.RulesCliError as e:
        raise CliError(str(e)) from e
    except UnknownExtension as e:
        raise CliError(f"no extension {e.number}") from e
    except DuplicateExtension as e:
        raise CliError(f"extension {e.number} exists already") from e
    except DuplicateCallNowId as e:
        raise CliError(f"the CallNow ID {e.callnow_id!r} is taken") from e


async def _dispatch(args: argparse.Namespace, store: Store, config: Config) -> str:
    if args.command == "demo":
        return await _demo(store, config)
    if args.command == "callnow":
        extension = await _get(store, args.number)
        prefs = _updated_preferences(extension.preferences, args)
        extension = attrs.evolve(extension, preferences=prefs)
        await store.update_extension(extension)
        return describe(extension, config)
    if args.action == "list":
        rows = [describe_line(e, config) for e in await store.list_extensions()]
        return "\n".join(rows) if rows else "(no extensions)"
    if args.action == "show":
        return describe(await _get(store, args.number), config)
    if args.action == "remove":
        await store.remove_extension(args.number)
        return f"removed extension {args.number}"
    if args.action == "add":
        extension = Extension(
            number=args.number,
            display_name=args.name,
            external_number=args.external,
            dial_string=args.dial,
            timezone=args.timezone or "UTC",
            account=args.account or "",
            preferences=Preferences(callnow_id=args.callnow_id or _random_id()),
        )
        await store.add_extension(extension)
        return describe(extension, config)
    extension = await _get(store, args.number)
    changes = {
        field: value
        for field, value in (
            ("display_name", args.name),
            ("external_number", args.external),
            ("dial_string", args.dial),
            ("timezone", args.timezone),
            ("account", args.account),
        )
        if value is not None
    }
    extension = attrs.evolve(extension, **changes)
    await store.update_extension(extension)
    return describe(extension, config)


def _updated_preferences(prefs: Preferences, args: argparse.Namespace) -> Preferences:
    changes: dict[str, Any] = {
        dest: getattr(args, dest)
        for _, dest, _ in _PREFERENCE_FLAGS
        if getattr(args, dest) is not None
    }
    if args.callnow_id is not None:
        changes["callnow_id"] = args.callnow_id
    if args.message is not None:
        changes["public_message"] = args.message
    if args.clear_windows:
        changes["windows"] = ()
    if args.windows:
        base = () if args.clear_windows else prefs.windows
        changes["windows"] = (*base, *args.windows)
    updated = attrs.evolve(prefs, **changes)
    if updated.availability_enabled and not updated.windows:
        raise CliError("--available-only-in-windows yes needs at least one --window")
    return updated


async def _demo(store: Store, config: Config) -> str:
    existing = await store.find_by_callnow_id("demo")
    if existing is not None:
        return describe(existing, config)
    demo = Extension(
        number="000",
        display_name="Demo Owner",
        external_number="+12125550100",
        dial_string="SIM/demo",
        timezone="America/New_York",
        account="demo",
        preferences=Preferences(
            callnow_id="demo",
            image_validation=False,
            confirmation_required=True,
            show_name=True,
            ask_name=False,
            public_message="This is the demo extension of callnowd.",
        ),
    )
    try:
        await store.add_extension(demo)
    except DuplicateExtension as e:
        raise CliError(
            "extension 000 exists with another CallNow ID; remove it or give it"
            " the ID demo"
        ) from e
    return describe(demo, config)


async def _get(store: Store, number: str) -> Extension:
    extension = await store.get_extension(number)
    if extension is None:
        raise CliError(f"no extension {number}")
    return extension


def _random_id() -> str:
    return new_request_id()


def callnow_urls(extension: Extension, config: Config) -> tuple[str, str]:
    """The extension's two public URL forms."""
    base = config.http.public_url.rstrip("/")
    callnow_id = extension.preferences.callnow_id
    return (
        f"{base}/callnow/{callnow_id}",
        f"{base}/callnow/index.php?call={callnow_id}",
    )


def describe_line(extension: Extension, config: Config) -> str:
    """One line per extension for ``extension list``."""
    url, _ = callnow_urls(extension, config)
    state = "enabled" if extension.preferences.enabled else "disabled"
    return f"{extension.number}\t{extension.display_name}\t{state}\t{url}"


def describe(extension: Extension, config: Config) -> str:
    """Everything about one extension, with its CallNow URLs."""
    p = extension.preferences
    windows = ", ".join(format_window(w) for w in p.windows) or "(none)"
    holidays = ", ".join(d.isoformat() for d in sorted(p.holidays)) or "(none)"
    yes = {True: "yes", False: "no"}
    lines = [
        f"extension:        {extension.number}",
        f"name:             {extension.display_name}",
        f"external number:  {extension.external_number}",
        f"dial string:      {extension.dial_string}",
        f"time zone:        {extension.timezone}",
        f"account:          {extension.account or '(none)'}",
        f"CallNow ID:       {p.callnow_id}",
        f"enabled:          {yes[p.enabled]}",
        f"only in windows:  {yes[p.availability_enabled]}  windows: {windows}",
        f"reject all:       {yes[p.reject_all]}",
        f"confirmation:     {yes[p.confirmation_required]}",
        f"show my name:     {yes[p.show_name]}",
        f"ask caller name:  {yes[p.ask_name]}",
        f"image validation: {yes[p.image_validation]}",
        f"one-step link:    {yes[p.one_step_enabled]}",
        f"reject when busy: {yes[p.reject_when_busy]}",
        f"show my hours:    {yes[p.show_hours]}",
        f"holidays:         {holidays}",
        f"public message:   {p.public_message!r}",
    ]
    lines.extend(f"URL:              {url}" for url in callnow_urls(extension, config))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``callnowctl`` console script."""
    args = build_parser().parse_args(argv)
    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as e:
        sys.exit(f"callnowctl: configuration error: {e}")

    async def run(reactor: Any) -> None:
        try:
            if args.command in cli_blocks.COMMANDS:
                # Blocks live in Redis or in the daemon, not in the store.
                print(
                    await cli_blocks.run(
                        args, config, reactor, now=time.time(), base_dir=Path.cwd()
                    )
                )
                return
            store = open_store(reactor, config.store.url, Path.cwd())
            try:
                print(await run_command(args, store, config))
            finally:
                await store.close()
        except (CliError, StoreError, cli_blocks.BlocksCliError) as e:
            print(f"callnowctl: error: {e}", file=sys.stderr)
            # task.react turns a SystemExit failure into that exit status, quietly.
            raise SystemExit(1) from e

    task.react(lambda reactor: Deferred.fromCoroutine(run(reactor)))
