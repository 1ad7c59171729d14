"""Taking in a visitor's request: destination policy, rules, joining, storing.

The order is: the destination policy on the number as typed (a refusal is stored
with its reason and the visitor is told the number cannot be called); then the
rules engine (availability, busy owner, caller rules, confirmation), whose reject is
stored as a ``rejected`` request; only a request the rules let through may join an
open one for the same visitor, or be stored as ``received`` and handed to the
listeners (the dispatcher).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from callnowd.calls.requests import new_request
from callnowd.limits.destination_policy import DestinationPolicy
from callnowd.limits.destinations import REASON_INVALID, check_destination
from callnowd.limits.ratelimit import Verdict
from callnowd.log_throttle import LogThrottle
from callnowd.models import CallRequest, Extension, RequestSource
from callnowd.rules.callers import Action
from callnowd.rules.engine import Decision, DecisionReason, decide_for_request
from callnowd.store.errors import StoreUnavailable
from callnowd.store.interface import Store
from callnowd.validation import FieldError


class BusyProbe(Protocol):
    """Tells whether the phone of a dial string is in a call."""

    async def is_busy(self, dial_string: str) -> bool:
        """True while the phone is in a call."""


class RequestLimiter(Protocol):
    """The rate limits a request must pass (callnowd.limits.limiter.Limiter)."""

    async def check(
        self, client_ip: str, callnow_id: str, destination_e164: str, now: float
    ) -> Verdict:
        """Allowed (and charged to every limit), or refused with a reason."""

    async def refund(
        self, client_ip: str, callnow_id: str, destination_e164: str, now: float
    ) -> None:
        """Give back what an allowed :meth:`check` of the same request charged."""


@attrs.frozen
class Charged:
    """What an allowed request was charged to: the limiter and the request's terms."""

    limiter: RequestLimiter
    request: tuple[str, str, str, float]  # client IP, CallNow id, number, time


@attrs.frozen
class RateLimited(Exception):
    """A rate limit refused the request; nothing was charged or stored."""

    verdict: Verdict


Joiner = Callable[[str, str], Awaitable[CallRequest | None]]
# Told each new request with the extension it was taken for (the dispatcher).
Dispatcher = Callable[[CallRequest, Extension], object]
T = TypeVar("T")


def shielded(
    coro: Coroutine[Deferred[Any], Any, T], late: Callable[[Failure], object]
) -> Deferred[T]:
    """Run ``coro`` to its end even if the awaiting caller is cancelled.

    Cancelling the returned Deferred fails it with CancelledError at once, while
    ``coro`` goes on; its failure, if any, is then handed to ``late`` rather than
    lost.
    """
    inner = Deferred.fromCoroutine(coro)
    outer: Deferred[T] = Deferred()

    def done(result: T | Failure) -> None:
        if not outer.called:
            outer.callback(result)  # a Failure here errbacks outer
        elif isinstance(result, Failure):
            late(result)

    inner.addBoth(done)
    return outer


Listener = Callable[[CallRequest], object]
#: Seconds between two log lines of store outages met by visitors who had left.
LATE_OUTAGE_LOG_INTERVAL = 10.0


@attrs.frozen
class Outcome:
    """What became of a submission.

    Attributes:
        request: the stored (or joined) request.
        created: whether it was stored now (False: joined or repeated).
        decision: the rules' decision, when they ran.
    """

    request: CallRequest
    created: bool
    decision: Decision | None = None


@attrs.frozen
class DestinationRefused(Exception):
    """The destination policy refused the number (already recorded)."""

    reason: str
    message: str


