"""The rate-limit policy the HTTP layer calls: which keys a request consumes.

A callback request (:meth:`Limiter.check`) consumes, all-or-nothing in one
atomic store call: the global ceiling, the client IP's bucket, a place among the
IP's distinct destinations, the CallNow link's bucket, the destination number's
6 h and 24 h buckets and the destination range's bucket. An unknown link
(:meth:`Limiter.check_404`) consumes from the IP's 404 bucket.

Denied requests consume nothing. An attacker denied by any limit (their own IP's,
say) therefore cannot burn a victim's quota (the victim's number, the owner's
link) by sending requests that are refused anyway. What a denial does cost is a
strike against the key that denied: a key of an escalating kind that keeps
hitting its limit (more than ``escalate_after`` denials within
``escalate_window``) is blocked for ``block_seconds``, and a second block within
``strike_memory`` is permanent until :meth:`Limiter.lift`. A blocked key refuses
every request carrying it, before any bucket is touched.

Keys never hold raw values: numbers, ranges, IP networks and link ids are
HMAC-SHA256'd with the daemon's secret (:func:`~callnowd.limits.ratelimit.limit_key`).

A request refused because a key is blocked is remembered
(:mod:`callnowd.limits.blocked`) and answered the same again without a plan or a
store call while the answer cannot change; the limiter forgets those answers when
it lifts or creates a block. Keys of recent values are kept (a bounded map from
the raw value, in memory only), so a flood does not recompute their HMACs.
"""

from __future__ import annotations

import ipaddress
from collections import Counter as Tally
from typing import Any

from prometheus_client import Counter
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.logger import Logger
from typing_extensions import override

from callnowd.limits.blocked import BlockedAnswers
from callnowd.limits.fallback import FallbackRateLimitStore, LimiterState
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import (
    GLOBAL_KEY,
    BlockInfo,
    BucketCheck,
    Check,
    DistinctCheck,
    Escalation,
    KeyKind,
    LimitKey,
    Plan,
    Rate,
    RateLimitStore,
    Reason,
    Verdict,
    limit_key,
)
from callnowd.limits.settings import LimitSettings, parse_redis_url

#: Raw values whose keys are kept; the map is emptied when it holds more.
KEY_CACHE_SIZE = 4096


