"""A throw-away ``redis-server`` on a free loopback port, started and stopped by pid.

Tests that need a real Redis use :class:`RedisServer`; when the ``redis-server``
binary is missing they skip with :data:`SKIP_REASON` (CI installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = (
    None
    if REDIS_SERVER
    else "redis-server is not installed (apt-get install redis-server); "
    "the Redis store tests need a real server"
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process without persistence.

    Args:
        port: the port to listen on (a free one when None).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="callnow-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        assert REDIS_SERVER is not None, SKIP_REASON
        log = (self._dir / "redis.log").open("ab")
        self._process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start: {self.log_text()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
        process.wait(10)

    def command(self, *args: str) -> bytes:
        """Send one command over a fresh blocking socket; the raw reply."""
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), 2) as s:
            s.sendall(b"".join(parts))
            reply = b""
            s.settimeout(2)
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
                time.sleep(0.01)
            return reply

    def log_text(self) -> str:
        """What the server logged."""
        path = self._dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
