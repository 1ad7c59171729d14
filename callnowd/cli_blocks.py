"""``callnowctl blocks list|lift``: the operator's view of rate-limit blocks.

Where the blocks are decides where the command looks (``--via auto``, the
default):

* ``[limits] redis_url`` set: in Redis, shared by every daemon. The command
  talks to Redis itself (``--via redis``), so it works with the daemons stopped.
  Blocks a daemon made in its in-process fallback during a Redis outage are only
  in that daemon: ``--via daemon`` asks it (it lists and lifts both).
* no Redis: only inside the running daemon. The command asks its operator
  endpoint (``GET /admin/blocks``, ``POST /admin/blocks/lift``) on the
  ``[metrics] listen`` address, or on ``--admin-url``.

Keys are ``kind:digest`` (HMACs: nothing printed is a number or an address).
``lift`` takes such a key, or ``--ip ADDRESS`` / ``--number +E164``, whose key is
computed with the daemon's secret (the ``[public] secret_file``, read only).
Registered by :mod:`callnowd.cli`; errors are :class:`BlocksCliError` (exit 1).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import phonenumbers
from twisted.internet.defer import Deferred

from callnowd.config import Config
from callnowd.limits.limiter import Limiter
from callnowd.limits.memory import MemoryRateLimitStore
from callnowd.limits.ratelimit import (
    BlockInfo,
    KeyKind,
    LimitKey,
    Reason,
    StoreUnavailable,
)
from callnowd.limits.settings import parse_redis_url

COMMANDS = frozenset({"blocks"})
HTTP_TIMEOUT = 10.0
# Seconds per Redis command (the first one also waits for the connection).
REDIS_TIMEOUT = 2.0


class BlocksCliError(Exception):
    """A user error of ``blocks``; :mod:`callnowd.cli` prints it, exit 1."""


def _number(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        raise argparse.ArgumentTypeError(
            "the number must be in +E.164 form, e.g. +12125550100"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from None


def _key(value: str) -> str:
    try:
        return LimitKey.parse(value).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_commands(commands: Any) -> None:
    """Add ``blocks list`` and ``blocks lift`` to ``callnowctl``'s subparsers."""
    blocks = commands.add_parser("blocks", help="rate-limit blocks").add_subparsers(
        dest="action", required=True
    )
    listing = blocks.add_parser("list", help="list the blocks in force")
    lift = blocks.add_parser("lift", help="lift one block")
    target = lift.add_mutually_exclusive_group(required=True)
    target.add_argument("key", nargs="?", type=_key, help="kind:digest, as listed")
    target.add_argument("--ip", type=_address, help="lift the block of this client")
    target.add_argument(
        "--number", type=_number, help="lift the block of this destination (+E.164)"
    )
    for sub in (listing, lift):
        sub.add_argument(
            "--via",
            choices=("auto", "redis", "daemon"),
            default="auto",
            help="where to look (auto: Redis when configured, else the daemon)",
        )
        sub.add_argument(
            "--admin-url",
            help="the daemon's metrics listener, e.g. http://127.0.0.1:9108"
            " (default: from [metrics] listen)",
        )


class BlockSource(Protocol):
    """Where the command finds blocks."""

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """The blocks in force."""

    async def lift(self, key: str) -> bool:
        """Lift one block; True when one was removed."""

    async def close(self) -> None:
        """Release connections."""


async def run(
    args: argparse.Namespace,
    config: Config,
    reactor: Any,
    *,
    now: float,
    base_dir: Path,
    http: Any = None,
) -> str:
    """Run ``blocks list`` or ``blocks lift`` and return what to print.

    Args:
        args: the parsed command line.
        config: the daemon's configuration.
        reactor: for Redis or HTTP connections.
        now: the current POSIX time.
        base_dir: what relative paths of the config are relative to.
        http: a treq-like client for the daemon (a real one when None).

    Raises:
        BlocksCliError: the source cannot be reached, a bad key, nothing lifted.
    """
    key = None
    if args.action == "lift":
        key = _target_key(args, config, base_dir)
    source = _source(args, config, reactor, http)
    try:
        if key is None:
            return format_blocks(await source.list_blocks(now))
        if not await source.lift(key):
            raise BlocksCliError(f"no block on {key}")
        return f"lifted {key}"
    except StoreUnavailable as e:
        raise BlocksCliError(f"the limit store cannot be reached: {e}") from e
    finally:
        await source.close()


def _target_key(args: argparse.Namespace, config: Config, base_dir: Path) -> str:
    if args.key is not None:
        return str(args.key)
    kind, value = (
        (KeyKind.IP, args.ip)
        if args.ip is not None
        else (KeyKind.DESTINATION, args.number)
    )
    secret = read_secret(base_dir / config.public.secret_file)
    limiter = Limiter(MemoryRateLimitStore(), config.limits, secret)
    return limiter.key(kind, value).name