class Limiter:
    """Rate limits for callback requests and 404s (see the module docstring).

    Args:
        store: where limit state lives.
        settings: the limits.
        secret: the daemon's secret key (for the HMACs).
        registry: a prometheus ``CollectorRegistry`` to register counters in,
            or None for the plain :attr:`denials` and :attr:`blocks` tallies only.
        blocked_ttl: seconds a remembered "blocked" answer is trusted; None
            (the default) when this limiter sees every block created or lifted
            (its store is in process); 0 remembers nothing.
    """

    log = Logger()

    def __init__(
        self,
        store: RateLimitStore,
        settings: LimitSettings,
        secret: bytes,
        *,
        registry: Any = None,
        blocked_ttl: float | None = None,
    ) -> None:
        self.store = store
        self._s = settings
        self._secret = secret
        self._blocked = BlockedAnswers(blocked_ttl)
        self._keys: dict[tuple[KeyKind, str], LimitKey] = {}
        self.denials: Tally[str] = Tally()  # reason -> refused requests
        self.blocks: Tally[str] = Tally()  # key kind -> blocks created
        self.allowed = 0
        self.refunded = 0  # allowed requests given back (their store failed)
        self._escalation = Escalation(
            kinds=frozenset(KeyKind(k) for k in settings.escalate_kinds),
            after=settings.escalate_after,
            window=settings.escalate_window,
            block_seconds=settings.block_seconds,
            memory=settings.strike_memory,
        )
        s = settings
        # Constant per daemon: built once, not per request.
        self._global_check = BucketCheck(
            Reason.GLOBAL, GLOBAL_KEY, Rate(s.global_limit, s.global_period)
        )
        self._ip_rate = Rate(s.ip_limit, s.ip_period)
        self._link_rate = Rate(s.link_limit, s.link_period)
        self._short_rate = Rate(s.destination_short_limit, s.destination_short_period)
        self._long_rate = Rate(s.destination_long_limit, s.destination_long_period)
        self._range_rate = Rate(s.range_limit, s.range_period)
        self._not_found_rate = Rate(s.not_found_limit, s.not_found_period)
        self._prom_denials: Any = None
        self._prom_denied: dict[str, Any] = {}  # reason -> labelled counter
        self._prom_blocks: Any = None
        if registry is not None:
            self._prom_denials = Counter(
                "callnow_rate_limited",
                "Requests refused by the rate limiter, by reason",
                ["reason"],
                registry=registry,
            )
            self._prom_blocks = Counter(
                "callnow_rate_limit_blocks",
                "Keys blocked for repeatedly hitting a limit, by key kind",
                ["kind"],
                registry=registry,
            )

    def key(self, kind: KeyKind, value: str) -> LimitKey:
        """The key of a raw value, e.g. to lift a block by number or IP.

        IP values are reduced to their network first (IPv6 /``ipv6_prefix``);
        ranges are taken as given (an E.164 number minus its last digits).
        """
        if kind is KeyKind.GLOBAL:
            return GLOBAL_KEY
        cached = self._keys.get((kind, value))
        if cached is not None:
            return cached
        raw = self._ip_network(value) if kind is KeyKind.IP else value
        key = limit_key(self._secret, kind, raw)
        if len(self._keys) >= KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[(kind, value)] = key
        return key

    def _ip_network(self, client_ip: str) -> str:
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return client_ip  # not an address (a UNIX socket peer): still a key
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            net = ipaddress.IPv6Network((address, self._s.ipv6_prefix), strict=False)
            return str(net)
        return str(address)

    def range_of(self, destination_e164: str) -> str:
        """The destination range: the E.164 digits without the last ``range_digits``."""
        digits = destination_e164.lstrip("+")
        return "+" + digits[: max(1, len(digits) - self._s.range_digits)]

    def plan(self, client_ip: str, callnow_id: str, destination_e164: str) -> Plan:
        """The checks one callback request consumes (see the module docstring)."""
        s = self._s
        ip = self.key(KeyKind.IP, client_ip)
        destination = self.key(KeyKind.DESTINATION, destination_e164)
        area = self.key(KeyKind.RANGE, self.range_of(destination_e164))
        link = self.key(KeyKind.LINK, callnow_id)
        checks: tuple[Check, ...] = (
            self._global_check,
            BucketCheck(Reason.IP, ip, self._ip_rate),
            DistinctCheck(
                Reason.IP_DESTINATIONS,
                ip,
                destination.digest,
                s.ip_destinations,
                s.ip_destinations_window,
            ),
            BucketCheck(Reason.LINK, link, self._link_rate),
            BucketCheck(Reason.DESTINATION_SHORT, destination, self._short_rate),
            BucketCheck(Reason.DESTINATION_LONG, destination, self._long_rate),
            BucketCheck(Reason.RANGE, area, self._range_rate),
        )
        return Plan(checks, self._escalation)

    async def check(
        self, client_ip: str, callnow_id: str, destination_e164: str, now: float
    ) -> Verdict:
        """May this callback request go ahead? Consumes from every limit when it may.

        Args:
            client_ip: the visitor's address (IPv6 is limited per network).
            callnow_id: the link's CallNow id.
            destination_e164: the number to call, E.164 (``+...``).
            now: the current time in seconds (ignored by a Redis store using
                Redis time).

        Returns:
            Allowed, or refused with the reason (the limit, ``blocked`` or
            ``unavailable``), ``retry_after`` seconds (None for a permanent
            block) and the ``kind:digest`` of the refusing key.
        """
        request = (client_ip, callnow_id, destination_e164)
        known = self._blocked.get(request, now)
        if known is not None:
            return self._denied(known)
        verdict = await self._run(
            self.plan(client_ip, callnow_id, destination_e164), now
        )
        self._blocked.remember(request, verdict, now)  # ttl 0: kept for no time
        return verdict

    async def refund(
        self, client_ip: str, callnow_id: str, destination_e164: str, now: float
    ) -> None:
        """Give back what an allowed :meth:`check` took from the number's own limits.

        For a request let through that could not be stored (the visitor is told
        to send it again; see :meth:`RateLimitStore.refund`). Only the number's
        buckets (:data:`REFUNDED`), which a visitor's own retries spend first, get
        their permit back: the client's, the link's, the range's and the global
        buckets stay charged, so a flood during a store outage is still shed and
        escalated as at any other time.

        Raises:
            StoreUnavailable: the limit store cannot answer now.
        """
        plan = self.plan(client_ip, callnow_id, destination_e164)
        checks = tuple(c for c in plan.checks if c.reason in REFUNDED)
        await self.store.refund(Plan(checks), now)
        self.refunded += 1

    async def check_404(self, client_ip: str, now: float) -> Verdict:
        """May this client get another answer for an unknown link?

        Call it when a link lookup finds nothing; on refusal answer 429 instead
        of the uniform not-found page. Repeated refusals escalate the IP.
        """
        known = self._blocked.get(client_ip, now)
        if known is not None:
            return self._denied(known)
        ip = self.key(KeyKind.IP, client_ip)
        check = BucketCheck(Reason.NOT_FOUND, ip, self._not_found_rate)
        verdict = await self._run(Plan((check,), self._escalation), now)
        self._blocked.remember(client_ip, verdict, now)  # ttl 0: kept for no time
        return verdict

    async def _run(self, plan: Plan, now: float) -> Verdict:
        outcome = await self.store.evaluate(plan, now)
        verdict = outcome.verdict
        if verdict.allowed:
            self.allowed += 1
        else:
            self._denied(verdict)
        if outcome.new_blocks:
            # A new block can outrank a remembered one for the same request.
            self._blocked.clear()
        for block in outcome.new_blocks:
            self.blocks[block.kind.value] += 1
            if self._prom_blocks is not None:
                self._prom_blocks.labels(kind=block.kind.value).inc()
            self.log.warn(
                "Blocked {key} after repeated {reason} denials"
                " (strike {strikes}; until {until}, None: until lifted)",
                key=block.key,
                reason=block.reason.value,
                until=block.until,
                strikes=block.strikes,
            )
        return verdict

    def _denied(self, verdict: Verdict) -> Verdict:
        reason = (verdict.reason or Reason.UNAVAILABLE).value
        self.denials[reason] += 1
        if self._prom_denials is not None:
            counter = self._prom_denied.get(reason)
            if counter is None:
                counter = self._prom_denied[reason] = self._prom_denials.labels(
                    reason=reason
                )
            counter.inc()
        return verdict

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """The blocks in force (kind, HMAC'd key, reason, since, until)."""
        return await self.store.list_blocks(now)

    async def lift(self, key: str) -> bool:
        """Lift the block of ``key`` (``kind:digest`` as listed).

        Returns:
            True when a block was removed.

        Raises:
            ValueError: ``key`` is not ``kind:digest``.
        """
        parsed = LimitKey.parse(key)
        self._blocked.clear()
        try:
            lifted = await self.store.lift(parsed)
        finally:
            # Also after: an answer remembered while the lift was on its way.
            self._blocked.clear()
        if lifted:
            self.log.info("Block of {key} lifted", key=key)
        return lifted

    def status(self) -> LimiterState:
        """``redis ok``, ``fallback: in-process``, ``refusing`` or ``in-process``."""
        if isinstance(self.store, FallbackRateLimitStore):
            return self.store.status()
        return LimiterState.IN_PROCESS


