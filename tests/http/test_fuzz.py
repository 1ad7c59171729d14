"""Fuzzing every public parameter of the pages (Hypothesis, in process, StubTreq).

Arbitrary bytes and text go into the one-step link's query string, the form's
fields, the CallNow id in the path, the status token and the CSRF cookie. Every
answer must be a 4xx, or a 2xx/3xx; never a 5xx. Every request the intake hands
to the dispatcher in state ``received`` (what would be dialled) must hold an
E.164 number and a validated name, and must encode into an AMI Originate, built
as :mod:`callnowd.ami.pbx` builds it, without the encoder refusing anything.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_from_bytes

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq

from callnowd.ami.codec import AmiParser, encode_action
from callnowd.ami.originate import originate_headers
from callnowd.calls.intake import Intake
from callnowd.http.csrf import COOKIE_NAME
from callnowd.limits.destination_policy import DestinationPolicy
from callnowd.limits.ratelimit import ALLOWED, Verdict
from callnowd.models import CallRequest, RequestState
from callnowd.validation import normalize_name
from tests.http.helpers import BASE, FORM, PagesCase, extension

E164 = re.compile(r"\+[0-9]{6,15}")
SAFE_ID = re.compile(r"[A-Za-z0-9_.:+-]+")
LINKS = ("john", "jane")


class FakeLimiter:
    """Allows everything (so fuzzed requests get as far as they can); counts calls."""

    def __init__(self) -> None:
        self.checks = 0
        self.not_found = 0

    async def check(
        self, client_ip: str, callnow_id: str, destination_e164: str, now: float
    ) -> Verdict:
        """Allowed; the number must already be E.164 here."""
        assert E164.fullmatch(destination_e164), destination_e164
        self.checks += 1
        return ALLOWED

    async def refund(
        self, client_ip: str, callnow_id: str, destination_e164: str, now: float
    ) -> None:
        """Nothing to give back: nothing is counted."""

    async def check_404(self, client_ip: str, now: float) -> Verdict:
        """Allowed."""
        self.not_found += 1
        return ALLOWED


# -- strategies ------------------------------------------------------------------

NASTY = st.sampled_from(
    ["\r\n", "\n", "\r", "\x00", ",", "\u2028", "\u2029", "\u202e", '"', "<", ";"]
)
PHONES = st.one_of(
    st.text(max_size=40),
    st.from_regex(
        r"\+?1? ?\(?[2-9][0-9]{2}\)? ?[2-9][0-9]{2}-?[0-9]{4}", fullmatch=True
    ),
    st.sampled_from(["+12125550150", "911", "+19005550123", "+881612345678"]),
    st.tuples(
        st.just("+1212555"), st.from_regex(r"[0-9]{4}", fullmatch=True), NASTY
    ).map("".join),
)
NAMES = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["Mary", "Zoë O'Brien-Smith", "محمد", "", " "]),
    st.tuples(st.just("Mary"), NASTY, st.text(max_size=10)).map("".join),
)
RAW = st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode))


def _value(text: str | bytes) -> bytes:
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def _encode(pairs: list[tuple[bytes, bytes]]) -> str:
    return "&".join(
        f"{quote_from_bytes(k, safe='')}={quote_from_bytes(v, safe='')}"
        for k, v in pairs
    )


FIELD_VALUE = st.one_of(PHONES, NAMES, RAW)
EXTRA = st.lists(st.tuples(RAW, RAW), max_size=3)


class FuzzTests(PagesCase):
    """No input makes the pages fail, or lets an unsafe value toward AMI."""

    def setUp(self) -> None:
        super().setUp()
        self.limiter = FakeLimiter()
        self.intake = Intake(
            self.store,
            DestinationPolicy(home_region="US"),
            self.presence,
            600,
            self.limiter,
        )
        self.dispatched: list[CallRequest] = []
        self.intake.listeners.append(self.dispatched.append)
        self.pages = attrs.evolve(self.pages, intake=self.intake)
        self.pages.limiter = self.limiter
        self.client: Any = StubTreq(self.pages.resource())
        self.add(extension("john", image_validation=False))
        self.add(extension("jane", image_validation=False, ask_name=False))
        self.answers: dict[int, int] = {}

    def answer(self, d: Any) -> int:
        response = self.successResultOf(d)
        self.successResultOf(response.content())
        code: int = response.code
        self.assertLess(code, 500)
        self.assertGreaterEqual(code, 200)
        self.answers[code] = self.answers.get(code, 0) + 1
        return code

    def check_dispatched(self) -> None:
        for request in self.dispatched:
            if request.state is not RequestState.RECEIVED:
                continue  # rejected: the dispatcher never dials these
            self.assertRegex(request.phone, E164)
            self.assertTrue(SAFE_ID.fullmatch(request.id), request.id)
            if request.name is not None:
                self.assertEqual(normalize_name(request.name), request.name)
            shown = f"CallNow: {request.name}" if request.name else "CallNow"
            wire = encode_action(
                "Originate",
                "a1",
                originate_headers(
                    channel="PJSIP/001002",
                    context="callnow-owner",
                    exten="s",
                    priority=1,
                    application=None,
                    data=None,
                    timeout_ms=30000,
                    caller_id=f'"{shown}" <{request.phone}>',
                    channel_id=None,
                    account=None,
                ),
                [("CALLNOW_REQUEST", request.id)],
            )
            (message,) = AmiParser(expect_banner=False).feed(wire)
            self.assertEqual(message.get_all("Action"), ["Originate"])
            self.assertEqual(message.unparsed, ())

    @settings(max_examples=150)
    @given(
        link=st.one_of(st.sampled_from(LINKS), st.text(max_size=20)),
        phone=FIELD_VALUE,
        name=FIELD_VALUE,
        extra=EXTRA,
        head=st.booleans(),
    )
    def test_one_step_link(
        self,
        link: str,
        phone: str | bytes,
        name: str | bytes,
        extra: list[tuple[bytes, bytes]],
        head: bool,
    ) -> None:
        """Any query string gives a 2xx/3xx/4xx answer and only safe dispatches."""
        pairs = [(b"call", _value(link)), (b"phone", _value(phone))]
        pairs += [(b"myname", _value(name)), *extra]
        url = f"{BASE}/callnow/index.php?{_encode(pairs)}"
        method = self.client.head if head else self.client.get
        self.answer(method(url, allow_redirects=False))
        self.check_dispatched()

    @settings(max_examples=150)
    @given(
        link=st.one_of(st.sampled_from(LINKS), st.text(max_size=20)),
        phone=FIELD_VALUE,
        name=FIELD_VALUE,
        extra=EXTRA,
        good_csrf=st.booleans(),
        csrf=st.binary(max_size=40),
        cookie=st.one_of(st.none(), st.binary(max_size=30)),
    )
    def test_form(
        self,
        link: str,
        phone: str | bytes,
        name: str | bytes,
        extra: list[tuple[bytes, bytes]],
        good_csrf: bool,
        csrf: bytes,
        cookie: bytes | None,
    ) -> None:
        """Any form body, CSRF token, cookie and path id is answered without 5xx."""
        jar, token, _ = self.open_form("john")
        headers = dict(FORM)
        if good_csrf:
            headers["cookie"] = jar
            csrf = token.encode()
        elif cookie is not None:
            safe = bytes(b for b in cookie if 0x20 <= b < 0x7F and b != ord(";"))
            headers["cookie"] = f"{COOKIE_NAME.decode()}={safe.decode()}"
        pairs = [(b"csrf", csrf), (b"phone", _value(phone))]
        pairs += [(b"name", _value(name)), *extra]
        path = quote_from_bytes(_value(link), safe="")
        self.answer(
            self.client.post(
                f"{BASE}/callnow/{path}",
                data=_encode(pairs).encode(),
                headers=headers,
                allow_redirects=False,
            )
        )
        self.check_dispatched()

    @settings(max_examples=100)
    @given(link=RAW, token=RAW, json=st.booleans())
    def test_pages_and_status(self, link: bytes, token: bytes, json: bool) -> None:
        """Any id in the path and any status token is answered without 5xx."""
        path = quote_from_bytes(link, safe="")
        headers = {"accept": "application/json"} if json else {}
        self.answer(self.client.get(f"{BASE}/callnow/{path}", allow_redirects=False))
        status = f"{BASE}/callnow/john/requests/{quote_from_bytes(token, safe='')}"
        code = self.answer(self.client.get(status, headers=headers))
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            # Klein answers 400 to a path that is not UTF-8 (and logs the
            # decoding failure as an error).
            self.assertEqual(code, 400)
            self.flushLoggedErrors(UnicodeDecodeError)
        else:
            self.assertEqual(code, 404)
        self.flushLoggedErrors(UnicodeDecodeError)

    def test_non_ascii_csrf(self) -> None:
        """A non-ASCII CSRF field is refused with a 4xx (the fuzzer once found a 500)."""
        jar, _, _ = self.open_form("john")
        self.answer(
            self.client.post(
                f"{BASE}/callnow/john",
                data=b"csrf=%C2%80&phone=%2B12125550150&name=Mary",
                headers={**FORM, "cookie": jar},
                allow_redirects=False,
            )
        )

    def test_fuzzing_reaches_the_intake(self) -> None:
        """A sanity check of the harness: a valid one-step request is dispatched."""
        self.answer(
            self.client.get(
                f"{BASE}/callnow/index.php?call=john&phone=%2B12125550150&myname=Mary",
                allow_redirects=False,
            )
        )
        self.assertEqual(self.limiter.checks, 1)
        self.assertEqual([r.phone for r in self.dispatched], ["+12125550150"])
        self.check_dispatched()
