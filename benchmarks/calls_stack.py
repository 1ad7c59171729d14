"""The full call stack for benchmarks: a simulator process and the daemon in AMI mode.

This module owns starting :mod:`benchmarks.sim_server` (pinned to the load core, so
its CPU is not the daemon's) and the real daemon with ``asterisk.mode = "ami"``
pointed at it, provisioning the CallNow ID, obtaining one CSRF cookie and token for
the form POSTs, and reading back the Originates the simulator received.
"""

from __future__ import annotations

import http.client
import re
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    ROOT,
    BenchError,
    Cores,
    ServerProcess,
    generous_limits,
    listening_port,
    start_daemon,
    wait_for_line,
)
from benchmarks.http_pages import CALLNOW_ID, provision
from benchmarks.rate_load import number_index

AMI_SECRET = secrets.token_hex(16)  # this run only
_CSRF_FIELD = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass(frozen=True)
class Originate:
    """One Originate the simulator received.

    Attributes:
        at: ``time.monotonic()`` when the simulator parsed it.
        phone: the CallerID number (the visitor's number).
        channel_id: the ChannelId header.
    """

    at: float
    phone: str
    channel_id: str

    @property
    def number(self) -> int:
        """The index the benchmark encoded in the visitor's number."""
        return number_index(self.phone)


class Simulator:
    """The simulator process and its Originate records."""

    def __init__(
        self,
        cores: Cores,
        workdir: Path,
        owner: str,
        *,
        eventfilter: bool = True,
        name: str = "simulator",
    ) -> None:
        """Start it; ``name`` tells its files apart from another simulator's."""
        self.record = workdir / f"{name}-originates.txt"
        self._dumps = 0
        argv = [
            *cores.prefix(cores.load),
            sys.executable,
            str(ROOT / "benchmarks" / "sim_server.py"),
            "--secret",
            AMI_SECRET,
            "--record",
            str(self.record),
            "--owner",
            owner,
            *([] if eventfilter else ["--no-eventfilter"]),
        ]
        self.server = ServerProcess(name, argv, workdir, workdir / f"{name}.out")
        self.server.wait_listening(listening_port)

    @property
    def port(self) -> int:
        """The simulator's AMI port."""
        return self.server.port

    def originates(self) -> list[Originate]:
        """Every Originate received so far (asks the process to write them out)."""
        self._dumps += 1
        expected = f"dumped {self._dumps} "

        def dumped(line: str) -> int | None:
            return 1 if line.startswith(expected) else None

        self.server.process.send_signal(signal.SIGUSR1)
        wait_for_line(self.server.output, self.server.process, dumped)
        found = []
        for line in self.record.read_text("utf-8").splitlines():
            at, phone, channel_id = line.split(" ", 2)
            found.append(Originate(float(at), phone, channel_id))
        return found

    def stop(self) -> int:
        """Stop the simulator."""
        return self.server.stop()


def start_full_stack(
    cores: Cores,
    workdir: Path,
    simulator: Simulator,
    ring_timeout: int,
    limits: str = "",
) -> ServerProcess:
    """Start the daemon in AMI mode against ``simulator``; wait until it logged in.

    Capacity limits are raised far above what a run can reach, so no request is
    failed for capacity before its Originate. ``limits`` holds more ``[limits]``
    lines (``redis_url = "..."``, say), added after :func:`generous_limits`.
    """
    daemon = start_daemon(
        cores,
        workdir,
        "[asterisk]\n"
        'mode = "ami"\n'
        f'ami_endpoint = "tcp:host=127.0.0.1:port={simulator.port}"\n'
        f'secret = "{AMI_SECRET}"\n'
        'agi_listen = "tcp:0:interface=127.0.0.1"\n'
        f"ring_timeout = {ring_timeout}\n"
        "[calls]\n"
        "max_in_flight = 1000000\n"
        "max_in_flight_per_extension = 1000000\n"
        # Port 0: the default fixed port would collide with other daemons.
        "[metrics]\n"
        'listen = "tcp:0:interface=127.0.0.1"\n'
        + (generous_limits() or ("[limits]\n" if limits else ""))
        + limits,
    )
    return provisioned(daemon, workdir)


def provisioned(daemon: ServerProcess, workdir: Path) -> ServerProcess:
    """Provision the benchmark extension and wait until ``daemon`` is ready.

    The daemon is stopped if either fails.

    Raises:
        BenchError: provisioning failed or the daemon did not become ready.
    """
    try:
        provision(workdir)
        wait_ready(daemon.port)
    except BenchError:
        daemon.stop()
        raise
    return daemon


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Poll ``/readyz`` until the daemon answers 200 (store and AMI login ok).

    Raises:
        BenchError: not ready in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, _ = http_get(port, "/readyz")
        if status == 200:
            return
        time.sleep(0.1)
    raise BenchError("the daemon did not become ready (AMI login?)")


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, list[tuple[str, str]], str]:
    """One GET to 127.0.0.1:``port``: status, headers and body text."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        return response.status, response.getheaders(), body
    finally:
        connection.close()


def form_credentials(port: int) -> tuple[str, str]:
    """A CSRF cookie nonce and the form token that goes with it, from one GET.

    The token is an HMAC of the nonce and the CallNow ID, so the pair is valid for
    every POST to this form while the daemon's secret stays the same.

    Raises:
        BenchError: the form page has no cookie or token.
    """
    status, headers, body = http_get(port, f"/callnow/{CALLNOW_ID}")
    cookie = None
    for name, value in headers:
        if name.lower() == "set-cookie" and value.startswith("callnow_csrf="):
            cookie = value.split(";", 1)[0].split("=", 1)[1]
    token = _CSRF_FIELD.search(body)
    if status != 200 or cookie is None or token is None:
        raise BenchError(f"no CSRF cookie/token on the form (HTTP {status})")
    return cookie, token.group(1)
