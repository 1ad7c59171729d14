"""The call flow's PBX port over AMI: ring the owner, list channels, UserEvents.

:class:`AmiPbx` implements :class:`callnowd.calls.ports.Pbx` with an
:class:`~callnowd.ami.client.AmiClient`; :func:`watch_calls` feeds the AMI events the
flow needs (visitor answered, owner channel gone, session ready) back into it.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from callnowd.ami.client import (
    AmiActionError,
    AmiClient,
    AmiConnectionLost,
    AmiNotConnected,
    OriginateTimeout,
)
from callnowd.ami.codec import AmiEncodingError, Message
from callnowd.ami.deadlines import DelayQueue
from callnowd.ami.originate import OriginateResult
from callnowd.background import run_in_background
from callnowd.calls.flow import CallFlow
from callnowd.calls.ports import OwnerOutcome, PbxError
from callnowd.calls.states import Reason
from callnowd.log_throttle import LogThrottle
from callnowd.models import CallRequest, Extension

_REASONS = {
    4: OwnerOutcome.ANSWERED,
    3: OwnerOutcome.NO_ANSWER,
    5: OwnerOutcome.BUSY,
    1: OwnerOutcome.REJECTED,
}


@attrs.frozen
class OwnerDialplan:
    """Where the answered owner leg goes.

    By default to ``context``/``exten``/``priority`` (the shipped ``callnow-owner``
    context hands the channel to our FastAGI URL). ``use_application`` sends
    ``Application: AGI`` instead, which needs the AMI ``system`` write class.
    """

    agi_url: str
    context: str = "callnow-owner"
    exten: str = "s"
    priority: int = 1
    use_application: bool = False
    ring_timeout: int = 30


def _consume(result: Deferred[OriginateResult]) -> None:
    """Handle ``result``'s failure: it fails as its ``queued`` did, already reported.

    Left alone, each would be logged as an unhandled error in a Deferred when
    collected (hundreds at once when a connection drops with calls in flight).
    """
    result.addErrback(lambda _: None)


#: Seconds between two log events about UserEvents that failed or were not sent.
NOTIFY_LOG_INTERVAL = 10.0


class AmiPbx:
    """:class:`callnowd.calls.ports.Pbx` over an AMI client.

    Args:
        client: the AMI client.
        dialplan: where answered owner legs go.
        clock: paces the log events about lost UserEvents (at most one of each
            kind per ``NOTIFY_LOG_INTERVAL`` s, with the number left out).
    """

    log = Logger()

    def __init__(
        self, client: AmiClient, dialplan: OwnerDialplan, clock: IReactorTime
    ) -> None:
        self._client = client
        self.dialplan = dialplan
        # An overloaded or absent PBX fails every UserEvent: one log event per
        # failure would add a traceback's formatting to each transition.
        self._failed_log = LogThrottle(clock, NOTIFY_LOG_INTERVAL, self._more_failed)
        self._down_log = LogThrottle(clock, NOTIFY_LOG_INTERVAL, self._more_not_sent)

    async def wait_ready(self, timeout: float) -> bool:
        """See :meth:`callnowd.calls.ports.Pbx.wait_ready`."""
        try:
            await self._client.wait_connected(timeout)
        except AmiNotConnected:
            return False
        return True

    async def originate_owner(
        self, request: CallRequest, extension: Extension, channel_id: str
    ) -> OwnerOutcome:
        """See :meth:`callnowd.calls.ports.Pbx.originate_owner`."""
        plan = self.dialplan
        # Names reaching here passed validation (letters, marks, digits, space, .'-),
        # so they cannot break out of the quotes; the encoder refuses CR/LF anyway.
        shown = f"CallNow: {request.name}" if request.name else "CallNow"
        destination: dict[str, str | int | None]
        if plan.use_application:
            destination = {
                "application": "AGI",
                "data": f"{plan.agi_url}/owner,{request.id}",
            }
        else:
            destination = {
                "context": plan.context,
                "exten": plan.exten,
                "priority": plan.priority,
            }
        try:
            handle = self._client.originate(
                channel=extension.dial_string,
                timeout_ms=plan.ring_timeout * 1000,
                caller_id=f'"{shown}" <{request.phone}>',
                variables=[("CALLNOW_REQUEST", request.id)],
                channel_id=channel_id,
                **destination,  # type: ignore[arg-type]
            )
        except AmiNotConnected as e:
            raise PbxError(Reason.PBX_UNAVAILABLE) from e
        except (AmiEncodingError, ValueError) as e:
            raise PbxError(Reason.AMI_ERROR, str(e)) from e
        try:
            await handle.queued
        except AmiActionError as e:
            _consume(handle.result)  # failed the same way
            raise PbxError(Reason.AMI_ERROR, str(e)) from e
        except (AmiConnectionLost, DeferredTimeoutError):
            # The action may or may not have been executed: never resend it; the
            # next reconciliation asks Asterisk whether the channel exists.
            _consume(handle.result)
            return OwnerOutcome.UNKNOWN
        try:
            result = await handle.result
        except (AmiConnectionLost, OriginateTimeout):
            return OwnerOutcome.UNKNOWN
        if result.answered:
            return OwnerOutcome.ANSWERED
        return _REASONS.get(result.reason, OwnerOutcome.UNREACHABLE)

    async def live_channels(self) -> frozenset[str]:
        """See :meth:`callnowd.calls.ports.Pbx.live_channels`."""
        listing = await self._client.send_list_action("CoreShowChannels")
        ids: set[str] = set()
        for item in listing.items:
            for key in ("Uniqueid", "Linkedid"):
                value = item.get(key)
                if value:
                    ids.add(value)
        return frozenset(ids)

    def notify(self, fields: Sequence[tuple[str, str]]) -> None:
        """See :meth:`callnowd.calls.ports.Pbx.notify`."""
        if not self._client.connected:
            suppressed = self._down_log.allow()
            if suppressed is not None:
                self.log.warn(
                    "UserEvent CallNow not sent, AMI is down: {fields}"
                    " ({suppressed} more not sent since the last report)",
                    fields=dict(fields),
                    suppressed=suppressed,
                )
            return
        # Sent without waiting for the answer (nobody needs it); a failure is
        # still logged, at error level.
        try:
            answer = self._client.post_user_event("CallNow", fields)
        except Exception:
            self._user_event_failed(Failure())
            return
        answer.addErrback(self._user_event_failed)

    def _user_event_failed(self, failure: Failure) -> None:
        suppressed = self._failed_log.allow()
        if suppressed is not None:
            self.log.failure(
                "UserEvent CallNow failed ({suppressed} more failed since the last"
                " report)",
                failure,
                level=LogLevel.error,
                suppressed=suppressed,
            )

    def _more_failed(self, count: int) -> None:
        self.log.error(
            "UserEvent CallNow: {suppressed} more failed since the last report",
            suppressed=count,
        )

    def _more_not_sent(self, count: int) -> None:
        self.log.warn(
            "UserEvent CallNow: {suppressed} more not sent (AMI down) since the"
            " last report",
            suppressed=count,
        )


class GraceQueue(DelayQueue[str]):
    """Runs ``action(key)`` the grace (``delay`` s) after each :meth:`add`, in order.

    One timer serves every pending key (the delay is the same for all, so they
    fall due in the order they were added), instead of one timer each.
    """

    def add(self, key: str) -> None:
        """Run the action for ``key`` after the grace period."""
        self._push(key)


def watch_calls(
    client: AmiClient, flow: CallFlow, clock: IReactorTime, grace: float = 2.0
) -> GraceQueue:
    """Feed AMI events into the flow; reconcile after every login.

    ``grace`` delays the reaction to a Hangup so that the FastAGI handler, which
    settles most requests itself, gets there first.

    Returns:
        The queue of Hangups waiting for their grace period.
    """
    log = Logger(namespace="callnowd.ami.pbx.watch")
    prefix = flow.channel_prefix

    def dial_end(event: Message) -> None:
        uniqueid = event.get("Uniqueid") or ""
        if event.get("DialStatus") == "ANSWER" and uniqueid.startswith(prefix):
            run_in_background(log, "visitor answered", flow.visitor_answered(uniqueid))

    def gone(uniqueid: str) -> None:
        # Most owner channels belong to requests the flow already ended: those
        # are answered here, without starting a coroutine.
        if flow.may_settle(uniqueid):
            run_in_background(log, "channel gone", flow.channel_gone(uniqueid))

    graces = GraceQueue(clock, grace, gone)

    def hangup(event: Message) -> None:
        uniqueid = event.get("Uniqueid") or ""
        if uniqueid.startswith(prefix):
            graces.add(uniqueid)

    def ready() -> None:
        run_in_background(log, "reconciliation", _reconcile(flow, log))

    client.subscribe("DialEnd", dial_end)
    client.subscribe("Hangup", hangup)
    client.on_ready(ready)
    return graces


async def _reconcile(flow: CallFlow, log: Logger) -> None:
    failed = await flow.reconcile()
    if failed:
        log.warn(
            "Reconciliation marked {count} in-flight request(s) failed: interrupted",
            count=failed,
        )
