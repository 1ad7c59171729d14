"""Baseline A: a bare ``twisted.web`` resource answering GET with a small body.

Run as ``python benchmarks/baseline_web.py PORT`` (``0`` picks a free port). Once it
listens it prints ``listening on 127.0.0.1:<port>`` on standard output, which is how
the harness learns the port. No access log, no logging observer, no headers beyond
what ``twisted.web`` sets itself: this is the floor every HTTP benchmark divides by.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import endpoints
from twisted.internet.interfaces import IProtocolFactory
from twisted.web import resource, server
from twisted.web.iweb import IRequest

BODY = b"<!doctype html><title>ok</title><p>ok</p>\n"


class Hello(resource.Resource):
    """Answers every GET with the same small HTML body."""

    isLeaf = True  # noqa: N815 (Twisted's attribute name)

    # Twisted dispatches to render_<METHOD> by name; Resource declares none of them.
    def render_GET(self, request: IRequest) -> bytes:  # noqa: N802
        """The small body, as HTML."""
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return BODY


def serve(program: str, argv: list[str], site: IProtocolFactory) -> int:
    """Serve ``site`` (a web site, or any server factory) on 127.0.0.1 at the port in ``argv`` until killed.

    Once listening it prints ``listening on 127.0.0.1:<port>`` (the harness reads
    the port from it). Shared by the baseline servers.

    Args:
        program: the script's name, for the usage line.
        argv: the program's arguments: ``[PORT]`` (``0`` picks a free port).
        site: what to serve.

    Returns:
        The exit status.
    """
    if len(argv) != 1 or not argv[0].isdigit():
        print(f"usage: {program} PORT", file=sys.stderr)
        return 2
    from twisted.internet import reactor  # a program's entry point owns the reactor

    any_reactor: Any = reactor
    endpoint = endpoints.TCP4ServerEndpoint(
        any_reactor, int(argv[0]), interface="127.0.0.1"
    )

    def listening(port: Any) -> None:
        print(f"listening on 127.0.0.1:{port.getHost().port}", flush=True)

    def failed(reason: Any) -> None:
        print(f"cannot listen: {reason.getErrorMessage()}", file=sys.stderr)
        any_reactor.stop()

    endpoint.listen(site).addCallbacks(listening, failed)
    any_reactor.run()
    return 0


def main(argv: list[str]) -> int:
    """Serve :class:`Hello` (see :func:`serve`); ``argv`` is ``[PORT]``."""
    return serve("baseline_web.py", argv, server.Site(Hello()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
