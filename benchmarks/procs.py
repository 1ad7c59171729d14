"""Benchmark processes: CPU pinning, starting and stopping servers, waiting for idle.

Every benchmark follows PERFORMANCE.md: servers on one core and the load generator
(and the peers standing in for Asterisk or Redis) on the other, with ``taskset``.
This module owns the processes: pinning, readiness lines in output files, CPU time
read from ``/proc`` (to wait until a server has finished what a run left it), and
stopping everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class BenchError(Exception):
    """The benchmark cannot run or produced an unusable measurement."""


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

    @property
    def pid(self) -> int:
        """The server's process id (``taskset`` execs, so it is the server's own)."""
        return self.process.pid

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


def listening_port(line: str) -> int | None:
    """The port of a ``listening on <host>:<port>`` line, else ``None``."""
    if line.startswith("listening on "):
        return int(line.rsplit(":", 1)[1])
    return None


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory for one benchmark's files."""
    return tempfile.TemporaryDirectory(prefix=prefix)


# -- CPU time -------------------------------------------------------------------

_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads).

    With ``thread``, only that thread's (its id; the main thread's is ``pid``).

    Raises:
        BenchError: the process is gone.
    """
    where = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        stat = Path(where).read_text()
    except OSError as e:
        raise BenchError(f"process {pid} is gone") from e
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK


def wait_idle(
    pids: Sequence[int],
    *,
    busy_below: float = 0.05,
    interval: float = 0.5,
    timeout: float = 60.0,
) -> float:
    """Wait until every process in ``pids`` used under ``busy_below`` of a core.

    One ``interval`` is measured at a time; the wait ends at the first interval in
    which all of them were that quiet.

    Returns:
        The seconds waited.

    Raises:
        BenchError: still busy after ``timeout`` seconds.
    """
    started = time.monotonic()
    before = [cpu_seconds(p) for p in pids]
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        after = [cpu_seconds(p) for p in pids]
        used = max(b - a for a, b in zip(before, after, strict=True))
        if used <= busy_below * interval:
            return time.monotonic() - started
        before = after
    raise BenchError(f"processes {list(pids)} still busy after {timeout} s")
