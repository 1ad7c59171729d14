"""The call flow: a stored request becomes at most one call, every step audited.

``CallFlow`` owns the life of a request after it is stored: capacity checks, waiting
for the PBX, ringing the owner (AMI), the owner's choice and the visitor's call (AGI),
and reconciliation after an AMI reconnect or a daemon restart. It speaks to the PBX
only through :mod:`callnowd.calls.ports` and to time through ``now``.

At most once: a request is moved to ``ringing_owner`` (with its channel id) in the
store *before* the originate is sent, and nothing ever sends one for a request in any
other state, so a crash, a reconnect or a retry can never dial it a second time.

The flow keeps the copy of each request it carries as its last transition returned
it (in its :class:`~callnowd.calls.inflight.InFlight`, with the rest of its memory of
the requests it carries and those it saw end), and starts the next transition from
that copy instead of reading the request again: the store's transition is atomic on
the expected state, so a copy that is no longer current (another process moved the
request) only costs a ``StaleState``, after which the request is read and the step
decided again, as before.

When the daemon stops, the flow is told first (:meth:`CallFlow.stop`): from then on
it stores no outcome, and the work in flight, cut short by the store's closing and
the AMI's, ends quietly; the next start reconciles its requests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import attrs
from twisted.logger import Logger

from callnowd.calls.inflight import InFlight
from callnowd.calls.ports import Choice, OwnerLeg, OwnerOutcome, Pbx, PbxError
from callnowd.calls.states import FINAL, IN_FLIGHT, IllegalTransition, Reason, check
from callnowd.models import CallRequest, Extension, RequestEvent, RequestState
from callnowd.store.errors import StoreClosed
from callnowd.store.interface import StaleState, Store

S = RequestState

_OUTCOMES: dict[OwnerOutcome, tuple[RequestState, str]] = {
    OwnerOutcome.NO_ANSWER: (S.OWNER_NO_ANSWER, Reason.NO_ANSWER),
    OwnerOutcome.BUSY: (S.OWNER_BUSY, Reason.BUSY),
    OwnerOutcome.REJECTED: (S.OWNER_DECLINED, Reason.REJECTED_ON_PHONE),
    OwnerOutcome.UNREACHABLE: (S.FAILED, Reason.OWNER_UNREACHABLE),
}
_DIAL: dict[str, tuple[RequestState, str]] = {
    "BUSY": (S.VISITOR_BUSY, Reason.BUSY),
    "NOANSWER": (S.VISITOR_NO_ANSWER, Reason.NO_ANSWER),
    "CANCEL": (S.FAILED, Reason.OWNER_HUNG_UP),
}


class FlowStopped(Exception):
    """The daemon is stopping: the flow stores no more outcomes (see ``stop``)."""


@attrs.frozen
class FlowSettings:
    """The call flow's knobs (from ``[asterisk]`` and ``[calls]``)."""

    instance_id: str
    trunk: str = "PJSIP/{e164}@trunk"
    visitor_ring_timeout: int = 30
    max_call_seconds: int = 1800
    connect_wait: float = 10.0
    max_in_flight: int = 50
    max_in_flight_per_extension: int = 2
    notify_visitor: bool = False
    # A request stored but never dispatched (the daemon stopped first) is dispatched
    # by the next reconciliation if younger than this, else failed.
    received_max_age: float = 300.0
    # How long the flow remembers the requests it ended, so that the Hangup of
    # their channel (seen a grace period later) needs no store read.
    finished_memory: float = 30.0


