"""The calls benchmark's figures: Originates per wrk run, latency ratios, output.

This module owns turning the raw measurements of :mod:`benchmarks.calls` (wrk runs,
open-loop runs, the simulator's Originate records, the store's request states) into
the tables and the final JSON line.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.calls_latency import LatencyPair, first_originates
from benchmarks.calls_stack import Originate
from benchmarks.common import (
    BASELINE_TOLERANCE,
    Pair,
    Rounds,
    WrkResult,
    fmt,
    median_iqr,
    print_json_line,
    print_table,
    rounded,
)
from benchmarks.http_pages import RUN_CAPACITY
from callnowd.store.sqlite import CHECKPOINT_EVERY

BASELINE = "A: bare twisted.web"
WRK_AREA = "+1212"  # the numbers of the wrk runs (ONE_STEP_LUA, FORM_POST_LUA)
RATE_AREA = "+1646"  # the numbers of the open-loop runs (rate_load)
WRK_RUN_STRIDE = 100_000
IN_FLIGHT_MARGIN = 1024  # more than any --connections the benchmarks use


@dataclass(frozen=True)
class Accepted:
    """The Originates caused by one wrk run."""

    in_window: int  # received while wrk ran
    total: int  # received at any time
    seconds: float  # how long wrk ran, as seen by the harness

    @property
    def rate(self) -> float:
        """Requests per second that reached the AMI wire while wrk ran."""
        return self.in_window / self.seconds if self.seconds > 0 else 0.0


def accepted_by_run(
    results: Sequence[WrkResult], originates: Sequence[Originate]
) -> dict[str, Accepted]:
    """Count, by wrk tag, the Originates of the numbers each run used."""
    by_run: dict[int, list[float]] = {}
    for originate in originates:
        if originate.phone.startswith(WRK_AREA):
            run = originate.number // WRK_RUN_STRIDE
            by_run.setdefault(run, []).append(originate.at)
    counted: dict[str, Accepted] = {}
    for result in results:
        # wrk stops with up to -c requests numbered but not counted.
        if result.requests + IN_FLIGHT_MARGIN > RUN_CAPACITY:
            print(
                f"warning: run {result.tag} sent {result.requests} requests, more "
                f"than the {RUN_CAPACITY} numbers of a run: its count is wrong "
                "(shorten --duration)"
            )
        times = by_run.get(int(result.tag.lstrip("w") or 0), [])
        window = [t for t in times if result.started <= t <= result.finished]
        counted[result.tag] = Accepted(
            len(window), len(times), result.finished - result.started
        )
    return counted


def report(
    rounds: Rounds,
    pairs: Sequence[LatencyPair],
    originates: Sequence[Originate],
    states: Counter[str],
    options: argparse.Namespace,
) -> None:
    """Print both tables, the checks, and the JSON line last."""
    summary: dict[str, object] = {"metric": "calls"}
    summary.update(_throughput(rounds, originates, options))
    summary.update(_latency(pairs, originates, options))
    stored = sum(states.values())
    print(
        f"store: {stored} requests, by state: "
        + ", ".join(f"{state} {n}" for state, n in states.most_common())
    )
    capacity = sum(n for state, n in states.items() if state == "failed")
    summary["requests_stored"] = stored
    summary["requests_failed"] = capacity
    summary["baseline"] = BASELINE
    summary["owner"] = (
        f"{options.owner}, ring_timeout {options.ring_timeout} s: every request "
        "also ends inside the run"
    )
    if options.least:
        summary["least_checkpoint_every"] = (
            options.least_checkpoint_every or CHECKPOINT_EVERY
        )
    print_json_line(summary)


def _throughput(
    rounds: Rounds, originates: Sequence[Originate], options: argparse.Namespace
) -> dict[str, object]:
    results = [r for ps in rounds.pairs.values() for p in ps for r in (p.variant,)]
    accepted = accepted_by_run([*results, *rounds.warmups.values()], originates)
    runs = [p for ps in rounds.pairs.values() for p in ps]
    a_rps, _ = median_iqr([p.baseline.rps for p in runs])
    print()
    print(
        f"part 1: wrk -t1 -c{options.connections} -d{options.duration:g}s; baseline "
        f"{BASELINE}: median {a_rps or 0:.0f} req/s"
    )
    rows: list[list[object]] = []
    out: dict[str, object] = {}
    missing = 0
    for name, all_pairs in rounds.pairs.items():
        kept = rounds.kept(name)
        ratios = [accepted[p.variant.tag].rate / p.baseline.rps for p in kept]
        ratio, iqr = median_iqr(ratios)
        rate, _ = median_iqr([accepted[p.variant.tag].rate for p in kept])
        http, _ = median_iqr([p.variant.rps for p in kept])
        for p in all_pairs:
            done = p.variant.requests - p.variant.status_errors
            missing += max(0, done - accepted[p.variant.tag].total)
        rows.append(
            [
                name,
                fmt(rate, 0),
                fmt(http, 0),
                fmt(ratio),
                fmt(iqr),
                f"{len(kept)}/{len(all_pairs)}",
            ]
        )
        suffix = "" if name == "post" else f"_{name}"
        out[f"ratio_accepted{suffix}"] = rounded(ratio)
        out[f"iqr_accepted{suffix}"] = rounded(iqr)
        out[f"accepted_rps{suffix}"] = rounded(rate, 0)
        for pair in rounds.discarded(name):
            print(_discarded(name, pair, rounds.baseline_median()))
    print_table(
        ["variant", "Originates/s", "HTTP resp/s", "ratio", "IQR", "rounds kept"],
        rows,
    )
    errors = sum(
        p.variant.status_errors + p.variant.socket_errors + p.baseline.socket_errors
        for p in runs
    )
    if errors:
        print(f"warning: {errors} failed requests (non-2xx/3xx or socket errors)")
    print(
        f"check: responses without an Originate: {missing} "
        "(Originates are counted only while wrk ran; this counts any time)"
    )
    out["n"] = min((len(rounds.kept(n)) for n in rounds.pairs), default=0)
    out["discarded"] = sum(len(rounds.discarded(n)) for n in rounds.pairs)
    out["baseline_rps"] = rounded(a_rps, 0)
    out["failed_requests"] = errors
    out["responses_without_originate"] = missing
    return out


def _discarded(name: str, pair: Pair, median: float) -> str:
    return (
        f"discarded: {name} round {pair.round}, baseline {pair.baseline.rps:.0f} "
        f"req/s is more than {BASELINE_TOLERANCE:.0%} from the median {median:.0f}"
    )


def _latency(
    pairs: Sequence[LatencyPair],
    originates: Sequence[Originate],
    options: argparse.Namespace,
) -> dict[str, object]:
    first = first_originates([o for o in originates if o.phone.startswith(RATE_AREA)])
    figures = [(p, p.figures(first)) for p in pairs]
    a50 = [f["a_p50"] for _, f in figures if f["a_p50"] is not None]
    reference = statistics.median(a50) if a50 else 0.0

    def kept(pair_figures: dict[str, float | None]) -> bool:
        value = pair_figures["a_p50"]
        return value is not None and abs(value - reference) <= (
            BASELINE_TOLERANCE * reference
        )

    print()
    a99, _ = median_iqr([f["a_p99"] for _, f in figures if f["a_p99"] is not None])
    print(
        f"part 2: open loop, {options.rate:g} req/s offered for "
        f"{options.rate_duration:g} s; baseline {BASELINE}: median p50 "
        f"{reference:.2f} ms, p99 {a99 or 0:.2f} ms"
    )
    out: dict[str, object] = {}
    rows: list[list[object]] = []
    names = list(dict.fromkeys(p.variant.name for p in pairs))
    for name in names:
        mine = [(p, f) for p, f in figures if p.variant.name == name]
        good = [f for _, f in mine if kept(f)]

        def med(key: str, rows_: list[dict[str, float | None]] = good) -> float | None:
            values = [f[key] for f in rows_ if f[key] is not None]
            return median_iqr([v for v in values if v is not None])[0]

        p99_ratios = [f["originate_p99_ratio"] for f in good]
        _, p99_iqr = median_iqr([v for v in p99_ratios if v is not None])
        missing = sum(int(f["missing"] or 0) for _, f in mine)
        failed_x = sum(p.variant.failed(303) for p, _ in mine)
        failed_a = sum(p.baseline.failed(200) for p, _ in mine)
        failed = failed_x + failed_a
        if failed:
            odd = Counter(
                s for p, _ in mine for s in p.variant.status if s != 303
            ) + Counter(s for p, _ in mine for s in p.baseline.status if s != 200)
            errors = sum(p.variant.errors + p.baseline.errors for p, _ in mine)
            print(
                f"{name}: without the expected answer: daemon {failed_x}, A {failed_a}"
                f" (statuses {dict(odd)}, None = no answer; socket errors {errors})"
            )
        lag = max((p.variant.lag_p99_ms for p, _ in mine), default=0.0)
        rows.append(
            [
                name,
                fmt(med("a_p50"), 2),
                fmt(med("a_p99"), 2),
                fmt(med("http_p50"), 2),
                fmt(med("http_p99"), 2),
                fmt(med("originate_p50"), 2),
                fmt(med("originate_p99"), 2),
                fmt(med("originate_p99_ratio"), 2),
                f"{len(good)}/{len(mine)}",
            ]
        )
        suffix = "" if name == "post" else f"_{name}"
        out[f"originate_p50_ratio{suffix}"] = rounded(med("originate_p50_ratio"), 2)
        out[f"originate_p99_ratio{suffix}"] = rounded(med("originate_p99_ratio"), 2)
        out[f"originate_p99_iqr{suffix}"] = rounded(p99_iqr, 2)
        out[f"http_p50_ratio{suffix}"] = rounded(med("http_p50_ratio"), 2)
        out[f"http_p99_ratio{suffix}"] = rounded(med("http_p99_ratio"), 2)
        out[f"originate_p99_ms{suffix}"] = rounded(med("originate_p99"), 2)
        out[f"missing_originates{suffix}"] = missing
        out[f"rate_failed{suffix}"] = failed
        if missing or failed:
            print(f"warning: {name}: {missing} without Originate, {failed} failed")
        print(f"{name}: generator lateness p99 up to {lag:.2f} ms (sends, not timing)")
    print_table(
        [
            "variant",
            "A p50",
            "A p99",
            "HTTP p50",
            "HTTP p99",
            "Orig p50",
            "Orig p99",
            "Orig p99 x A",
            "rounds kept",
        ],
        rows,
    )
    print("(milliseconds; Orig = request sent -> Originate parsed by the simulator)")
    out["n_latency"] = min(
        (sum(1 for p, f in figures if p.variant.name == n and kept(f)) for n in names),
        default=0,
    )
    out["offered_rps"] = options.rate
    out["baseline_p99_ms_at_rate"] = rounded(a99, 2)
    return out