def read_secret(path: Path) -> bytes:
    """The daemon's secret key, read only (never created here).

    Raises:
        BlocksCliError: missing or unreadable.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BlocksCliError(
            f"no secret key at {path} (the daemon creates it when it first starts);"
            " lift by key instead"
        ) from None
    except OSError as e:
        raise BlocksCliError(f"cannot read the secret key {path}: {e}") from e


def _source(
    args: argparse.Namespace, config: Config, reactor: Any, http: Any
) -> BlockSource:
    via = args.via
    if via == "auto":
        via = "redis" if config.limits.redis_url else "daemon"
    if via == "redis":
        if not config.limits.redis_url:
            raise BlocksCliError("--via redis needs [limits] redis_url")
        return RedisBlocks(config, reactor)
    url = args.admin_url or admin_url(config.metrics.listen)
    return DaemonBlocks(url.rstrip("/"), reactor, http)


def format_blocks(blocks: Sequence[BlockInfo]) -> str:
    """One line per block: key, reason, since, until (or permanent), strikes."""
    if not blocks:
        return "(no blocks)"
    lines = []
    for b in blocks:
        until = "permanent" if b.until is None else _when(b.until)
        lines.append(
            f"{b.key}\t{b.reason.value}\tsince {_when(b.since)}\t"
            f"until {until}\tstrikes {b.strikes}"
        )
    return "\n".join(lines)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def admin_url(listen: str) -> str:
    """The HTTP base URL of the metrics listener described by ``listen``.

    Raises:
        BlocksCliError: an endpoint the command cannot reach by itself (port 0,
            UNIX sockets, TLS): pass ``--admin-url``.
    """
    parts = _split_endpoint(listen)
    kind = parts[0].lower() if parts else ""
    if kind not in ("tcp", "tcp6"):
        raise BlocksCliError(
            f"[metrics] listen = {listen!r}: give the address with --admin-url"
        )
    positional = [p for p in parts[1:] if "=" not in p]
    named = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    port = named.get("port") or (positional[0] if positional else "")
    if not port.isdigit() or int(port) == 0:
        raise BlocksCliError(
            f"[metrics] listen = {listen!r} has no fixed port; use --admin-url"
        )
    host = named.get("interface", "")
    if host in ("", "0.0.0.0"):  # noqa: S104 -- reading the config, not binding
        host = "::1" if kind == "tcp6" else "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _split_endpoint(description: str) -> list[str]:
    # Twisted's endpoint syntax: ':' separates, '\' escapes (tcp6 interfaces).
    parts, current, escaped = [], [], False
    for char in description:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


class DaemonBlocks:
    """Blocks kept by a running daemon, through its operator endpoint.

    Args:
        base_url: the metrics listener, e.g. ``http://127.0.0.1:9108``.
        reactor: for the HTTP connection and its timeout.
        http: a treq-like client (a real, non-persistent one when None).
    """

    def __init__(self, base_url: str, reactor: Any, http: Any = None) -> None:
        self._base = base_url
        self._reactor = reactor
        if http is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent, HTTPConnectionPool

            pool = HTTPConnectionPool(reactor, persistent=False)
            http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=HTTP_TIMEOUT))
        self._http = http

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """See :class:`BlockSource`."""
        document = await self._call("GET", "/admin/blocks")
        try:
            return [_block(item) for item in document["blocks"]]
        except (KeyError, TypeError, ValueError) as e:
            raise BlocksCliError(f"unexpected answer from {self._base}: {e}") from e

    async def lift(self, key: str) -> bool:
        """See :class:`BlockSource`."""
        document = await self._call("POST", "/admin/blocks/lift", {"key": key})
        return document.get("lifted") is True

    async def close(self) -> None:
        """Nothing to close: connections are not kept."""

    async def _call(
        self, method: str, path: str, body: dict[str, str] | None = None
    ) -> dict[str, Any]:
        url = self._base + path
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        try:
            d: Deferred[Any] = self._http.request(method, url, **kwargs)
            d.addTimeout(HTTP_TIMEOUT, self._reactor)
            response = await d
            raw = await response.content()
        except Exception as e:
            raise BlocksCliError(
                f"the daemon is not reachable at {self._base} ({type(e).__name__}:"
                f" {e}); is it running, and is [metrics] listen right?"
            ) from e
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise BlocksCliError(
                f"{url} answered {response.code} without JSON: is this callnowd?"
            )
        if response.code != 200:
            raise BlocksCliError(
                f"the daemon refused ({response.code}): {document.get('error')}"
            )
        return document


def _block(item: dict[str, Any]) -> BlockInfo:
    key = LimitKey.parse(str(item["key"]))
    until = item["until"]
    return BlockInfo(
        key=key.name,
        kind=key.kind,
        reason=Reason(item["reason"]),
        since=float(item["since"]),
        until=None if until is None else float(until),
        strikes=int(item["strikes"]),
    )


class RedisBlocks:
    """Blocks in the shared Redis, read and lifted directly.

    Args:
        config: for the Redis URL and key prefix.
        reactor: for the connection and command timeouts.
    """

    def __init__(self, config: Config, reactor: Any) -> None:
        # Imported here: txredisapi imports the global reactor at module level.
        from callnowd.limits.redis import RedisRateLimitStore, connect_redis

        s = config.limits
        self._where = _redacted(s.redis_url)
        self._store = RedisRateLimitStore(
            connect_redis(
                reactor,
                parse_redis_url(s.redis_url),
                connect_timeout=s.redis_connect_timeout,
            ),
            reactor,
            timeout=max(REDIS_TIMEOUT, s.redis_timeout),
            prefix=s.key_prefix,
            server_time=s.redis_server_time,
        )

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """See :class:`BlockSource`."""
        try:
            return await self._store.list_blocks(now)
        except StoreUnavailable as e:
            raise StoreUnavailable(f"Redis at {self._where}: {e}") from e

    async def lift(self, key: str) -> bool:
        """See :class:`BlockSource`."""
        try:
            return await self._store.lift(LimitKey.parse(key))
        except StoreUnavailable as e:
            raise StoreUnavailable(f"Redis at {self._where}: {e}") from e

    async def close(self) -> None:
        """Close the connection."""
        await self._store.close()


def _redacted(url: str) -> str:
    address = parse_redis_url(url)
    return f"{address.host}:{address.port}/{address.db}"