class Intake:
    """The request-taking use case, shared by the public pages (and the API).

    Args:
        store: persistence.
        policy: the operator's destination policy.
        presence: asks the PBX whether the owner is on the phone (optional).
        one_step_window: seconds during which identical one-step links collapse.
        limiter: the rate limits (none: no limits).
        clock: paces the log of store outages met by requests whose visitor had
            left, one line per ``LATE_OUTAGE_LOG_INTERVAL`` with a count and no
            traceback (the visitors who stayed are answered, and logged, by the
            pages); without it each is logged with its traceback.
    """

    log = Logger()

    def __init__(
        self,
        store: Store,
        policy: DestinationPolicy,
        presence: BusyProbe | None,
        one_step_window: float,
        limiter: RequestLimiter | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self._store = store
        self._limiter = limiter
        self._late_outages = (
            None
            if clock is None
            else LogThrottle(clock, LATE_OUTAGE_LOG_INTERVAL, self._more_late_outages)
        )
        self._policy = policy
        self._presence = presence
        self._window = one_step_window
        self.joiner: Joiner | None = None
        self.listeners: list[Listener] = []
        self.dispatcher: Dispatcher | None = None

    def destination(self, raw_phone: str) -> str:
        """The E.164 number the policy allows, from the number as typed.

        Raises:
            FieldError: not a phone number at all (nothing is recorded).
            DestinationRefused: a number the policy refuses.
        """
        verdict = check_destination(raw_phone, self._policy)
        if verdict.allowed and verdict.e164 is not None:
            return verdict.e164
        if verdict.reason == REASON_INVALID or verdict.reason is None:
            raise FieldError("phone", "This is not a valid phone number.")
        raise DestinationRefused(verdict.reason, verdict.message or "")

    async def submit(
        self,
        extension: Extension,
        raw_phone: str,
        name: str | None,
        source: RequestSource,
        now: float,
        client_ip: str = "",
    ) -> Outcome:
        """Decide on and store one request.

        Raises:
            RateLimited: a limit refused it (before anything was stored).
            FieldError: the number is not a phone number.
            DestinationRefused: the policy refuses the number; a ``rejected``
                request with the reason was stored.
            StoreUnavailable: the store cannot take it now; what the limits
                charged for it was given back.
        """
        try:
            phone = self.destination(raw_phone)
        except DestinationRefused as refused:
            await self._record_refusal(extension, raw_phone, name, source, now, refused)
            raise
        charged: Charged | None = None
        if self._limiter is not None:
            callnow_id = extension.preferences.callnow_id
            verdict = await self._limiter.check(client_ip, callnow_id, phone, now)
            if not verdict.allowed:
                raise RateLimited(verdict)
            charged = Charged(self._limiter, (client_ip, callnow_id, phone, now))
        # Shielded: if the visitor's connection drops now (the web framework then
        # cancels this coroutine), the request is still decided, stored *and*
        # dispatched, never stored and forgotten; and one the store cannot take
        # still gives its permits back.
        return await shielded(
            self._take(extension, phone, name, source, now, charged), self._late
        )

    def _late(self, failure: Failure) -> None:
        """A request failed after its visitor left: nobody was answered, log it."""
        if self._late_outages is None or not failure.check(StoreUnavailable):
            self.log.failure("A request failed after its visitor left", failure)
            return
        left_out = self._late_outages.allow()
        if left_out is None:
            return
        more = f" ({left_out} more since the last report)" if left_out else ""
        self.log.error(
            "Store unavailable for a request whose visitor had left: {error}{more}",
            error=failure.getErrorMessage(),
            more=more,
            left_out=left_out,
        )

    def _more_late_outages(self, left_out: int) -> None:
        self.log.error(
            "Store unavailable: {left_out} more requests whose visitor had left",
            left_out=left_out,
        )

    async def _take(
        self,
        extension: Extension,
        phone: str,
        name: str | None,
        source: RequestSource,
        now: float,
        charged: Charged | None,
    ) -> Outcome:
        """Decide and store; a request the store cannot take is given back."""
        try:
            return await self._decide_and_store(extension, phone, name, source, now)
        except StoreUnavailable:
            if charged is not None:
                # The visitor is told to send it again: this one must not count.
                await self._refund(charged)
            raise

    async def _refund(self, charged: Charged) -> None:
        try:
            await charged.limiter.refund(*charged.request)
        except Exception:
            self.log.failure(
                "Could not give back the rate-limit permits of a request the store"
                " could not take"
            )

    async def _decide_and_store(
        self,
        extension: Extension,
        phone: str,
        name: str | None,
        source: RequestSource,
        now: float,
    ) -> Outcome:
        """Run the rules, then join an open request or store a new one."""
        rules = await self._store.list_rules(extension.number)
        busy = False
        if extension.preferences.reject_when_busy and self._presence is not None:
            busy = await self._presence.is_busy(extension.dial_string)
        decision = decide_for_request(extension, rules, phone, name, busy, now)
        if decision.action is not Action.REJECT and self.joiner is not None:
            joined = await self.joiner(extension.number, phone)
            if joined is not None:
                self.log.info(
                    "Request for extension {extension} joins open request {request_id}",
                    extension=extension.number,
                    request_id=joined.id,
                )
                return Outcome(joined, False, decision)
        stored, created = await self._store_new(
            extension, phone, name, source, now, decision
        )
        return Outcome(stored, created, decision)

    async def _store_new(
        self,
        extension: Extension,
        phone: str,
        name: str | None,
        source: RequestSource,
        now: float,
        decision: Decision,
    ) -> tuple[CallRequest, bool]:
        one_step = source is RequestSource.ONE_STEP
        request, event = new_request(
            extension, phone, name, source, now, decision=decision, dedupe=one_step
        )
        since = now - self._window if one_step else None
        stored, created = await self._store.create_request(
            request, event, dedupe_since=since
        )
        if created:
            self.log.info(
                "Call request {request_id} for extension {extension}: {decision}",
                request_id=stored.id,
                extension=stored.extension,
                decision=decision.explain(),
                source=source.value,
            )
            for listener in self.listeners:
                listener(stored)
            if self.dispatcher is not None:
                self.dispatcher(stored, extension)
        return stored, created

    async def _record_refusal(
        self,
        extension: Extension,
        raw_phone: str,
        name: str | None,
        source: RequestSource,
        now: float,
        refused: DestinationRefused,
    ) -> None:
        # Kept as digits only: what was typed, without anything else it contained.
        typed = raw_phone.strip()
        digits = ("+" if typed.startswith("+") else "") + "".join(
            c for c in typed if c.isdigit()
        )
        decision = Decision(
            action=Action.REJECT,
            reason=DecisionReason.DESTINATION_REFUSED,
            decided_by=f"destination_policy:{refused.reason}",
        )
        await self._store_new(extension, digits, name, source, now, decision)
