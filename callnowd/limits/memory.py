"""The in-process :class:`RateLimitStore`: limit state in dicts, driven by ``now``.

It is the embedded default without Redis, the fallback while Redis is down, and
the reference the Lua script in :mod:`callnowd.limits.redis` mirrors line by line
(the shared contract tests hold both to the same answers). Each call runs to
completion without yielding, so it is atomic under the reactor.

Every evaluation costs the same whatever the amount of state held: a distinct
set keeps its members in last-seen order (an ``OrderedDict``: a refreshed member
moves to the end), so expired members are dropped from the front, the oldest
live one is the first and the count is the length -- the sorted-set steps of the
Lua script (``ZREMRANGEBYSCORE``, ``ZCARD``, ``ZRANGE 0 0``). Expired state is
swept after :data:`SWEEP_EVERY` evaluations, or after as many evaluations as
entries were left by the previous sweep when that is more (so a sweep's cost is
spread over at least as many evaluations as entries it visits), and memory
follows the active keys.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from operator import itemgetter

import attrs

from callnowd.limits.ratelimit import (
    ALLOWED,
    BlockInfo,
    BucketCheck,
    Check,
    Escalation,
    LimitKey,
    Outcome,
    Plan,
    Reason,
    Verdict,
    block_verdict,
    gcra,
    gcra_take,
    to_us,
    us_to_s,
)

SWEEP_EVERY = 1024
# A check's state: its limit and key digest (what state_name joins into a string).
_Name = tuple[Reason, str]


@attrs.define
class _Block:
    reason: Reason
    since_us: int
    until_us: int  # -1: permanent
    strikes: int


@attrs.define
class _Distinct:
    # member -> last seen (us), oldest first. Kept in that order by moving a
    # refreshed member to the end; a clock that went back re-sorts (rare).
    members: OrderedDict[str, int]
    expires_us: int
    newest_us: int  # the last member's time


class MemoryRateLimitStore:
    """Limit state held in this process (see the module docstring)."""

    def __init__(self) -> None:
        self._tats: dict[_Name, int] = {}
        self._sets: dict[_Name, _Distinct] = {}
        self._denials: dict[str, int] = {}
        self._blocks: dict[LimitKey, _Block] = {}
        self._strikes: dict[LimitKey, tuple[int, int]] = {}  # count, expiry (us)
        self._since_sweep = 0
        self._sweep_after = SWEEP_EVERY

    def __len__(self) -> int:
        """How many entries are held (for tests of the sweep)."""
        return (
            len(self._tats)
            + len(self._sets)
            + len(self._denials)
            + len(self._blocks)
            + len(self._strikes)
        )

    async def evaluate(self, plan: Plan, now: float) -> Outcome:
        """See :meth:`RateLimitStore.evaluate`."""
        return self.evaluate_now(plan, now)

    def evaluate_now(self, plan: Plan, now: float) -> Outcome:
        """:meth:`evaluate`, synchronously (the in-process store never waits)."""
        now_us = to_us(now)
        self._maybe_sweep(now_us)
        if self._blocks:  # none at all is the usual case: nothing to look up
            blocked = self._blocked(plan.identities(), now_us)
            if blocked is not None:
                return Outcome(blocked)
        denied: list[tuple[int, Check]] = []
        commits: list[tuple[Check, _Name, int]] = []
        for check in plan.checks:
            name = (check.reason, check.key.digest)  # as state_name(check)
            retry_us, commit = self._try(check, name, now_us)
            if retry_us > 0:
                denied.append((retry_us, check))
            else:
                commits.append((check, name, commit))
        if not denied:
            for check, name, value in commits:
                self._commit(check, name, value, now_us)
            return Outcome(ALLOWED)
        retry_us, worst = max(denied, key=lambda d: d[0])  # first of equals wins
        verdict = Verdict(False, worst.reason, us_to_s(retry_us), worst.key.name)
        new_blocks: list[BlockInfo] = []
        if plan.escalation is not None:
            for key, reason in _denying_keys(denied):
                block = self._escalate(plan.escalation, key, reason, now_us)
                if block is not None:
                    new_blocks.append(block)
        return Outcome(verdict, tuple(new_blocks))

    async def refund(self, plan: Plan, now: float) -> None:
        """See :meth:`RateLimitStore.refund`."""
        now_us = to_us(now)
        for check in plan.checks:
            if not isinstance(check, BucketCheck):
                continue
            name = (check.reason, check.key.digest)  # as state_name(check)
            tat_us = self._tats.get(name)
            if tat_us is None:
                continue
            tat_us -= check.rate.emission_us
            if tat_us > now_us:
                self._tats[name] = tat_us
            else:
                del self._tats[name]  # a full bucket, as for a key never seen

    def blocked(self, plan: Plan, now: float) -> Verdict | None:
        """The refusal for ``plan`` if one of its keys is blocked here, else None.

        Counts nothing: for a store that evaluates elsewhere and honours the
        blocks kept here (:class:`callnowd.limits.fallback.FallbackRateLimitStore`
        after an outage).
        """
        if not self._blocks:
            return None
        return self._blocked(plan.identities(), to_us(now))

    def _blocked(self, keys: list[LimitKey], now_us: int) -> Verdict | None:
        found: list[tuple[LimitKey, int]] = []
        for key in keys:
            block = self._blocks.get(key)
            if block is not None and (block.until_us < 0 or block.until_us > now_us):
                found.append((key, block.until_us))
        if not found:
            return None
        # A permanent block wins; otherwise the one lasting longest.
        key, until_us = max(found, key=lambda f: (f[1] < 0, f[1]))
        return block_verdict(key, until_us, now_us)

    def _try(self, check: Check, name: _Name, now_us: int) -> tuple[int, int]:
        """(retry_after_us, value to commit); retry_after_us 0 means allowed."""
        if isinstance(check, BucketCheck):
            rate = check.rate  # seven per request: no result object each
            return gcra_take(
                self._tats.get(name), now_us, rate.emission_us, rate.tolerance_us
            )
        entry = self._sets.get(name)
        if entry is None:
            return 0, now_us
        window_us = check.window_us
        held = _drop_expired(entry.members, now_us - window_us)
        if check.member in held or len(held) < check.limit:
            return 0, now_us
        # The oldest live member is the first: its place frees up first.
        return next(iter(held.values())) + window_us - now_us, 0

    def _commit(self, check: Check, name: _Name, value: int, now_us: int) -> None:
        if isinstance(check, BucketCheck):
            self._tats[name] = value
            return
        entry = self._sets.get(name)
        if entry is None:
            entry = self._sets[name] = _Distinct(OrderedDict(), 0, now_us)
        members = entry.members
        members[check.member] = now_us
        if now_us >= entry.newest_us:
            members.move_to_end(check.member)
            entry.newest_us = now_us
        else:
            # The clock went back: restore the oldest-first order.
            entry.members = OrderedDict(sorted(members.items(), key=itemgetter(1)))
            entry.newest_us = next(reversed(entry.members.values()))
        entry.expires_us = now_us + check.window_us

    def _escalate(
        self, policy: Escalation, key: LimitKey, reason: Reason, now_us: int
    ) -> BlockInfo | None:
        if key.kind not in policy.kinds:
            return None
        result = gcra(self._denials.get(key.name), now_us, policy.rate)
        if result.allowed:
            self._denials[key.name] = result.tat_us
            return None
        self._denials.pop(key.name, None)
        count, expires_us = self._strikes.get(key, (0, 0))
        count = count + 1 if expires_us > now_us else 1
        self._strikes[key] = (count, now_us + to_us(policy.memory))
        until_us = -1 if count >= 2 else now_us + to_us(policy.block_seconds)
        block = _Block(reason, now_us, until_us, count)
        self._blocks[key] = block
        return _info(key, block)

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """See :meth:`RateLimitStore.list_blocks`."""
        now_us = to_us(now)
        return sorted(
            (
                _info(key, block)
                for key, block in self._blocks.items()
                if block.until_us < 0 or block.until_us > now_us
            ),
            key=lambda b: (b.since, b.key),
        )

    async def lift(self, key: LimitKey) -> bool:
        """See :meth:`RateLimitStore.lift`."""
        self._strikes.pop(key, None)
        self._denials.pop(key.name, None)
        return self._blocks.pop(key, None) is not None

    async def adopt_blocks(self, blocks: Sequence[BlockInfo], now: float) -> int:
        """See :meth:`RateLimitStore.adopt_blocks`."""
        now_us = to_us(now)
        added = 0
        for info in blocks:
            until_us = -1 if info.until is None else to_us(info.until)
            if 0 <= until_us <= now_us:
                continue
            key = LimitKey.parse(info.key)
            held = self._blocks.get(key)
            if held is not None and (held.until_us < 0 or held.until_us > now_us):
                continue
            self._blocks[key] = _Block(
                info.reason, to_us(info.since), until_us, info.strikes
            )
            added += 1
        return added

    async def ping(self) -> None:
        """Always succeeds: this process is up."""

    def _maybe_sweep(self, now_us: int) -> None:
        self._since_sweep += 1
        if self._since_sweep < self._sweep_after:
            return
        self._since_sweep = 0
        self.sweep(now_us)
        # A sweep visits every entry: wait at least as many evaluations again.
        self._sweep_after = max(SWEEP_EVERY, len(self))

    def sweep(self, now_us: int) -> None:
        """Forget every entry that can no longer change an answer at ``now_us``."""
        self._tats = {k: t for k, t in self._tats.items() if t > now_us}
        self._denials = {k: t for k, t in self._denials.items() if t > now_us}
        self._sets = {k: s for k, s in self._sets.items() if s.expires_us > now_us}
        self._blocks = {
            k: b
            for k, b in self._blocks.items()
            if b.until_us < 0 or b.until_us > now_us
        }
        self._strikes = {k: s for k, s in self._strikes.items() if s[1] > now_us}


def _drop_expired(
    members: OrderedDict[str, int], cutoff_us: int
) -> OrderedDict[str, int]:
    """Drop the members last seen at or before ``cutoff_us`` (oldest first)."""
    while members:
        oldest = next(iter(members.values()))
        if oldest > cutoff_us:
            break
        members.popitem(last=False)
    return members


def _denying_keys(denied: list[tuple[int, Check]]) -> list[tuple[LimitKey, Reason]]:
    """Each denying key once, with the first limit that denied it."""
    seen: dict[LimitKey, Reason] = {}
    for _, check in denied:
        seen.setdefault(check.key, check.reason)
    return list(seen.items())


def _info(key: LimitKey, block: _Block) -> BlockInfo:
    return BlockInfo(
        key=key.name,
        kind=key.kind,
        reason=block.reason,
        since=us_to_s(block.since_us),
        until=None if block.until_us < 0 else us_to_s(block.until_us),
        strikes=block.strikes,
    )
