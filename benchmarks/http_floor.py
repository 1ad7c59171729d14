"""Benchmark: the floor of the daemon's form POST in twisted.web (baseline B / A).

Baseline B (``baseline_post.py``) is a bare ``twisted.web`` resource answering the
request ``calls.py`` loads the daemon with (``FORM_POST_LUA``: ``POST /callnow/bench``
with the ``callnow_csrf`` cookie and an urlencoded ``csrf``, ``phone``, ``name``,
a distinct number per request), set up as the daemon is (the resource parses the
body, not Twisted), by reading the form and the cookie and
answering 303 with a ``Location`` and a small body. No callnowd code runs, so B's
throughput is what ``twisted.web`` alone allows that request on one core.

Baseline C (``baseline_accept.py``) does what B does plus the least any server must
do to accept such a request with callnowd's libraries and dial it: the CSRF HMAC,
the destination check (phonenumbers), one SQLite row (committed once per reactor
turn) and an AMI ``Originate`` written to a discarding peer (``discard_sink.py``, on
the load core). No rate limits, states, events, logs or AMI answers: no daemon that
does those as well can exceed C's throughput, so C / A is a ceiling for the
"accepted" target and ``1 / (0.18 A) - C`` the time left for all of that.

A, B and C are interleaved round by round (A, B, A, C, ...) and each variant's
req/s divided by the A run just before it; rounds whose A is more than 15 % from the median A are
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
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.baseline_accept import csrf_token
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
ACCEPT = "C: least accept (CSRF, number, SQLite row, Originate written)"
TARGET_RATIO = 0.18  # PERFORMANCE.md: accepted callback requests/s, full stack
CALLNOW_ID = "bench"
# Shaped like the daemon's: a secrets.token_urlsafe(24) nonce and a SHA-256 HMAC
# in hex, so the request has the size of the one calls.py sends.
COOKIE = "Zm9ybS1mbG9vci1iZW5jaC1ub25jZS0x"
CSRF = "6b1f0c2e9a7d4e8f3b5a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"


def check_form(port: int, name: str, csrf: str) -> None:
    """One form POST answers 303 with a location; one without the cookie 400.

    Raises:
        BenchError: the server does not answer as the daemon does, or accepts a
            bad form.
    """
    body = f"csrf={csrf}&phone=%2B12125550142&name=Bench+check".encode()
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
            raise BenchError(f"{name} answered {response.status} (expected {expected})")


def stored_rows(database: Path) -> int:
    """How many requests baseline C stored (read after it stopped)."""
    connection = sqlite3.connect(database)
    try:
        (count,) = connection.execute("SELECT count(*) FROM requests").fetchone()
    finally:
        connection.close()
    return int(count)


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


def _budget(p: Pair) -> float:
    """The microseconds per request the target allows, from the round's A."""
    return 1e6 / (TARGET_RATIO * p.baseline.rps)


def variant_figures(rounds: Rounds, meter: CpuMeter, name: str) -> dict[str, object]:
    """One variant's figures over its kept rounds (each the median of per-round values).

    A round's value comes from its run of the variant and the A run just before it.
    """
    kept = rounds.kept(name)
    ratio, iqr = median_iqr([p.variant.rps / p.baseline.rps for p in kept])
    share, share_iqr = median_iqr(
        [TARGET_RATIO * p.baseline.rps / p.variant.rps for p in kept]
    )
    return {
        "ratio": rounded(ratio),
        "iqr": rounded(iqr),
        "n": len(kept),
        "rps": rounded(_median(kept, lambda p: p.variant.rps), 0),
        "us": rounded(_median(kept, lambda p: 1e6 / p.variant.rps), 1),
        "over_a_us": rounded(
            _median(kept, lambda p: 1e6 / p.variant.rps - 1e6 / p.baseline.rps), 1
        ),
        "budget_share": rounded(share),
        "budget_share_iqr": rounded(share_iqr),
        "budget_left_us": rounded(
            _median(kept, lambda p: _budget(p) - 1e6 / p.variant.rps), 1
        ),
        "cpu_us": rounded(_median(kept, lambda p: meter.us_per_request(p.variant)), 1),
    }


def figures(rounds: Rounds, meter: CpuMeter, accepted: int) -> dict[str, object]:
    """The JSON figures: B/A and C/A over the kept rounds, and the budget shares."""
    floor = variant_figures(rounds, meter, "B")
    accept = variant_figures(rounds, meter, "C")
    pairs = [p for ps in rounds.pairs.values() for p in ps]
    failed = sum(
        run.status_errors + run.socket_errors
        for p in pairs
        for run in (p.baseline, p.variant)
    )
    answered = sum(
        run.requests
        for run in [*(p.variant for p in rounds.pairs["C"]), rounds.warmups.get("C")]
        if run is not None
    )
    return {
        "metric": "http_floor",
        "ratio": floor["ratio"],
        "iqr": floor["iqr"],
        "n": min(int(str(floor["n"])), int(str(accept["n"]))),
        "discarded": len(pairs) - len(rounds.kept("B")) - len(rounds.kept("C")),
        "baseline": BASELINE,
        "variant": FLOOR,
        "baseline_rps": rounded(rounds.baseline_median(), 0),
        "floor_rps": floor["rps"],
        "baseline_us": rounded(
            _median(rounds.kept("B"), lambda p: 1e6 / p.baseline.rps), 1
        ),
        "floor_us": floor["us"],
        "post_over_get_us": floor["over_a_us"],
        "target_ratio": TARGET_RATIO,
        "budget_us": rounded(_median(rounds.kept("B"), _budget), 1),
        "budget_share": floor["budget_share"],
        "budget_share_iqr": floor["budget_share_iqr"],
        "budget_left_us": floor["budget_left_us"],
        "baseline_cpu_us": rounded(
            _median(rounds.kept("B"), lambda p: meter.us_per_request(p.baseline)), 1
        ),
        "floor_cpu_us": floor["cpu_us"],
        "accept": ACCEPT,
        "accept_ratio": accept["ratio"],
        "accept_iqr": accept["iqr"],
        "accept_rps": accept["rps"],
        "accept_us": accept["us"],
        "accept_budget_share": accept["budget_share"],
        "accept_budget_share_iqr": accept["budget_share_iqr"],
        "accept_budget_left_us": accept["budget_left_us"],
        "accept_cpu_us": accept["cpu_us"],
        # wrk stops with requests in flight: stored, but their 303s not counted.
        "accept_all_stored": accepted >= answered,
        "accept_rows": accepted,
        "accept_answered": answered,
        "failed_requests": failed,
    }


