"""Benchmark: the daemon's public HTTP pages against a bare twisted.web (baseline A).

Variants, each measured right after its own baseline run, interleaved round by round:

* ``page``: ``GET /callnow/bench``, the public form (template render, CSRF cookie).
* ``one_step``: ``GET /callnow/index.php?call=bench&myname=…&phone=…`` with a
  different valid phone number (+1212XXXXXXX) per request, so neither the 10-minute
  idempotency window nor joining an open request applies: every request validates
  the number, writes one SQLite row plus one event, answers 303, and hands the new
  request to the daemon's dispatcher (whatever the tree wires there).

Run from the repository root: ``.venv/bin/python benchmarks/http_pages.py``
(``--help`` for rounds and durations). Requires ``wrk`` and ``taskset``. The last
line of output is one JSON object with the figures.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from benchmarks.common import (
    BASELINE_TOLERANCE,
    Cores,
    LoadSettings,
    Pair,
    Rounds,
    ServerProcess,
    Target,
    callnowctl,
    fmt,
    generous_limits,
    interleave,
    median_iqr,
    pick_cores,
    print_json_line,
    print_table,
    rounded,
    run_in_scratch,
    settled_rounds,
    start_baseline_web,
    start_daemon,
)

CALLNOW_ID = "bench"
BASELINE = "A: bare twisted.web"
ONE_STEP_NOTE = (
    "one_step writes one SQLite row + one event per request, then hands it to the"
    " dispatcher (in-process call flow and simulator, if wired)"
)

# Every request carries a number no earlier request of the benchmark used, so
# neither the one-step idempotency window nor joining an open request of the same
# visitor applies: run k (its tag "w<k>") and wrk thread t (up to 2) use
# n = k * 100000 + 2 * counter + (t - 1), and n picks +1 212 <200 + n / 10^4 mod 800>
# <n mod 10^4>, all valid US numbers (80 runs before the exchanges wrap). A run has
# room for 50,000 requests (the benchmarks use one thread); RUN_CAPACITY. The name
# carries the run's tag too.
RUN_CAPACITY = 50_000
ONE_STEP_LUA = """
local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_number", next_thread)
end

local tag = "w0"
local run = 0
local counter = 0
function init(args)
  if args[1] then tag = args[1] end
  run = tonumber(tag:match("%d+")) or 0
end

function request()
  local n = run * 100000 + 2 * counter + ((thread_number or 1) - 1) % 2
  counter = counter + 1
  local exchange = 200 + math.floor(n / 10000) % 800
  local path = string.format(
    "/callnow/index.php?call=%s&myname=Bench%%20%s&phone=%%2B1212%03d%04d",
    "{callnow_id}", tag, exchange, n % 10000)
  return wrk.format("GET", path)
end
"""


def provision(workdir: Path) -> None:
    """Add extension 100 with CallNow ID ``bench`` and no CAPTCHA (one-step on)."""
    callnowctl(
        workdir,
        "extension",
        "add",
        "100",
        "--name",
        "Bench",
        "--external",
        "+12125550100",
        "--dial",
        "PJSIP/100",
        "--callnow-id",
        CALLNOW_ID,
    )
    callnowctl(workdir, "callnow", "set", "100", "--captcha", "no")


def stored_requests(database: Path) -> tuple[int, int]:
    """The numbers of call requests and request events in the daemon's store."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        requests = db.execute("SELECT count(*) FROM call_requests").fetchone()[0]
        events = db.execute("SELECT count(*) FROM request_events").fetchone()[0]
    return int(requests), int(events)


def summarise(rounds: Rounds, name: str) -> dict[str, float | int | None]:
    """Median/IQR of the throughput ratio and median latency ratios of ``name``."""
    kept = rounds.kept(name)
    ratio, iqr = median_iqr([p.variant.rps / p.baseline.rps for p in kept])
    p50, _ = median_iqr([_ratio(p, "p50_ms") for p in kept])
    p99, _ = median_iqr([_ratio(p, "p99_ms") for p in kept])
    rps, _ = median_iqr([p.variant.rps for p in kept])
    x50, _ = median_iqr([p.variant.p50_ms for p in kept])
    x99, _ = median_iqr([p.variant.p99_ms for p in kept])
    return {
        "ratio": ratio,
        "iqr": iqr,
        "p50_ratio": p50,
        "p99_ratio": p99,
        "rps": rps,
        "p50_ms": x50,
        "p99_ms": x99,
        "n": len(kept),
        "discarded": len(rounds.pairs[name]) - len(kept),
    }


def _ratio(pair: Pair, figure: str) -> float:
    base = float(getattr(pair.baseline, figure))
    return float(getattr(pair.variant, figure)) / base if base > 0 else 0.0


