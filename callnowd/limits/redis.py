"""The Redis :class:`RateLimitStore`; the only module of callnowd importing txredisapi.

One Lua script (:mod:`callnowd.limits.redis_script`) evaluates a whole plan
atomically. The store sends ``EVAL`` with the script once, then ``EVALSHA``,
falling back to ``EVAL`` when Redis answers ``NOSCRIPT`` (after ``SCRIPT
FLUSH``, a restart or a fail-over), so the script text crosses the wire once
per load. The command is put together from RESP pieces kept per key (a flood
and a busy site repeat their keys) and handed to txredisapi already encoded.
Replies are parsed by hiredis (txredisapi's ``RedisProtocol`` is its hiredis
protocol when hiredis is installed, a dependency; about 3x cheaper than the
pure-Python parser).

Every command carries its own timeout (``Deferred.addTimeout`` on the injected
clock): with ``reconnect=True`` txredisapi queues commands forever while Redis is
down. A timeout, a lost or refused connection or an error reply becomes
:class:`StoreUnavailable`; deciding what to do then is
:mod:`callnowd.limits.fallback`'s job.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import txredisapi
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger

from callnowd.limits.ratelimit import (
    ALLOWED,
    BlockInfo,
    BucketCheck,
    Check,
    Escalation,
    KeyKind,
    LimitKey,
    Outcome,
    Plan,
    Rate,
    Reason,
    StoreUnavailable,
    Verdict,
    block_verdict,
    state_name,
    to_us,
    us_to_s,
)
from callnowd.limits.redis_script import (
    ADOPT_BLOCKS_SCRIPT,
    GCRA_SCRIPT,
    REFUND_SCRIPT,
)
from callnowd.limits.settings import RedisAddress

log = Logger()
# Key names kept per identity and per check state; emptied when over this many.
_KEPT_KEYS = 4096
GCRA_SCRIPT_BYTES = GCRA_SCRIPT.encode()
# Redis names scripts by SHA-1; not a security use.
GCRA_SCRIPT_SHA1 = (
    hashlib.sha1(GCRA_SCRIPT_BYTES, usedforsecurity=False).hexdigest().encode()
)


def _bulk(data: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


# The command name and its first argument, as RESP pieces.
_EVALSHA = _bulk(b"EVALSHA") + _bulk(GCRA_SCRIPT_SHA1)
_EVAL = _bulk(b"EVAL") + _bulk(GCRA_SCRIPT_BYTES)


class Encoded(bytes):
    """A whole RESP command, already encoded: sent as it is."""


class _RedisProtocol(txredisapi.RedisProtocol):  # type: ignore[misc]
    """txredisapi's protocol with a cheaper command encoder.

    txredisapi encodes each argument and each argument's length through a general
    converter, twice per argument: for one evaluation (26 arguments) that was
    about a fifth of the daemon's CPU per rate-limit check. This writes the same
    RESP bytes for bytes arguments directly and leaves every other argument to
    txredisapi's converter; an :class:`Encoded` command is written as it is.
    """

    def send_encoded(self, command: Encoded) -> Deferred[Any]:
        """Send an already encoded command; the Deferred fires with its reply."""
        return self.execute_command(command)  # type: ignore[no-any-return]

    def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
        if len(args) == 1 and type(args[0]) is Encoded:
            return args[0]
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if type(arg) is bytes else self._encode_value(arg)
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)


def connect_redis(
    reactor: IReactorTCP,
    address: RedisAddress,
    *,
    connect_timeout: float = 2.0,
    reconnect_max_delay: float = 5.0,
) -> Any:
    """Start a lazily connecting, self-reconnecting txredisapi connection.

    Args:
        reactor: the reactor the endpoint connects with.
        address: where Redis is.
        connect_timeout: seconds for one TCP connection attempt.
        reconnect_max_delay: longest pause between reconnection attempts.

    Returns:
        txredisapi's connection handler (commands queue until connected).
    """
    factory = txredisapi.RedisFactory(
        f"{address.host}:{address.port}",
        address.db or None,
        1,
        isLazy=True,
        password=address.password,
        username=address.username,
        convertNumbers=False,
    )
    factory.protocol = _RedisProtocol
    # Class attributes read at each retry; an instance attribute overrides them.
    factory.maxDelay = reconnect_max_delay
    endpoint: Any = HostnameEndpoint(
        reactor, address.host, address.port, timeout=connect_timeout
    )
    if address.tls:
        endpoint = wrapClientTLS(optionsForClientTLS(address.host), endpoint)

    def failed(reason: Any) -> None:
        # Authentication or SELECT failed: txredisapi stops reconnecting; every
        # command then fails with "Not connected" and the fallback takes over.
        log.error(
            "Redis at {endpoint} refused the connection setup: {why}",
            endpoint=f"{address.host}:{address.port}",
            why=reason.getErrorMessage(),
        )

    factory.deferred.addErrback(failed)
    factory.startConnecting(endpoint)
    return factory.handler


class RedisRateLimitStore:
    """Limit state in Redis (see the module docstring).

    Args:
        connection: a txredisapi connection handler (see :func:`connect_redis`).
        clock: the clock driving the per-command timeouts.
        timeout: seconds each command may take.
        prefix: prepended (with ``:``) to every key.
        server_time: use Redis ``TIME`` instead of the ``now`` passed in, so that
            daemons sharing a Redis share one clock.
    """

    def __init__(
        self,
        connection: Any,
        clock: IReactorTime,
        *,
        timeout: float = 0.25,
        prefix: str = "callnow:rl",
        server_time: bool = True,
    ) -> None:
        self._redis = connection
        self._clock = clock
        self._timeout = timeout
        self._prefix = prefix
        self._server_time = server_time
        # Encoded key names and argument pieces, kept: a flood repeats them.
        self._identities: dict[tuple[LimitKey, bool], tuple[bytes, str]] = {}
        self._script_loaded = False  # EVAL succeeded: EVALSHA may be tried
        self._states: dict[tuple[Reason, str], bytes] = {}

    async def _call(self, what: str, d: Deferred[Any]) -> Any:
        d.addTimeout(self._timeout, self._clock)
        try:
            return await d
        except DeferredTimeout as e:
            raise StoreUnavailable(
                f"Redis {what} timed out after {self._timeout}s"
            ) from e
        except CancelledError:
            raise
        except Exception as e:
            raise StoreUnavailable(f"Redis {what} failed: {e}") from e

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def evaluate(self, plan: Plan, now: float) -> Outcome:
        """See :meth:`RateLimitStore.evaluate`."""
        idents = plan.identities()
        arguments, body = self.encode(plan, idents, now)
        reply = await self._run_script(b"*%d\r\n" % (arguments + 2), body)
        return _outcome(plan, idents, [int(x) for x in reply])

    def encode(
        self, plan: Plan, idents: list[LimitKey], now: float
    ) -> tuple[int, bytes]:
        """The script's arguments after the script itself: how many, and RESP.

        They are the number of keys, the keys (see redis_script) and one packed
        argument.
        """
        esc = plan.escalation
        pieces: list[bytes] = []
        parts = [
            "-1" if self._server_time else str(to_us(now)),
            str(len(idents)),
            str(len(plan.checks)),
            _escalation_part(esc),
        ]
        index: dict[LimitKey, int] = {}
        for i, key in enumerate(idents, 1):
            index[key] = i
            escalates = esc is not None and key.kind in esc.kinds
            keys, part = self._identity(key, escalates)
            pieces.append(keys)
            parts.append(part)
        for c in plan.checks:
            pieces.append(self._state_key(c))
            i = index[c.key]
            if isinstance(c, BucketCheck):
                parts.append(_bucket_part(i, c.rate, c.reason))
            else:
                parts.append(
                    f"d\t{i}\t{c.limit}\t{c.window_us}\t{c.member}\t{c.reason.value}"
                )
        # Every argument followed by a tab (see redis_script).
        packed = ("\t".join(parts) + "\t").encode()
        key_count = 3 * len(idents) + len(plan.checks)
        pieces.append(_bulk(packed))
        return key_count + 2, _bulk(b"%d" % key_count) + b"".join(pieces)

    async def _run_script(self, head: bytes, body: bytes) -> Any:
        """EVALSHA once the script is loaded, else (or after NOSCRIPT) EVAL."""
        if self._script_loaded:
            command = Encoded(head + _EVALSHA + body)
            try:
                return await self._call("evaluate", self._redis.send_encoded(command))
            except StoreUnavailable as e:
                cause = e.__cause__
                if not (
                    isinstance(cause, txredisapi.ResponseError)
                    and str(cause).startswith("NOSCRIPT")
                ):
                    raise
                self._script_loaded = False  # flushed, restarted or failed over
        command = Encoded(head + _EVAL + body)
        reply = await self._call("evaluate", self._redis.send_encoded(command))
        self._script_loaded = True
        return reply

    def _identity(self, key: LimitKey, escalates: bool) -> tuple[bytes, str]:
        """An identity's block, strikes and denials keys (RESP) and argument piece.

        Kept per key and escalation flag (bounded).
        """
        name = (key, escalates)
        found = self._identities.get(name)
        if found is None:
            k, d = key.kind.value, key.digest
            found = (
                _bulk(self._key("block", k, d).encode())
                + _bulk(self._key("strikes", k, d).encode())
                + _bulk(self._key("denials", k, d).encode()),
                f"{int(escalates)}\t{k}\t{d}",
            )
            if len(self._identities) >= _KEPT_KEYS:
                self._identities.clear()
            self._identities[name] = found
        return found

    def _state_key(self, check: Check) -> bytes:
        """A check's state key (RESP), kept (bounded)."""
        name = (check.reason, check.key.digest)
        found = self._states.get(name)
        if found is None:
            found = _bulk(self._key(state_name(check)).encode())
            if len(self._states) >= _KEPT_KEYS:
                self._states.clear()
            self._states[name] = found
        return found

    async def refund(self, plan: Plan, now: float) -> None:
        """See :meth:`RateLimitStore.refund` (in Redis time with server_time)."""
        buckets = [c for c in plan.checks if isinstance(c, BucketCheck)]
        if not buckets:
            return
        keys = [self._key(state_name(c)) for c in buckets]
        args = ["-1" if self._server_time else str(to_us(now))]
        args += [str(c.rate.emission_us) for c in buckets]
        await self._call("refund", self._redis.eval(REFUND_SCRIPT, keys, args))

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """See :meth:`RateLimitStore.list_blocks` (in Redis time with server_time)."""
        cursor: Any = 0
        names: set[str] = set()
        pattern = self._key("block", "*")
        while True:
            cursor, batch = await self._call(
                "scan", self._redis.scan(cursor, pattern, 500)
            )
            names.update(batch)
            if int(cursor) == 0:
                break
        now_us = await self._now_us(now)
        blocks = []
        for name in names:
            fields = await self._call("hgetall", self._redis.hgetall(name))
            info = _block_from_hash(fields)
            if info is not None and (info.until is None or to_us(info.until) > now_us):
                blocks.append(info)
        return sorted(blocks, key=lambda b: (b.since, b.key))

    async def _now_us(self, now: float) -> int:
        if not self._server_time:
            return to_us(now)
        seconds, micros = await self._call("time", self._redis.time())
        return int(seconds) * 1_000_000 + int(micros)

    async def lift(self, key: LimitKey) -> bool:
        """See :meth:`RateLimitStore.lift`."""
        k, d = key.kind.value, key.digest
        strikes, denials = self._key("strikes", k, d), self._key("denials", k, d)
        await self._call("delete", self._redis.delete([strikes, denials]))
        removed = await self._call(
            "delete", self._redis.delete(self._key("block", k, d))
        )
        return int(removed) > 0

    async def adopt_blocks(self, blocks: Sequence[BlockInfo], now: float) -> int:
        """See :meth:`RateLimitStore.adopt_blocks` (in Redis time with server_time)."""
        if not blocks:
            return 0
        keys: list[str] = []
        args: list[str] = ["-1" if self._server_time else str(to_us(now))]
        for info in blocks:
            key = LimitKey.parse(info.key)
            keys.append(self._key("block", key.kind.value, key.digest))
            until = -1 if info.until is None else to_us(info.until)
            args += [
                key.kind.value,
                key.digest,
                info.reason.value,
                str(to_us(info.since)),
                str(until),
                str(info.strikes),
            ]
        added = await self._call(
            "adopt blocks", self._redis.eval(ADOPT_BLOCKS_SCRIPT, keys, args)
        )
        return int(added)

    async def ping(self) -> None:
        """See :meth:`RateLimitStore.ping`."""
        await self._call("ping", self._redis.ping())

    async def close(self) -> None:
        """Close the connection and stop reconnecting."""
        await self._redis.disconnect()


