"""An open-loop HTTP load generator: requests at a fixed rate, each timed alone.

Run as ``python benchmarks/rate_load.py --port P --kind KIND --out FILE [...]``.
Request ``i`` is sent at ``start + i / rate`` whatever the server is doing (open
loop: a slow server does not slow the load down, so its queueing shows in the
latencies). Each request goes out on an idle keep-alive connection of a pool opened
beforehand; if none is idle, a new connection is opened (and counted), up to
``--max-connections``, after which due requests wait for the first free connection
(that wait counts in their latency). Sends that the generator itself made late are
reported as ``lag``.

Kinds: ``get`` (``GET --path``), ``one_step`` (the one-step link of ``--callnow-id``)
and ``post`` (the form ``POST /callnow/<id>`` with ``--cookie`` and ``--csrf``).
``one_step`` and ``post`` give request ``i`` the visitor number
:func:`phone_number` ``(--first + i)``, so every request is distinct and can be
found again (by its number) in the Originate it causes.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by all processes of the
machine). ``--out`` receives one JSON object: per request ``sent``, ``done``
(``null`` if no response came), ``status`` and ``phone``; ``lag_p99_ms``,
``lag_max_ms``, ``opened`` (connections opened during the run) and ``errors``
(connections lost with a request outstanding).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from typing_extensions import override

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
_EXCHANGES = 800


def phone_number(n: int, area: str = "646") -> str:
    """The E.164 number ``+1 <area> <200 + n / 10^4 mod 800> <n mod 10^4>``.

    All valid US numbers, distinct for ``0 <= n < 8 000 000``.
    """
    exchange = 200 + (n // 10_000) % _EXCHANGES
    return f"+1{area}{exchange:03d}{n % 10_000:04d}"


def number_index(phone: str) -> int:
    """The ``n`` that :func:`phone_number` turned into ``phone``."""
    exchange, subscriber = int(phone[-7:-4]), int(phone[-4:])
    return (exchange - 200) * 10_000 + subscriber


def build_request(options: argparse.Namespace, index: int) -> tuple[bytes, str]:
    """The bytes of request ``index`` and its visitor number ("" for ``get``)."""
    host = f"Host: 127.0.0.1:{options.port}\r\n"
    if options.kind == "get":
        return f"GET {options.path} HTTP/1.1\r\n{host}\r\n".encode(), ""
    phone = phone_number(options.first + index)
    if options.kind == "one_step":
        path = (
            f"/callnow/index.php?call={options.callnow_id}&myname=Bench%20{options.tag}"
            f"&phone={quote(phone, safe='')}"
        )
        return f"GET {path} HTTP/1.1\r\n{host}\r\n".encode(), phone
    body = (
        f"csrf={options.csrf}&phone={quote(phone, safe='')}&name=Bench+{options.tag}"
    ).encode()
    head = (
        f"POST /callnow/{options.callnow_id} HTTP/1.1\r\n{host}"
        f"Cookie: callnow_csrf={options.cookie}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body, phone


def response_length(buffer: bytearray, head: bytes, body: int) -> int | None:
    """The length of the complete response at the start of ``buffer``, if complete.

    Args:
        buffer: received bytes; the response starts at 0.
        head: the status line and headers (up to the last header's CRLF).
        body: where the body starts in ``buffer``.

    Returns:
        Its length in bytes, or ``None`` while part of it has not arrived.
    """
    if _CHUNKED.search(head) is None:
        match = _CONTENT_LENGTH.search(head)
        total = body + (int(match.group(1)) if match else 0)
        return total if len(buffer) >= total else None
    position = body
    while True:  # chunk: <hex size>[;ext]CRLF <data> CRLF; the last has size 0
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if buffer[line_end : line_end + 4] == b"\r\n\r\n":
                return line_end + 4
            return None if trailer_end < 0 else trailer_end + 4
        position = line_end + 2 + size + 2
        if len(buffer) < position:
            return None


@dataclass
class Run:
    """What the run measured, request by request, and its connections."""

    sent: list[float | None]
    done: list[float | None]
    status: list[int]
    idle: list[Connection] = field(default_factory=list)
    # Requests due while every connection was busy and no new one could be opened.
    backlog: deque[tuple[int, bytes]] = field(default_factory=deque)
    connections: int = 0
    outstanding: int = 0
    opened: int = 0
    errors: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def completed(self, index: int, status: int, connection: Connection) -> None:
        """Request ``index`` got its whole response now; reuse ``connection``."""
        self.done[index] = time.monotonic()
        self.status[index] = status
        self.settled()
        self.ready(connection)

    def ready(self, connection: Connection) -> None:
        """``connection`` can take a request: the oldest waiting one, if any."""
        if self.backlog:
            connection.send(*self.backlog.popleft())
        else:
            self.idle.append(connection)

    def settled(self) -> None:
        """One request less is outstanding."""
        self.outstanding -= 1
        if self.outstanding == 0:
            self.finished.set()


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request outstanding."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.current: int | None = None

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.run.connections += 1

    def send(self, index: int, data: bytes) -> None:
        """Send request ``index``; the connection is busy until its response."""
        assert self.transport is not None
        self.current = index
        self.transport.write(data)

    @override
    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.current is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[: end + 2])
            total = response_length(self.buffer, head, end + 4)
            if total is None:
                return
            del self.buffer[:total]
            index, self.current = self.current, None
            self.run.completed(index, int(head[9:12]), self)

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self.run.connections -= 1
        if self in self.run.idle:
            self.run.idle.remove(self)
        if self.current is not None:
            self.current = None
            self.run.errors += 1
            self.run.settled()


async def generate(options: argparse.Namespace) -> dict[str, object]:
    """Send the requests on schedule, wait for the responses, return the figures.

    A request's latency runs from the moment it is due (taken right after the
    generator wakes for it), so time spent waiting for a connection counts.
    """
    loop = asyncio.get_running_loop()
    count = round(options.rate * options.duration)
    requests = [build_request(options, i) for i in range(count)]
    run = Run([None] * count, [None] * count, [0] * count)
    pending: set[asyncio.Task[None]] = set()

    async def connect() -> Connection:
        _, protocol = await loop.create_connection(
            lambda: Connection(run), "127.0.0.1", options.port
        )
        return protocol

    async def open_for(index: int, data: bytes) -> None:
        try:
            connection = await connect()
        except OSError:
            run.errors += 1
            run.settled()
            return
        connection.send(index, data)

    run.idle = [await connect() for _ in range(options.connections)]
    lags: list[float] = []
    start = loop.time() + 0.05
    for index, (data, _) in enumerate(requests):
        at = start + index / options.rate
        wait = at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.monotonic()
        lags.append(now - at)
        run.sent[index] = now
        run.outstanding += 1
        # ``finished`` was set whenever every request so far had its answer;
        # left set, the wait after the last send would not wait for that one.
        run.finished.clear()
        if run.idle:
            run.idle.pop().send(index, data)
        elif run.connections + len(pending) < options.max_connections:
            run.opened += 1
            task = loop.create_task(open_for(index, data))
            pending.add(task)
            task.add_done_callback(pending.discard)
        else:
            run.backlog.append((index, data))
    if run.outstanding:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.finished.wait(), options.timeout)
    for connection in run.idle:
        if connection.transport is not None:
            connection.transport.close()
    lags.sort()
    return {
        "sent": run.sent,
        "done": run.done,
        "status": run.status,
        "phone": [phone for _, phone in requests],
        "lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0,
        "lag_max_ms": lags[-1] * 1000 if lags else 0.0,
        "opened": run.opened,
        "errors": run.errors,
    }


def main(argv: list[str]) -> int:
    """Run one open-loop load and write its figures to ``--out``.

    Args:
        argv: command-line arguments (see ``--help``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=("get", "one_step", "post"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--connections", type=int, default=32, help="pool size")
    parser.add_argument(
        "--max-connections", type=int, default=512, help="then requests queue"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="s to wait after the last send"
    )
    parser.add_argument("--path", default="/")
    parser.add_argument("--callnow-id", default="bench")
    parser.add_argument("--cookie", default="")
    parser.add_argument("--csrf", default="")
    parser.add_argument("--first", type=int, default=0, help="first number index")
    parser.add_argument("--tag", default="r0", help="letters and digits")
    options = parser.parse_args(argv)
    result = asyncio.run(generate(options))
    options.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
