"""Redis with an in-process fallback (or a fail-closed refusal), and its state.

:class:`FallbackRateLimitStore` sends every evaluation to the primary (Redis)
store while it answers. The first failure (a timeout, a refused or lost
connection, an error reply: the primary raises after at most its own timeout)
switches it to *down*: a warning is logged once for the whole outage, and from
then on requests are answered at once, without waiting for Redis, either by the
in-process store (same semantics, its own state) or -- with ``refuse=True`` -- by
a refusal whose reason is :attr:`Reason.UNAVAILABLE`. While down, a request (or a
``/readyz`` status query) starts a background ``PING`` at most every
``retry_interval`` seconds; the first that succeeds switches back to Redis and
logs it at info level.

Blocks the in-process store made during an outage stay in force after it. When
Redis answers again they are copied to it in the background (unless the key is
blocked there already) and then dropped here: from then on Redis refuses them,
for every daemon, and ``callnowctl blocks lift`` lifts them there. Until the
copy has succeeded, a request whose key holds such a block is refused here
before Redis is asked (no lookup at all while there are none). A failed copy is
logged, and tried again after the next outage.

What the fallback cannot do: blocks and counts kept in Redis are not visible to
the in-process store during the outage; what the in-process store counted, and
the strikes behind its blocks, are not copied to Redis afterwards. Operators who
cannot accept that choose refuse.
"""

from __future__ import annotations

import enum
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from callnowd.background import run_in_background
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import (
    BlockInfo,
    LimitKey,
    Outcome,
    Plan,
    RateLimitStore,
    Reason,
    StoreUnavailable,
    Verdict,
)

_T = TypeVar("_T")


class LimiterState(enum.StrEnum):
    """What answers rate-limit questions now (shown by ``/readyz``)."""

    REDIS_OK = "redis ok"
    FALLBACK = "fallback: in-process"
    REFUSING = "refusing"
    IN_PROCESS = "in-process"  # no Redis configured: the embedded default

    @property
    def ready(self) -> bool:
        """True when limits are evaluated where they are configured to be."""
        return self in (LimiterState.REDIS_OK, LimiterState.IN_PROCESS)