class LimiterService(Service):
    """Closes the limiter's Redis connection when the daemon stops.

    Args:
        close: what to run on stop (from :func:`build_limiter`).
    """

    def __init__(self, close: Any) -> None:
        self._close = close

    @override
    def stopService(self) -> Deferred[None]:
        """Close the connection; the Deferred fires when it is closed."""
        super().stopService()
        return Deferred.fromCoroutine(self._close())


#: The limits :meth:`Limiter.refund` gives a permit back to.
REFUNDED = frozenset({Reason.DESTINATION_SHORT, Reason.DESTINATION_LONG})


def build_limiter(
    settings: LimitSettings,
    secret: bytes,
    reactor: IReactorTCP,
    clock: IReactorTime,
    *,
    registry: Any = None,
) -> tuple[Limiter, LimiterService]:
    """Compose the limiter from the settings.

    Without ``redis_url`` limits live in this process. With it, they live in
    Redis behind :class:`FallbackRateLimitStore` (fallback or refuse as
    configured).

    Args:
        settings: the ``[limits]`` section.
        secret: the daemon's secret key.
        reactor: for the Redis connection.
        clock: for Redis timeouts and fallback pacing (usually the reactor).
        registry: optional prometheus registry for the counters.

    Returns:
        The limiter and a service to add to the daemon's tree (it closes Redis).
    """
    memory = MemoryRateLimitStore()
    if not settings.redis_url:

        async def nothing() -> None:
            return None

        return Limiter(memory, settings, secret, registry=registry), LimiterService(
            nothing
        )
    # Imported only when configured: txredisapi imports the global reactor.
    from callnowd.limits.redis import RedisRateLimitStore, connect_redis

    connection = connect_redis(
        reactor,
        parse_redis_url(settings.redis_url),
        connect_timeout=settings.redis_connect_timeout,
        reconnect_max_delay=settings.redis_reconnect_max_delay,
    )
    redis = RedisRateLimitStore(
        connection,
        clock,
        timeout=settings.redis_timeout,
        prefix=settings.key_prefix,
        server_time=settings.redis_server_time,
    )
    store = FallbackRateLimitStore(
        redis,
        memory,
        clock,
        refuse=settings.on_redis_down == "refuse",
        retry_interval=settings.redis_retry_interval,
    )

    async def close() -> None:
        await store.close()
        await redis.close()

    limiter = Limiter(
        store,
        settings,
        secret,
        registry=registry,
        blocked_ttl=settings.blocked_answer_ttl,
    )
    return limiter, LimiterService(close)
