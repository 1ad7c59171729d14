"""The operator's endpoints on the metrics listener: listing and lifting rate-limit blocks.

``GET /admin/blocks`` answers ``{"blocks": [...]}`` (kind, HMAC'd key, reason,
since, until, strikes; never a raw number or address) and ``POST
/admin/blocks/lift`` with a ``key`` (form or JSON) lifts one block. They are
mounted next to ``/metrics`` on the ``[metrics] listen`` endpoint, never on the
public site, and are what ``callnowctl blocks`` uses when limits live in this
process (no ``[limits] redis_url``).

Two guards keep them operator-only even when the metrics listener is opened to a
private network for scraping: only loopback peers (and UNIX-socket peers) are
served, and a request carrying an ``Origin`` header (a browser page on the
operator's machine posting cross-site) is refused.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any, Protocol, cast
from urllib.parse import parse_qs

import attrs
from klein import Klein
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from callnowd.limits.ratelimit import BlockInfo, StoreUnavailable

MAX_BODY = 4096
JSON = b"application/json"


class BlockKeeper(Protocol):
    """What the endpoints need of the limiter (:class:`callnowd.limits.limiter.Limiter`)."""

    async def list_blocks(self, now: float) -> list[BlockInfo]:
        """The blocks in force at ``now``."""

    async def lift(self, key: str) -> bool:
        """Lift the block of ``kind:digest``; True when one was removed."""


def block_json(block: BlockInfo) -> dict[str, Any]:
    """One block as the JSON object the endpoint lists."""
    return {
        "key": block.key,
        "kind": block.kind.value,
        "reason": block.reason.value,
        "since": block.since,
        "until": block.until,
        "strikes": block.strikes,
        "permanent": block.permanent,
    }


@attrs.define
class AdminPages:
    """The Klein application under ``/admin`` (see the module docstring).

    Args:
        limiter: where the blocks are.
        clock: the time ``list_blocks`` is asked at.
    """

    app = Klein()
    log = Logger()

    _limiter: BlockKeeper
    _clock: IReactorTime

    @app.route("/blocks", methods=["GET"])
    async def blocks(self, request: IRequest) -> bytes:
        """The blocks in force, oldest first."""
        refused = _guard(request)
        if refused is not None:
            return refused
        try:
            found = await self._limiter.list_blocks(self._clock.seconds())
        except StoreUnavailable as e:
            return _answer(request, 503, {"error": f"limit store unavailable: {e}"})
        return _answer(request, 200, {"blocks": [block_json(b) for b in found]})

    @app.route("/blocks/lift", methods=["POST"])
    async def lift(self, request: IRequest) -> bytes:
        """Lift the block of the ``key`` sent (``kind:digest``)."""
        refused = _guard(request)
        if refused is not None:
            return refused
        try:
            key = _read_key(request)
        except _BadBody as e:
            return _answer(request, e.status, {"error": e.message})
        try:
            lifted = await self._limiter.lift(key)
        except ValueError as e:
            return _answer(request, 400, {"error": str(e)})
        except StoreUnavailable as e:
            # The in-process part (if any) was lifted; the shared one was not.
            return _answer(request, 503, {"error": f"limit store unavailable: {e}"})
        self.log.info("Operator lift of {key}: {lifted}", key=key, lifted=lifted)
        return _answer(request, 200, {"key": key, "lifted": lifted})


def mount_admin(root: IResource, admin: AdminPages) -> None:
    """Serve ``admin`` under ``/admin`` of ``root`` (the metrics resource tree)."""
    cast(Resource, root).putChild(b"admin", admin.app.resource())


@attrs.frozen
class _BadBody(Exception):
    status: int
    message: str


def _read_key(request: IRequest) -> str:
    body = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(body) > MAX_BODY:
        raise _BadBody(413, "body too large")
    content_type = request.getHeader(b"content-type") or b""
    media = content_type.split(b";", 1)[0].strip().lower()
    parse: Callable[[bytes], object]
    if media == JSON:
        parse = _json_key
    elif media == b"application/x-www-form-urlencoded":
        parse = _form_key
    else:
        raise _BadBody(415, "send the key as JSON or as a urlencoded form")
    key = parse(body)
    if not isinstance(key, str) or not key:
        raise _BadBody(400, 'a "key" (kind:digest, as listed) is required')
    return key


def _json_key(body: bytes) -> object:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _BadBody(400, "the body is not JSON") from None
    return document.get("key") if isinstance(document, dict) else None


def _form_key(body: bytes) -> object:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise _BadBody(400, "the form cannot be read") from None
    values = fields.get("key", [])
    return values[0] if len(values) == 1 else None


def _guard(request: IRequest) -> bytes | None:
    if request.getHeader(b"origin") is not None:
        return _answer(request, 403, {"error": "cross-origin requests are refused"})
    if not is_local_peer(request.getClientAddress()):
        return _answer(request, 403, {"error": "served to loopback clients only"})
    return None


def is_local_peer(address: object) -> bool:
    """True for a loopback (or UNIX-socket) peer: the only ones served."""
    if isinstance(address, IPv4Address | IPv6Address):
        try:
            ip = ipaddress.ip_address(address.host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped.is_loopback
        return ip.is_loopback
    # A UNIX socket: access is the file system's business.
    return isinstance(address, UNIXAddress)


def _answer(request: IRequest, code: int, document: dict[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON)
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(document).encode("utf-8") + b"\n"
