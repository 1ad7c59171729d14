"""Benchmark: the floor of the daemon's form POST in twisted.web (baseline B / A).

Baseline B (``baseline_post.py``) is a bare ``twisted.web`` resource answering the
request ``calls.py`` loads the daemon with (``FORM_POST_LUA``: ``POST /callnow/bench``
with the ``callnow_csrf`` cookie and an urlencoded ``csrf``, ``phone``, ``name``,
a distinct number per request), set up as the daemon is (the resource parses the
body, not Twisted), by reading the form and the cookie and
answering 303 with a ``Location`` and a small body. No callnowd code runs, so B's
throughput is what ``twisted.web`` alone allows that request on one core.

A and B are interleaved round by round (A, B, A, B, ...) and B's req/s divided by
the A run just before it; rounds whose A is more than 15 % from the median A are
discarded. Derived: the floor in microseconds per request, and its share of the
time per request that the target "accepted callback requests/s >= 0.18 of A"
allows (``1 / (0.18 * A)``). Each server's CPU time per request (``/proc``) is
reported beside its wall-clock figures, to show it was the saturated side.

Run from the repository root: ``.venv/bin/python benchmarks/http_floor.py``
(``--help`` for rounds and durations). Requires ``wrk`` and ``taskset``. The last
line of output is one JSON object with the figures.
"""

from __future__ import annotations

import http.client
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.calls import FORM_POST_LUA
from benchmarks.common import (
    BASELINE_TOLERANCE,
    BenchError,
    Cores,
    LoadSettings,
    Pair,
    Rounds,
    ServerProcess,
    Target,
    WrkResult,
    cpu_seconds,
    fmt,
    interleave,
    median_iqr,
    pick_cores,
    print_json_line,
    print_table,
    rounded,
    run_in_scratch,
    settled_rounds,
    start_baseline,
    start_baseline_web,
)

BASELINE = "A: bare twisted.web"
FLOOR = "B: bare twisted.web form POST"
TARGET_RATIO = 0.18  # PERFORMANCE.md: accepted callback requests/s, full stack
CALLNOW_ID = "bench"
# Shaped like the daemon's: a secrets.token_urlsafe(24) nonce and a SHA-256 HMAC
# in hex, so the request has the size of the one calls.py sends.
COOKIE = "Zm9ybS1mbG9vci1iZW5jaC1ub25jZS0x"
CSRF = "6b1f0c2e9a7d4e8f3b5a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"


def start_baseline_post(cores: Cores, workdir: Path) -> ServerProcess:
    """Start baseline B (``baseline_post.py``) pinned to the server core."""
    return start_baseline(cores, workdir, "baseline B", "baseline_post.py")


def check_floor(port: int) -> None:
    """One form POST answers 303 with a location; one without the cookie 400.

    Raises:
        BenchError: B does not answer as the daemon does, or accepts a bad form.
    """
    body = f"csrf={CSRF}&phone=%2B12125550142&name=Bench+check".encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for cookie, expected in ((f"callnow_csrf={COOKIE}", 303), (None, 400)):
        headers = dict(form, Cookie=cookie) if cookie else form
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", f"/callnow/{CALLNOW_ID}", body, headers)
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if response.status != expected or (
            expected == 303 and not response.getheader("location")
        ):
            raise BenchError(
                f"baseline B answered {response.status} (expected {expected})"
            )


class CpuMeter:
    """Charges every wrk run the CPU time its server used since its last run."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._last = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.by_tag: dict[str, float] = {}

    def after(self, target: Target, measured: WrkResult) -> None:
        """Record the CPU seconds ``target``'s server used for ``measured``."""
        now = cpu_seconds(self._pids[target.name])
        self.by_tag[measured.tag] = now - self._last[target.name]
        self._last[target.name] = now

    def us_per_request(self, run: WrkResult) -> float:
        """Server CPU microseconds per completed request of ``run``."""
        used = self.by_tag.get(run.tag, 0.0)
        return 1e6 * used / run.requests if run.requests else 0.0


def _median(pairs: list[Pair], figure: Callable[[Pair], float]) -> float | None:
    return median_iqr([figure(p) for p in pairs])[0]


