"""Glob patterns of per-caller rules: strict compilation and Unicode-aware folding.

A glob has ``*`` (any run of characters, also none), ``?`` (one character) and
classes ``[abc]``, ``[a-c]``, ``[!abc]``; every other character stands for itself.
Unlike :mod:`fnmatch`, a malformed glob (an unclosed or empty class, a reversed
range) is an error, so an owner's typo is refused instead of silently matching
nothing. Names compare caselessly: both sides are folded with :func:`fold_name`
(NFC, ``str.casefold``, NFC again), so ``"ZOË"`` matches ``"zoë"`` however either
was composed, and ``"STRASSE"`` matches ``"Straße"``.
"""

from __future__ import annotations

import re
import unicodedata

GLOB_MAX = 200


class GlobError(ValueError):
    """A glob pattern is malformed; the message says where."""


def fold_name(text: str) -> str:
    """The caseless, composed form names are compared in."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate ``pattern`` into a regular expression matching whole strings.

    Args:
        pattern: the glob, as the owner wrote it (folding is the caller's job).

    Returns:
        A compiled expression; use ``fullmatch``.

    Raises:
        GlobError: the glob is empty, too long, or has a malformed class.
    """
    if not pattern:
        raise GlobError("a glob must not be empty")
    if len(pattern) > GLOB_MAX:
        raise GlobError(f"a glob can have at most {GLOB_MAX} characters")
    if any(not c.isprintable() for c in pattern):
        raise GlobError(f"glob {pattern!r} has control characters")
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            # Collapse runs of stars: they mean the same and would only slow matching.
            if not parts or parts[-1] != ".*":
                parts.append(".*")
            i += 1
        elif c == "?":
            parts.append(".")
            i += 1
        elif c == "[":
            text, i = _class(pattern, i)
            parts.append(text)
        else:
            parts.append(re.escape(c))
            i += 1
    return re.compile("".join(parts), re.DOTALL)


def _class(pattern: str, start: int) -> tuple[str, int]:
    """Translate the class opening at ``pattern[start]``; return it and the next index."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "!"
    if negate:
        i += 1
    items: list[str] = []
    # A "]" right after the opening (or "!") is a member, as in fnmatch.
    first = True
    while i < len(pattern) and (pattern[i] != "]" or first):
        first = False
        low = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            high = pattern[i + 2]
            if high < low:
                raise GlobError(f"glob {pattern!r}: range {low}-{high} is reversed")
            items.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            items.append(re.escape(low))
            i += 1
    if i >= len(pattern):
        raise GlobError(f"glob {pattern!r}: '[' at position {start + 1} is not closed")
    if not items:
        raise GlobError(f"glob {pattern!r}: empty class at position {start + 1}")
    return f"[{'^' if negate else ''}{''.join(items)}]", i + 1


__all__ = ["GLOB_MAX", "GlobError", "compile_glob", "fold_name"]
