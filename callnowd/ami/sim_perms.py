"""AMI permission classes of the simulator, checked like Asterisk's manager.c.

This module owns which write class each simulated action needs, which
Originate applications additionally need ``system`` (``is_originate_app_permitted``),
and how a user's ``read`` set and the Login ``Events:`` mask decide whether a
session receives an event of a given class.
"""

from __future__ import annotations

from collections.abc import Iterable

# manager.h EVENT_FLAG_* names, in Asterisk's order.
EVENT_CLASSES: frozenset[str] = frozenset(
    {
        "system",
        "call",
        "log",
        "verbose",
        "command",
        "agent",
        "user",
        "config",
        "dtmf",
        "reporting",
        "cdr",
        "dialplan",
        "originate",
        "agi",
        "cc",
        "aoc",
        "test",
        "security",
        "message",
    }
)

# Action name (lower case) -> the write classes of which any one is enough;
# the empty set means "no class needed" (registered with authority 0).
ACTION_CLASSES: dict[str, frozenset[str]] = {
    "login": frozenset(),
    "challenge": frozenset(),
    "logoff": frozenset(),
    "ping": frozenset(),
    "events": frozenset(),
    "listcommands": frozenset(),
    "originate": frozenset({"originate"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "userevent": frozenset({"user"}),
    "hangup": frozenset({"system", "call"}),
    "extensionstate": frozenset({"call", "reporting"}),
    "getvar": frozenset({"call", "reporting"}),
    "setvar": frozenset({"call"}),
}

# Applications and data fragments for which Originate needs "system" too
# (manager.c originate_app_permissions / is_originate_app_permitted).
_SYSTEM_APPS = (
    "system",
    "exec",
    "agi",
    "originate",
    "eagi",
    "mixmonitor",
    "externalivr",
)
_SYSTEM_DATA = ("shell(", "eval(", "file(", "db(", "curl(", "odbc", "realtime", "exec")


def expand_classes(classes: Iterable[str]) -> frozenset[str]:
    """Normalise a class set: lower case, ``all`` expanded to every class.

    Args:
        classes: class names as configured (``all``, ``call``...).

    Returns:
        The concrete classes.
    """
    lowered = {c.strip().lower() for c in classes if c.strip()}
    if "all" in lowered:
        return EVENT_CLASSES
    return frozenset(lowered & EVENT_CLASSES)


def parse_event_mask(value: str | None, read: frozenset[str]) -> frozenset[str]:
    """The event classes a session asked for with Login ``Events:``.

    Args:
        value: the header value (``on``, ``off``, ``call,system``...) or None.
        read: the user's (expanded) read classes, used when the header is absent.

    Returns:
        The classes of the mask (before intersecting with ``read``).
    """
    if value is None or not value.strip():
        return read
    lowered = value.strip().lower()
    if lowered in ("on", "yes", "true", "all"):
        return EVENT_CLASSES
    if lowered in ("off", "no", "false"):
        return frozenset()
    return expand_classes(lowered.split(","))


def action_permitted(action: str, write: frozenset[str]) -> bool:
    """Whether a user with ``write`` classes may run ``action`` (a known action).

    Args:
        action: the action name (any case).
        write: the user's expanded write classes.

    Returns:
        True if the action needs no class or any of its classes is granted.
    """
    needed = ACTION_CLASSES[action.lower()]
    return not needed or bool(needed & write)


def originate_app_permitted(app: str, data: str, write: frozenset[str]) -> bool:
    """Whether Originate may run ``app(data)`` for a user with ``write`` classes.

    Args:
        app: the ``Application`` header.
        data: the ``Data`` header.
        write: the user's expanded write classes.

    Returns:
        False when the application or its data needs ``system`` and the user
        does not have it.
    """
    if "system" in write:
        return True
    app_lower = app.lower()
    data_lower = data.lower()
    if any(name in app_lower for name in _SYSTEM_APPS):
        return False
    return not any(fragment in data_lower for fragment in _SYSTEM_DATA)
