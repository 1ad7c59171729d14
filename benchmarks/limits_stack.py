"""The rate-limit benchmark's processes: Redis, the flooded daemons, CPU and calls.

This module owns starting a ``redis-server`` (no persistence, a free port, pinned to
the load core) and reading its counters (``INFO``), starting a daemon with the
default limits for :mod:`benchmarks.limits`' floods and checking it answers the
flood with 429s, and charging each wrk run the CPU time the servers used and the
Lua script calls Redis served.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

from benchmarks.calls_stack import http_get, provisioned
from benchmarks.common import (
    BenchError,
    Cores,
    ServerProcess,
    cpu_seconds,
    start_daemon,
)
from benchmarks.http_pages import CALLNOW_ID

FLOOD_PHONE = "+12127770142"  # the one visitor number of the flood
OUTAGE = "Redis is unreachable"  # callnowd.limits.fallback's warning


# -- Redis -------------------------------------------------------------------------


def start_redis(cores: Cores, workdir: Path) -> ServerProcess:
    """Start a ``redis-server`` without persistence on a free port, on the load core.

    Raises:
        BenchError: ``redis-server`` is missing or did not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("this benchmark requires redis-server: apt-get install redis")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    argv = [
        *cores.prefix(cores.load),
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--dir", str(workdir)),
    ]
    server = ServerProcess("redis-server", argv, workdir, workdir / "redis.out")
    server.wait_listening(lambda line: port if "Ready to accept" in line else None)
    return server


def redis_info(port: int, section: str) -> dict[str, str]:
    """``INFO <section>`` of the Redis on 127.0.0.1:``port``, as name -> value."""
    command = f"*2\r\n$4\r\nINFO\r\n${len(section)}\r\n{section}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(command)
        data = b""
        while b"\r\n" not in data or len(data) < _bulk_end(data):
            chunk = s.recv(65536)
            if not chunk:
                raise BenchError("Redis closed the connection")
            data += chunk
    body = data.split(b"\r\n", 1)[1].decode()
    return dict(
        line.split(":", 1)
        for line in body.splitlines()
        if ":" in line and line[0] != "#"
    )


def _bulk_end(data: bytes) -> int:
    header = data.split(b"\r\n", 1)[0]
    return len(header) + 2 + int(header[1:]) + 2


def script_calls(port: int) -> tuple[int, int]:
    """Lua script runs (``EVAL`` + ``EVALSHA``) served so far, and their microseconds.

    The microseconds are Redis's own timing of the commands (``INFO commandstats``),
    the commands the scripts call included.
    """
    stats = redis_info(port, "commandstats")
    calls = usec = 0
    for name in ("cmdstat_eval", "cmdstat_evalsha"):
        if name in stats:
            fields = dict(f.split("=", 1) for f in stats[name].split(","))
            calls += int(fields["calls"])
            usec += int(fields["usec"])
    return calls, usec


def redis_limits(port: int, prefix: str) -> str:
    """``[limits]`` lines sending every check to the Redis on ``port``."""
    return f'redis_url = "redis://127.0.0.1:{port}/0"\nkey_prefix = "{prefix}"\n'


# -- the daemons -------------------------------------------------------------------


def start_flood_daemon(cores: Cores, workdir: Path, limits: str) -> ServerProcess:
    """A daemon with the default limits (plus ``limits`` lines), provisioned, ready."""
    workdir.mkdir()
    daemon = start_daemon(
        cores,
        workdir,
        # Ports 0: the default fixed ports would collide with other daemons.
        '[asterisk]\nagi_listen = "tcp:0:interface=127.0.0.1"\n'
        '[metrics]\nlisten = "tcp:0:interface=127.0.0.1"\n[limits]\n' + limits,
    )
    return provisioned(daemon, workdir)


def limiter_state(port: int, wait: float = 0.0) -> str:
    """What ``/readyz`` says of the daemon's limiter (``redis ok``, ...).

    With ``wait``, ask again for up to that many seconds until it says
    ``redis ok``: after a fallback, a request (this one) starts the ping that
    switches back.
    """
    deadline = time.monotonic() + wait
    while True:
        _, _, body = http_get(port, "/readyz")
        state = str(json.loads(body).get("checks", {}).get("limits", "?"))
        if state == "redis ok" or time.monotonic() >= deadline:
            return state
        time.sleep(0.1)


def outage_times(log: Path) -> list[float]:
    """When (``time.monotonic()``) a daemon's JSON log says Redis became unreachable."""
    offset = time.time() - time.monotonic()
    times = []
    for line in log.read_text("utf-8", "replace").splitlines():
        if OUTAGE not in line:
            continue
        try:
            event = json.loads(line.lstrip("\x1e"))
        except ValueError:
            continue
        if isinstance(event, dict) and str(event.get("log_format", "")).startswith(
            OUTAGE
        ):
            times.append(float(event["log_time"]) - offset)
    return times


def flood_path() -> str:
    """The one-step link of the flood: always the same visitor and number."""
    phone = FLOOD_PHONE.replace("+", "%2B")
    return f"/callnow/index.php?call={CALLNOW_ID}&myname=Flood&phone={phone}"


def prime_flood(port: int) -> list[int]:
    """Send the flood's request until it is refused; the statuses seen.

    Raises:
        BenchError: no 303 first, or no 429 within 30 requests.
    """
    statuses: list[int] = []
    while len(statuses) < 30 and 429 not in statuses:
        statuses.append(http_get(port, flood_path())[0])
    if statuses[0] != 303 or statuses[-1] != 429:
        raise BenchError(f"the flood link answered {statuses}, not 303s then 429")
    return statuses


# -- measuring ---------------------------------------------------------------------


class Meter:
    """CPU seconds of the servers and Redis script calls, charged run by run."""

    def __init__(self, processes: dict[str, int], redis_port: int) -> None:
        self._pids = processes
        self._redis = redis_port
        self._cpu = self._cpu_now()
        self._calls = script_calls(redis_port)
        self.cpu: dict[str, dict[str, float]] = {}  # tag -> process -> seconds
        # tag -> (Redis script calls, their microseconds as Redis timed them)
        self.calls: dict[str, tuple[int, int]] = {}

    def _cpu_now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def record(self, tag: str) -> None:
        """Charge what was used since the last record to the run ``tag``."""
        cpu, calls = self._cpu_now(), script_calls(self._redis)
        self.cpu[tag] = {n: cpu[n] - self._cpu[n] for n in cpu}
        self.calls[tag] = (calls[0] - self._calls[0], calls[1] - self._calls[1])
        self._cpu, self._calls = cpu, calls
