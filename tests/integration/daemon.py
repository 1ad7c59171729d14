"""Runs the real daemon (``twistd -n callnow``) and ``callnowctl`` as subprocesses.

The daemon listens on port 0 and logs JSON (``--logger=callnowd.logs.json_observer``);
the harness reads the bound ports from the ``"{what} listening on {host}:{port}"``
events, so tests never race for a free port.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
GENEROUS_LIMITS = (
    "ip_limit",
    "ip_destinations",
    "link_limit",
    "destination_short_limit",
    "destination_long_limit",
    "range_limit",
    "global_limit",
    "not_found_limit",
)


class DaemonFailed(Exception):
    """The daemon did not start, or died."""


class Daemon:
    """One daemon process with its own config, store and secret in ``workdir``."""

    def __init__(
        self, workdir: Path, settings: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.workdir = workdir
        self.config = workdir / "callnow.toml"
        sections: dict[str, dict[str, Any]] = {
            "http": {"listen": "tcp:0:interface=127.0.0.1", "test_hooks": True},
            "asterisk": {"agi_listen": "tcp:0:interface=127.0.0.1"},
            "metrics": {"listen": "tcp:0:interface=127.0.0.1"},
            # Generous limits: tests about limits set their own.
            "limits": dict.fromkeys(GENEROUS_LIMITS, 100000),
            "store": {"url": f"sqlite:{workdir / 'callnow.sqlite3'}"},
            "public": {"secret_file": str(workdir / "secret.key")},
        }
        for name, values in (settings or {}).items():
            sections.setdefault(name, {}).update(values)
        self.config.write_text(to_toml(sections))
        self.process: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self.ports: dict[str, int] = {}

    # -- process control ---------------------------------------------------------

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> None:
        """Start the daemon and (unless ``wait`` is false) wait until HTTP listens."""
        self.events = []
        self.ports = {}
        self.process = subprocess.Popen(
            [
                str(BIN / "twistd"),
                "--nodaemon",
                "--pidfile=",
                "--logger=callnowd.logs.json_observer",
                "callnow",
                "--config",
                str(self.config),
            ],
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while "HTTP" not in self.ports:
            if self.process.poll() is not None:
                self.stderr = self.process.stderr.read() if self.process.stderr else b""
                raise DaemonFailed(
                    f"daemon exited {self.process.returncode}: {self.stderr.decode()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise DaemonFailed("daemon did not listen in time")
            time.sleep(0.02)

    def stop(self) -> int:
        """Stop the daemon (SIGTERM) and return its exit status."""
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if process.stderr is not None:
            self.stderr = process.stderr.read()
            process.stderr.close()
        if process.stdout is not None:
            process.stdout.close()
        return code

    def alive(self) -> bool:
        """Whether the daemon process is still running."""
        return self.process is not None and self.process.poll() is None

    def _read_stdout(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").strip().lstrip("\x1e")
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            if event.get("log_format") == "{what} listening on {host}:{port}":
                self.ports[event["what"]] = int(event["port"])

    async def start_async(self, clock: Any, timeout: float = 30.0) -> None:
        """Like :meth:`start`, but waits without blocking the test's reactor."""
        from twisted.internet.task import deferLater

        self.start(timeout=0.0, wait=False)
        deadline = time.monotonic() + timeout
        while "HTTP" not in self.ports:
            if self.process is None or self.process.poll() is not None:
                raise DaemonFailed(f"daemon exited: {self.stop()} {self.stderr!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise DaemonFailed("daemon did not listen in time")
            await deferLater(clock, 0.05)

    def url(self, path: str) -> str:
        """The daemon's URL for ``path``."""
        return f"http://127.0.0.1:{self.ports['HTTP']}{path}"

    # -- tools -------------------------------------------------------------------

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``callnowctl --config <ours> args...``."""
        return subprocess.run(
            [str(BIN / "callnowctl"), "--config", str(self.config), *args],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request to the daemon; redirects are not followed."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.ports["HTTP"], timeout=30
        )
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            data = response.read()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                data,
            )
        finally:
            connection.close()


def to_toml(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """Render simple config tables (str, bool, int, float, list, dict of str)."""
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(
            f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()
        )
        return "{ " + items + " }"
    raise TypeError(f"cannot write {value!r} as TOML")
