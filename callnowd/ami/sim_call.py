"""One originated call of the simulator: the owner leg from Originate to Cdr.

This module owns the state machine of an ``Originate`` (``Async: true``): the
channels it creates (``Local/...;1``/``;2`` or one channel of another tech),
the scripted owner phone (answer and digit, decline, no answer, ringing, busy,
nonexistent), ``OriginateResponse`` with the observed Reason codes, the
dialplan run on answer (``AGI()`` from ``Application``/``Data`` or from the
configured context template), and the teardown order (Hangup causes, Cdr
events) of the Asterisk 22.10.1 transcripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from twisted.logger import Logger

from callnowd.ami import sim_channels as ev
from callnowd.ami.sim_channels import Channel, Headers
from callnowd.ami.sim_config import OwnerScript
from callnowd.ami.sim_dialplan import AgiUrlError, expand_variables, parse_agi_data
from callnowd.ami.sim_host import SimHost

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from callnowd.ami.sim_agi import AgiSession

REASON_FAILURE = 0
REASON_NO_ANSWER = 3
REASON_ANSWERED = 4
REASON_BUSY = 5


@attrs.frozen
class OriginateRequest:
    """A validated Originate action.

    Attributes:
        action_id: the ActionID, echoed in OriginateResponse.
        dial_string: the ``Channel`` header (``Tech/data``).
        context: dialplan context (context mode).
        exten: extension (context mode).
        priority: priority (context mode).
        application: application name (application mode), else "".
        data: application data.
        timeout: ring timeout in seconds.
        caller_name: name part of ``CallerID``.
        caller_num: number part of ``CallerID``.
        variables: ``(name, value)`` from the ``Variable`` headers.
        channel_id: ``ChannelId`` (Uniqueid of the first leg) or "".
        other_channel_id: ``OtherChannelId`` or "".
        account: ``Account`` (the channel accountcode).
    """

    action_id: str | None
    dial_string: str
    context: str
    exten: str
    priority: int
    application: str
    data: str
    timeout: float
    caller_name: str
    caller_num: str
    variables: tuple[tuple[str, str], ...]
    channel_id: str = ""
    other_channel_id: str = ""
    account: str = ""


class OwnerCall:
    """The owner leg of one Originate, driven by an :class:`OwnerScript`."""

    log = Logger()

    def __init__(self, host: SimHost, request: OriginateRequest) -> None:
        self.host = host
        self.request = request
        self.script: OwnerScript = host.settings.owner_for(request.dial_string)
        self.one: Channel | None = None  # the originated leg; runs the dialplan
        self.two: Channel | None = None  # the far half of a Local channel
        self.session: AgiSession | None = None
        self.answered = False
        self.finished = False
        self.hangup_cause: int | None = None
        self.last_app: tuple[str, str] = ("AppDial2", "(Outgoing Line)")
        self.dialled_peer = ""
        self._phone_app: tuple[str, str] = ("Wait", "60")
        self._digit_at: float | None = None
        self._timeout: IDelayedCall | None = None
        self._answer: IDelayedCall | None = None

    @property
    def leg(self) -> Channel:
        """The originated channel (``;1`` of a Local channel).

        Raises:
            RuntimeError: before :meth:`start` created it.
        """
        if self.one is None:
            raise RuntimeError("call not started")
        return self.one

    @property
    def _now(self) -> float:
        return self.host.clock.seconds()

    def start(self) -> None:
        """Create the channels and follow the owner script (after the ack)."""
        host, request = self.host, self.request
        tech, _, resource = request.dial_string.partition("/")
        suffix = host.registry.next_suffix()
        now = self._now
        uid_one = request.channel_id or host.registry.next_uniqueid(now)
        if tech.lower() == "local":
            exten, _, context = resource.partition("@")
            base = f"{tech}/{resource}-{suffix}"
            self.one = Channel(
                f"{base};1", uid_one, uid_one, context or "default", exten, 1, now
            )
            uid_two = request.other_channel_id or (
                f"{request.channel_id};2"
                if request.channel_id
                else host.registry.next_uniqueid(now)
            )
            self.two = Channel(
                f"{base};2", uid_two, uid_one, context or "default", exten, 1, now
            )
            self.two.state = ev.STATE_RING
        else:
            endpoint = resource.split("@", 1)[0]
            self.one = Channel(
                f"{tech}/{endpoint}-{suffix}", uid_one, uid_one, "default", "s", 1, now
            )
        legs = [c for c in (self.one, self.two) if c is not None]
        for channel in legs:
            channel.accountcode = request.account
            host.registry.add(channel)
            ev.emit_newchannel(host, channel)
        for channel in legs:
            for name, value in request.variables:
                ev.emit_varset(host, channel, name, value)
            if request.caller_num or request.caller_name:
                channel.caller_num, channel.caller_name = (
                    request.caller_num,
                    request.caller_name,
                )
                ev.emit_newcallerid(host, channel)
                channel.connected_num = request.caller_num
                channel.connected_name = request.caller_name
                ev.emit_new_connected_line(host, channel)
        if self.script.kind == "nonexistent":
            for channel in reversed(legs):
                ev.emit_hangup(host, host.registry, channel, ev.CAUSE_UNKNOWN)
            self._originate_response(REASON_FAILURE)
            self.finished = True
            return
        if self.two is not None:
            ev.emit_local_bridge(host, self.one, self.two)
        ev.emit_dial(host, "DialBegin", None, self.one, [("DialString", resource)])
        self._follow_script()

    def _follow_script(self) -> None:
        one = self.leg
        kind = self.script.kind
        if kind == "busy":
            self._busy()
            return
        if kind == "ring" or (self.script.answers and self.script.answer_delay > 0):
            ev.emit_newstate(self.host, one, ev.STATE_RINGING)
            ev.emit_dial(self.host, "DialState", None, one, [("DialStatus", "RINGING")])
        self._timeout = self.host.timers.call_later(
            self.request.timeout, self._no_answer
        )
        if self.script.answers:
            self._answer = self.host.timers.call_later(
                self.script.answer_delay, self._answered
            )

    def _originate_response(self, reason: int) -> None:
        request, one = self.request, self.one
        success = reason == REASON_ANSWERED
        headers: Headers = []
        if request.action_id is not None:
            headers.append(("ActionID", request.action_id))
        headers += [
            ("Response", "Success" if success else "Failure"),
            ("Channel", one.name if success and one else request.dial_string),
        ]
        if request.application:
            headers += [("Application", request.application), ("Data", request.data)]
        else:
            headers += [("Context", request.context), ("Exten", request.exten)]
        uniqueid = (
            one.uniqueid if success and one else (request.channel_id or ev.UNKNOWN)
        )
        headers += [
            ("Reason", str(reason)),
            ("Uniqueid", uniqueid),
            ("CallerIDNum", request.caller_num or ev.UNKNOWN),
            ("CallerIDName", request.caller_name or ev.UNKNOWN),
        ]
        self.host.emit("OriginateResponse", "call", headers)

    def _busy(self) -> None:
        host, one, two = self.host, self.leg, self.two
        far = two or one
        ev.emit_newstate(host, far, ev.STATE_BUSY)
        ev.emit_dial(host, "DialEnd", None, one, [("DialStatus", "BUSY")])
        if two is not None:
            ev.emit_hangup_request(host, two, ev.CAUSE_UNKNOWN, soft=False)
        self._originate_response(REASON_BUSY)
        if two is not None:
            ev.emit_hangup(host, host.registry, one, ev.CAUSE_UNKNOWN)
            ev.emit_hangup(host, host.registry, two, ev.CAUSE_BUSY)
        else:
            ev.emit_hangup(host, host.registry, one, ev.CAUSE_BUSY)
        self.finished = True

    def _no_answer(self) -> None:
        host, one, two = self.host, self.leg, self.two
        self._timeout = None
        host.timers.cancel(self._answer)
        if two is not None:
            ev.emit_hangup_request(host, two, ev.CAUSE_NO_ANSWER, soft=False)
            ev.emit_hangup(host, host.registry, two, ev.CAUSE_NO_ANSWER)
        self._originate_response(REASON_NO_ANSWER)
        ev.emit_hangup(host, host.registry, one, ev.CAUSE_NO_ANSWER)
        self.finished = True

    def _answered(self) -> None:
        host, one, two = self.host, self.leg, self.two
        host.timers.cancel(self._timeout)
        self._timeout = None
        self.answered = True
        now = self._now
        for channel in (two, one):
            if channel is not None:
                channel.answered_at = now
                ev.emit_newstate(host, channel, ev.STATE_UP)
        ev.emit_dial(host, "DialEnd", None, one, [("DialStatus", "ANSWER")])
        self._originate_response(REASON_ANSWERED)
        digit = self.script.pressed_digit
        if digit is not None:
            host.timers.call_later(self.script.digit_delay, lambda: self._press(digit))
        if self.script.hangup_after is not None:
            host.timers.call_later(self.script.hangup_after, self.owner_hangs_up)
        self._run_dialplan()

    def _run_dialplan(self) -> None:
        one, request = self.leg, self.request
        if request.application:
            app, data = request.application, request.data
        else:
            one.context, one.exten, one.priority = (
                request.context,
                request.exten,
                request.priority,
            )
            app = "AGI"
            data = expand_variables(
                self.host.settings.contexts[request.context], one.variables
            )
        one.application, one.app_data = app, data
        self.last_app = (app, data)
        if app.lower() != "agi":
            # Any other application returns at once here; the dialplan then
            # falls through and Asterisk hangs up with Normal Clearing.
            self.host.timers.call_later(0, lambda: self.end(ev.CAUSE_NORMAL))
            return
        try:
            target = parse_agi_data(data)
        except AgiUrlError:
            self.log.warn("Simulated AGI data {data!r} is not agi://", data=data)
            self._agi_failed()
            return
        from callnowd.ami.sim_agi import AgiSession

        session = AgiSession(self, target)
        self.session = session

        def failed(_: object) -> None:
            if self.session is session:
                self.session = None
                self._agi_failed()

        self.host.connect_agi(target, session).addErrback(failed)

    def _agi_failed(self) -> None:
        one = self.leg
        if not one.hung_up:
            ev.emit_varset(self.host, one, "AGISTATUS", "FAILURE")
        self.end(ev.CAUSE_NORMAL)

    def _press(self, digit: str) -> None:
        one = self.one
        if one is None or one.hung_up or self.hangup_cause is not None:
            return
        ev.emit_dtmf(self.host, one, digit)
        self._phone_app = ("SendDTMF", digit)
        self._digit_at = self._now
        if self.session is not None:
            self.session.deliver_digit(digit)

    def owner_hangs_up(self) -> None:
        """The owner puts the phone down (script or Hangup action)."""
        if self.finished:
            return
        if not self.answered:
            self.host.timers.cancel(self._timeout)
            self.host.timers.cancel(self._answer)
            two = self.two
            if two is not None:
                ev.emit_hangup(self.host, self.host.registry, two, ev.CAUSE_NORMAL)
            self._originate_response(1)
            self.end(ev.CAUSE_NORMAL)
            return
        self.hangup_leg(ev.CAUSE_NORMAL, by_agi=False)

    def hangup_leg(self, cause: int, *, by_agi: bool) -> None:
        """The dialplan leg is hung up; with AGI running wait for its socket close.

        Args:
            cause: Hangup cause for the legs (0 after the AGI HANGUP command).
            by_agi: True for the AGI HANGUP command: the far half stays up
                until the AGI ends, as in the transcripts.
        """
        one, two = self.one, self.two
        if self.hangup_cause is not None or self.finished or one is None:
            return
        self.hangup_cause = cause
        ev.emit_hangup_request(self.host, one, 32 if by_agi else cause, soft=True)
        if two is not None and not by_agi and not two.hung_up:
            ev.emit_hangup_request(self.host, two, cause, soft=False)
            ev.emit_hangup(self.host, self.host.registry, two, cause)
        if self.session is not None:
            self.session.channel_hung_up()
        else:
            self.end(cause)

    def agi_closed(self) -> None:
        """The FastAGI socket closed: the AGI application returns."""
        self.session = None
        one = self.one
        if self.finished or one is None:
            return
        hung = self.hangup_cause is not None
        ev.emit_varset(self.host, one, "AGISTATUS", "HANGUP" if hung else "SUCCESS")
        self.end(self.hangup_cause if hung else ev.CAUSE_NORMAL)

    def end(self, cause: int | None) -> None:
        """Tear the call down: Cdr and Hangup events in the transcripts' order."""
        if self.finished:
            return
        self.finished = True
        host, one, two = self.host, self.leg, self.two
        cause = ev.CAUSE_NORMAL if cause is None else cause
        now = self._now
        if self.session is not None:
            self.session.abort()
        records = []
        if one.answered_at is not None:
            records.append(self._cdr_one(now))
            if two is not None:
                records.append(self._cdr_two(now))
        if two is not None and two.hung_up:
            for record in records:
                ev.emit_cdr(host, record)
            ev.emit_hangup(host, host.registry, one, cause)
            return
        if records:
            ev.emit_cdr(host, records[0])
        if two is not None:
            ev.emit_hangup(host, host.registry, two, cause)
        ev.emit_hangup(host, host.registry, one, cause)
        for record in records[1:]:
            ev.emit_cdr(host, record)

    def _cdr_one(self, now: float) -> ev.CdrRecord:
        one = self.leg
        return ev.CdrRecord(
            channel=one,
            source=one.caller_num,
            destination=one.exten,
            destination_context=one.context,
            caller_id=ev.caller_id_text(one.caller_name, one.caller_num),
            destination_channel=self.dialled_peer,
            last_application=self.last_app[0],
            last_data=self.last_app[1],
            start=one.created,
            answer=one.answered_at,
            end=now,
        )

    def _cdr_two(self, now: float) -> ev.CdrRecord:
        two = self.two
        if two is None:
            raise RuntimeError("no far half on this call")
        app = self._phone_app
        if self._digit_at is not None and now - self._digit_at >= 1.0:
            app = ("Wait", "60")
        return ev.CdrRecord(
            channel=two,
            source=two.caller_num,
            destination=two.exten,
            destination_context=two.context,
            caller_id=ev.caller_id_text(two.caller_name, two.caller_num),
            destination_channel="",
            last_application=app[0],
            last_data=app[1],
            start=two.created,
            answer=two.answered_at,
            end=now,
        )