@functools.lru_cache(maxsize=16)
def _escalation_part(esc: Escalation | None) -> str:
    """The escalation's argument piece: flag, emission, tolerance, block, memory."""
    if esc is None:
        return "0\t0\t0\t0\t0"
    rate = esc.rate
    return (
        f"1\t{rate.emission_us}\t{rate.tolerance_us}"
        f"\t{to_us(esc.block_seconds)}\t{to_us(esc.memory)}"
    )


@functools.lru_cache(maxsize=256)
def _bucket_part(index: int, rate: Rate, reason: Reason) -> str:
    """A bucket check's argument piece: identity index, emission, tolerance, reason."""
    return f"b\t{index}\t{rate.emission_us}\t{rate.tolerance_us}\t\t{reason.value}"


def _outcome(plan: Plan, idents: list[LimitKey], reply: list[int]) -> Outcome:
    status, index, retry_us, now_us, count = reply[:5]
    if status == 0:
        return Outcome(ALLOWED)
    if status == 2:
        return Outcome(
            block_verdict(
                idents[index - 1], retry_us + now_us if retry_us >= 0 else -1, now_us
            )
        )
    worst = plan.checks[index - 1]
    verdict = Verdict(False, worst.reason, us_to_s(retry_us), worst.key.name)
    blocks = []
    for n in range(count):
        i, j, until_us, strikes = reply[5 + 4 * n : 9 + 4 * n]
        key = idents[i - 1]
        blocks.append(
            BlockInfo(
                key=key.name,
                kind=key.kind,
                reason=plan.checks[j - 1].reason,
                since=us_to_s(now_us),
                until=None if until_us < 0 else us_to_s(until_us),
                strikes=strikes,
            )
        )
    return Outcome(verdict, tuple(blocks))


def _block_from_hash(fields: dict[str, str]) -> BlockInfo | None:
    try:
        kind = KeyKind(fields["kind"])
        until_us = int(fields["until"])
        return BlockInfo(
            key=LimitKey(kind, fields["digest"]).name,
            kind=kind,
            reason=Reason(fields["reason"]),
            since=us_to_s(int(fields["since"])),
            until=None if until_us < 0 else us_to_s(until_us),
            strikes=int(fields["strikes"]),
        )
    except (KeyError, ValueError):
        # A hash half-expired or written by another version: not a block we
        # can describe, and the script ignores what it cannot parse too.
        log.warn("Ignoring a malformed block record in Redis: {fields}", fields=fields)
        return None
