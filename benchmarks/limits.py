"""Benchmark: the rate limits, in process and in Redis, against a bare twisted.web.

Variants, each measured right after its own baseline run (A), interleaved:

* ``reject``: a daemon with the default ``[limits]`` (in-process limiter) flooded
  by wrk with the one-step link of one visitor number from one client. After the
  first few requests every answer is a 429; only 429s are counted.
* ``reject_redis``: the same with ``[limits] redis_url`` pointing at a
  ``redis-server`` started by this benchmark, pinned to the load core. The
  flood's request is blocked, so the daemon answers it from memory and asks
  Redis again once per ``blocked_answer_ttl`` (1 s).
* ``reject_redis_every``: the same with ``blocked_answer_ttl = 0``: every 429 is
  decided by one Lua script call in Redis (what a 429 costs when the daemon does
  not yet know the request is blocked).
* ``accepted_redis``: the full stack of :mod:`benchmarks.calls` (form POSTs, AMI
  mode against the simulator process, a distinct visitor number per request,
  Originates counted at the simulator) with every request checked in Redis and
  every limit raised out of reach, so each check is allowed.
* ``accepted``: the same with the in-process limiter, for comparison.
* ``least_redis``: baseline D (``baseline_dial.py``, see :mod:`benchmarks.calls`)
  with its limits in the same Redis: the plainest server doing once what an
  accepted request needs, so the ceiling for ``accepted_redis``.

Run from the repository root: ``.venv/bin/python benchmarks/limits.py``
(``--help``). Requires ``wrk``, ``taskset`` and ``redis-server``. The last line of
output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.baseline_accept import csrf_token
from benchmarks.calls import (
    FORM_POST_LUA,
    HANGUP_GRACE,
    LEAST_COOKIE,
    start_baseline_dial,
)
from benchmarks.calls_report import Accepted, accepted_by_run
from benchmarks.calls_stack import (
    Simulator,
    form_credentials,
    start_full_stack,
)
from benchmarks.common import (
    BenchError,
    LoadSettings,
    Pair,
    Rounds,
    ServerProcess,
    Target,
    WrkResult,
    fmt,
    interleave,
    load_parser,
    median_iqr,
    parse_rounds,
    pick_cores,
    print_json_line,
    print_table,
    rounded,
    run_in_scratch,
    start_baseline_web,
    wait_idle,
)
from benchmarks.http_pages import CALLNOW_ID
from benchmarks.limits_stack import (
    Meter,
    flood_path,
    limiter_state,
    outage_times,
    prime_flood,
    redis_limits,
    start_flood_daemon,
    start_redis,
)

BASELINE = "A: bare twisted.web"
TARGETS = {"reject": 0.25, "reject_redis": 0.25, "accepted_redis": 0.18}
REJECTS = ("reject", "reject_redis", "reject_redis_every")
REDIS_VARIANTS = ("reject_redis", "reject_redis_every", "accepted_redis")
SUFFIXES = {
    "reject": "429",
    "reject_redis": "429_redis",
    "reject_redis_every": "429_redis_every",
}


def run(workdir: Path, options: argparse.Namespace) -> int:
    """Start everything, interleave the rounds, report, stop everything."""
    cores = pick_cores()
    print(f"server core {cores.server}, load core {cores.load} (+ Redis, simulators)")
    processes: list[ServerProcess | Simulator] = []

    def keep(process: ServerProcess) -> ServerProcess:
        processes.append(process)
        return process

    try:
        baseline = keep(start_baseline_web(cores, workdir))
        redis = keep(start_redis(cores, workdir))
        daemons = {
            "reject": keep(start_flood_daemon(cores, workdir / "reject", "")),
            "reject_redis": keep(
                start_flood_daemon(
                    cores, workdir / "reject_redis", redis_limits(redis.port, "flood")
                )
            ),
            "reject_redis_every": keep(
                start_flood_daemon(
                    cores,
                    workdir / "reject_redis_every",
                    redis_limits(redis.port, "flood_every")
                    + "blocked_answer_ttl = 0.0\n",
                )
            ),
        }
        simulators: list[Simulator] = []
        for name, limits in (
            ("accepted_redis", redis_limits(redis.port, "accepted")),
            ("accepted", ""),
        ):
            (workdir / name).mkdir()
            simulator = Simulator(cores, workdir / name, "ring")
            processes.append(simulator)
            simulators.append(simulator)
            daemons[name] = keep(
                start_full_stack(
                    cores, workdir / name, simulator, options.ring_timeout, limits
                )
            )
        (workdir / "least_redis").mkdir()
        simulator = Simulator(cores, workdir / "least_redis", "ring", name="sim-d")
        processes.append(simulator)
        simulators.append(simulator)
        daemons["least_redis"] = keep(
            start_baseline_dial(
                cores,
                workdir / "least_redis",
                simulator,
                options.ring_timeout,
                f"redis://127.0.0.1:{redis.port}/0",
            )
        )
        for name in REDIS_VARIANTS:
            state = limiter_state(daemons[name].port)
            if state != "redis ok":
                raise BenchError(f"{name}: the limiter is {state!r}, not 'redis ok'")
        primed = {name: prime_flood(daemons[name].port) for name in REJECTS}
        targets = variants(daemons)
        pids = {name: d.pid for name, d in daemons.items()}
        pids["redis"] = redis.pid
        watched = [*pids.values(), *(s.server.pid for s in simulators)]
        wait_idle(watched)
        meter = Meter(pids, redis.port)

        def settle(target: Target, measured: WrkResult) -> None:
            if target.name.startswith(("accepted", "least")):
                time.sleep(options.ring_timeout + HANGUP_GRACE + 0.5)
            wait_idle(watched)
            meter.record(measured.tag)

        settings = LoadSettings(
            duration=options.duration, connections=options.connections
        )
        began = time.monotonic()
        a = Target("A", f"http://127.0.0.1:{baseline.port}/")
        rounds = interleave(
            a, targets, options.rounds, settings, cores, workdir, after=settle
        )
        print(f"measured in {time.monotonic() - began:.0f} s")
        accepted = accepted_by_run(
            [r for ps in rounds.pairs.values() for p in ps for r in (p.variant,)]
            + list(rounds.warmups.values()),
            [o for s in simulators for o in s.originates()],
        )
        seen = Observed(
            primed,
            {n: limiter_state(daemons[n].port, wait=5) for n in REDIS_VARIANTS},
            {n: outage_times(daemons[n].output) for n in REDIS_VARIANTS},
        )
    finally:
        for process in reversed(processes):
            process.stop()
    report(rounds, accepted, meter, options, seen)
    return 0


def variants(daemons: dict[str, ServerProcess]) -> list[Target]:
    """The wrk targets: the floods (429s counted) and the form-POST loads."""
    targets = []
    for name in REJECTS:
        url = f"http://127.0.0.1:{daemons[name].port}{flood_path()}"
        targets.append(Target(name, url, count_status=429))
    for name in ("accepted_redis", "accepted", "least_redis"):
        port = daemons[name].port
        if name == "least_redis":
            cookie, csrf = LEAST_COOKIE, csrf_token(LEAST_COOKIE)
        else:
            cookie, csrf = form_credentials(port)
        lua = (
            FORM_POST_LUA.replace("{callnow_id}", CALLNOW_ID)
            .replace("{cookie}", cookie)
            .replace("{csrf}", csrf)
        )
        targets.append(
            Target(name, f"http://127.0.0.1:{port}/callnow/{CALLNOW_ID}", lua)
        )
    return targets


# -- output ------------------------------------------------------------------------


def report(
    rounds: Rounds,
    accepted: dict[str, Accepted],
    meter: Meter,
    options: argparse.Namespace,
    seen: Observed,
) -> None:
    """Print the table and the checks, then the JSON line last."""

    def rejected(pair: Pair) -> float:
        return pair.variant.counted_rps

    def originated(pair: Pair) -> float:
        return accepted[pair.variant.tag].rate

    every = [p for ps in rounds.pairs.values() for p in ps]
    a_rps, _ = median_iqr([p.baseline.rps for p in every])
    print()
    print(
        f"wrk -t1 -c{options.connections} -d{options.duration:g}s; baseline "
        f"{BASELINE}: median {a_rps or 0:.0f} req/s"
    )
    summary: dict[str, object] = {"metric": "limits"}
    rows: list[list[object]] = []
    for name, pairs in rounds.pairs.items():
        kept = rounds.kept(name)
        counted = rejected if name in REJECTS else originated
        ratio, iqr = median_iqr([counted(p) / p.baseline.rps for p in kept])
        rate, _ = median_iqr([counted(p) for p in kept])
        http, _ = median_iqr([p.variant.rps for p in kept])
        p99, _ = median_iqr([p.variant.p99_ms for p in kept])
        per = _cpu_per(name, pairs, meter, counted)
        suffix = SUFFIXES.get(name, name)
        summary[f"ratio_{suffix}"] = rounded(ratio)
        summary[f"iqr_{suffix}"] = rounded(iqr)
        summary[f"per_s_{suffix}"] = rounded(rate, 0)
        summary[f"daemon_cpu_us_{suffix}"] = rounded(per[0], 0)
        summary[f"redis_cpu_us_{suffix}"] = rounded(per[1], 1)
        target = TARGETS.get(name)
        rows.append(
            [
                name,
                "429/s" if name in REJECTS else "Originates/s",
                fmt(rate, 0),
                fmt(http, 0),
                fmt(ratio),
                fmt(iqr),
                "-" if target is None else f">= {target}",
                fmt(p99, 1),
                fmt(per[0], 0),
                fmt(per[1], 1),
                f"{len(kept)}/{len(pairs)}",
            ]
        )
    print_table(
        [
            "variant",
            "counted",
            "per s",
            "HTTP req/s",
            "ratio",
            "IQR",
            "target",
            "p99 ms",
            "daemon CPU us",
            "Redis CPU us",
            "kept",
        ],
        rows,
    )
    summary.update(_checks(rounds, accepted, meter, seen))
    summary["n"] = min(len(rounds.kept(name)) for name in rounds.pairs)
    summary["discarded"] = sum(len(rounds.discarded(name)) for name in rounds.pairs)
    summary["baseline"] = BASELINE
    summary["baseline_rps"] = rounded(a_rps, 0)
    print_json_line(summary)


def _cpu_per(
    name: str, pairs: Sequence[Pair], meter: Meter, counted: Callable[[Pair], float]
) -> tuple[float | None, float | None]:
    """Median CPU microseconds of daemon ``name`` and of Redis per counted answer."""
    daemon: list[float] = []
    redis: list[float] = []
    for pair in pairs:
        answers = counted(pair) * pair.variant.seconds
        used = meter.cpu.get(pair.variant.tag)
        if used is None or answers <= 0:
            continue
        daemon.append(used[name] / answers * 1e6)
        if name in REDIS_VARIANTS or name == "least_redis":
            redis.append(used["redis"] / answers * 1e6)
    return median_iqr(daemon)[0], median_iqr(redis)[0]


@dataclass(frozen=True)
class Observed:
    """What was seen besides the wrk runs, to check the figures mean what they say.

    Attributes:
        primed: the statuses of the flood link before the rounds, by variant.
        states: the Redis daemons' limiter state after the rounds.
        outages: when (``time.monotonic()``) each Redis daemon fell back.
    """

    primed: dict[str, list[int]]
    states: dict[str, str]
    outages: dict[str, list[float]]


def _runs(rounds: Rounds, name: str) -> list[WrkResult]:
    return [p.variant for p in rounds.pairs[name]] + [rounds.warmups[name]]


def _checks(
    rounds: Rounds, accepted: dict[str, Accepted], meter: Meter, seen: Observed
) -> dict[str, object]:
    """Print and return what says the figures measure what they claim."""
    out: dict[str, object] = {}
    for name in REJECTS:
        runs = _runs(rounds, name)
        others = sum(r.requests - r.counted for r in runs)
        print(
            f"{name}: primed with {seen.primed[name]}; then "
            f"{sum(r.counted for r in runs)} 429s and {others} other answers or errors"
        )
        out[f"non_429_{name}"] = others
    mid_run = 0
    for name in REDIS_VARIANTS:
        runs = _runs(rounds, name)
        calls = sum(meter.calls[r.tag][0] for r in runs if r.tag in meter.calls)
        usec = sum(meter.calls[r.tag][1] for r in runs if r.tag in meter.calls)
        answers = sum(r.requests for r in runs)
        # A fallback within wrk's last 0.3 s comes from wrk closing connections
        # with requests in flight; one earlier means answers came from the fallback.
        during = [
            t
            for t in seen.outages[name]
            for r in runs
            if r.started < t < r.finished - 0.3
        ]
        mid_run += len(during)
        print(
            f"{name}: {calls} Redis script calls for {answers} answers "
            f"({calls / max(answers, 1):.3f} per answer), "
            f"{usec / max(calls, 1):.1f} us each as Redis timed them; "
            f"{len(seen.outages[name])} fallbacks logged, {len(during)} during a "
            f"run; limiter after the rounds: {seen.states[name]}"
        )
        out[f"redis_calls_per_answer_{name}"] = rounded(calls / max(answers, 1))
        out[f"redis_us_per_call_{name}"] = rounded(usec / max(calls, 1), 1)
    runs = _runs(rounds, "least_redis")
    calls = sum(meter.calls[r.tag][0] for r in runs if r.tag in meter.calls)
    answers = sum(r.requests for r in runs)
    print(
        f"least_redis: {calls} Redis script calls for {answers} answers "
        f"({calls / max(answers, 1):.3f} per answer)"
    )
    out["redis_calls_per_answer_least_redis"] = rounded(calls / max(answers, 1))
    missing = 0
    for name in ("accepted_redis", "accepted", "least_redis"):
        for r in _runs(rounds, name):
            missing += max(0, r.requests - r.status_errors - accepted[r.tag].total)
    print(f"accepted: 303s without an Originate at the simulator: {missing}")
    for name in rounds.pairs:
        for pair in rounds.discarded(name):
            print(
                f"discarded: {name} round {pair.round}, baseline "
                f"{pair.baseline.rps:.0f} req/s vs median {rounds.baseline_median():.0f}"
            )
    out["redis_fallbacks"] = sum(len(t) for t in seen.outages.values())
    out["redis_fallbacks_mid_run"] = mid_run
    out["responses_without_originate"] = missing
    return out


def main(argv: list[str]) -> int:
    """Run the benchmark; 0 on success, 1 when it cannot run.

    Args:
        argv: command-line arguments (see ``--help``).

    Returns:
        The exit status.
    """
    parser = load_parser(__doc__, 3, "rounds (>= 3)")
    parser.add_argument("--ring-timeout", type=int, default=1, help="owner rings, s")
    options = parse_rounds(parser, argv)
    return run_in_scratch(
        "callnowd-bench-limits-", lambda workdir: run(workdir, options)
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