def report(rounds: Rounds, settings: LoadSettings, stored: tuple[int, int]) -> None:
    """Print the table, the checks, and the JSON line last."""
    names = list(rounds.pairs)
    runs = [p for ps in rounds.pairs.values() for p in ps]
    a_rps, _ = median_iqr([p.baseline.rps for p in runs])
    a50, _ = median_iqr([p.baseline.p50_ms for p in runs])
    a99, _ = median_iqr([p.baseline.p99_ms for p in runs])
    summaries = {name: summarise(rounds, name) for name in names}
    print()
    print(
        f"wrk -t{settings.threads} -c{settings.connections} -d{settings.duration:g}s; "
        f"baseline {BASELINE}: median {a_rps:.0f} req/s, p50 {a50:.2f} ms, "
        f"p99 {a99:.2f} ms"
    )
    rows = []
    for name, s in summaries.items():
        rows.append(
            [
                name,
                fmt(s["rps"], 0),
                fmt(s["ratio"]),
                fmt(s["iqr"]),
                fmt(s["p50_ms"], 2),
                fmt(s["p50_ratio"], 2),
                fmt(s["p99_ms"], 2),
                fmt(s["p99_ratio"], 2),
                f"{s['n']}/{len(rounds.pairs[name])}",
            ]
        )
    print_table(
        [
            "variant",
            "req/s",
            "ratio",
            "IQR",
            "p50 ms",
            "p50 x A",
            "p99 ms",
            "p99 x A",
            "rounds kept",
        ],
        rows,
    )
    for name in names:
        for pair in rounds.discarded(name):
            print(
                f"discarded: {name} round {pair.round}, baseline "
                f"{pair.baseline.rps:.0f} req/s is more than "
                f"{BASELINE_TOLERANCE:.0%} from the median {rounds.baseline_median():.0f}"
            )
    errors = sum(
        p.variant.status_errors + p.variant.socket_errors + p.baseline.socket_errors
        for p in runs
    )
    if errors:
        print(f"warning: {errors} failed requests (non-2xx/3xx or socket errors)")
    one_step_done = sum(p.variant.requests for p in rounds.pairs.get("one_step", []))
    warmup = rounds.warmups.get("one_step")
    one_step_done += warmup.requests if warmup is not None else 0
    # A response is only sent once its row is committed; rows can exceed responses
    # by the requests still in flight when wrk stopped.
    all_stored = stored[0] >= one_step_done and stored[1] >= one_step_done
    print(
        f"note: {ONE_STEP_NOTE}; the store holds {stored[0]} requests and "
        f"{stored[1]} events for {one_step_done} one-step responses "
        f"(every response created a request: {'yes' if all_stored else 'NO'})"
    )
    summary: dict[str, object] = {"metric": "http_pages"}
    for name, s in summaries.items():
        summary[f"ratio_{name}"] = rounded(s["ratio"])
        summary[f"iqr_{name}"] = rounded(s["iqr"])
        summary[f"p50_ratio_{name}"] = rounded(s["p50_ratio"], 2)
        summary[f"p99_ratio_{name}"] = rounded(s["p99_ratio"], 2)
    summary["n"] = min((int(s["n"] or 0) for s in summaries.values()), default=0)
    summary["discarded"] = sum(int(s["discarded"] or 0) for s in summaries.values())
    summary["baseline"] = BASELINE
    summary["baseline_rps"] = rounded(a_rps, 0)
    summary["baseline_p99_ms"] = rounded(a99, 2)
    summary["failed_requests"] = errors
    summary["one_step_all_stored"] = all_stored
    summary["note"] = ONE_STEP_NOTE
    print_json_line(summary)


def main(argv: list[str]) -> int:
    """Run the benchmark; 0 on success, 1 when it cannot run.

    Args:
        argv: command-line arguments (see ``--help``).

    Returns:
        The exit status.
    """
    settings, rounds = settled_rounds(__doc__, argv)
    return run_in_scratch(
        "callnowd-bench-", lambda workdir: run(workdir, settings, rounds)
    )


def run(workdir: Path, settings: LoadSettings, rounds: int) -> int:
    """Start both servers, interleave the rounds, report, stop everything."""
    cores: Cores = pick_cores()
    print(f"server core {cores.server}, load core {cores.load}")
    servers: list[ServerProcess] = []
    try:
        baseline = start_baseline_web(cores, workdir)
        servers.append(baseline)
        # FastAGI and metrics on port 0: fixed ports would collide with other
        # daemons; limits out of reach, so one_step measures stored requests.
        daemon = start_daemon(
            cores,
            workdir,
            '[asterisk]\nagi_listen = "tcp:0:interface=127.0.0.1"\n'
            '[metrics]\nlisten = "tcp:0:interface=127.0.0.1"\n' + generous_limits(),
        )
        servers.append(daemon)
        provision(workdir)
        a = Target("A", f"http://127.0.0.1:{baseline.port}/")
        base = f"http://127.0.0.1:{daemon.port}"
        variants = [
            Target("page", f"{base}/callnow/{CALLNOW_ID}"),
            Target(
                "one_step",
                f"{base}/callnow/index.php",
                ONE_STEP_LUA.replace("{callnow_id}", CALLNOW_ID),
            ),
        ]
        result = interleave(a, variants, rounds, settings, cores, workdir)
        stored = stored_requests(workdir / "callnow.sqlite3")
    finally:
        for server in reversed(servers):
            server.stop()
    report(result, settings, stored)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
