"""Settings of the Asterisk simulator: AMI users and scripted endpoints.

This module owns the values that say how the simulated PBX behaves: who may log
in over AMI with which ``read``/``write`` classes, how each owner phone reacts
when it is originated (answers and presses a digit, declines, never answers,
rings, is busy, does not exist), how each visitor number reacts when dialled,
and which dialplan contexts run which FastAGI URL.  The defaults mirror the
dialplan used to record the Asterisk 22.10.1 transcripts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal, get_args

import attrs

from callnowd.ami.sim_filters import EventFilters, to_filters

OwnerKind = Literal["answer", "decline", "noanswer", "ring", "busy", "nonexistent"]
VisitorKind = Literal["answer", "busy", "noanswer", "unavailable"]

_DIGITS = frozenset("0123456789*#ABCD")


class ScriptSyntaxError(ValueError):
    """A script in string form could not be parsed."""


def _check_digit(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and (len(value) != 1 or value not in _DIGITS):
        raise ValueError(f"{attribute.name} must be one DTMF digit, got {value!r}")


def _non_negative(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _optional_non_negative(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class OwnerScript:
    """How an owner phone behaves when the simulator originates a call to it.

    Attributes:
        kind: ``answer`` (answers, then presses ``digit`` if one is set),
            ``decline`` (answers and presses ``digit``, default ``2``),
            ``noanswer`` (never answers, no ringing), ``ring`` (rings, never
            answers), ``busy`` or ``nonexistent`` (no such extension).
        digit: the DTMF digit pressed ``digit_delay`` seconds after answering.
        digit_delay: seconds between answer and the digit.
        answer_delay: seconds of ringing before the phone answers.
        hangup_after: seconds after answering at which the owner hangs up;
            ``None`` keeps the phone up until the call ends.
    """

    kind: OwnerKind = attrs.field(validator=attrs.validators.in_(get_args(OwnerKind)))
    digit: str | None = attrs.field(default=None, validator=_check_digit)
    digit_delay: float = attrs.field(default=1.7, validator=_non_negative)
    answer_delay: float = attrs.field(default=0.0, validator=_non_negative)
    hangup_after: float | None = attrs.field(
        default=None, validator=_optional_non_negative
    )

    @property
    def answers(self) -> bool:
        """Whether this phone goes off-hook."""
        return self.kind in ("answer", "decline")

    @property
    def pressed_digit(self) -> str | None:
        """The digit this phone sends after answering, if any."""
        if self.digit is not None:
            return self.digit
        return "2" if self.kind == "decline" else None

    @classmethod
    def parse(cls, text: str) -> OwnerScript:
        """Build a script from its string form, e.g. ``"answer digit=1 digit_delay=1.5"``.

        Args:
            text: the kind followed by optional ``key=value`` words.

        Returns:
            The script.

        Raises:
            ScriptSyntaxError: unknown kind, key or a bad value.
        """
        kind, options = _split_script(text, get_args(OwnerKind))
        try:
            script = cls(
                kind=kind,  # type: ignore[arg-type]
                digit=options.pop("digit", None),
                digit_delay=float(options.pop("digit_delay", "1.7")),
                answer_delay=float(options.pop("answer_delay", "0")),
                hangup_after=_optional_float(options.pop("hangup_after", None)),
            )
            _no_leftovers(options)
        except ValueError as e:
            raise ScriptSyntaxError(f"{text!r}: {e}") from e
        return script


@attrs.frozen
class VisitorScript:
    """How a visitor's phone behaves when the owner's call dials it.

    Attributes:
        kind: ``answer`` (talks ``talk_seconds`` then hangs up), ``busy``,
            ``noanswer`` (rings until the Dial timeout) or ``unavailable``
            (the channel cannot be reached: DIALSTATUS CHANUNAVAIL).
        answer_delay: seconds of ringing before answering.
        talk_seconds: seconds between answer and the visitor hanging up.
    """

    kind: VisitorKind = attrs.field(
        default="answer", validator=attrs.validators.in_(get_args(VisitorKind))
    )
    answer_delay: float = attrs.field(default=0.0, validator=_non_negative)
    talk_seconds: float = attrs.field(default=5.0, validator=_non_negative)

    @classmethod
    def parse(cls, text: str) -> VisitorScript:
        """Build a script from its string form, e.g. ``"answer talk_seconds=5"``.

        Args:
            text: the kind followed by optional ``key=value`` words.

        Returns:
            The script.

        Raises:
            ScriptSyntaxError: unknown kind, key or a bad value.
        """
        kind, options = _split_script(text, get_args(VisitorKind))
        try:
            script = cls(
                kind=kind,  # type: ignore[arg-type]
                answer_delay=float(options.pop("answer_delay", "0")),
                talk_seconds=float(options.pop("talk_seconds", "5")),
            )
            _no_leftovers(options)
        except ValueError as e:
            raise ScriptSyntaxError(f"{text!r}: {e}") from e
        return script


def _split_script(text: str, kinds: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    words = text.split()
    if not words or words[0] not in kinds:
        raise ScriptSyntaxError(f"{text!r}: kind must be one of {', '.join(kinds)}")
    options: dict[str, str] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ScriptSyntaxError(f"{text!r}: expected key=value, got {word!r}")
        options[key] = value
    # Unknown keys are reported by the caller after it popped the known ones.
    return words[0], options


def _no_leftovers(options: dict[str, str]) -> None:
    if options:
        raise ValueError(f"unknown key(s): {', '.join(sorted(options))}")


def _optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _classes(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _users(value: Iterable[AmiUser]) -> tuple[AmiUser, ...]:
    return tuple(value)


@attrs.frozen
class AmiUser:
    """One AMI account of the simulated ``manager.conf``.

    Attributes:
        username: the ``Username`` of the Login action.
        secret: the plain secret (also used for MD5 challenge logins).
        read: event classes this user may receive (``all`` means every class).
        write: action classes this user may run (``all`` means every class).
        eventfilters: the user's ``eventfilter`` lines, given as ``(key, value)``
            pairs such as ``("eventfilter(action(include),name(Hangup))", "")``
            (or parsed filters); none means every event of the read classes.
            An invalid line raises :class:`~callnowd.ami.sim_filters.EventFilterError`
            naming its key.
    """

    username: str
    secret: str = attrs.field(repr=False)
    read: frozenset[str] = attrs.field(converter=_classes)
    write: frozenset[str] = attrs.field(converter=_classes)
    eventfilters: EventFilters = attrs.field(factory=EventFilters, converter=to_filters)


def _frozen_mapping(value: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(value))


# The dialplan of the recorded transcripts (OBSERVED.md).
DEFAULT_OWNERS: Mapping[str, OwnerScript] = MappingProxyType(
    {
        "Local/001002@phones": OwnerScript(kind="answer", digit="1", digit_delay=1.7),
        "Local/001003@phones": OwnerScript(kind="decline", digit="2", digit_delay=1.7),
        "Local/001004@phones": OwnerScript(kind="noanswer"),
        "Local/001005@phones": OwnerScript(kind="busy"),
        "Local/001006@phones": OwnerScript(kind="ring"),
        "Local/009999@phones": OwnerScript(kind="nonexistent"),
    }
)
DEFAULT_CONTEXTS: Mapping[str, str] = MappingProxyType(
    {"callnow-confirm": "agi://127.0.0.1:4573/confirm,${CALLNOW_REQUEST}"}
)


@attrs.frozen
class SimulatorSettings:
    """Everything that configures one simulated Asterisk.

    Attributes:
        users: the AMI accounts.
        owners: owner phone behaviour by the exact ``Channel`` of the Originate.
        default_owner: behaviour of any other originated dial string.
        visitors: visitor behaviour by dialled number: an exact number (with or
            without ``+``) or a prefix ending in ``*``; the longest prefix wins.
        default_visitor: behaviour of any other dialled number.
        contexts: dialplan context -> ``AGI()`` data template run by an answered
            originated leg; ``${VAR}`` expands from the channel's variables.
        agi_connect_timeout: seconds to reach the FastAGI server (Asterisk: 2).
        hangup_notice_delay: seconds between a hang-up and the ``HANGUP`` line.
        playback_seconds: simulated length of every STREAM FILE.
    """

    users: tuple[AmiUser, ...] = attrs.field(converter=_users)
    owners: Mapping[str, OwnerScript] = attrs.field(
        default=DEFAULT_OWNERS, converter=_frozen_mapping
    )
    default_owner: OwnerScript = OwnerScript(kind="nonexistent")
    visitors: Mapping[str, VisitorScript] = attrs.field(
        factory=dict, converter=_frozen_mapping
    )
    default_visitor: VisitorScript = VisitorScript(kind="answer", talk_seconds=5.0)
    contexts: Mapping[str, str] = attrs.field(
        default=DEFAULT_CONTEXTS, converter=_frozen_mapping
    )
    agi_connect_timeout: float = 2.0
    hangup_notice_delay: float = 0.04
    playback_seconds: float = 1.0

    def user(self, username: str) -> AmiUser | None:
        """The AMI account called ``username`` (case-sensitive, like Asterisk)."""
        for user in self.users:
            if user.username == username:
                return user
        return None

    def owner_for(self, dial_string: str) -> OwnerScript:
        """The behaviour of the owner phone reached by ``dial_string``."""
        return self.owners.get(dial_string, self.default_owner)

    def visitor_for(self, number: str) -> VisitorScript:
        """The behaviour of the visitor phone at ``number``.

        Exact keys win over prefixes (``"+4420*"``); numbers match with or
        without a leading ``+``.
        """
        bare = number.lstrip("+")
        for candidate in (number, bare, "+" + bare):
            if candidate in self.visitors:
                return self.visitors[candidate]
        best: tuple[int, VisitorScript] | None = None
        for key, script in self.visitors.items():
            if not key.endswith("*"):
                continue
            prefix = key[:-1]
            if (number.startswith(prefix) or bare.startswith(prefix.lstrip("+"))) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), script)
        return best[1] if best is not None else self.default_visitor
