"""Benchmark: callback requests through the full stack, to the AMI Originate.

The full stack: HTTP request -> validation -> SQLite store write -> call flow ->
AMI ``Originate`` written to an Asterisk simulator in its own process (loopback TCP,
pinned with the load generator, so its CPU is not the daemon's). The daemon runs in
``asterisk.mode = "ami"``; every simulated owner phone rings until the Originate's
timeout (``asterisk.ring_timeout``, 1 s by default), so every request also ends
(OriginateResponse, Hangup, owner_no_answer) inside the measurement, as it would in
steady state. Baseline A is a bare twisted.web GET in its own process.

1. Throughput (closed loop, ``wrk -t1 -c32``): ``post`` (the form
   ``POST /callnow/bench``, one CSRF cookie and token for every POST) and
   ``one_step`` (``GET /callnow/index.php?call=…``), each request with a number no
   other used. Counted: requests whose Originate reached the simulator while wrk ran.
2. Latency at a fixed offered rate (open loop, 500 req/s by default, own generator):
   time from sending a request to the simulator parsing its Originate, against A's
   HTTP response latency at the same rate.

Both parts also load baseline D (``baseline_dial.py``, variant ``least``; leave it
out with ``--no-least``): the same form POST served by the plainest code that does
once what an accepted request needs (CSRF, destination check, rate limits, request
row and events, Originate, UserEvents, log lines, the owner's no-answer read back
and stored), against a simulator of its own. No daemon with those features can do
better with these libraries, so D / A is the ceiling the daemon's ratio is read
against.

Run from the repository root: ``.venv/bin/python benchmarks/calls.py`` (``--help``).
Requires ``wrk`` and ``taskset``. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.baseline_accept import csrf_token
from benchmarks.calls_latency import LatencyPair, RateRun, RateSpec, run_rate
from benchmarks.calls_report import report
from benchmarks.calls_stack import (
    AMI_SECRET,
    Simulator,
    form_credentials,
    start_full_stack,
)
from benchmarks.common import (
    BenchError,
    Cores,
    LoadSettings,
    ServerProcess,
    Target,
    WrkResult,
    interleave,
    load_parser,
    pick_cores,
    require_wrk,
    scratch_dir,
    start_baseline,
    start_baseline_web,
    wait_idle,
)
from benchmarks.http_pages import CALLNOW_ID, ONE_STEP_LUA

# The form POST, numbered like ONE_STEP_LUA (run tag "w<k>", +1 212 …), so the
# Originate of each request can be traced back to its wrk run.
FORM_POST_LUA = (
    ONE_STEP_LUA.split("function request()")[0]
    + """
local headers = {
  ["Cookie"] = "callnow_csrf={cookie}",
  ["Content-Type"] = "application/x-www-form-urlencoded",
}
function request()
  local n = run * 100000 + 2 * counter + ((thread_number or 1) - 1) % 2
  counter = counter + 1
  local exchange = 200 + math.floor(n / 10000) % 800
  local body = string.format("csrf={csrf}&phone=%%2B1212%03d%04d&name=Bench+%s",
    exchange, n % 10000, tag)
  return wrk.format("POST", "/callnow/{callnow_id}", headers, body)
