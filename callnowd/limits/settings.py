"""``LimitSettings``: every number of the rate limits, with the shipped defaults.

Also the Redis URL parser: it lives here, not in :mod:`callnowd.limits.redis`, so
reading the configuration never imports txredisapi (which imports the global
reactor at module level).

The class is flat and typed like the other config sections (str, int, float, bool,
Literal, tuple[str, ...]) and each field carries a ``metadata["check"]``, so the
config loader can map a ``[limits]`` TOML table onto it field by field. A limit
"N per P" is a GCRA bucket: a burst of N, then one more every P/N seconds (see
:mod:`callnowd.limits.ratelimit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import attrs

from callnowd.limits.ratelimit import KeyKind


@attrs.frozen
class RedisAddress:
    """Where Redis is, read from a ``redis://`` or ``rediss://`` URL.

    Attributes:
        host: host name or address.
        port: TCP port.
        db: database number.
        username: ACL user, or None.
        password: password, or None.
        tls: True for ``rediss://`` (certificate verified for ``host``).
    """

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False


def parse_redis_url(url: str) -> RedisAddress:
    """Read ``redis://[user:password@]host[:port][/db]`` (or ``rediss://``).

    Raises:
        ValueError: not such a URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(
            f"must be redis://host[:port][/db] or rediss://..., not {url!r}"
        )
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database must be a number, not {path!r}")
    try:
        port = parts.port or 6379
    except ValueError as e:
        raise ValueError(f"bad port in the Redis URL: {e}") from e
    return RedisAddress(
        host=parts.hostname,
        port=port,
        db=int(path or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "rediss",
    )


def _positive(value: float) -> None:
    if not value > 0:
        raise ValueError(f"must be greater than 0, not {value}")


def _not_negative(value: float) -> None:
    if not value >= 0:
        raise ValueError(f"must be 0 or more, not {value}")


def _range_digits(value: int) -> None:
    if not 1 <= value <= 8:
        raise ValueError(f"must be between 1 and 8, not {value}")


def _ipv6_prefix(value: int) -> None:
    if not 16 <= value <= 128:
        raise ValueError(f"must be between 16 and 128, not {value}")


def _kinds(value: tuple[str, ...]) -> None:
    known = {k.value for k in KeyKind}
    for item in value:
        if item not in known:
            raise ValueError(f"{item!r} is not one of {', '.join(sorted(known))}")


def _redis_url(value: str) -> None:
    if value:
        parse_redis_url(value)


def _prefix(value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a non-empty word without spaces")


def _f(default: Any, check: Callable[[Any], None] | None = _positive, **kw: Any) -> Any:
    return attrs.field(default=default, metadata={"check": check}, **kw)


@attrs.frozen
class LimitSettings:
    """The ``[limits]`` section.

    Attributes:
        redis_url: ``redis://[user:pass@]host[:port][/db]`` or ``rediss://``;
            empty: limits live in this process (fine for one daemon; several
            daemons must share a Redis).
        redis_timeout: seconds each Redis command may take before the limiter
            treats Redis as unreachable.
        redis_connect_timeout: seconds for one TCP connection attempt.
        redis_reconnect_max_delay: longest pause between reconnection attempts.
        redis_retry_interval: while Redis is down, how often (at most) a request
            triggers a background ping to see whether it is back.
        redis_server_time: evaluate limits on Redis's clock (``TIME``), so skew
            between daemons cannot loosen or tighten a shared limit.
        on_redis_down: ``"fallback"`` answers from the in-process limiter (logged
            once per outage); ``"refuse"`` refuses every request (fail closed).
        key_prefix: prefix of every Redis key.
        blocked_answer_ttl: with Redis, seconds a daemon answers a request
            refused for a blocked key again from memory before asking Redis
            (a lift elsewhere takes effect within this time); 0: ask Redis
            every time. Without Redis the daemon sees every lift itself and
            remembers such answers until the block ends.
        ipv6_prefix: IPv6 clients are limited per network of this length (a
            single host usually owns a whole /64).
        ip_limit: requests per client IP per ``ip_period``.
        ip_period: seconds.
        ip_destinations: distinct destination numbers per client IP per
            ``ip_destinations_window``.
        ip_destinations_window: seconds.
        link_limit: requests per CallNow link per ``link_period``.
        link_period: seconds.
        destination_short_limit: requests per destination number per
            ``destination_short_period``.
        destination_short_period: seconds (6 h).
        destination_long_limit: requests per destination number per
            ``destination_long_period``.
        destination_long_period: seconds (24 h).
        range_digits: a destination range is the number without this many
            trailing digits (4: a NANP NPA-NXX exchange, 10,000 numbers).
        range_limit: requests per destination range per ``range_period``. 20 per
            hour: as much as one busy link, far above what one exchange sends a
            PBX legitimately, and it caps a botnet pumping a range (IRSF) at 20
            calls an hour where per-number and per-IP limits see only fresh keys.
        range_period: seconds.
        global_limit: requests across all keys per ``global_period``; 50 per
            5 s is a burst of 50 and 10/s sustained, above what trunks dial
            (1-10 new calls/s) and below what would flood them.
        global_period: seconds.
        not_found_limit: unknown-link (404) answers per client IP per
            ``not_found_period``; stops enumeration of vanity ids.
        not_found_period: seconds.
        escalate_kinds: key kinds blocked when they keep hitting their limits.
            Links and the global key are left out by default: blocking them
            would let anyone switch off an owner's link or the whole service.
        escalate_after: denials tolerated per key within ``escalate_window``;
            one more blocks the key.
        escalate_window: seconds.
        block_seconds: length of a first block (24 h).
        strike_memory: seconds a block is remembered; a new block within it is
            permanent until an operator lifts it.
    """

    redis_url: str = _f("", _redis_url, repr=False)
    redis_timeout: float = _f(0.25)
    redis_connect_timeout: float = _f(2.0)
    redis_reconnect_max_delay: float = _f(5.0)
    redis_retry_interval: float = _f(1.0)
    redis_server_time: bool = True
    on_redis_down: Literal["fallback", "refuse"] = "fallback"
    key_prefix: str = _f("callnow:rl", _prefix)
    blocked_answer_ttl: float = _f(1.0, _not_negative)
    ipv6_prefix: int = _f(64, _ipv6_prefix)
    ip_limit: int = _f(5)
    ip_period: float = _f(900.0)
    ip_destinations: int = _f(3)
    ip_destinations_window: float = _f(3600.0)
    link_limit: int = _f(20)
    link_period: float = _f(3600.0)
    destination_short_limit: int = _f(3)
    destination_short_period: float = _f(6 * 3600.0)
    destination_long_limit: int = _f(5)
    destination_long_period: float = _f(24 * 3600.0)
    range_digits: int = _f(4, _range_digits)
    range_limit: int = _f(20)
    range_period: float = _f(3600.0)
    global_limit: int = _f(50)
    global_period: float = _f(5.0)
    not_found_limit: int = _f(10)
    not_found_period: float = _f(900.0)
    escalate_kinds: tuple[str, ...] = _f(("ip", "destination", "range"), _kinds)
    escalate_after: int = _f(10)
    escalate_window: float = _f(3600.0)
    block_seconds: float = _f(24 * 3600.0)
    strike_memory: float = _f(30 * 24 * 3600.0)
