"""Interleaved rounds against a baseline, and their statistics.

This module owns the PERFORMANCE.md method: A, X1, A, X2, ... round after round,
each variant paired with the baseline run measured right before it, rounds whose
baseline is more than 15 % from the median discarded, median and IQR.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.procs import Cores
from benchmarks.wrk import LoadSettings, Target, WrkResult, run_wrk

BASELINE_TOLERANCE = 0.15


@dataclass(frozen=True)
class Pair:
    """A variant run and the baseline run measured right before it."""

    round: int
    baseline: WrkResult
    variant: WrkResult


@dataclass
class Rounds:
    """All pairs of an interleaved run, by variant name."""

    pairs: dict[str, list[Pair]] = field(default_factory=dict)
    warmups: dict[str, WrkResult] = field(default_factory=dict)

    def baseline_median(self) -> float:
        """The median baseline req/s over every baseline run."""
        values = [p.baseline.rps for ps in self.pairs.values() for p in ps]
        return statistics.median(values) if values else 0.0

    def kept(self, name: str, tolerance: float = BASELINE_TOLERANCE) -> list[Pair]:
        """The pairs of ``name`` whose baseline is within ``tolerance`` of the median."""
        reference = self.baseline_median()
        return [
            p
            for p in self.pairs.get(name, [])
            if reference > 0
            and abs(p.baseline.rps - reference) <= tolerance * reference
        ]

    def discarded(self, name: str, tolerance: float = BASELINE_TOLERANCE) -> list[Pair]:
        """The pairs of ``name`` dropped for an outlying baseline."""
        kept = self.kept(name, tolerance)
        return [p for p in self.pairs.get(name, []) if p not in kept]


def interleave(
    baseline: Target,
    variants: Sequence[Target],
    rounds: int,
    settings: LoadSettings,
    cores: Cores,
    workdir: Path,
    progress: Callable[[str], None] = print,
    after: Callable[[Target, WrkResult], None] | None = None,
) -> Rounds:
    """Run A, X1, A, X2, ... for ``rounds`` rounds after one untimed warm-up of each.

    Every wrk run gets a distinct tag ``w<n>`` for its Lua script. ``after``, if
    given, is called after each run and its ``settings.settle`` pause, e.g. to wait
    until the servers have finished the work the run left them.
    """
    runs = 0

    def once(target: Target, duration: float | None = None) -> WrkResult:
        nonlocal runs
        runs += 1
        load = settings
        if duration is not None:
            load = dataclasses.replace(settings, duration=duration)
        measured = run_wrk(target, load, cores, workdir, f"w{runs}")
        time.sleep(settings.settle)
        if after is not None:
            after(target, measured)
        return measured

    result = Rounds({v.name: [] for v in variants})
    for target in (baseline, *variants):
        result.warmups[target.name] = once(target, min(2.0, settings.duration))
    for index in range(1, rounds + 1):
        for variant in variants:
            a = once(baseline)
            x = once(variant)
            result.pairs[variant.name].append(Pair(index, a, x))
            progress(
                f"round {index}/{rounds} {variant.name:>10}: "
                f"A {a.rps:8.0f} req/s, X {x.rps:8.0f} req/s, ratio {x.rps / a.rps:.3f}"
            )
    return result


def median_iqr(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The median and interquartile range of ``values`` (``None`` when empty)."""
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q3 - q1


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``value`` rounded for the JSON line, keeping ``None``."""
    return None if value is None else round(value, digits)