class FallbackRateLimitStore:
    """A primary store guarded by a fallback (see the module docstring).

    Args:
        primary: the Redis store (raises :class:`StoreUnavailable` within its
            own timeout when Redis cannot answer).
        secondary: the in-process store used while the primary is down.
        clock: for the pacing of background pings.
        refuse: refuse requests while the primary is down instead of falling
            back.
        retry_interval: least seconds between two pings while down.
    """

    log = Logger()

    def __init__(
        self,
        primary: RateLimitStore,
        secondary: MemoryRateLimitStore,
        clock: IReactorTime,
        *,
        refuse: bool = False,
        retry_interval: float = 1.0,
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._clock = clock
        self._refuse = refuse
        self._retry_interval = retry_interval
        self._down = False
        self._last_probe = 0.0
        self._probe: Deferred[object] | None = None
        self._sharing: Deferred[object] | None = None
        self.outages = 0

    @property
    def state(self) -> LimiterState:
        """Where answers come from now."""
        if not self._down:
            return LimiterState.REDIS_OK
        return LimiterState.REFUSING if self._refuse else LimiterState.FALLBACK

    def status(self) -> LimiterState:
        """The state, starting a background ping when down and one is due."""
        if self._down:
            self._maybe_probe()
        return self.state

    async def evaluate(self, plan: Plan, now: float) -> Outcome:
        """See :meth:`RateLimitStore.evaluate`; never raises for a Redis outage."""
        if not self._down:
            held = self._secondary.blocked(plan, now)
            if held is not None:  # blocked in process during an outage
                return Outcome(held)
            try:
                return await self._primary.evaluate(plan, now)
            except CancelledError:
                # The visitor went away (the web layer cancels): not an outage.
                raise
            except Exception as e:
                self._went_down(e)
        else:
            self._maybe_probe()
        if self._refuse:
            refused = Verdict(False, Reason.UNAVAILABLE, self._retry_interval)
            return Outcome(refused)
        return await self._secondary.evaluate(plan, now)

    async def refund(self, plan: Plan, now: float) -> None:
        """See :meth:`RateLimitStore.refund`: to the store answering now.

        Raises:
            StoreUnavailable: Redis cannot answer (nothing was given back).
        """
        if self._down:
            await self._secondary.refund(plan, now)
            return
        await self._guarded(self._primary.refund(plan, now))

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """Blocks from Redis and those made in process during outages.

        Raises:
            StoreUnavailable: Redis cannot answer (the list would be partial).
        """
        shared = await self._guarded(self._primary.list_blocks(now))
        local = await self._secondary.list_blocks(now)
        known = {b.key for b in shared}
        return sorted(
            shared + [b for b in local if b.key not in known],
            key=lambda b: (b.since, b.key),
        )

    async def lift(self, key: LimitKey) -> bool:
        """Lift in process and in Redis.

        Raises:
            StoreUnavailable: Redis cannot answer (the in-process block, if any,
                was lifted).
        """
        local = await self._secondary.lift(key)
        shared = await self._guarded(self._primary.lift(key))
        return local or shared

    async def adopt_blocks(self, blocks: Sequence[BlockInfo], now: float) -> int:
        """See :meth:`RateLimitStore.adopt_blocks`: into Redis, or in process while it is down."""
        if self._down:
            return await self._secondary.adopt_blocks(blocks, now)
        return await self._guarded(self._primary.adopt_blocks(blocks, now))

    async def ping(self) -> None:
        """Ping the primary (and switch back to it when it answers)."""
        await self._guarded(self._primary.ping())
        self._came_back()

    async def probe(self) -> bool:
        """Ping the primary now; True when it answered (and is used again)."""
        self._last_probe = self._clock.seconds()
        try:
            await self.ping()
        except StoreUnavailable:
            return False
        return True

    async def close(self) -> None:
        """Wait for a background ping or block copy (bounded by the primary's timeout)."""
        for pending in (self._probe, self._sharing):
            if pending is not None and not pending.called:
                await pending

    async def _guarded(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            return await coro
        except CancelledError:
            raise
        except Exception as e:
            self._went_down(e)
            raise StoreUnavailable(str(e)) from e

    def _went_down(self, error: Exception) -> None:
        if self._down:
            return
        self._down = True
        self.outages += 1
        self._last_probe = self._clock.seconds()
        self.log.warn(
            "Redis is unreachable ({error}); rate limits are {action} until it is back",
            error=str(error),
            action="refusing every request" if self._refuse else "kept in process",
        )

    def _came_back(self) -> None:
        if not self._down:
            return
        self._down = False
        self.log.info("Redis is reachable again; rate limits are kept in Redis")
        self._sharing = run_in_background(
            self.log, "copying outage blocks to Redis", self._share_blocks()
        )

    async def _share_blocks(self) -> None:
        """Copy the blocks made in process to Redis, then drop them here."""
        now = self._clock.seconds()
        blocks = await self._secondary.list_blocks(now)
        if not blocks:
            return
        try:
            added = await self._primary.adopt_blocks(blocks, now)
        except CancelledError:
            raise
        except Exception as e:  # evaluations find out themselves if Redis is gone
            self.log.warn(
                "Could not copy {count} block(s) made during the Redis outage to"
                " Redis ({error}); this daemon alone enforces them",
                count=len(blocks),
                error=str(e),
            )
            return
        # Redis holds them now (or a block of its own for the same key): lifting
        # there must be enough, so none is left to refuse here.
        for block in blocks:
            await self._secondary.lift(LimitKey.parse(block.key))
        self.log.info(
            "Copied {added} of {count} block(s) made during the Redis outage to Redis",
            added=added,
            count=len(blocks),
        )

    def _maybe_probe(self) -> None:
        if self._probe is not None:
            return
        if self._clock.seconds() - self._last_probe < self._retry_interval:
            return

        def done(result: object) -> object:
            self._probe = None
            return result

        self._probe = run_in_background(self.log, "Redis ping", self.probe())
        self._probe.addBoth(done)
