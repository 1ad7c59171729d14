"""A standalone Asterisk simulator for benchmarks, timestamping every Originate.

Run as ``python benchmarks/sim_server.py --secret S --record FILE [--owner SCRIPT]``.
It listens for AMI on 127.0.0.1 (port 0 unless ``--port``), prints
``listening on 127.0.0.1:<port>`` once it does, and simulates every originated owner
phone with ``--owner`` (default ``ring``: it rings until the Originate's timeout).

Each Originate action is recorded as it is parsed off the wire, with
``time.monotonic()`` (CLOCK_MONOTONIC, the clock every process on the machine
shares), the CallerID number and the ChannelId. On SIGUSR1 it writes every record
so far to ``--record`` as ``<seconds> <number> <channel id>`` lines and then prints
``dumped <n> <count>``, ``n`` counting the dumps from 1, so a harness in another
process can wait for it.

It runs with the daemon's garbage-collector settings (``GcTuning``: start-up
objects frozen, young collections less often), so its own pauses do not show up as
daemon latency.

Its AMI user is the shipped manager.conf [callnowd] user, event filters included
(``--no-eventfilter`` drops them: every event of the read classes is sent).

What the simulator keeps for tests (every byte received, every action and event) is
not kept here: a run of several thousand calls would spend its time copying it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from typing_extensions import override

from callnowd.ami.codec import Message
from callnowd.ami.sim_config import AmiUser, OwnerScript, SimulatorSettings
from callnowd.ami.sim_dialplan import parse_callerid
from callnowd.ami.simulator import AsteriskSimulator
from callnowd.pbx_services import AMI_EVENTFILTERS, AMI_READ, AMI_WRITE
from callnowd.service import GcTuning


class _Discard(list[Message]):
    """A list that keeps nothing."""

    @override
    def append(self, item: Message) -> None:
        """Drop ``item``."""


class OriginateLog(list[Message]):
    """Keeps only ``(monotonic seconds, CallerID number, ChannelId)`` of Originates."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[float, str, str]] = []

    @override
    def append(self, item: Message) -> None:
        """Record ``item`` if it is an Originate action."""
        if (item.action or "").lower() == "originate":
            _, number = parse_callerid(item.get("CallerID") or "")
            self.records.append(
                (time.monotonic(), number, (item.get("ChannelId") or "-").strip())
            )


class BenchSimulator(AsteriskSimulator):
    """The simulator, recording Originates and nothing else."""

    def __init__(self, reactor: Any, settings: SimulatorSettings) -> None:
        super().__init__(reactor, settings)
        self.originates = OriginateLog()
        self.received_actions = self.originates
        self.emitted_events = _Discard()

    @property
    def received_bytes(self) -> bytes:
        """Nothing: the bytes received are not kept."""
        return b""

    @received_bytes.setter
    def received_bytes(self, value: bytes) -> None:
        pass


def main(argv: list[str]) -> int:
    """Run the simulator until SIGTERM.

    Args:
        argv: command-line arguments (see ``--help``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="callnowd")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--record", required=True, help="file written on SIGUSR1")
    parser.add_argument(
        "--agi-url", default="agi://127.0.0.1:4573", help="the daemon's FastAGI"
    )
    parser.add_argument(
        "--owner", default="ring", help="script of every owner phone, e.g. 'ring'"
    )
    parser.add_argument(
        "--no-eventfilter",
        action="store_true",
        help="deliver every event of the read classes (no manager.conf eventfilter)",
    )
    options = parser.parse_args(argv)
    from twisted.internet import reactor  # a program's entry point owns the reactor

    any_reactor: Any = reactor
    settings = SimulatorSettings(
        users=(
            # The shipped manager.conf [callnowd] user: its eventfilter lines too.
            AmiUser(
                options.username,
                options.secret,
                read=AMI_READ,
                write=AMI_WRITE,
                eventfilters=() if options.no_eventfilter else AMI_EVENTFILTERS,
            ),
        ),
        owners={},
        default_owner=OwnerScript.parse(options.owner),
        # The daemon's owner context must exist or the Originate is refused; an
        # owner that answers is handed to the FastAGI URL given here.
        contexts={"callnow-owner": f"{options.agi_url}/owner,${{CALLNOW_REQUEST}}"},
    )
    simulator = BenchSimulator(any_reactor, settings)
    dumps = 0

    def dump() -> None:
        nonlocal dumps
        dumps += 1
        records = list(simulator.originates.records)
        with open(options.record, "w", encoding="utf-8") as out:
            out.writelines(f"{t:.6f} {number} {cid}\n" for t, number, cid in records)
        print(f"dumped {dumps} {len(records)}", flush=True)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        any_reactor.callFromThread(dump)

    signal.signal(signal.SIGUSR1, on_signal)

    def listening(port: Any) -> None:
        print(f"listening on 127.0.0.1:{port.getHost().port}", flush=True)

    def failed(reason: Any) -> None:
        print(f"cannot listen: {reason.getErrorMessage()}", file=sys.stderr)
        any_reactor.stop()

    endpoint = TCP4ServerEndpoint(any_reactor, options.port, interface="127.0.0.1")
    Deferred.fromCoroutine(simulator.listen(endpoint)).addCallbacks(listening, failed)
    any_reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromCoroutine(simulator.stop())
    )
    # The daemon's collector settings: without them full collections paused this
    # process for ~50 ms every few seconds under load, and every Originate sent
    # meanwhile was timed late (a measuring artefact, not daemon time).
    GcTuning().startService()
    any_reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