end
"""
)
# Numbers of the open-loop runs: +1 646 …, run k from k * 100000 (rate_load).
RATE_RUN_STRIDE = 100_000
# Baseline D's CSRF cookie; its token is baseline_accept.csrf_token(LEAST_COOKIE).
LEAST_COOKIE = "bGVhc3QtZGlhbC1iZW5jaC1ub25jZS0x"
HANGUP_GRACE = 2.0  # callnowd.ami.pbx.watch_calls reacts to a Hangup this late


def main(argv: list[str]) -> int:
    """Run the benchmark; 0 on success, 1 when it cannot run.

    Args:
        argv: command-line arguments (see ``--help``).

    Returns:
        The exit status.
    """
    parser = load_parser(__doc__, 3, "throughput rounds")
    parser.add_argument("--latency-rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0, help="offered req/s")
    parser.add_argument("--rate-duration", type=float, default=5.0)
    parser.add_argument(
        "--latency-one-step",
        action="store_true",
        help="also measure the one-step GET at the fixed rate (longer run)",
    )
    parser.add_argument("--ring-timeout", type=int, default=1, help="owner rings, s")
    parser.add_argument(
        "--owner", default="ring", help="simulated owner script (sim_config syntax)"
    )
    parser.add_argument(
        "--no-least",
        dest="least",
        action="store_false",
        help="leave out baseline D (baseline_dial.py), the ceiling",
    )
    parser.add_argument(
        "--least-checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="D checkpoints its WAL every N writes (default: as the daemon does)",
    )
    options = parser.parse_args(argv)
    if options.rounds < 3 or options.latency_rounds < 3:
        parser.error("--rounds and --latency-rounds must be at least 3")
    if (
        options.least_checkpoint_every is not None
        and options.least_checkpoint_every < 1
    ):
        parser.error("--least-checkpoint-every must be at least 1")
    try:
        require_wrk()
        with scratch_dir("callnowd-bench-calls-") as scratch:
            return run(Path(scratch), options)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def run(workdir: Path, options: argparse.Namespace) -> int:
    """Start the processes, run both parts, report, stop everything."""
    cores: Cores = pick_cores()
    print(f"server core {cores.server}, load core {cores.load} (+ simulator)")
    processes: list[Simulator | ServerProcess] = []
    try:
        baseline = start_baseline_web(cores, workdir)
        processes.append(baseline)
        simulator = Simulator(cores, workdir, options.owner)
        processes.append(simulator)
        simulators = [simulator]
        daemon = start_full_stack(cores, workdir, simulator, options.ring_timeout)
        processes.append(daemon)
        cookie, csrf = form_credentials(daemon.port)
        idle = {"post": [daemon.pid, simulator.server.pid]}
        idle["one_step"] = idle["post"]
        least = None
        if options.least:
            least_simulator = Simulator(cores, workdir, options.owner, name="sim-d")
            processes.append(least_simulator)
            least = start_baseline_dial(
                cores,
                workdir,
                least_simulator,
                options.ring_timeout,
                checkpoint_every=options.least_checkpoint_every,
            )
            processes.append(least)
            simulators.append(least_simulator)
            idle["least"] = [least.pid, least_simulator.server.pid]

        def settle(target: Target, measured: WrkResult | None = None) -> None:
            if target.name != "A":
                time.sleep(options.ring_timeout + HANGUP_GRACE + 0.5)
            wait_idle(idle.get(target.name, idle["post"]))

        base = f"http://127.0.0.1:{daemon.port}"
        a = Target("A", f"http://127.0.0.1:{baseline.port}/")
        variants = [
            Target(
                "post",
                f"{base}/callnow/{CALLNOW_ID}",
                FORM_POST_LUA.replace("{callnow_id}", CALLNOW_ID)
                .replace("{cookie}", cookie)
                .replace("{csrf}", csrf),
            ),
            Target(
                "one_step",
                f"{base}/callnow/index.php",
                ONE_STEP_LUA.replace("{callnow_id}", CALLNOW_ID),
            ),
        ]
        if least is not None:
            variants.append(
                Target(
                    "least",
                    f"http://127.0.0.1:{least.port}/callnow/{CALLNOW_ID}",
                    FORM_POST_LUA.replace("{callnow_id}", CALLNOW_ID)
                    .replace("{cookie}", LEAST_COOKIE)
                    .replace("{csrf}", csrf_token(LEAST_COOKIE)),
                )
            )
        settings = LoadSettings(
            duration=options.duration, connections=options.connections
        )
        began = time.monotonic()
        print("part 1: throughput (closed loop)")
        rounds = interleave(
            a, variants, options.rounds, settings, cores, workdir, after=settle
        )
        print(f"part 2: latency at {options.rate:g} req/s offered (open loop)")
        specs = [
            RateSpec("A", "get", baseline.port, options.rate, options.rate_duration),
            RateSpec(
                "post",
                "post",
                daemon.port,
                options.rate,
                options.rate_duration,
                CALLNOW_ID,
                cookie,
                csrf,
            ),
            RateSpec(
                "one_step",
                "one_step",
                daemon.port,
                options.rate,
                options.rate_duration,
                CALLNOW_ID,
            ),
        ]
        if not options.latency_one_step:
            specs.pop()
        if least is not None:
            specs.append(
                RateSpec(
                    "least",
                    "post",
                    least.port,
                    options.rate,
                    options.rate_duration,
                    CALLNOW_ID,
                    LEAST_COOKIE,
                    csrf_token(LEAST_COOKIE),
                )
            )
        pairs = latency_rounds(specs, options.latency_rounds, cores, workdir, settle)
        originates = [o for sim in simulators for o in sim.originates()]
        print(f"measured in {time.monotonic() - began:.0f} s")
        requests = stored_count(workdir)
    finally:
        for process in reversed(processes):
            process.stop()
    report(rounds, pairs, originates, requests, options)
    return 0


def start_baseline_dial(
    cores: Cores,
    workdir: Path,
    simulator: Simulator,
    ring_timeout: int,
    redis_url: str | None = None,
    checkpoint_every: int | None = None,
) -> ServerProcess:
    """Start baseline D against ``simulator``, pinned to the server core.

    With ``redis_url`` its limits are evaluated in that Redis; with
    ``checkpoint_every`` it checkpoints its WAL every so many writes instead of as
    often as the daemon's store does.
    """
    return start_baseline(
        cores,
        workdir,
        "baseline D",
        "baseline_dial.py",
        [
            str(simulator.port),
            AMI_SECRET,
            str(workdir / "least.sqlite3"),
            str(workdir / "least.log"),
            str(ring_timeout),
            *([redis_url] if redis_url else []),
            *([f"--checkpoint-every={checkpoint_every}"] if checkpoint_every else []),
        ],
    )


def latency_rounds(
    specs: list[RateSpec],
    rounds: int,
    cores: Cores,
    workdir: Path,
    settle: Callable[[Target], None],
) -> list[LatencyPair]:
    """A, X1, A, X2, ... at the same offered rate, after one short warm-up of each."""
    baseline, *variants = specs
    runs = 0

    def once(spec: RateSpec, duration: float | None = None) -> RateRun:
        nonlocal runs
        runs += 1
        if duration is not None:
            spec = dataclasses.replace(spec, duration=duration)
        measured = run_rate(spec, cores, workdir, runs, runs * RATE_RUN_STRIDE)
        settle(Target(spec.name, ""))
        return measured

    for spec in specs:
        once(spec, 1.0)
    pairs: list[LatencyPair] = []
    for index in range(1, rounds + 1):
        for spec in variants:
            pair = LatencyPair(index, once(baseline), once(spec))
            pairs.append(pair)
            print(
                f"round {index}/{rounds} {spec.name:>10}: "
                f"A p99 {_p99(pair.baseline):.2f} ms, "
                f"X HTTP p99 {_p99(pair.variant):.2f} ms"
            )
    return pairs


def _p99(run: RateRun) -> float:
    values = sorted(run.http_ms())
    return values[int(0.99 * (len(values) - 1))] if values else float("nan")


def stored_count(workdir: Path) -> Counter[str]:
    """How many requests the store holds, by state."""
    database = workdir / "callnow.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT state, count(*) FROM call_requests GROUP BY state"
        ).fetchall()
    return Counter({str(state): int(n) for state, n in rows})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
