"""The public pages: what each preference shows and accepts, CSRF, CAPTCHA, status."""

from __future__ import annotations

import json
from datetime import time
from urllib.parse import quote, urlencode

from twisted.internet.defer import Deferred

from callnowd.models import RequestSource, RequestState, Window
from tests.http.helpers import BASE, FORM, PagesCase, extension


class FormPageTests(PagesCase):
    """GET of the form under both URL forms."""

    def test_both_url_forms_show_the_form(self) -> None:
        """/callnow/<id> and /callnow/index.php?call=<id> both show the form."""
        self.add(extension())
        for url in ("/callnow/john", "/callnow/index.php?call=john"):
            code, headers, body = self.get(url)
            self.assertEqual(code, 200, url)
            self.assertIn('action="/callnow/john"', body)
            self.assertIn('name="phone"', body)
            self.assertEqual(headers["content-type"], "text/html; charset=utf-8")

    def test_public_message_is_escaped(self) -> None:
        """The public message is plain text: markup in it is shown, not run."""
        self.add(extension(public_message='<script>alert("x")</script> & more'))
        _, _, body = self.get("/callnow/john")
        self.assertIn(
            "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more", body
        )
        self.assertNotIn("<script>", body)

    def test_show_name(self) -> None:
        """The owner's name appears only when "show my name" is on."""
        self.add(extension(show_name=False))
        _, _, body = self.get("/callnow/john")
        self.assertNotIn("John Doe", body)
        self.add(extension("jane", show_name=True))
        _, _, body = self.get("/callnow/jane")
        self.assertIn("John Doe", body)

    def test_ask_name_makes_the_name_required(self) -> None:
        """The name field is required with "ask for the caller's name", else optional."""
        self.add(extension(ask_name=True))
        _, _, body = self.get("/callnow/john")
        self.assertRegex(body, r'id="name"[^>]*required')
        self.add(extension("jane", ask_name=False))
        _, _, body = self.get("/callnow/jane")
        self.assertIn("(optional)", body)
        self.assertNotRegex(body, r'id="name"[^>]*required')

    def test_image_validation_shows_captcha(self) -> None:
        """Image validation adds a CAPTCHA picture, an audio link and a new id each load."""
        self.add(extension(image_validation=True))
        _, _, first = self.get("/callnow/john")
        _, _, second = self.get("/callnow/john")
        self.assertIn('name="captcha"', first)
        self.assertIn(".wav", first)
        self.assertNotEqual(
            first.split('name="captcha_id" value="')[1][:20],
            second.split('name="captcha_id" value="')[1][:20],
        )
        self.add(extension("jane", image_validation=False))
        _, _, body = self.get("/callnow/jane")
        self.assertNotIn('name="captcha"', body)

    def test_uniform_unavailable_answer(self) -> None:
        """Unknown, disabled, reject-all and out-of-hours links answer identically."""
        self.add(extension("disabled", enabled=False))
        self.add(extension("rejecting", reject_all=True))
        # Open only on Sundays; NOW is a Wednesday.
        sunday = Window(frozenset({6}), *_hours())
        self.add(extension("closed", availability_enabled=True, windows=(sunday,)))
        answers = {
            self.get(f"/callnow/{cid}")[::2]
            for cid in ("unknown", "disabled", "rejecting", "closed", "bad%20id")
        }
        self.assertEqual(len(answers), 1)
        code, body = answers.pop()
        self.assertEqual(code, 404)
        self.assertIn("This link is not available", body)

    def test_inside_availability_window(self) -> None:
        """Inside its window the link takes requests."""
        weekdays = Window(frozenset(range(5)), *_hours())
        self.add(extension(availability_enabled=True, windows=(weekdays,)))
        self.assertEqual(self.get("/callnow/john")[0], 200)


def _hours() -> tuple[time, time]:
    return time(9, 0), time(17, 0)


