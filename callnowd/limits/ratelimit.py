"""Rate-limit domain: limit specs, opaque keys, verdicts and the GCRA math (pure).

Nothing here does I/O or reads a clock: time enters as ``now`` (seconds, float) and
is quantised to whole microseconds (:func:`to_us`) so that the in-process store and
the Redis Lua script, which both work on integer microseconds held in IEEE doubles,
compute exactly the same answers.

A limit "N per P seconds" is a GCRA bucket (Generic Cell Rate Algorithm, the
virtual-scheduling form of a token bucket): a burst of N permits at one instant,
then one more every P/N seconds. Over any stretch of time of length E a key gets
at most ``N + E * N / P`` permits -- the bucket invariant tested with Hypothesis.
GCRA stores one number per key (the theoretical arrival time, TAT), so it is
cheap in Redis and needs no sweeping.

A "distinct" limit (at most N different members per key within a sliding window,
e.g. destinations per client IP per hour) is exact: each member's last-seen time
is kept and members older than the window are forgotten.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
from collections.abc import Sequence
from typing import Protocol

import attrs

US_PER_S = 1_000_000
_DIGEST_RE = re.compile(r"[0-9a-z]{1,64}")


def to_us(now: float) -> int:
    """Quantise a time in seconds to whole microseconds, as the Lua script does.

    Args:
        now: seconds (any epoch).

    Returns:
        ``floor(now * 1e6 + 0.5)`` -- the same IEEE operations run in Lua.
    """
    return math.floor(now * US_PER_S + 0.5)


class KeyKind(enum.StrEnum):
    """What a limit key identifies; blocks and escalation are per kind."""

    IP = "ip"
    LINK = "link"
    DESTINATION = "destination"
    RANGE = "range"
    GLOBAL = "global"


class Reason(enum.StrEnum):
    """Why a request was refused; also the name of each limit (metrics label)."""

    GLOBAL = "global"
    IP = "ip"
    IP_DESTINATIONS = "ip_destinations"
    LINK = "link"
    DESTINATION_SHORT = "destination_short"
    DESTINATION_LONG = "destination_long"
    RANGE = "range"
    NOT_FOUND = "not_found"
    BLOCKED = "blocked"
    UNAVAILABLE = "unavailable"


@attrs.frozen
class Rate:
    """A GCRA bucket: ``limit`` permits at once, refilled at ``limit / period``/s.

    Attributes:
        limit: the burst capacity in permits (>= 1).
        period: seconds for a fully drained bucket to refill (> 0).
        emission_us: microseconds between two permits at the sustained rate,
            rounded up. Rounding up keeps every computation in whole
            microseconds (exact in both Python and Lua) and can only make the
            limit stricter, by < 1 us a permit.
        tolerance_us: how far ahead of ``now`` the TAT may run: the burst, in
            microseconds.
    """

    limit: int
    period: float
    # Derived from limit and period when the rate is made (read per check).
    emission_us: int = attrs.field(init=False, eq=False, repr=False)
    tolerance_us: int = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, not {self.limit}")
        if not self.period > 0:
            raise ValueError(f"period must be greater than 0, not {self.period}")
        emission_us = math.ceil(self.period * US_PER_S / self.limit)
        object.__setattr__(self, "emission_us", emission_us)
        object.__setattr__(self, "tolerance_us", emission_us * self.limit)


@attrs.frozen
class GcraResult:
    """The outcome of one GCRA step.

    Attributes:
        allowed: whether the permits were granted.
        tat_us: the TAT to store (unchanged when denied).
        retry_after_us: microseconds until the same request would be granted
            (0 when allowed).
    """

    allowed: bool
    tat_us: int
    retry_after_us: int


def gcra(tat_us: int | None, now_us: int, rate: Rate, cost: int = 1) -> GcraResult:
    """One GCRA step: may ``cost`` permits be taken at ``now_us``?

    Args:
        tat_us: the stored theoretical arrival time, or None for a new key.
        now_us: the current time in microseconds.
        rate: the bucket.
        cost: permits wanted (1 <= cost <= rate.limit).

    Returns:
        The decision and the TAT to store.

    Raises:
        ValueError: ``cost`` is out of range (it could never be granted).
    """
    if not 1 <= cost <= rate.limit:
        raise ValueError(f"cost must be between 1 and {rate.limit}, not {cost}")
    retry_us, new_tat = gcra_take(
        tat_us, now_us, cost * rate.emission_us, rate.tolerance_us
    )
    if retry_us:
        # Only reachable when the stored TAT is ahead of now: it stays.
        return GcraResult(False, now_us if tat_us is None else tat_us, retry_us)
    return GcraResult(True, new_tat, 0)


def gcra_take(
    tat_us: int | None, now_us: int, emission_us: int, tolerance_us: int
) -> tuple[int, int]:
    """:func:`gcra` on plain integers, for hot loops: ``(retry_after_us, new TAT)``.

    ``retry_after_us`` 0 means allowed (store the new TAT); otherwise the TAT is 0
    and the stored one stays.
    """
    base = now_us if tat_us is None or tat_us < now_us else tat_us
    new_tat = base + emission_us
    allow_at = new_tat - tolerance_us
    if allow_at > now_us:
        return allow_at - now_us, 0
    return 0, new_tat


@attrs.frozen(cache_hash=True)  # a key is looked up in several dicts per request
class LimitKey:
    """An opaque key: a kind and an HMAC digest, never the raw value.

    Attributes:
        kind: what the key identifies.
        digest: hex HMAC-SHA256 (truncated to 128 bits) of the value.
    """

    kind: KeyKind
    digest: str

    @property
    def name(self) -> str:
        """``kind:digest`` -- the form shown by ``list_blocks`` and taken by ``lift``."""
        return f"{self.kind.value}:{self.digest}"

    @classmethod
    def parse(cls, name: str) -> LimitKey:
        """Read back a :attr:`name`.

        Raises:
            ValueError: not ``kind:hexdigest`` with a known kind.
        """
        kind, sep, digest = name.partition(":")
        if not sep or not _DIGEST_RE.fullmatch(digest):
            raise ValueError(f"not a limit key (kind:digest): {name!r}")
        try:
            return cls(KeyKind(kind), digest)
        except ValueError:
            raise ValueError(f"unknown key kind in {name!r}") from None


GLOBAL_KEY = LimitKey(KeyKind.GLOBAL, "all")


def key_digest(secret: bytes, kind: KeyKind, value: str) -> str:
    """HMAC-SHA256 of ``value`` under the daemon's secret, separated by kind.

    Args:
        secret: the daemon's secret key.
        kind: mixed in so the same text under two kinds gives unrelated digests.
        value: the raw value (an E.164 number, an IP prefix, a CallNow id).

    Returns:
        32 lowercase hex characters (128 bits).
    """
    mac = hmac.new(secret, f"{kind.value}\x00{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def limit_key(secret: bytes, kind: KeyKind, value: str) -> LimitKey:
    """The :class:`LimitKey` of a raw value (see :func:`key_digest`)."""
    return LimitKey(kind, key_digest(secret, kind, value))


@attrs.frozen
class BucketCheck:
    """Take one permit from a GCRA bucket.

    Attributes:
        reason: the limit's name (reported when it denies).
        key: whose bucket.
        rate: the bucket's shape.
    """

    reason: Reason
    key: LimitKey
    rate: Rate


@attrs.frozen
class DistinctCheck:
    """Allow at most ``limit`` distinct members per key within ``window`` seconds.

    A member already seen within the window is always allowed (and its last-seen
    time refreshed); a new one is allowed while fewer than ``limit`` are held.

    Attributes:
        reason: the limit's name.
        key: whose set.
        member: the member (itself an HMAC digest, never a raw number).
        limit: how many distinct members.
        window: seconds a member is remembered after it was last seen.
    """

    reason: Reason
    key: LimitKey
    member: str
    limit: int
    window: float

    @property
    def window_us(self) -> int:
        """The window in whole microseconds."""
        return to_us(self.window)


Check = BucketCheck | DistinctCheck


@attrs.frozen
class Escalation:
    """When a key that keeps being denied is blocked.

    A key of a kind in ``kinds`` that is denied more than ``after`` times within
    ``window`` seconds (a GCRA bucket of denials) is blocked for ``block_seconds``;
    if it was already blocked once within ``memory`` seconds, the new block is
    permanent until lifted.

    Attributes:
        kinds: key kinds that escalate.
        after: denials tolerated within the window.
        window: seconds of the denial bucket.
        block_seconds: length of a first block.
        memory: seconds a block is remembered as a strike.
    """

    kinds: frozenset[KeyKind]
    after: int
    window: float
    block_seconds: float
    memory: float

    @property
    def rate(self) -> Rate:
        """The bucket of tolerated denials."""
        return Rate(self.after, self.window)


@attrs.frozen
class Plan:
    """Everything one request consumes, evaluated all-or-nothing.

    Attributes:
        checks: the limits to take from; either all are taken or none is.
        escalation: the escalation policy, or None to never block.
    """

    checks: tuple[Check, ...]
    escalation: Escalation | None = None

    def identities(self) -> list[LimitKey]:
        """The distinct keys of the checks, in first-seen order."""
        return list(dict.fromkeys(c.key for c in self.checks))


@attrs.frozen
class Verdict:
    """The answer to a request.

    Attributes:
        allowed: True when the request may proceed.
        reason: the limit that refused it (None when allowed).
        retry_after: seconds until retrying can succeed; None when allowed or
            when the key is blocked permanently.
        key: the ``kind:digest`` of the key that refused it (None when allowed
            or when the limiter is unavailable).
    """

    allowed: bool
    reason: Reason | None = None
    retry_after: float | None = None
    key: str | None = None


ALLOWED = Verdict(True)


@attrs.frozen
class BlockInfo:
    """A blocked key (no raw value: kind and HMAC digest only).

    Attributes:
        key: ``kind:digest``.
        kind: the key's kind.
        reason: the limit whose denials led to the block.
        since: when the block started (seconds).
        until: when it ends (seconds), or None when permanent.
        strikes: how many blocks this key got within the strike memory.
    """

    key: str
    kind: KeyKind
    reason: Reason
    since: float
    until: float | None
    strikes: int

    @property
    def permanent(self) -> bool:
        """True when only an operator can lift it."""
        return self.until is None


@attrs.frozen
class Outcome:
    """A verdict and the blocks the evaluation created (for logging).

    Attributes:
        verdict: the answer.
        new_blocks: blocks created by this evaluation's denials.
    """

    verdict: Verdict
    new_blocks: tuple[BlockInfo, ...] = ()


def block_verdict(key: LimitKey, until_us: int, now_us: int) -> Verdict:
    """The verdict for a request hitting a blocked key (``until_us`` -1: permanent)."""
    retry = None if until_us < 0 else (until_us - now_us) / US_PER_S
    return Verdict(False, Reason.BLOCKED, retry, key.name)


def us_to_s(value_us: int) -> float:
    """Microseconds to seconds."""
    return value_us / US_PER_S


def state_name(check: Check) -> str:
    """The storage name of a check's state: ``<limit>:<digest>``.

    Two limits on the same key (the 6 h and 24 h destination limits) keep
    separate state; escalation state is per key (:attr:`LimitKey.name`).
    """
    return f"{check.reason.value}:{check.key.digest}"


class StoreUnavailable(Exception):
    """A store could not answer (Redis unreachable, timed out or failing)."""


class RateLimitStore(Protocol):
    """Where limit state lives: in process or in Redis; same semantics for both.

    Every method is atomic with respect to the others (one Lua script in Redis,
    one uninterrupted Python call in process).
    """

    async def evaluate(self, plan: Plan, now: float) -> Outcome:
        """Take one permit from every check of ``plan``, all-or-nothing.

        Blocked keys refuse first. When any check denies, nothing is taken, the
        verdict names the denying check with the longest ``retry_after``, and
        each denying key whose kind escalates records a denial (and may be
        blocked).

        Raises:
            StoreUnavailable: the store cannot answer now.
        """
        ...

    async def refund(self, plan: Plan, now: float) -> None:
        """Give back the permit an allowed :meth:`evaluate` of ``plan`` took.

        For a request that was let through but could not be carried out (its own
        store failed), so a visitor told to send it again is not limited for it.
        Each bucket check gets one request's emission back (never more than a full
        bucket); a distinct check keeps its member (sending the same number again
        adds nothing to it). Denials, strikes and blocks are untouched.

        Raises:
            StoreUnavailable: the store cannot answer now.
        """
        ...

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """The blocks in force at ``now``.

        Raises:
            StoreUnavailable: the store cannot answer now.
        """
        ...

    async def lift(self, key: LimitKey) -> bool:
        """Remove a block and forget the key's strikes and denials.

        Returns:
            True when a block was removed.

        Raises:
            StoreUnavailable: the store cannot answer now.
        """
        ...

    async def adopt_blocks(self, blocks: Sequence[BlockInfo], now: float) -> int:
        """Record ``blocks`` made by another store (during an outage, say).

        A block is recorded as it is (reason, since, until, strikes) unless it
        has ended by ``now`` or its key is blocked here already. The strikes
        behind a block are not copied: a later block of the key here counts its
        strikes from this store's own memory.

        Returns:
            How many blocks were recorded.

        Raises:
            StoreUnavailable: the store cannot answer now.
        """
        ...

    async def ping(self) -> None:
        """Succeed when the store can answer.

        Raises:
            StoreUnavailable: the store cannot answer now.
        """
        ...