def figures(rounds: Rounds, meter: CpuMeter) -> dict[str, object]:
    """The JSON figures: B/A over the kept rounds and the derived budget share.

    Every derived figure is the median over the kept rounds of that round's value
    (its B run and the A run just before it).
    """
    pairs = rounds.pairs["B"]
    kept = rounds.kept("B")
    ratio, iqr = median_iqr([p.variant.rps / p.baseline.rps for p in kept])
    share, share_iqr = median_iqr(
        [TARGET_RATIO * p.baseline.rps / p.variant.rps for p in kept]
    )

    def budget(p: Pair) -> float:
        return 1e6 / (TARGET_RATIO * p.baseline.rps)

    failed = sum(
        run.status_errors + run.socket_errors
        for p in pairs
        for run in (p.baseline, p.variant)
    )
    return {
        "metric": "http_floor",
        "ratio": rounded(ratio),
        "iqr": rounded(iqr),
        "n": len(kept),
        "discarded": len(pairs) - len(kept),
        "baseline": BASELINE,
        "variant": FLOOR,
        "baseline_rps": rounded(rounds.baseline_median(), 0),
        "floor_rps": rounded(_median(kept, lambda p: p.variant.rps), 0),
        "baseline_us": rounded(_median(kept, lambda p: 1e6 / p.baseline.rps), 1),
        "floor_us": rounded(_median(kept, lambda p: 1e6 / p.variant.rps), 1),
        "post_over_get_us": rounded(
            _median(kept, lambda p: 1e6 / p.variant.rps - 1e6 / p.baseline.rps), 1
        ),
        "target_ratio": TARGET_RATIO,
        "budget_us": rounded(_median(kept, budget), 1),
        "budget_share": rounded(share),
        "budget_share_iqr": rounded(share_iqr),
        "budget_left_us": rounded(
            _median(kept, lambda p: budget(p) - 1e6 / p.variant.rps), 1
        ),
        "baseline_cpu_us": rounded(
            _median(kept, lambda p: meter.us_per_request(p.baseline)), 1
        ),
        "floor_cpu_us": rounded(
            _median(kept, lambda p: meter.us_per_request(p.variant)), 1
        ),
        "failed_requests": failed,
    }


def report(rounds: Rounds, settings: LoadSettings, meter: CpuMeter) -> None:
    """Print the table, discarded rounds and failures, and the JSON line last."""
    summary = figures(rounds, meter)
    print()
    print(
        f"wrk -t{settings.threads} -c{settings.connections} -d{settings.duration:g}s; "
        f"baseline {BASELINE}: median {summary['baseline_rps']} req/s"
    )
    rows = []
    for pair in rounds.pairs["B"]:
        a, b = pair.baseline, pair.variant
        rows.append(
            [
                pair.round,
                fmt(a.rps, 0),
                fmt(b.rps, 0),
                fmt(b.rps / a.rps),
                fmt(1e6 / a.rps, 1),
                fmt(1e6 / b.rps, 1),
                fmt(meter.us_per_request(a), 1),
                fmt(meter.us_per_request(b), 1),
                "no" if pair in rounds.discarded("B") else "yes",
            ]
        )
    print_table(
        [
            "round",
            "A req/s",
            "B req/s",
            "B/A",
            "A us",
            "B us",
            "A cpu us",
            "B cpu us",
            "kept",
        ],
        rows,
    )
    for pair in rounds.discarded("B"):
        print(
            f"discarded: round {pair.round}, baseline {pair.baseline.rps:.0f} req/s "
            f"is more than {BASELINE_TOLERANCE:.0%} from the median "
            f"{rounds.baseline_median():.0f}"
        )
    if summary["failed_requests"]:
        print(
            f"warning: {summary['failed_requests']} failed requests "
            "(non-2xx/3xx or socket errors)"
        )
    print(
        f"floor B / A {summary['ratio']} (IQR {summary['iqr']}, "
        f"{summary['n']}/{len(rounds.pairs['B'])} rounds kept): "
        f"{summary['floor_us']} us per request against A's {summary['baseline_us']} "
        f"us; the {TARGET_RATIO} target allows {summary['budget_us']} us, "
        f"of which the floor takes {summary['budget_share']} "
        f"({summary['budget_left_us']} us left for callnowd)"
    )
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
        "callnowd-bench-floor-", lambda workdir: run(workdir, settings, rounds)
    )


def run(workdir: Path, settings: LoadSettings, rounds: int) -> int:
    """Start both baselines, interleave the rounds, report, stop everything."""
    cores: Cores = pick_cores()
    print(f"server core {cores.server}, load core {cores.load}")
    servers: list[ServerProcess] = []
    try:
        baseline = start_baseline_web(cores, workdir)
        servers.append(baseline)
        floor = start_baseline_post(cores, workdir)
        servers.append(floor)
        check_floor(floor.port)
        a = Target("A", f"http://127.0.0.1:{baseline.port}/")
        b = Target(
            "B",
            f"http://127.0.0.1:{floor.port}/callnow/{CALLNOW_ID}",
            FORM_POST_LUA.replace("{callnow_id}", CALLNOW_ID)
            .replace("{cookie}", COOKIE)
            .replace("{csrf}", CSRF),
        )
        meter = CpuMeter({"A": baseline.pid, "B": floor.pid})
        result = interleave(a, [b], rounds, settings, cores, workdir, after=meter.after)
    finally:
        for server in reversed(servers):
            server.stop()
    report(result, settings, meter)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
