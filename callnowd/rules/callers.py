"""Per-caller rules: what an owner writes, how a rule matches a caller.

A rule matches on the caller's number (exact E.164, a prefix such as ``+4420``, or
a glob such as ``+1212555*``) and/or his name (a caseless, Unicode-aware glob, see
:mod:`callnowd.rules.globs`); it says ``accept``, ``confirm`` or ``reject``. A rule
with both patterns matches only when both do. Rules of an extension are ordered
(``position`` 1, 2, ...) and the first enabled rule that matches decides.

:class:`RuleSpec` validates itself on construction, so a rule that exists is a rule
that can be evaluated: the engine never meets a bad pattern.
"""

from __future__ import annotations

import enum
import re
from functools import cached_property

import attrs

from callnowd.rules.globs import GlobError, compile_glob, fold_name

E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
PREFIX_RE = re.compile(r"\+[0-9]{1,15}")
# A number glob may only use what an E.164 number has, plus glob syntax.
NUMBER_GLOB_RE = re.compile(r"[+0-9*?\[\]!-]{1,40}")


class Action(enum.StrEnum):
    """What happens to a request, from mildest to strictest."""

    ACCEPT = "accept"
    CONFIRM = "confirm"
    REJECT = "reject"

    @property
    def strictness(self) -> int:
        """0 for accept, 1 for confirm, 2 for reject."""
        return _STRICTNESS[self]


_STRICTNESS = {Action.ACCEPT: 0, Action.CONFIRM: 1, Action.REJECT: 2}


class NumberKind(enum.StrEnum):
    """How a rule's number pattern compares with the caller's number."""

    EXACT = "exact"
    PREFIX = "prefix"
    GLOB = "glob"


def _check_number(instance: NumberPattern, _: object, pattern: str) -> None:
    kind = instance.kind
    if kind is NumberKind.EXACT and not E164_RE.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not an E.164 number such as +12125550100")
    if kind is NumberKind.PREFIX and not PREFIX_RE.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not a number prefix such as +4420")
    if kind is NumberKind.GLOB:
        if not NUMBER_GLOB_RE.fullmatch(pattern):
            raise GlobError(
                f"number glob {pattern!r} may only have +, digits, *, ? and [...]"
            )
        compile_glob(pattern)


@attrs.frozen
class NumberPattern:
    """A rule's number pattern.

    Raises:
        ValueError: (on construction) the pattern does not fit its kind; a
            :class:`GlobError` for a malformed glob.
    """

    kind: NumberKind
    pattern: str = attrs.field(validator=_check_number)

    @cached_property
    def _glob(self) -> re.Pattern[str]:
        return compile_glob(self.pattern)

    def matches(self, phone: str) -> bool:
        """Whether the E.164 number ``phone`` fits this pattern."""
        if self.kind is NumberKind.EXACT:
            return phone == self.pattern
        if self.kind is NumberKind.PREFIX:
            return phone.startswith(self.pattern)
        return self._glob.fullmatch(phone) is not None

    def describe(self) -> str:
        """``exact +4420...``, ``prefix +4420`` or ``glob +1212555*``."""
        return f"{self.kind.value} {self.pattern}"


def _check_name_glob(_: object, __: object, value: str | None) -> None:
    if value is not None:
        if not value.strip():
            raise GlobError("a name glob must not be blank")
        compile_glob(fold_name(value))


@attrs.frozen
class RuleSpec:
    """What an owner writes: patterns, action, and whether the rule is on.

    Raises:
        ValueError: (on construction) neither a number nor a name pattern, or a
            malformed name glob (:class:`GlobError`).
    """

    action: Action
    number: NumberPattern | None = None
    name_glob: str | None = attrs.field(default=None, validator=_check_name_glob)
    enabled: bool = True

    def __attrs_post_init__(self) -> None:
        """Refuse a rule that would match every caller by accident."""
        if self.number is None and self.name_glob is None:
            raise ValueError("a rule needs a number pattern, a name pattern, or both")

    @cached_property
    def _name_re(self) -> re.Pattern[str] | None:
        if self.name_glob is None:
            return None
        return compile_glob(fold_name(self.name_glob))

    def matches(self, phone: str, name: str | None) -> bool:
        """Whether a caller with this number and name fits every pattern given.

        A name pattern never matches a caller who gave no name.
        """
        if self.number is not None and not self.number.matches(phone):
            return False
        name_re = self._name_re
        if name_re is not None:
            return name is not None and name_re.fullmatch(fold_name(name)) is not None
        return True

    def describe(self) -> str:
        """A one-line human description, e.g. ``reject number prefix +4420``."""
        parts = [self.action.value]
        if self.number is not None:
            parts.append(f"number {self.number.describe()}")
        if self.name_glob is not None:
            parts.append(f"name {self.name_glob!r}")
        if not self.enabled:
            parts.append("(disabled)")
        return " ".join(parts)


@attrs.frozen
class CallerRule:
    """A stored rule: its id (unique in the store), 1-based position, spec, birth."""

    id: int
    position: int
    spec: RuleSpec
    created_at: float

    @property
    def decided_by(self) -> str:
        """How a request records that this rule decided: ``rule:<id>``."""
        return f"rule:{self.id}"


__all__ = [
    "E164_RE",
    "Action",
    "CallerRule",
    "NumberKind",
    "NumberPattern",
    "RuleSpec",
]