class CallFlow:
    """Runs requests through the states of DESIGN §5.

    Args:
        store: persistence (every transition goes through it).
        pbx: the AMI side.
        now: the clock, as POSIX seconds.
        settings: knobs.
    """

    log = Logger()

    def __init__(
        self,
        store: Store,
        pbx: Pbx,
        now: Callable[[], float],
        settings: FlowSettings,
        observer: Callable[[CallRequest], object] | None = None,
    ) -> None:
        self._store = store
        self._observer = observer
        self._pbx = pbx
        self._now = now
        self._settings = settings
        # The requests carried on this daemon, and those seen ending (final for good).
        self._inflight = InFlight(
            now,
            settings.max_in_flight,
            settings.max_in_flight_per_extension,
            settings.finished_memory,
        )
        self._awaiting_originate: set[str] = set()
        self._agi_active: set[str] = set()
        self._stopping = False
        self.channel_prefix = f"callnow-{settings.instance_id}-"

    def stop(self) -> None:
        """The daemon is stopping: store no more outcomes; call before the store closes.

        An outcome seen from now on may be the shutdown's own doing (the AMI or
        FastAGI connection closing), and the store closes under the work in
        flight: that work ends quietly, its requests left as stored, for the next
        start's reconciliation (:meth:`reconcile`) to settle or resume.
        """
        self._stopping = True
        self.log.info(
            "Stopping with {count} request(s) in flight; the next start"
            " reconciles them",
            count=len(self._inflight),
        )

    def _stopped_by(self, error: Exception) -> bool:
        """Whether ``error`` is the stopping daemon's, expected (see :meth:`stop`)."""
        return self._stopping and isinstance(error, FlowStopped | StoreClosed)

    @contextlib.contextmanager
    def _until_stopped(self) -> Iterator[None]:
        """End the enclosed work quietly if the daemon stops under it."""
        try:
            yield
        except Exception as e:
            if not self._stopped_by(e):
                raise

    # -- entry points ----------------------------------------------------------------

    async def find_joinable(self, extension: str, phone: str) -> CallRequest | None:
        """A request of this daemon for the same visitor and extension, still open."""
        request_id = self._inflight.joinable(extension, phone)
        if request_id is None:
            return None
        request = await self._store.get_request(request_id)
        if request is None or request.state in FINAL:
            return None
        return request

    async def dispatch(
        self, request: CallRequest, extension: Extension | None = None
    ) -> None:
        """Ring the owner for a request in state ``received``; at most once.

        ``extension`` is the request's extension as just read (by the intake);
        without it, it is read from the store.
        """
        if (
            self._stopping
            or request.state is not S.RECEIVED
            or request.id in self._inflight
        ):
            return  # stopping: left received, for the next start to dispatch
        # Registered before the first await, so a twin arriving now joins this one.
        self._inflight.mark_open(request)
        current = request  # a stale copy is harmless: the store's transition checks
        with self._until_stopped():
            if self._inflight.full_for(current.extension):
                await self._move_if_open(current.id, S.FAILED, Reason.CAPACITY)
                await self._forget_if_final(current.id)
                return
            self._inflight.track(current)
            try:
                await self._ring_owner(current, extension)
            except StaleState:
                pass  # another dispatch of the same request won the race; it dials
            except Exception as e:
                if self._stopped_by(e):
                    raise  # not a failure of the request: _until_stopped ends it
                self.log.failure(
                    "Dispatch of {request_id} failed", request_id=current.id
                )
                await self._move_if_open(current.id, S.FAILED, Reason.AMI_ERROR)
            finally:
                self._awaiting_originate.discard(current.id)
                await self._forget_if_final(current.id)

    async def _ring_owner(
        self, request: CallRequest, extension: Extension | None
    ) -> None:
        if extension is None or extension.number != request.extension:
            extension = await self._store.get_extension(request.extension)
        if extension is None:
            await self._move(request, S.FAILED, Reason.OWNER_UNREACHABLE)
            return
        if not await self._pbx.wait_ready(self._settings.connect_wait):
            await self._move(request, S.FAILED, Reason.PBX_UNAVAILABLE)
            return
        channel_id = self.channel_prefix + request.id
        request = await self._move(
            request, S.RINGING_OWNER, detail=extension.number, channel_id=channel_id
        )
        # Until its outcome is stored, the request is this coroutine's: a Hangup of
        # the channel seen meanwhile must not settle it (channel_gone checks this).
        self._awaiting_originate.add(request.id)
        try:
            try:
                outcome = await self._pbx.originate_owner(
                    request, extension, channel_id
                )
            except PbxError as e:
                await self._move_if_open(request.id, S.FAILED, e.reason, e.detail)
                return
            if outcome is OwnerOutcome.ANSWERED or outcome is OwnerOutcome.UNKNOWN:
                # Answered: the owner leg is now the AGI handler's. Unknown: the
                # next reconciliation asks the PBX whether the channel lives.
                self.log.info(
                    "Owner leg of {request_id}: {outcome}",
                    request_id=request.id,
                    outcome=outcome.value,
                )
                return
            state, reason = _OUTCOMES[outcome]
            await self._move_if_open(request.id, state, reason)
        finally:
            self._awaiting_originate.discard(request.id)

    async def owner_answered(self, request_id: str, leg: OwnerLeg) -> None:
        """Drive the answered owner leg: confirm if needed, then call the visitor."""
        with self._until_stopped():
            request = await self._store.get_request(request_id)
            if request is None or request.state is not S.RINGING_OWNER:
                self.log.warn(
                    "Owner leg for {request_id} in no ringing request; hanging up",
                    request_id=request_id,
                )
                await leg.finish()
                return
            self._agi_active.add(request_id)
            try:
                await self._owner_leg(request, leg)
            finally:
                self._agi_active.discard(request_id)
                await leg.finish()
                await self._forget_if_final(request_id)

    async def _owner_leg(self, request: CallRequest, leg: OwnerLeg) -> None:
        extension = await self._store.get_extension(request.extension)
        if extension is None:
            await self._move(request, S.FAILED, Reason.OWNER_UNREACHABLE)
            return
        if request.decision != "accept":
            choice = await leg.confirm(request.phone.lstrip("+"))
            if choice is Choice.DECLINE:
                await self._move(request, S.OWNER_DECLINED, Reason.DECLINED)
                await leg.say_declined()
                return
            if choice is not Choice.ACCEPT:
                reason = (
                    Reason.HUNG_UP if choice is Choice.HUNG_UP else Reason.NO_RESPONSE
                )
                await self._move(request, S.OWNER_NO_ANSWER, reason)
                return
        request = await self._move(request, S.CALLING_VISITOR)
        result = await leg.call_visitor(
            extension.external_number, extension.account, self.dial_data(request)
        )
        if result.status == "ANSWER":
            current = await self._store.get_request(request.id)
            if current is not None and current.state is S.CALLING_VISITOR:
                await self._move(current, S.CONNECTED)
            await self._move_if_open(
                request.id,
                S.COMPLETED,
                Reason.NORMAL,
                f"answered {result.answered_seconds}s",
            )
            return
        state, reason = _DIAL.get(result.status, (S.FAILED, Reason.VISITOR_UNREACHABLE))
        await self._move_if_open(request.id, state, reason, result.status)

    def dial_data(self, request: CallRequest) -> str:
        """The ``Dial()`` data for calling the visitor: trunk, timeout, ``L()``."""
        target = self._settings.trunk.format(
            e164=request.phone, digits=request.phone.lstrip("+")
        )
        limit_ms = self._settings.max_call_seconds * 1000
        return f"{target},{self._settings.visitor_ring_timeout},L({limit_ms})"

    async def visitor_answered(self, channel_id: str) -> None:
        """The PBX reports the visitor answered on the owner channel ``channel_id``."""
        request_id = self._request_id(channel_id)
        if request_id is None:
            return
        with self._until_stopped():
            await self._move_if_open(
                request_id, S.CONNECTED, None, from_=S.CALLING_VISITOR
            )

    def may_settle(self, channel_id: str) -> bool:
        """Whether :meth:`channel_gone` may have anything to do for ``channel_id``.

        False for channels not of this daemon, requests another path is settling
        now, and requests this flow saw end (final: nothing to settle).
        """
        request_id = self._request_id(channel_id)
        return not (
            request_id is None
            or request_id in self._agi_active
            or request_id in self._awaiting_originate
            or request_id in self._inflight.finished
        )

    async def channel_gone(self, channel_id: str) -> None:
        """The owner channel hung up; settle the request if nobody else will."""
        if not self.may_settle(channel_id):
            return
        request_id = self._request_id(channel_id)
        assert request_id is not None  # noqa: S101 (may_settle checked it)
        with self._until_stopped():
            request = await self._store.get_request(request_id)
            if request is None or request.state not in IN_FLIGHT:
                return
            if request.state is S.CONNECTED:
                await self._move_if_open(
                    request_id, S.COMPLETED, Reason.NORMAL, "hangup"
                )
            else:
                await self._move_if_open(request_id, S.FAILED, Reason.INTERRUPTED)
            await self._forget_if_final(request_id)

    async def reconcile(self) -> int:
        """Settle this daemon's in-flight requests nobody is tracking.

        Called after every AMI login (so after a reconnect and at start). A request
        whose channel still lives is left to its Hangup; the others failed.

        Returns:
            How many requests were marked ``failed: interrupted``.
        """
        failed = 0
        with self._until_stopped():
            failed = await self._resume_received()
            candidates = [
                r
                for r in await self._store.list_requests(
                    states=tuple(sorted(IN_FLIGHT)), limit=10_000
                )
                if r.channel_id is not None
                and r.channel_id.startswith(self.channel_prefix)
                and r.id not in self._awaiting_originate
                and r.id not in self._agi_active
            ]
            if not candidates:
                return failed
            live = await self._pbx.live_channels()
            for request in candidates:
                if request.channel_id in live:
                    self._inflight.track(request)
                    self._inflight.mark_open(request)
                    continue
                if request.state is S.CONNECTED:
                    await self._move_if_open(
                        request.id, S.COMPLETED, Reason.NORMAL, "reconciled"
                    )
                else:
                    await self._move_if_open(request.id, S.FAILED, Reason.INTERRUPTED)
                    failed += 1
                await self._forget_if_final(request.id)
        return failed

    async def _resume_received(self) -> int:
        """Dispatch requests stored but never dispatched; fail the stale ones."""
        waiting = [
            r
            for r in await self._store.list_requests(states=(S.RECEIVED,), limit=10_000)
            if r.id not in self._inflight
        ]
        failed = 0
        for request in reversed(waiting):  # oldest first
            if request.created_at < self._now() - self._settings.received_max_age:
                await self._move_if_open(request.id, S.FAILED, Reason.INTERRUPTED)
                failed += 1
            else:
                # Safe with several daemons: received -> ringing_owner is atomic.
                await self.dispatch(request)
        return failed

    # -- transitions -----------------------------------------------------------------

    async def _move(
        self,
        request: CallRequest,
        state: RequestState,
        reason: str | None = None,
        detail: str | None = None,
        *,
        channel_id: str | None = None,
    ) -> CallRequest:
        if self._stopping:
            raise FlowStopped(request.id)  # see stop: the next start decides
        check(request.state, state)
        event = RequestEvent(request.id, self._now(), state, reason, detail)
        moved = await self._store.transition(
            request.id, (request.state,), event, channel_id=channel_id
        )
        self.log.info(
            "Request {request_id}: {state}{because}",
            request_id=request.id,
            state=state.value,
            because=f" ({reason})" if reason else "",
            reason=reason,
        )
        self._inflight.update(moved)
        self._notify(moved)
        if self._observer is not None:
            self._observer(moved)
        return moved

    async def _move_if_open(
        self,
        request_id: str,
        state: RequestState,
        reason: str | None,
        detail: str | None = None,
        *,
        from_: RequestState | None = None,
    ) -> CallRequest | None:
        """Move unless the request already ended (another path got there first).

        Starts from the flow's own copy when it has one; if that copy turns out
        stale, the request is read and the step decided again.
        """
        current = self._inflight.latest(request_id)
        if current is not None:
            if current.state in FINAL:
                return None
            if from_ is None or current.state is from_:
                try:
                    return await self._move(current, state, reason, detail)
                except (StaleState, IllegalTransition):
                    pass  # moved elsewhere: decide again on the stored request
        current = await self._store.get_request(request_id)
        if current is None or current.state in FINAL:
            return None
        if from_ is not None and current.state is not from_:
            return None
        try:
            return await self._move(current, state, reason, detail)
        except StaleState:
            return None

    async def _forget_if_final(self, request_id: str) -> None:
        if self._stopping:
            return  # the process ends: nothing left to keep tidy
        current = self._inflight.latest(request_id)
        if current is None or current.state not in FINAL:
            # Final is final: only a copy that is not yet needs the store's word.
            current = await self._store.get_request(request_id)
        if current is None or current.state in FINAL:
            self._inflight.forget(request_id, current)

    def _notify(self, request: CallRequest) -> None:
        fields = [
            ("RequestID", request.id),
            ("CallNowID", request.callnow_id),
            ("Extension", request.extension),
            ("State", request.state.value),
            ("Reason", request.reason or ""),
        ]
        if self._settings.notify_visitor:
            fields.append(("VisitorNumber", request.phone))
            fields.append(("VisitorName", request.name or ""))
        self._pbx.notify(fields)

    def _request_id(self, channel_id: str) -> str | None:
        if not channel_id.startswith(self.channel_prefix):
            return None
        return channel_id.removeprefix(self.channel_prefix) or None

    @property
    def in_flight(self) -> int:
        """Requests this daemon is carrying now."""
        return len(self._inflight)
