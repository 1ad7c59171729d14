"""Baseline B: a bare ``twisted.web`` resource answering the daemon's form POST.

Run as ``python benchmarks/baseline_post.py PORT`` (``0`` picks a free port). Once it
listens it prints ``listening on 127.0.0.1:<port>`` on standard output, as
``baseline_web.py`` does. It answers the request ``calls.py`` sends the daemon
(``POST /callnow/<id>``, a ``callnow_csrf`` cookie, an urlencoded ``csrf``, ``phone``
and ``name``) with what the daemon answers an accepted request: 303, a ``Location``
and a small HTML body. No callnowd code runs: this is the floor of that request in
``twisted.web`` itself, set up as the daemon sets it up: its ``Site`` does not parse
form bodies (``parsePOSTFormSubmission=False``, which also skips Twisted's
``Content-Type`` parsing through the stdlib ``email`` package), and the resource
parses the body itself, here with ``parse_qs``. It reads the fields and the cookie,
and answers 400 when one is missing, so a harness sees a form that was not parsed.
No access log file, no logging observer, as for baseline A.
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qs

from twisted.web import resource, server
from twisted.web.iweb import IRequest

from benchmarks.baseline_web import serve

# The daemon's answer has a ``/callnow/<id>/requests/<token>`` location (a
# ``secrets.token_urlsafe(16)`` token) and a short notice page.
LOCATION = b"/callnow/bench/requests/3q2-7wQa1bZx9YkLmN0pRs"
BODY = (
    b"<!doctype html><title>Request received</title><p>Your request was received.</p>\n"
)
FIELDS = (b"csrf", b"phone", b"name")
COOKIE = b"callnow_csrf"


class FormPost(resource.Resource):
    """Answers a form POST carrying the fields and cookie with 303 See Other."""

    isLeaf = True  # noqa: N815 (Twisted's attribute name)

    # Twisted dispatches to render_<METHOD> by name; Resource declares none of them.
    def render_POST(self, request: IRequest) -> bytes:  # noqa: N802
        """303 to :data:`LOCATION` when the form and cookie are there, else 400."""
        content = request.content
        args = parse_qs(content.read() if content is not None else b"")
        values = [args.get(name) for name in FIELDS]
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        if request.getCookie(COOKIE) is None or not all(values):
            request.setResponseCode(400)
            return b"missing form field or cookie\n"
        request.setResponseCode(303)
        request.setHeader(b"location", LOCATION)
        return BODY


def main(argv: list[str]) -> int:
    """Serve :class:`FormPost` (see ``baseline_web.serve``); ``argv`` is ``[PORT]``."""
    # As the daemon's CallNowSite: the resource parses the body, not Twisted.
    site = server.Site(FormPost(), parsePOSTFormSubmission=False)
    return serve("baseline_post.py", argv, site)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
