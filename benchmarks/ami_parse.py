"""Benchmark: AMI parsing and dispatch against plain LineOnlyReceiver line delivery.

Run by hand (not in CI): ``.venv/bin/python benchmarks/ami_parse.py``.

The byte stream is the real s1 transcript (Asterisk 22, 112 messages), repeated
to a few MB and fed in 4-16 KiB chunks through StringTransport-connected
protocols:

* baseline: a ``LineOnlyReceiver`` whose ``lineReceived`` only counts the empty
  lines (message ends): the cost of getting lines out of Twisted at all;
* full: ``AmiProtocol`` + ``AmiClient`` routing with a subscriber for every event,
  so every line of every message is split into its (decoded) name and value and
  every event is dispatched; the subscriber counts and reads no header;
* skip: the same with subscribers for OriginateResponse, Hangup, DialEnd, Cdr and
  UserEvent only, so the parser drops the other events by name.

Variants are interleaved (A, X, A, S per round) and the throughput ratios
(variant events/s over baseline events/s) are summarised by median and IQR. The
last line of output is one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.basic import LineOnlyReceiver
from typing_extensions import override

from callnowd.ami.client import AmiClient, AmiSettings
from callnowd.ami.codec import Message
from callnowd.ami.protocol import AmiProtocol

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    ROOT.parent / "shared" / "asterisk" / "transcripts" / "s1-001002-accept.ami.raw",
    ROOT / "tests" / "fixtures" / "transcripts" / "s1-001002-accept.ami.raw",
]
TARGET_BYTES = 4 << 20
CHUNK_SIZES = (4096, 8192, 16384, 12288)
ROUNDS = 7
WANTED = ("OriginateResponse", "Hangup", "DialEnd", "Cdr", "UserEvent")


def build_stream() -> tuple[bytes, list[bytes], int]:
    source = next(path for path in CANDIDATES if path.exists()).read_bytes()
    banner, body = source.split(b"\r\n", 1)
    repeats = TARGET_BYTES // len(body) + 1
    stream = body * repeats
    chunks: list[bytes] = []
    offset = 0
    index = 0
    while offset < len(stream):
        size = CHUNK_SIZES[index % len(CHUNK_SIZES)]
        chunks.append(stream[offset : offset + size])
        offset += size
        index += 1
    messages = body.count(b"\r\n\r\n") * repeats
    return banner + b"\r\n", chunks, messages


class CountingLines(LineOnlyReceiver):
    """Baseline: raw line delivery, counting message ends."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self) -> None:
        self.messages = 0

    @override
    def lineReceived(self, line: bytes) -> None:
        if line == b"\r" or not line:
            self.messages += 1


def run_baseline(banner: bytes, chunks: list[bytes]) -> tuple[float, int]:
    protocol = CountingLines()
    protocol.makeConnection(StringTransport())
    start = time.perf_counter()
    for chunk in chunks:
        protocol.dataReceived(chunk)
    return time.perf_counter() - start, protocol.messages


def make_client(
    wanted: tuple[str, ...] | None, handler: Callable[[Message], None] | None = None
) -> tuple[AmiClient, list[int]]:
    reactor = MemoryReactorClock()
    client = AmiClient(
        reactor,
        TCP4ClientEndpoint(reactor, "127.0.0.1", 5038),
        AmiSettings(username="bench", secret="unused", instance_id="bench"),  # noqa: S106
    )
    counter = [0]

    def count(message: Message) -> None:
        counter[0] += 1

    for name in wanted or (None,):
        client.subscribe(name, handler or count)
    return client, counter


def run_ami(
    banner: bytes,
    chunks: list[bytes],
    wanted: tuple[str, ...] | None,
    handler: Callable[[Message], None] | None = None,
) -> tuple[float, int]:
    client, counter = make_client(wanted, handler)
    protocol = AmiProtocol(MemoryReactorClock(), client, "bench-1")
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(banner)
    start = time.perf_counter()
    for chunk in chunks:
        protocol.dataReceived(chunk)
    return time.perf_counter() - start, counter[0]


def check_skip(banner: bytes, chunks: list[bytes]) -> None:
    """Untimed: the skip variant delivers exactly the full variant's wanted events."""
    everything: list[Message] = []
    kept: list[Message] = []
    run_ami(banner, chunks, None, everything.append)
    run_ami(banner, chunks, WANTED, kept.append)
    names = {name.lower() for name in WANTED}
    expected = [m for m in everything if (m.event or "").lower() in names]
    assert kept == expected, (len(kept), len(expected))
    assert {m.event for m in kept} == set(WANTED) - {"UserEvent", "OriginateResponse"}


def summary(values: list[float]) -> tuple[float, float]:
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), quartiles[2] - quartiles[0]


def main() -> None:
    banner, chunks, messages = build_stream()
    size = sum(map(len, chunks))
    print(f"stream: {size / 1e6:.1f} MB, {messages} messages, {len(chunks)} chunks")
    runners: dict[str, Callable[[], tuple[float, int]]] = {
        "A": lambda: run_baseline(banner, chunks),
        "X": lambda: run_ami(banner, chunks, None),
        "S": lambda: run_ami(banner, chunks, WANTED),
    }
    check_skip(banner, chunks)
    for runner in runners.values():
        runner()  # warm-up
    rows: list[tuple[int, float, float, float, float, float]] = []
    for round_number in range(1, ROUNDS + 1):
        a1, counted = runners["A"]()
        x, dispatched = runners["X"]()
        a2, _ = runners["A"]()
        s, kept = runners["S"]()
        # Responses are not events, and the transcript's OriginateResponse
        # carries a foreign ActionID ("o1"), so it is (rightly) not dispatched.
        assert counted == messages, (counted, messages)
        assert 0 < kept < dispatched < messages, (kept, dispatched)
        rows.append((round_number, a1, x, a2, s, kept))
    print(
        f"{'round':>5} {'baseline s':>11} {'full s':>8} {'ratio':>6}"
        f" {'baseline s':>11} {'skip s':>8} {'ratio':>6}"
    )
    full_ratios: list[float] = []
    skip_ratios: list[float] = []
    for round_number, a1, x, a2, s, _ in rows:
        full_ratios.append(a1 / x)
        skip_ratios.append(a2 / s)
        print(
            f"{round_number:>5} {a1:>11.4f} {x:>8.4f} {a1 / x:>6.2f}"
            f" {a2:>11.4f} {s:>8.4f} {a2 / s:>6.2f}"
        )
    ratio, iqr = summary(full_ratios)
    ratio_skip, iqr_skip = summary(skip_ratios)
    median_full = statistics.median(r[2] for r in rows)
    median_base = statistics.median(r[1] for r in rows)
    print(
        f"baseline {messages / median_base:,.0f} messages/s;"
        f" full parse+dispatch {messages / median_full:,.0f} messages/s;"
        f" skip variant dispatched {rows[0][5]} events"
    )
    print(f"python {sys.version.split()[0]}")
    print(
        json.dumps(
            {
                "metric": "ami_parse",
                "ratio": round(ratio, 3),
                "iqr": round(iqr, 3),
                "n": ROUNDS,
                "baseline": "LineOnlyReceiver",
                "ratio_skip": round(ratio_skip, 3),
                "iqr_skip": round(iqr_skip, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
