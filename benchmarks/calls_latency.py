"""Latency at a fixed offered rate: open-loop runs and request -> Originate timing.

This module owns running :mod:`benchmarks.rate_load` pinned to the load core, and
turning its per-request send times, plus the simulator's Originate receive times
(both CLOCK_MONOTONIC), into latencies: baseline A's HTTP response latency, the
daemon's HTTP response latency, and the daemon's request -> Originate latency
(matched by the visitor's number, which is the Originate's CallerID number).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.calls_stack import Originate
from benchmarks.common import ROOT, BenchError, Cores


@dataclass(frozen=True)
class RateSpec:
    """One open-loop load: what to send, how fast, for how long."""

    name: str
    kind: str  # get, one_step or post
    port: int
    rate: float
    duration: float
    callnow_id: str = ""
    cookie: str = ""
    csrf: str = ""


@dataclass(frozen=True)
class RateRun:
    """What one open-loop run measured.

    Attributes:
        name: the variant.
        first: the number index of its first request.
        sent: per request, when it was sent (None if never).
        done: per request, when its response was complete (None if none came).
        status: per request, the HTTP status (0 if none).
        phones: per request, the visitor's number ("" for plain GETs).
        lag_p99_ms: the generator's own lateness, p99.
        opened: connections opened during the run (the pool ran dry).
        errors: connections lost with a request outstanding.
    """

    name: str
    first: int
    sent: list[float | None]
    done: list[float | None]
    status: list[int]
    phones: list[str]
    lag_p99_ms: float
    opened: int
    errors: int

    def http_ms(self) -> list[float]:
        """Response latencies in ms of the requests that got one."""
        return [
            (d - s) * 1000
            for s, d in zip(self.sent, self.done, strict=True)
            if s is not None and d is not None
        ]

    def failed(self, expected: int) -> int:
        """Requests without a response of status ``expected``."""
        return sum(1 for s in self.status if s != expected)

    def originate_ms(self, originates: dict[str, float]) -> tuple[list[float], int]:
        """Request -> Originate latencies in ms, and how many had no Originate."""
        found: list[float] = []
        missing = 0
        for phone, sent in zip(self.phones, self.sent, strict=True):
            at = originates.get(phone)
            if sent is None:
                continue
            if at is None:
                missing += 1
            else:
                found.append((at - sent) * 1000)
        return found, missing


def run_rate(
    spec: RateSpec, cores: Cores, workdir: Path, run: int, first: int
) -> RateRun:
    """Run :mod:`benchmarks.rate_load` once, pinned to the load core.

    Raises:
        BenchError: the generator failed.
    """
    out = workdir / f"rate-{run}.json"
    argv = [
        *cores.prefix(cores.load),
        sys.executable,
        str(ROOT / "benchmarks" / "rate_load.py"),
        "--port",
        str(spec.port),
        "--kind",
        spec.kind,
        "--rate",
        f"{spec.rate:g}",
        "--duration",
        f"{spec.duration:g}",
        "--out",
        str(out),
        "--first",
        str(first),
        "--tag",
        f"r{run}",
    ]
    if spec.kind != "get":
        argv += ["--callnow-id", spec.callnow_id]
    if spec.kind == "post":
        # One argument each: a random value may start with "-".
        argv += [f"--cookie={spec.cookie}", f"--csrf={spec.csrf}"]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=spec.duration + 60,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"rate_load failed: {result.stderr.strip()[-2000:]}")
    data = json.loads(out.read_text())
    return RateRun(
        name=spec.name,
        first=first,
        sent=data["sent"],
        done=data["done"],
        status=data["status"],
        phones=data["phone"],
        lag_p99_ms=float(data["lag_p99_ms"]),
        opened=int(data["opened"]),
        errors=int(data["errors"]),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def first_originates(originates: Sequence[Originate]) -> dict[str, float]:
    """The time of the first Originate of each visitor number."""
    first: dict[str, float] = {}
    for originate in originates:
        first.setdefault(originate.phone, originate.at)
    return first


@dataclass(frozen=True)
class LatencyPair:
    """One round of one variant: the baseline A run before it and the variant."""

    round: int
    baseline: RateRun
    variant: RateRun

    def figures(self, originates: dict[str, float]) -> dict[str, float | None]:
        """A's and the variant's p50/p99, and their ratios, in ms."""
        a = self.baseline.http_ms()
        http = self.variant.http_ms()
        wire, missing = self.variant.originate_ms(originates)
        out: dict[str, float | None] = {
            "a_p50": percentile(a, 50),
            "a_p99": percentile(a, 99),
            "http_p50": percentile(http, 50),
            "http_p99": percentile(http, 99),
            "originate_p50": percentile(wire, 50),
            "originate_p99": percentile(wire, 99),
            "missing": float(missing),
        }
        for figure in ("http", "originate"):
            for q in ("p50", "p99"):
                value, base = out[f"{figure}_{q}"], out[f"a_{q}"]
                out[f"{figure}_{q}_ratio"] = (
                    value / base if value is not None and base else None
                )
        return out
