"""Shared benchmark machinery: processes, CPU pinning, wrk runs, statistics, output.

Every benchmark follows PERFORMANCE.md: servers on one core and the load generator on
the other (``taskset``), variants interleaved with their baseline round by round,
ratios taken between a variant and the baseline run measured next to it, median and
IQR over the rounds, rounds with an outlying baseline discarded, and one JSON object
as the last line of output.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASELINE_TOLERANCE = 0.15


class BenchError(Exception):
    """The benchmark cannot run or produced an unusable measurement."""


# -- CPUs and processes ---------------------------------------------------------


@dataclass(frozen=True)
class Cores:
    """Where servers and the load generator run (``None``: not pinned)."""

    server: int | None
    load: int | None

    def prefix(self, cpu: int | None) -> list[str]:
        """The ``taskset`` prefix pinning a command to ``cpu`` (empty if unpinned)."""
        return [] if cpu is None else ["taskset", "-c", str(cpu)]


def pick_cores() -> Cores:
    """The first usable core for servers, the second for load (and this process).

    With fewer than two usable cores, or without ``taskset``, nothing is pinned and
    a warning is printed: the ratios are then less trustworthy.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        print("warning: fewer than 2 cores or no taskset; nothing is pinned")
        return Cores(None, None)
    cores = Cores(server=cpus[0], load=cpus[1])
    os.sched_setaffinity(0, {cpus[1]})  # the harness stays off the server's core
    return cores


def require_wrk() -> str:
    """The path of ``wrk``.

    Raises:
        BenchError: wrk is not installed.
    """
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(
            "this benchmark requires wrk (HTTP load generator); "
            "install it with: apt-get install -y wrk"
        )
    return path


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM ``process``, SIGKILL it after ``timeout``; return its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def wait_for_line(
    path: Path,
    process: subprocess.Popen[bytes],
    parse: Callable[[str], int | None],
    timeout: float = 30.0,
) -> int:
    """Poll the output file ``path`` until ``parse`` returns a value for a line.

    Raises:
        BenchError: the process exited or nothing matched in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text("utf-8", "replace").splitlines():
            value = parse(line)
            if value is not None:
                return value
        if process.poll() is not None:
            raise BenchError(f"{process.args!r} exited {process.returncode}")
        time.sleep(0.05)
    raise BenchError(f"{process.args!r} did not become ready in {timeout} s")


class ServerProcess:
    """A server started pinned to a core, its output in a file, stopped on exit."""

    def __init__(self, name: str, argv: Sequence[str], cwd: Path, output: Path) -> None:
        self.name = name
        self.output = output
        self.port = 0
        with output.open("wb") as out:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_listening(self, parse: Callable[[str], int | None]) -> int:
        """Wait for the line carrying the bound port; stop the process on failure."""
        try:
            self.port = wait_for_line(self.output, self.process, parse)
        except BenchError:
            self.stop()
            raise BenchError(
                f"{self.name} did not start:\n{self.output.read_text('utf-8', 'replace')[-2000:]}"
            ) from None
        return self.port

    def stop(self) -> int:
        """Stop the server and return its exit status."""
        return stop_process(self.process)


def start_baseline_web(cores: Cores, workdir: Path) -> ServerProcess:
    """Start baseline A (``baseline_web.py``) pinned to the server core."""
    argv = [
        *cores.prefix(cores.server),
        sys.executable,
        str(ROOT / "benchmarks" / "baseline_web.py"),
        "0",
    ]
    server = ServerProcess("baseline A", argv, workdir, workdir / "baseline.out")

    def port(line: str) -> int | None:
        if line.startswith("listening on "):
            return int(line.rsplit(":", 1)[1])
        return None

    server.wait_listening(port)
    return server


def start_daemon(cores: Cores, workdir: Path, extra_config: str = "") -> ServerProcess:
    """Start the real daemon pinned to the server core, as the integration tests do.

    The config listens on port 0 with test hooks on; the JSON log goes to a file
    (never a pipe the harness must drain) and the bound port is read from the
    ``"{what} listening on {host}:{port}"`` event.
    """
    config = daemon_config(workdir)
    config.write_text(
        "[http]\n"
        'listen = "tcp:0:interface=127.0.0.1"\n'
        "test_hooks = true\n"
        "[store]\n"
        f'url = "sqlite:{workdir / "callnow.sqlite3"}"\n'
        "[public]\n"
        f'secret_file = "{workdir / "secret.key"}"\n' + extra_config
    )
    argv = [
        *cores.prefix(cores.server),
        str(BIN / "twistd"),
        "--nodaemon",
        "--pidfile=",
        "--logger=callnowd.logs.json_observer",
        "callnow",
        "--config",
        str(config),
    ]
    server = ServerProcess("callnowd", argv, workdir, workdir / "daemon.log")

    def port(line: str) -> int | None:
        try:
            event = json.loads(line.lstrip("\x1e"))
        except ValueError:
            return None
        if (
            isinstance(event, dict)
            and event.get("log_format") == "{what} listening on {host}:{port}"
            and event.get("what") == "HTTP"
        ):
            return int(event["port"])
        return None

    server.wait_listening(port)
    return server


def daemon_config(workdir: Path) -> Path:
    """The daemon's config file in ``workdir``."""
    return workdir / "callnow.toml"


