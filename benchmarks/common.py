"""Shared benchmark machinery: servers, the daemon, ``callnowctl``, output.

Every benchmark follows PERFORMANCE.md: servers on one core and the load generator on
the other (``taskset``), variants interleaved with their baseline round by round,
ratios taken between a variant and the baseline run measured next to it, median and
IQR over the rounds, rounds with an outlying baseline discarded, and one JSON object
as the last line of output.

This module starts baseline A and the daemon and prints results; it also re-exports
the pieces that live in :mod:`benchmarks.procs` (processes, pinning, idle waits),
:mod:`benchmarks.wrk` (wrk runs) and :mod:`benchmarks.rounds` (interleaving and
statistics), so a benchmark imports everything from here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import attrs

from benchmarks.procs import (
    BIN,
    ROOT,
    BenchError,
    Cores,
    ServerProcess,
    cpu_seconds,
    listening_port,
    pick_cores,
    scratch_dir,
    stop_process,
    wait_for_line,
    wait_idle,
)
from benchmarks.rounds import (
    BASELINE_TOLERANCE,
    Pair,
    Rounds,
    interleave,
    median_iqr,
    rounded,
)
from benchmarks.wrk import (
    LoadSettings,
    Target,
    WrkResult,
    parse_wrk_output,
    require_wrk,
    run_wrk,
)

__all__ = [
    "BASELINE_TOLERANCE",
    "BIN",
    "ROOT",
    "BenchError",
    "Cores",
    "LoadSettings",
    "Pair",
    "Rounds",
    "ServerProcess",
    "Target",
    "WrkResult",
    "callnowctl",
    "cpu_seconds",
    "daemon_config",
    "fmt",
    "generous_limits",
    "interleave",
    "listening_port",
    "load_parser",
    "median_iqr",
    "parse_rounds",
    "parse_wrk_output",
    "pick_cores",
    "print_json_line",
    "print_table",
    "require_wrk",
    "rounded",
    "run_in_scratch",
    "run_wrk",
    "scratch_dir",
    "settled_rounds",
    "start_baseline",
    "start_baseline_web",
    "start_daemon",
    "stop_process",
    "wait_for_line",
    "wait_idle",
]


def start_baseline_web(cores: Cores, workdir: Path) -> ServerProcess:
    """Start baseline A (``baseline_web.py``) pinned to the server core."""
    return start_baseline(cores, workdir, "baseline A", "baseline_web.py")


def start_baseline(
    cores: Cores,
    workdir: Path,
    name: str,
    script: str,
    args: Sequence[str] = (),
    core: int | Literal["server"] | None = "server",
) -> ServerProcess:
    """Start a baseline server (``benchmarks/<script> 0 [args]``) pinned to ``core``.

    ``core`` is the server core unless given. Its output goes to
    ``<workdir>/<script stem>.out``; the port is read from its ``listening on`` line.
    """
    argv = [
        *cores.prefix(cores.server if core == "server" else core),
        sys.executable,
        str(ROOT / "benchmarks" / script),
        "0",
        *args,
    ]
    out = workdir / (Path(script).stem + ".out")
    server = ServerProcess(name, argv, workdir, out)
    server.wait_listening(listening_port)
    return server


def fmt(value: float | None, digits: int = 3) -> str:
    """A table cell: ``-`` for a missing value, else fixed-point."""
    return "-" if value is None else f"{value:.{digits}f}"


def load_parser(
    doc: str | None, rounds: int, rounds_help: str
) -> argparse.ArgumentParser:
    """The options every wrk-driven benchmark takes: rounds, duration, connections."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=rounds, help=rounds_help)
    parser.add_argument("--duration", type=float, default=5.0, help="s per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    return parser


def parse_rounds(
    parser: argparse.ArgumentParser, argv: list[str]
) -> argparse.Namespace:
    """Parse ``argv`` with ``parser`` (see :func:`load_parser`); at least 3 rounds."""
    options = parser.parse_args(argv)
    if options.rounds < 3:
        parser.error("--rounds must be at least 3")
    return options


def settled_rounds(doc: str | None, argv: list[str]) -> tuple[LoadSettings, int]:
    """The load settings and round count of a benchmark that idles after each run.

    Options: those of :func:`load_parser` (5 rounds by default) and ``--settle``.
    """
    parser = load_parser(doc, 5, "rounds (>= 3)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="idle seconds after each run"
    )
    options = parse_rounds(parser, argv)
    settings = LoadSettings(
        duration=options.duration,
        connections=options.connections,
        settle=options.settle,
    )
    return settings, options.rounds


def run_in_scratch(prefix: str, body: Callable[[Path], int]) -> int:
    """Run ``body`` in a new scratch directory once ``wrk`` is known to be there.

    Returns:
        What ``body`` returns; 1 after a :class:`BenchError`, which is printed.
    """
    try:
        require_wrk()
        with scratch_dir(prefix) as scratch:
            return body(Path(scratch))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def generous_limits() -> str:
    """A ``[limits]`` section no benchmark run can reach, if the daemon has one.

    Every ``*_limit`` (and ``ip_destinations``) of the daemon's rate limits is set
    far above a run's requests, all from 127.0.0.1 to one link; the limiter still
    runs for every request (in this process: no ``redis_url``).
    """
    from callnowd.config import Config

    limits = getattr(Config(), "limits", None)
    if limits is None or not attrs.has(type(limits)):
        return ""
    names = [
        f.name
        for f in attrs.fields(type(limits))
        if f.name.endswith("_limit") or f.name == "ip_destinations"
    ]
    return "[limits]\n" + "".join(f"{name} = 1000000000\n" for name in names)


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