def report(
    rounds: Rounds, settings: LoadSettings, meter: CpuMeter, accepted: int
) -> None:
    """Print the table, discarded rounds and failures, and the JSON line last."""
    summary = figures(rounds, meter, accepted)
    print()
    print(
        f"wrk -t{settings.threads} -c{settings.connections} -d{settings.duration:g}s; "
        f"baseline {BASELINE}: median {summary['baseline_rps']} req/s"
    )
    rows = []
    for name in ("B", "C"):
        for pair in rounds.pairs[name]:
            a, x = pair.baseline, pair.variant
            rows.append(
                [
                    pair.round,
                    name,
                    fmt(a.rps, 0),
                    fmt(x.rps, 0),
                    fmt(x.rps / a.rps),
                    fmt(1e6 / a.rps, 1),
                    fmt(1e6 / x.rps, 1),
                    fmt(meter.us_per_request(a), 1),
                    fmt(meter.us_per_request(x), 1),
                    "no" if pair in rounds.discarded(name) else "yes",
                ]
            )
    print_table(
        [
            "round",
            "X",
            "A req/s",
            "X req/s",
            "X/A",
            "A us",
            "X us",
            "A cpu us",
            "X cpu us",
            "kept",
        ],
        rows,
    )
    for name in ("B", "C"):
        for pair in rounds.discarded(name):
            print(
                f"discarded: round {pair.round} of {name}, baseline "
                f"{pair.baseline.rps:.0f} req/s is more than {BASELINE_TOLERANCE:.0%} "
                f"from the median {rounds.baseline_median():.0f}"
            )
    if summary["failed_requests"]:
        print(
            f"warning: {summary['failed_requests']} failed requests "
            "(non-2xx/3xx or socket errors)"
        )
    if not summary["accept_all_stored"]:
        print(
            f"warning: baseline C stored {summary['accept_rows']} rows "
            f"for {summary['accept_answered']} 303s"
        )
    print(
        f"floor B / A {summary['ratio']} (IQR {summary['iqr']}): "
        f"{summary['floor_us']} us per request against A's {summary['baseline_us']} "
        f"us; the {TARGET_RATIO} target allows {summary['budget_us']} us, "
        f"of which the floor takes {summary['budget_share']} "
        f"({summary['budget_left_us']} us left for callnowd)"
    )
    print(
        f"least accept C / A {summary['accept_ratio']} (IQR {summary['accept_iqr']}): "
        f"{summary['accept_us']} us per request, {summary['accept_budget_share']} of "
        f"the budget ({summary['accept_budget_left_us']} us left for everything "
        "else the daemon does)"
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
    """Start the baselines, interleave the rounds, report, stop everything."""
    cores: Cores = pick_cores()
    print(f"server core {cores.server}, load core {cores.load}")
    servers: list[ServerProcess] = []
    database = workdir / "accept.sqlite3"
    try:
        baseline = start_baseline_web(cores, workdir)
        servers.append(baseline)
        floor = start_baseline(cores, workdir, "baseline B", "baseline_post.py")
        servers.append(floor)
        check_form(floor.port, "baseline B", CSRF)
        sink = start_baseline(
            cores, workdir, "AMI sink", "discard_sink.py", core=cores.load
        )
        servers.append(sink)
        accept = start_baseline(
            cores,
            workdir,
            "baseline C",
            "baseline_accept.py",
            [str(sink.port), str(database)],
        )
        servers.append(accept)
        check_form(accept.port, "baseline C", csrf_token(COOKIE))
        a = Target("A", f"http://127.0.0.1:{baseline.port}/")
        b, c = (
            Target(
                name,
                f"http://127.0.0.1:{server.port}/callnow/{CALLNOW_ID}",
                FORM_POST_LUA.replace("{callnow_id}", CALLNOW_ID)
                .replace("{cookie}", COOKIE)
                .replace("{csrf}", csrf),
            )
            for name, server, csrf in (
                ("B", floor, CSRF),
                ("C", accept, csrf_token(COOKIE)),
            )
        )
        meter = CpuMeter({"A": baseline.pid, "B": floor.pid, "C": accept.pid})
        result = interleave(
            a, [b, c], rounds, settings, cores, workdir, after=meter.after
        )
    finally:
        for server in reversed(servers):
            server.stop()
    # The check's own request stored a row too.
    report(result, settings, meter, stored_rows(database) - 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