class SubmitTests(PagesCase):
    """POST of the form."""

    def submit(
        self, fields: dict[str, str], cookie: str, cid: str = "john"
    ) -> tuple[int, dict[str, str], str]:
        return self.post(f"/callnow/{cid}", urlencode(fields), cookie=cookie, **FORM)

    def test_valid_submission_creates_request(self) -> None:
        """A valid form stores one request and sends the visitor to its status page."""
        self.add(extension(image_validation=False))
        cookie, csrf, _ = self.open_form()
        code, headers, _ = self.submit(
            {"csrf": csrf, "phone": "(212) 555-0123", "name": "Mary"}, cookie
        )
        self.assertEqual(code, 303)
        (request,) = self.store.requests.values()
        self.assertEqual(headers["location"], f"/callnow/john/requests/{request.token}")
        self.assertEqual(request.phone, "+12125550123")
        self.assertEqual(request.name, "Mary")
        self.assertEqual(request.state, RequestState.RECEIVED)
        self.assertEqual(request.source, RequestSource.FORM)
        self.assertGreaterEqual(len(request.token), 22)

    def test_csrf_required(self) -> None:
        """Without the cookie, or with a token of another cookie, nothing is stored."""
        self.add(extension(image_validation=False))
        cookie, csrf, _ = self.open_form()
        fields = {"csrf": csrf, "phone": "+12125550123", "name": "Mary"}
        self.assertEqual(self.submit(fields, "")[0], 403)
        self.assertEqual(self.submit(fields, "callnow_csrf=" + "x" * 32)[0], 403)
        self.assertEqual(self.submit({**fields, "csrf": "0" * 64}, cookie)[0], 403)
        self.assertEqual(self.store.requests, {})

    def test_csrf_token_is_bound_to_the_link(self) -> None:
        """A token issued for one link's form is refused by another link."""
        self.add(extension(image_validation=False))
        self.add(extension("jane", image_validation=False))
        cookie, csrf, _ = self.open_form("john")
        fields = {"csrf": csrf, "phone": "+12125550123", "name": "Mary"}
        self.assertEqual(self.submit(fields, cookie, "jane")[0], 403)

    def test_captcha_checked_and_single_use(self) -> None:
        """A wrong answer is refused; a right one works once only."""
        self.add(extension(image_validation=True))
        cookie, csrf, captcha_id = self.open_form()
        assert captcha_id is not None
        answer = self.captchas.answer_for(captcha_id)
        assert answer is not None
        fields = {"csrf": csrf, "phone": "+12125550123", "name": "Mary"}
        code, _, body = self.submit(
            {**fields, "captcha_id": captcha_id, "captcha": "00"}, cookie
        )
        self.assertEqual(code, 400)
        self.assertIn('id="captcha-error"', body)
        # The wrong attempt used the challenge up: even the right answer fails now.
        code, _, _ = self.submit(
            {**fields, "captcha_id": captcha_id, "captcha": answer}, cookie
        )
        self.assertEqual(code, 400)
        cookie, csrf, captcha_id = self.open_form()
        assert captcha_id is not None
        answer = self.captchas.answer_for(captcha_id)
        assert answer is not None
        fields["csrf"] = csrf
        code, _, _ = self.submit(
            {**fields, "captcha_id": captcha_id, "captcha": answer}, cookie
        )
        self.assertEqual(code, 303)
        code, _, _ = self.submit(
            {**fields, "captcha_id": captcha_id, "captcha": answer}, cookie
        )
        self.assertEqual(code, 400)
        self.assertEqual(len(self.store.requests), 1)

    def test_captcha_expires(self) -> None:
        """An answer given after the challenge's lifetime is refused."""
        self.add(extension(image_validation=True))
        cookie, csrf, captcha_id = self.open_form()
        assert captcha_id is not None
        answer = self.captchas.answer_for(captcha_id)
        assert answer is not None
        self.clock.advance(301)
        fields = {
            "csrf": csrf,
            "phone": "+12125550123",
            "name": "Mary",
            "captcha_id": captcha_id,
            "captcha": answer,
        }
        self.assertEqual(self.submit(fields, cookie)[0], 400)

    def test_ask_name(self) -> None:
        """With "ask for the caller's name" a request without a name is refused."""
        self.add(extension(image_validation=False, ask_name=True))
        self.add(extension("jane", image_validation=False, ask_name=False))
        cookie, csrf, _ = self.open_form()
        code, _, body = self.submit(
            {"csrf": csrf, "phone": "+12125550123", "name": ""}, cookie
        )
        self.assertEqual(code, 400)
        self.assertIn('id="name-error"', body)
        cookie, csrf, _ = self.open_form("jane")
        code, _, _ = self.submit(
            {"csrf": csrf, "phone": "+12125550123", "name": ""}, cookie, "jane"
        )
        self.assertEqual(code, 303)
        (request,) = self.store.requests.values()
        self.assertIsNone(request.name)

    def test_form_errors_keep_values_and_name_the_field(self) -> None:
        """A refused phone number is shown back with an error tied to its field."""
        self.add(extension(image_validation=False))
        cookie, csrf, _ = self.open_form()
        code, _, body = self.submit(
            {"csrf": csrf, "phone": "12", "name": "Mary"}, cookie
        )
        self.assertEqual(code, 400)
        self.assertIn('aria-describedby="phone-hint phone-error"', body)
        self.assertIn('value="Mary"', body)

    def test_wrong_content_type(self) -> None:
        """A JSON body is refused with 415."""
        self.add(extension(image_validation=False))
        cookie, _, _ = self.open_form()
        code, _, _ = self.post(
            "/callnow/john",
            b"{}",
            cookie=cookie,
            **{"content-type": "application/json"},
        )
        self.assertEqual(code, 415)


