"""A TCP server that reads and discards everything: the AMI peer of baseline C.

Run as ``python benchmarks/discard_sink.py PORT`` (``0`` picks a free port); it prints
``listening on 127.0.0.1:<port>`` once it listens, as the baselines do. It runs on the
load core, so what it costs is not charged to the server it serves.
"""

from __future__ import annotations

import sys

from twisted.internet import protocol
from twisted.protocols.wire import Discard

from benchmarks.baseline_web import serve


def main(argv: list[str]) -> int:
    """Serve :class:`Discard`; ``argv`` is ``[PORT]``."""
    return serve("discard_sink.py", argv, protocol.ServerFactory.forProtocol(Discard))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
