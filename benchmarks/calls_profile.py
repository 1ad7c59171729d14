"""Where the daemon's CPU goes per accepted callback request (full stack, closed loop).

Starts the stack of :mod:`benchmarks.calls` (simulator process, daemon in AMI mode,
owners ringing ``--ring-timeout`` s), loads the form ``POST`` with wrk for
``--duration`` s and reports the daemon's CPU time per Originate the simulator
parsed during the run (from ``/proc``, every thread; the run's tail of owner calls
ending is charged too, after the settle wait). With ``--py-spy FILE`` the daemon is
sampled meanwhile (``py-spy record``, speedscope or flamegraph by the file's suffix;
``--py-spy-format raw`` for collapsed stacks). The simulator applies the shipped
manager.conf eventfilter lines; ``--no-eventfilter`` sends the daemon every event.

Run from the repository root, alone on the machine:
``.venv/bin/python benchmarks/calls_profile.py --duration 8 --py-spy /tmp/calls.txt
--py-spy-format raw``. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.calls import FORM_POST_LUA, HANGUP_GRACE
from benchmarks.calls_stack import Simulator, form_credentials, start_full_stack
from benchmarks.common import (
    ROOT,
    BenchError,
    LoadSettings,
    Target,
    cpu_seconds,
    pick_cores,
    print_json_line,
    require_wrk,
    run_wrk,
    scratch_dir,
    wait_idle,
)
from benchmarks.http_pages import CALLNOW_ID


def main(argv: list[str]) -> int:
    """Run one profiled load; 0 on success, 1 when it cannot run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ring-timeout", type=int, default=1)
    parser.add_argument("--py-spy", type=Path, default=None, help="profile file")
    parser.add_argument("--py-spy-format", default="raw")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument(
        "--no-eventfilter",
        action="store_true",
        help="the simulator sends every event (not the manager.conf filters)",
    )
    options = parser.parse_args(argv)
    try:
        require_wrk()
        with scratch_dir("callnowd-bench-profile-") as scratch:
            return run(Path(scratch), options)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def run(workdir: Path, options: argparse.Namespace) -> int:
    """Start the stack, load it once (profiled), report CPU per Originate."""
    cores = pick_cores()
    simulator = Simulator(
        cores, workdir, "ring", eventfilter=not options.no_eventfilter
    )
    daemon = None
    spy = None
    try:
        daemon = start_full_stack(cores, workdir, simulator, options.ring_timeout)
        cookie, csrf = form_credentials(daemon.port)
        target = Target(
            "post",
            f"http://127.0.0.1:{daemon.port}/callnow/{CALLNOW_ID}",
            FORM_POST_LUA.replace("{callnow_id}", CALLNOW_ID)
            .replace("{cookie}", cookie)
            .replace("{csrf}", csrf),
        )
        settings = LoadSettings(duration=2.0, connections=options.connections)
        run_wrk(target, settings, cores, workdir, "w1")  # warm-up
        time.sleep(options.ring_timeout + HANGUP_GRACE + 0.5)
        wait_idle([daemon.pid, simulator.server.pid])
        before = len(simulator.originates())
        cpu_before = cpu_seconds(daemon.pid)
        main_before = cpu_seconds(daemon.pid, daemon.pid)
        if options.py_spy is not None:
            spy = _start_py_spy(daemon.pid, options, cores.load)
        settings = LoadSettings(
            duration=options.duration, connections=options.connections
        )
        measured = run_wrk(target, settings, cores, workdir, "w2")
        time.sleep(options.ring_timeout + HANGUP_GRACE + 0.5)
        wait_idle([daemon.pid, simulator.server.pid])
        cpu = cpu_seconds(daemon.pid) - cpu_before
        main = cpu_seconds(daemon.pid, daemon.pid) - main_before
        originates = len(simulator.originates()) - before
    finally:
        if spy is not None:
            spy.wait(timeout=60)
        if daemon is not None:
            daemon.stop()
        simulator.stop()
    wall = measured.finished - measured.started
    per_request_ms = 1000 * cpu / originates if originates else None
    print(
        f"{originates} Originates in {wall:.1f} s ({originates / wall:.0f}/s), "
        f"{measured.rps:.0f} HTTP answers/s; daemon CPU {cpu:.2f} s, "
        f"{per_request_ms or float('nan'):.2f} ms per Originate"
        f" ({1000 * main / max(originates, 1):.2f} ms on the reactor thread)"
    )
    print_json_line(
        {
            "metric": "calls_profile",
            "originates": originates,
            "originates_per_s": round(originates / wall, 1),
            "daemon_cpu_ms_per_originate": (
                round(per_request_ms, 3) if per_request_ms is not None else None
            ),
            "daemon_main_thread_cpu_ms_per_originate": (
                round(1000 * main / originates, 3) if originates else None
            ),
            "http_rps": round(measured.rps, 1),
        }
    )
    return 0


def _start_py_spy(
    pid: int, options: argparse.Namespace, core: int | None
) -> subprocess.Popen[bytes]:
    binary = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    argv = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(options.duration)),
        "--rate",
        str(options.rate),
        "--format",
        options.py_spy_format,
        "--output",
        str(options.py_spy),
        "--nonblocking",
    ]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