def callnowctl(workdir: Path, *args: str) -> str:
    """Run ``callnowctl --config <workdir's config> args...``; return its output.

    Raises:
        BenchError: the command failed.
    """
    result = subprocess.run(
        [str(BIN / "callnowctl"), "--config", str(daemon_config(workdir)), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"callnowctl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory for one benchmark's files."""
    return tempfile.TemporaryDirectory(prefix=prefix)


# -- wrk ------------------------------------------------------------------------

# Appended to every wrk script: one machine-readable line with the run's figures.
# Latencies are in microseconds; "status" counts responses outside 2xx/3xx.
_REPORT_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %.1f, '
    .. '"p90_us": %.1f, "p99_us": %.1f, "max_us": %.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """The figures of one wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    status_errors: int

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def parse_wrk_output(text: str) -> WrkResult:
    """Read the ``WRK_RESULT`` line that the report script prints.

    Raises:
        BenchError: the line is missing (wrk failed).
    """
    for line in text.splitlines():
        if line.startswith("WRK_RESULT "):
            data = json.loads(line.removeprefix("WRK_RESULT "))
            return WrkResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                socket_errors=sum(
                    int(data[k]) for k in ("connect", "read", "write", "timeout")
                ),
                status_errors=int(data["status"]),
            )
    raise BenchError(f"wrk printed no result:\n{text[-2000:]}")


@dataclass(frozen=True)
class Target:
    """One thing to load: a URL and, optionally, a Lua script generating requests.

    The script receives one argument, a tag unique to each wrk run (letters and
    digits), so it can make every run's requests distinct.
    """

    name: str
    url: str
    lua: str = ""


@dataclass(frozen=True)
class LoadSettings:
    """How wrk loads each target."""

    duration: float = 5.0
    connections: int = 32
    threads: int = 1
    timeout: float = 10.0
    # Pause after each run: the server shares its core with the other server, and
    # must finish what the last run left (in-flight requests, store writes, log
    # lines) before the next run measures anything.
    settle: float = 1.0


def run_wrk(
    target: Target, settings: LoadSettings, cores: Cores, workdir: Path, tag: str
) -> WrkResult:
    """Load ``target`` once with wrk pinned to the load core."""
    script = workdir / f"wrk-{target.name}.lua"
    script.write_text(target.lua + _REPORT_LUA)
    argv = [
        *cores.prefix(cores.load),
        require_wrk(),
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{settings.duration:g}s",
        f"--timeout={settings.timeout:g}s",
        "-s",
        str(script),
        target.url,
        "--",
        tag,
    ]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=settings.duration + settings.timeout + 30,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk_output(result.stdout)


# -- rounds and statistics ------------------------------------------------------


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
) -> Rounds:
    """Run A, X1, A, X2, ... for ``rounds`` rounds after one untimed warm-up of each.

    Every wrk run gets a distinct tag ``w<n>`` for its Lua script.
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


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as a plain aligned table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_json_line(summary: dict[str, object]) -> None:
    """Print ``summary`` as the benchmark's last line of output."""
    print(json.dumps(summary, sort_keys=False), flush=True)