class OneStepTests(PagesCase):
    """The seed's one-step link."""

    url = "/callnow/index.php?" + urlencode(
        {"call": "john", "myname": "Mary", "phone": "+12125550123"}
    )

    def test_creates_request_when_image_validation_off(self) -> None:
        """Without image validation the link creates a request and shows its status."""
        self.add(extension(image_validation=False))
        code, headers, _ = self.get(self.url)
        self.assertEqual(code, 303)
        (request,) = self.store.requests.values()
        self.assertEqual(request.source, RequestSource.ONE_STEP)
        code, _, body = self.get(headers["location"])
        self.assertEqual(code, 200)
        self.assertIn("has been received", body)

    def test_repeat_within_window_returns_same_request(self) -> None:
        """The same link within 10 minutes answers with the same request."""
        self.add(extension(image_validation=False))
        first = self.get(self.url)[1]["location"]
        self.clock.advance(599)
        self.assertEqual(self.get(self.url)[1]["location"], first)
        self.assertEqual(len(self.store.requests), 1)
        self.clock.advance(2)
        self.assertNotEqual(self.get(self.url)[1]["location"], first)
        self.assertEqual(len(self.store.requests), 2)

    def test_image_validation_on_shows_prefilled_form(self) -> None:
        """With image validation the link shows the form pre-filled and stores nothing."""
        self.add(extension(image_validation=True))
        code, _, body = self.get(self.url)
        self.assertEqual(code, 200)
        self.assertIn('value="Mary"', body)
        self.assertIn('value="+12125550123"', body)
        self.assertEqual(self.store.requests, {})

    def test_one_step_disabled_shows_form(self) -> None:
        """An owner who turned the one-step link off gets the form instead."""
        self.add(extension(image_validation=False, one_step_enabled=False))
        self.assertEqual(self.get(self.url)[0], 200)
        self.assertEqual(self.store.requests, {})

    def test_head_creates_nothing(self) -> None:
        """A HEAD (link scanners) never creates a request."""
        self.add(extension(image_validation=False))
        code, _, _ = self.head(self.url)
        self.assertEqual(code, 200)
        self.assertEqual(self.store.requests, {})

    def test_invalid_utf8_in_query(self) -> None:
        """Invalid UTF-8 in the query string is a 400 and stores nothing."""
        self.add(extension(image_validation=False))
        code, _, body = self.get(
            "/callnow/index.php?call=john&myname=%FF%FE&phone=%2B12125550123"
        )
        self.assertEqual(code, 400)
        self.assertIn("myname", body)
        self.assertEqual(self.store.requests, {})


HOSTILE = {
    "CR": "Mary\rAction: Originate",
    "LF": "Mary\nAction: Originate",
    "NUL": "Mary\x00",
    "line separator": "Mary\u2028x",
    "bidi override": "Mary\u202egnp.exe",
    "comma": "Mary,EXEC_COMMAND=1",
    "quote": 'Mary"<1>',
    "script": "<script>alert(1)</script>",
    "10 kB": "M" * 10240,
    "pipe": "Mary|x",
    "semicolon": "Mary;x",
}


class HostileInputTests(PagesCase):
    """Every public field refuses hostile values with a 4xx and stores nothing."""

    def test_hostile_names_and_numbers(self) -> None:
        """Each hostile value in name or phone, by form or link, is a 400."""
        self.add(extension(image_validation=False))
        for label, value in HOSTILE.items():
            for field in ("name", "phone"):
                cookie, csrf, _ = self.open_form()
                fields = {
                    "csrf": csrf,
                    "phone": "+12125550123",
                    "name": "Mary",
                    field: value,
                }
                code, _, body = self.post(
                    "/callnow/john", urlencode(fields), cookie=cookie, **FORM
                )
                self.assertEqual(code, 400, f"form {field} {label}")
                self.assertIn(f'id="{field}-error"', body, f"form {field} {label}")
                query = {"call": "john", "myname": "Mary", "phone": "+12125550123"}
                query["myname" if field == "name" else "phone"] = value
                code, _, _ = self.get("/callnow/index.php?" + urlencode(query))
                self.assertEqual(code, 400, f"link {field} {label}")
        self.assertEqual(self.store.requests, {})

    def test_hostile_callnow_ids(self) -> None:
        """Hostile link ids get the uniform not-available page."""
        self.add(extension(image_validation=False))
        for value in HOSTILE.values():
            code, _, _ = self.get("/callnow/index.php?call=" + quote(value))
            self.assertEqual(code, 404)

    def test_repeated_field(self) -> None:
        """A field sent twice is refused."""
        self.add(extension(image_validation=False))
        cookie, csrf, _ = self.open_form()
        body = urlencode(
            [("csrf", csrf), ("phone", "+12125550123"), ("phone", "+12125550124")]
        )
        code, _, _ = self.post("/callnow/john", body, cookie=cookie, **FORM)
        self.assertEqual(code, 400)
        self.assertEqual(self.store.requests, {})


