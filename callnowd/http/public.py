"""The public CallNow pages: the form, its submission, the one-step link, status.

URLs (DESIGN §4): ``/callnow/<id>`` and ``/callnow/index.php?call=<id>`` show the
form; ``POST /callnow/<id>`` submits it; ``/callnow/index.php?call=<id>&myname=…&phone=…``
is the one-step link; ``/callnow/<id>/requests/<token>`` is the visitor's status page
(HTML, or JSON for ``Accept: application/json``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from callnowd.calls.intake import DestinationRefused, Intake, RateLimited
from callnowd.http.answers import (
    STYLESHEET,
    NotFoundLimiter,
    NotReady,
    client_ip,
    cookie_nonce,
    duration,
    hours_lines,
    json_bytes,
    phone_example,
    wants_json,
)
from callnowd.http.captcha import CaptchaChallenges, render_audio, render_image
from callnowd.http.csrf import COOKIE_NAME, CsrfTokens
from callnowd.http.forms import BadInput, form_params, query_params
from callnowd.http.outage import (
    StoreOutage,
    answers_store_outage,
    try_again_later,
)
from callnowd.http.render import Templates
from callnowd.http.routes import HotRoutes
from callnowd.http.status import status_json, status_page_context
from callnowd.limits.ratelimit import Verdict
from callnowd.models import (
    CALLNOW_ID_RE,
    CallRequest,
    Extension,
    RequestSource,
    RequestState,
)
from callnowd.rules.availability import (
    is_accepting,
)
from callnowd.store.interface import Store
from callnowd.validation import FieldError, check_phone_text, normalize_name

FORM_FIELDS = ("csrf", "captcha_id", "captcha", "phone", "name")
ONE_STEP_FIELDS = ("call", "myname", "phone")
HTML = b"text/html; charset=utf-8"
JSON = b"application/json"

Blocking = Callable[[Callable[[], bytes]], Deferred[bytes]]


@attrs.frozen
class PublicSettings:
    """What the public pages need from the configuration."""

    default_region: str
    one_step_window: float
    status_refresh: int
    secure_cookies: bool
    test_hooks: bool = False
    trust_forwarded_for: bool = False


@attrs.define
class PublicPages:
    """The Klein application of the public CallNow pages.

    Args:
        store: persistence.
        clock: time source.
        settings: page settings.
        csrf: CSRF token issuer.
        captchas: CAPTCHA challenges.
        templates: HTML templates.
        blocking: runs CPU-bound work (image/audio rendering) off the reactor.
        readiness: named checks for ``/readyz``.
    """

    app = Klein()
    log = Logger()

    _store: Store
    _clock: IReactorTime
    _settings: PublicSettings
    _csrf: CsrfTokens
    _captchas: CaptchaChallenges
    _templates: Templates
    _blocking: Blocking
    _intake: Intake
    # Named readiness checks: each raises when not ready, and may return a detail.
    _readiness: dict[str, Callable[[], Awaitable[str | None]]] = attrs.Factory(dict)
    # Told the reason of every submission refused before storing (metrics).
    on_refusal: Callable[[str], object] | None = None
    # Limits the "not available" answers per client (enumeration).
    limiter: NotFoundLimiter | None = None
    # Answers the store's errors 503 (see callnowd.http.outage).
    outage: StoreOutage = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.outage = StoreOutage(self._clock, self._notice)

    def resource(self) -> IResource:
        """The site's root: the busiest routes called directly, the rest via Klein."""
        return HotRoutes(self.index_php, self.page, self.submit, self.app.resource())

    def add_readiness(
        self, name: str, check: Callable[[], Awaitable[str | None]]
    ) -> None:
        """Add a named check to ``/readyz``; it raises when not ready."""
        self._readiness[name] = check

    # -- the form --------------------------------------------------------------

    @app.route("/callnow/index.php", methods=["GET", "HEAD"])
    @answers_store_outage
    async def index_php(self, request: IRequest) -> bytes:
        """The seed's URL: the form, or the one-step request with name and phone."""
        try:
            params = query_params(request, ONE_STEP_FIELDS)
        except BadInput as e:
            return self._bad_input(request, e)
        extension = await self._find(params.get("call", ""))
        if extension is None or not self._open(extension):
            return await self._unavailable(request, extension)
        if "phone" not in params and "myname" not in params:
            return self._form(request, extension)
        values = {"phone": params.get("phone", ""), "name": params.get("myname", "")}
        prefs = extension.preferences
        if (
            request.method == b"HEAD"
            or prefs.image_validation
            or not prefs.one_step_enabled
        ):
            # A link scanner's HEAD, or a link that needs a human: show the form,
            # pre-filled, and create nothing.
            return self._form(request, extension, values=values)
        try:
            phone, name = self._validate(extension, values)
        except FieldError as e:
            self._refused(f"invalid_{e.field}")
            return self._form(request, extension, values, {e.field: e.message}, 400)
        return await self._take(
            request, extension, values, phone, name, RequestSource.ONE_STEP
        )

    @app.route("/callnow/<callnow_id>", methods=["GET", "HEAD"])
    @answers_store_outage
    async def page(self, request: IRequest, callnow_id: str) -> bytes:
        """The public form of one extension."""
        extension = await self._find(callnow_id)
        if extension is None or not self._open(extension):
            return await self._unavailable(request, extension)
        return self._form(request, extension)

    @app.route("/callnow/<callnow_id>", methods=["POST"])
    @answers_store_outage
    async def submit(self, request: IRequest, callnow_id: str) -> bytes:
        """The form's submission: validate, store, send the visitor to the status."""
        extension = await self._find(callnow_id)
        if extension is None or not self._open(extension):
            return await self._unavailable(request, extension)
        try:
            form = form_params(request, FORM_FIELDS)
        except BadInput as e:
            return self._bad_input(request, e)
        prefs = extension.preferences
        nonce = cookie_nonce(request)
        if not self._csrf.verify(nonce, prefs.callnow_id, form.get("csrf")):
            self._refused("csrf")
            request.setResponseCode(403)
            return self._notice(
                request,
                "Please try again",
                "This form has expired or was not sent from this site. "
                "Reload the page and send it again.",
            )
        values = {"phone": form.get("phone", ""), "name": form.get("name", "")}
        errors: dict[str, str] = {}
        try:
            phone, name = self._validate(extension, values)
        except FieldError as e:
            errors[e.field] = e.message
        if prefs.image_validation and not self._captchas.verify(
            form.get("captcha_id", ""), form.get("captcha", "")
        ):
            errors["captcha"] = "The digits did not match. Please try the new picture."
        if errors:
            for field in errors:
                self._refused(f"invalid_{field}")
            return self._form(request, extension, values, errors, 400)
        return await self._take(
            request, extension, values, phone, name, RequestSource.FORM
        )

    # -- status ------------------------------------------------------------------

    @app.route("/callnow/<callnow_id>/requests/<token>", methods=["GET", "HEAD"])
    @answers_store_outage
    async def status(self, request: IRequest, callnow_id: str, token: str) -> bytes:
        """The visitor's view of one request, HTML or JSON."""
        found = await self._store.get_request_by_token(callnow_id, token)
        if found is None:
            return await self._unavailable(request)
        extension = await self._store.get_extension(found.extension)
        events = await self._store.request_events(found.id)
        owner = None
        if extension is not None and extension.preferences.show_name:
            owner = extension.display_name
        if wants_json(request):
            request.setHeader(b"content-type", JSON)
            return status_json(found, events, owner)
        context = status_page_context(found, events, owner)
        return self._html(
            request, "status.html", refresh=self._settings.status_refresh, **context
        )

    # -- CAPTCHA -----------------------------------------------------------------

    @app.route("/captcha/<challenge>.png", methods=["GET"])
    async def captcha_image(self, request: IRequest, challenge: str) -> bytes:
        """The picture of a live challenge."""
        return await self._captcha_media(request, challenge, render_image, b"image/png")

    @app.route("/captcha/<challenge>.wav", methods=["GET"])
    async def captcha_audio(self, request: IRequest, challenge: str) -> bytes:
        """The spoken version of a live challenge."""
        return await self._captcha_media(request, challenge, render_audio, b"audio/wav")

    @app.route("/_test/captcha/<challenge>", methods=["GET"])
    def captcha_answer(self, request: IRequest, challenge: str) -> bytes:
        """Test-only: the answer of a challenge, when ``http.test_hooks`` is on."""
        answer = (
            self._captchas.answer_for(challenge) if self._settings.test_hooks else None
        )
        if answer is None:
            request.setResponseCode(404)
            return b"not found"
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return answer.encode()

    # -- health and assets -----------------------------------------------------

    @app.route("/healthz", methods=["GET", "HEAD"])
    def healthz(self, request: IRequest) -> bytes:
        """Liveness: the daemon answers."""
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"ok\n"

    @app.route("/readyz", methods=["GET", "HEAD"])
    async def readyz(self, request: IRequest) -> bytes:
        """Readiness: every dependency answers (store, AMI, rate limits/Redis)."""
        results: dict[str, str] = {}
        failed: set[str] = set()
        for name, check in self._readiness.items():
            try:
                detail = await check()
            except NotReady as e:
                failed.add(name)
                results[name] = str(e)
            except Exception as e:  # reported in the answer, not raised
                failed.add(name)
                results[name] = f"failed: {type(e).__name__}: {e}".rstrip(": ")
            else:
                results[name] = detail if isinstance(detail, str) else "ok"
        ready = not failed
        request.setResponseCode(200 if ready else 503)
        request.setHeader(b"content-type", JSON)
        return json_bytes({"ready": ready, "checks": results})

    @app.route("/static/callnow.css", methods=["GET", "HEAD"])
    def stylesheet(self, request: IRequest) -> bytes:
        """The one stylesheet."""
        request.setHeader(b"content-type", b"text/css; charset=utf-8")
        request.setHeader(b"cache-control", b"public, max-age=86400")
        return STYLESHEET

    # -- helpers ---------------------------------------------------------------

    async def _find(self, callnow_id: str) -> Extension | None:
        if not CALLNOW_ID_RE.fullmatch(callnow_id):
            return None
        return await self._store.find_by_callnow_id(callnow_id)

    def _open(self, extension: Extension) -> bool:
        return is_accepting(
            extension.preferences, extension.timezone, self._clock.seconds()
        )

    def _validate(
        self, extension: Extension, values: dict[str, str]
    ) -> tuple[str, str | None]:
        """The number as typed (checked for its characters) and the valid name."""
        phone = check_phone_text(values["phone"])
        raw_name = values["name"]
        if not raw_name.strip() and not extension.preferences.ask_name:
            return phone, None
        return phone, normalize_name(raw_name)

    async def _take(
        self,
        request: IRequest,
        extension: Extension,
        values: dict[str, str],
        phone: str,
        name: str | None,
        source: RequestSource,
    ) -> bytes:
        """Hand a checked submission to the intake; answer what became of it."""
        try:
            outcome = await self._intake.submit(
                extension,
                phone,
                name,
                source,
                self._clock.seconds(),
                client_ip(request, self._settings.trust_forwarded_for),
            )
        except RateLimited as e:
            return self._limited(request, e.verdict)
        except FieldError as e:
            self._refused(f"invalid_{e.field}")
            return self._form(request, extension, values, {e.field: e.message}, 400)
        except DestinationRefused as e:
            self._refused(f"destination_{e.reason}")
            return self._form(request, extension, values, {"phone": e.message}, 400)
        if outcome.request.state is RequestState.REJECTED:
            # Stored with its reason; the visitor gets the uniform answer.
            return await self._unavailable(request, extension)
        return self._see_other(request, outcome.request)

    def _form(
        self,
        request: IRequest,
        extension: Extension,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        code: int = 200,
    ) -> bytes:
        prefs = extension.preferences
        nonce = cookie_nonce(request)
        if not self._csrf.valid_nonce(nonce) or nonce is None:
            nonce = self._csrf.new_nonce()
            # IRequest does not declare httpOnly/sameSite; twisted.web's Request has them.
            cast(Any, request).addCookie(
                COOKIE_NAME,
                nonce.encode(),
                path=b"/",
                httpOnly=True,
                secure=self._settings.secure_cookies,
                sameSite="strict",
            )
        captcha_id = self._captchas.issue() if prefs.image_validation else None
        request.setResponseCode(code)
        return self._html(
            request,
            "form.html",
            owner_name=extension.display_name if prefs.show_name else None,
            message=prefs.public_message,
            action=f"/callnow/{prefs.callnow_id}",
            csrf=self._csrf.token_for(nonce, prefs.callnow_id),
            captcha_id=captcha_id,
            name_required=prefs.ask_name,
            values=values or {"phone": "", "name": ""},
            errors=errors or {},
            phone_example=phone_example(self._settings.default_region),
        )

    async def _captcha_media(
        self,
        request: IRequest,
        challenge: str,
        render: Callable[[str], bytes],
        content_type: bytes,
    ) -> bytes:
        answer = self._captchas.answer_for(challenge)
        if answer is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"This security check has expired. Reload the form.\n"
        body = await self._blocking(lambda: render(answer))
        request.setHeader(b"content-type", content_type)
        return body

    def _see_other(self, request: IRequest, created: CallRequest) -> bytes:
        location = f"/callnow/{created.callnow_id}/requests/{created.token}"
        request.setResponseCode(303)
        request.setHeader(b"location", location.encode())
        return self._notice(request, "Request received", "Your request was received.")

    def _refused(self, reason: str) -> None:
        if self.on_refusal is not None:
            self.on_refusal(reason)

    def _limited(self, request: IRequest, verdict: Verdict) -> bytes:
        reason = verdict.reason.value if verdict.reason is not None else "limited"
        self._refused(f"rate_limited_{reason}")
        if reason == "unavailable":
            return try_again_later(request, self._notice)
        request.setResponseCode(429)
        wait = verdict.retry_after
        if wait is not None:
            request.setHeader(b"retry-after", str(math.ceil(wait)).encode())
        # Kept per wording: the wait is said in whole minutes or hours.
        return self._notice(
            request,
            "Too many requests",
            "Too many call requests came from you or for this number. "
            + (
                f"Please try again in {duration(wait)}."
                if wait is not None
                else "Requests from here are blocked."
            ),
        )

    async def _unavailable(
        self, request: IRequest, extension: Extension | None = None
    ) -> bytes:
        # One answer, same status and body, for unknown, disabled and not-accepting
        # links (and requests the rules refused), so the page tells nothing about
        # which it is -- except the hours, for an owner who chose to show them.
        # These answers are rate limited per client, against enumeration.
        if self.limiter is not None:
            verdict = await self.limiter.check_404(
                client_ip(request, self._settings.trust_forwarded_for),
                self._clock.seconds(),
            )
            if not verdict.allowed:
                return self._limited(request, verdict)
        self._refused("unavailable")
        request.setResponseCode(404)
        return self._notice(
            request,
            "This link is not available",
            "The person you are trying to reach cannot take call requests "
            "through this link right now.",
            tuple(hours_lines(extension, self._clock.seconds())),
        )

    def _bad_input(self, request: IRequest, error: BadInput) -> bytes:
        self._refused("bad_input")
        request.setResponseCode(error.status)
        if wants_json(request):
            request.setHeader(b"content-type", b"application/problem+json")
            return json_bytes(
                {"title": "Bad request", "detail": error.message, "field": error.field}
            )
        return self._notice(request, "This request cannot be read", error.message)

    def _notice(
        self, request: IRequest, title: str, text: str, hours: tuple[str, ...] = ()
    ) -> bytes:
        """The notice page (rendered once per distinct title, text and hours)."""
        request.setHeader(b"content-type", HTML)
        return self._templates.render_kept(
            "notice.html", title=title, text=text, hours=hours
        )

    def _html(self, request: IRequest, template: str, **context: Any) -> bytes:
        request.setHeader(b"content-type", HTML)
        return self._templates.render(template, **context)
