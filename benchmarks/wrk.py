"""wrk runs: the report script, one pinned run, its figures.

This module owns how a :class:`Target` is loaded with ``wrk`` (closed loop: every
connection always has one request outstanding) and how the figures are read back
from the Lua ``done()`` report appended to every script.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.procs import BenchError, Cores


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


# Appended to every wrk script: one machine-readable line with the run's figures.
# Latencies are in microseconds; "status" counts responses outside 2xx/3xx;
# "counted" the responses with the target's count_status (0 when it has none).
_REPORT_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  local counted = 0
  if bench_total_counted then counted = bench_total_counted() end
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %.1f, '
    .. '"p90_us": %.1f, "p99_us": %.1f, "max_us": %.1f, "counted": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, counted))
end
"""

# Appended (before the report) when a target counts one status: every thread
# counts its responses with that status in response(), done() adds them up. A
# setup() or response() of the target's own script still runs.
_COUNT_LUA = """
local bench_threads = {}
local bench_user_setup = setup
function setup(thread)
  table.insert(bench_threads, thread)
  if bench_user_setup then bench_user_setup(thread) end
end

bench_counted = 0
local bench_user_response = response
function response(status, headers, body)
  if status == {status} then bench_counted = bench_counted + 1 end
  if bench_user_response then bench_user_response(status, headers, body) end
end

function bench_total_counted()
  local total = 0
  for _, thread in ipairs(bench_threads) do
    total = total + (thread:get("bench_counted") or 0)
  end
  return total
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
    # Responses with the target's count_status (0 when it counts none).
    counted: int = 0
    # The run's tag and when (time.monotonic()) wrk was started and had exited.
    tag: str = ""
    started: float = 0.0
    finished: float = 0.0

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def counted_rps(self) -> float:
        """Responses with the target's ``count_status`` per second."""
        return self.counted / self.seconds if self.seconds > 0 else 0.0


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
                counted=int(data.get("counted", 0)),
            )
    raise BenchError(f"wrk printed no result:\n{text[-2000:]}")


@dataclass(frozen=True)
class Target:
    """One thing to load: a URL and, optionally, a Lua script generating requests.

    The script receives one argument, a tag unique to each wrk run (letters and
    digits), so it can make every run's requests distinct. With ``count_status``,
    the run also counts the responses with that HTTP status
    (:attr:`WrkResult.counted`); wrk then hands every response to Lua, which
    costs the load generator a little, not the server.
    """

    name: str
    url: str
    lua: str = ""
    count_status: int | None = None


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
    counting = ""
    if target.count_status is not None:
        counting = _COUNT_LUA.replace("{status}", str(int(target.count_status)))
    script.write_text(target.lua + counting + _REPORT_LUA)
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
    started = time.monotonic()
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=settings.duration + settings.timeout + 30,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return dataclasses.replace(
        parse_wrk_output(result.stdout),
        tag=tag,
        started=started,
        finished=time.monotonic(),
    )