class StatusTests(PagesCase):
    """The status page."""

    def make_request(self) -> str:
        self.add(extension(image_validation=False, show_name=True))
        url = "/callnow/index.php?call=john&myname=Mary&phone=%2B12125550123"
        return self.get(url)[1]["location"]

    def test_html_refreshes_and_masks_number(self) -> None:
        """The HTML page refreshes itself and shows the number partly hidden."""
        location = self.make_request()
        code, _, body = self.get(location)
        self.assertEqual(code, 200)
        self.assertIn('http-equiv="refresh" content="3"', body)
        self.assertIn("+1212•••0123", body)
        self.assertIn("John Doe will be called shortly", body)

    def test_json(self) -> None:
        """Accept: application/json gives the state and the events."""
        location = self.make_request()
        code, headers, body = self.get(location, accept="application/json")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "application/json")
        document = json.loads(body)
        self.assertEqual(document["state"], "received")
        self.assertFalse(document["final"])
        self.assertEqual([e["state"] for e in document["events"]], ["received"])

    def test_wrong_token_or_link(self) -> None:
        """A token under another link, or a made-up one, is not found."""
        location = self.make_request()
        token = location.rsplit("/", 1)[1]
        self.add(extension("jane"))
        self.assertEqual(self.get(f"/callnow/jane/requests/{token}")[0], 404)
        self.assertEqual(
            self.get("/callnow/john/requests/AAAAAAAAAAAAAAAAAAAAAA")[0], 404
        )


class CaptchaMediaTests(PagesCase):
    """CAPTCHA pictures and audio."""

    def test_image_and_audio(self) -> None:
        """A live challenge has a PNG picture and a WAV recording; others 404."""
        challenge = self.captchas.issue()
        code, headers, _ = self._raw(f"/captcha/{challenge}.png")
        self.assertEqual((code, headers), (200, "image/png"))
        code, headers, _ = self._raw(f"/captcha/{challenge}.wav")
        self.assertEqual((code, headers), (200, "audio/wav"))
        self.assertEqual(self._raw("/captcha/nope.png")[0], 404)

    def test_test_hook_off_by_default(self) -> None:
        """The test-only answer hook answers 404 unless enabled."""
        challenge = self.captchas.issue()
        self.assertEqual(self.get(f"/_test/captcha/{challenge}")[0], 404)

    def _raw(self, url: str) -> tuple[int, str, bytes]:
        response = self.successResultOf(self.client.get(BASE + url))
        body = self.successResultOf(response.content())
        content_type = response.headers.getRawHeaders(b"content-type")[0].decode()
        if content_type == "image/png":
            self.assertTrue(body.startswith(b"\x89PNG"))
        if content_type == "audio/wav":
            self.assertTrue(body.startswith(b"RIFF"))
        return response.code, content_type, body


class TestHookTests(PagesCase):
    """With test hooks on, the answer is readable."""

    test_hooks = True

    def test_answer_readable(self) -> None:
        """The hook returns the challenge's answer."""
        challenge = self.captchas.issue()
        code, _, body = self.get(f"/_test/captcha/{challenge}")
        self.assertEqual((code, body), (200, self.captchas.answer_for(challenge)))


class HealthTests(PagesCase):
    """Liveness and readiness."""

    def test_healthz(self) -> None:
        """/healthz answers ok."""
        self.assertEqual(self.get("/healthz")[::2], (200, "ok\n"))

    def test_readyz_follows_the_store(self) -> None:
        """/readyz is 200 while the store answers and 503 when it does not."""
        code, _, body = self.get("/readyz")
        self.assertEqual((code, json.loads(body)["checks"]), (200, {"store": "ok"}))
        self.successResultOf(Deferred.fromCoroutine(self.store.close()))
        code, _, body = self.get("/readyz")
        self.assertEqual(code, 503)
        self.assertEqual(
            json.loads(body)["checks"]["store"], "failed: RuntimeError: store closed"
        )
