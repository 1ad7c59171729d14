"""The ``Dial()`` an AGI runs on the owner leg: the visitor's phone.

This module owns what happens between ``EXEC Dial <data>`` and its result: the
visitor channels (``Local/<num>@pstn-...;1``/``;2`` or one channel of another
tech), DialBegin/DialState/DialEnd carrying the caller's current
``CALLERID(num)``, the scripted visitor (answers and talks, busy, never
answers, unavailable), the ``L()`` duration limit, the DIALSTATUS /
ANSWEREDTIME variables and the visitor-leg Cdr.  Like Asterisk's app_dial it
reports ``-1`` once an answered call ends (the caller is hung up too) and
``0`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from callnowd.ami import sim_channels as ev
from callnowd.ami.sim_channels import Channel
from callnowd.ami.sim_dialplan import DialRequest

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from callnowd.ami.sim_call import OwnerCall


class VisitorDial:
    """One running Dial from the owner leg; ``done(result)`` fires exactly once."""

    def __init__(
        self,
        call: OwnerCall,
        request: DialRequest,
        data: str,
        done: Callable[[int], None],
    ) -> None:
        self.call = call
        self.host = call.host
        self.caller: Channel = call.leg
        self.request = request
        self.data = data
        self._done: Callable[[int], None] | None = done
        self.target = request.targets[0]
        self.script = self.host.settings.visitor_for(self.target.number)
        self.near: Channel | None = None  # DestChannel of the Dial events
        self.far: Channel | None = None  # the visitor's half of a Local channel
        self.answered_at: float | None = None
        self._bridge = ""
        self._timers: list[IDelayedCall | None] = []

    @property
    def _now(self) -> float:
        return self.host.clock.seconds()

    def start(self) -> None:
        """Create the visitor channels and follow the visitor script."""
        host, caller, target = self.host, self.caller, self.target
        for name in ("DIALSTATUS", "ANSWEREDTIME", "DIALEDTIME"):
            ev.emit_varset(host, caller, name, "")
        self.call.last_app = ("Dial", self.data)
        now = self._now
        suffix = host.registry.next_suffix()
        context = target.context or "default"
        if target.tech.lower() == "local":
            base = f"{target.dial_string}-{suffix}"
            self.near = Channel(
                f"{base};1",
                host.registry.next_uniqueid(now),
                caller.linkedid,
                context,
                "s",
                1,
                now,
            )
            self.far = Channel(
                f"{base};2",
                host.registry.next_uniqueid(now),
                caller.linkedid,
                context,
                target.number,
                1,
                now,
            )
            self.far.state = ev.STATE_RING
        elif self.script.kind == "unavailable":
            self._finish("CHANUNAVAIL", 0)
            return
        else:
            endpoint = (
                target.resource.split("@", 1)[-1]
                if "@" in target.resource
                else target.resource
            )
            self.near = Channel(
                f"{target.tech}/{endpoint}-{suffix}",
                host.registry.next_uniqueid(now),
                caller.linkedid,
                context,
                target.number,
                1,
                now,
            )
        legs = [c for c in (self.near, self.far) if c is not None]
        for channel in legs:
            channel.accountcode = caller.accountcode
            host.registry.add(channel)
            ev.emit_newchannel(host, channel)
        for channel in legs:
            channel.caller_name = channel.connected_name = caller.caller_name
            if channel is self.far or self.far is None:
                channel.caller_num, channel.connected_num = (
                    caller.caller_num,
                    caller.exten,
                )
            else:
                # A Local ;1 shows the caller's extension as its number (observed).
                channel.caller_num, channel.connected_num = (
                    caller.exten,
                    caller.caller_num,
                )
            ev.emit_newcallerid(host, channel)
            ev.emit_new_connected_line(host, channel)
        if self.script.kind == "unavailable":
            for channel in reversed(legs):
                ev.emit_hangup(host, host.registry, channel, ev.CAUSE_UNKNOWN)
            self._finish("CHANUNAVAIL", 0)
            return
        if self.near is None:
            return
        if self.far is not None:
            ev.emit_local_bridge(host, self.near, self.far)
        self._dial_event("DialBegin", [("DialString", target.resource)])
        self.call.dialled_peer = self.near.name
        if self.script.kind == "busy":
            ev.emit_newstate(host, self.far or self.near, ev.STATE_BUSY)
            self._dial_event("DialEnd", [("DialStatus", "BUSY")])
            self._hangup_legs(ev.CAUSE_BUSY)
            self._finish("BUSY", 0)
            return
        if self.script.kind == "noanswer" or self.script.answer_delay > 0:
            ev.emit_newstate(host, self.near, ev.STATE_RINGING)
            self._dial_event("DialState", [("DialStatus", "RINGING")])
        if self.request.timeout is not None:
            self._later(self.request.timeout, self._no_answer)
        if self.script.kind == "answer":
            self._later(self.script.answer_delay, self._answer)

    def _later(self, delay: float, function: Callable[[], None]) -> None:
        self._timers.append(self.host.timers.call_later(delay, function))

    def _cancel_timers(self) -> None:
        for call in self._timers:
            self.host.timers.cancel(call)
        self._timers.clear()

    def _dial_event(self, event: str, tail: ev.Headers) -> None:
        if self.near is None:
            return
        ev.emit_dial(self.host, event, self.caller, self.near, tail)

    def _hangup_legs(self, cause: int) -> None:
        for channel in (self.far, self.near):
            if channel is not None:
                ev.emit_hangup(self.host, self.host.registry, channel, cause)

    def _no_answer(self) -> None:
        if self._done is None:
            return
        self._cancel_timers()
        self._dial_event("DialEnd", [("DialStatus", "NOANSWER")])
        self._hangup_legs(ev.CAUSE_NO_ANSWER)
        self._finish("NOANSWER", 0)

    def _answer(self) -> None:
        host, near, far = self.host, self.near, self.far
        if self._done is None or near is None:
            return
        self._cancel_timers()
        self.answered_at = now = self._now
        for channel in (far, near):
            if channel is not None:
                channel.answered_at = now
                ev.emit_newstate(host, channel, ev.STATE_UP)
        ev.emit_varset(host, self.caller, "DIALSTATUS", "ANSWER")
        ev.emit_varset(host, self.caller, "DIALEDPEERNAME", near.name)
        ev.emit_varset(host, self.caller, "DIALEDPEERNUMBER", self.target.resource)
        self._dial_event("DialEnd", [("DialStatus", "ANSWER")])
        self._bridge = f"sim-bridge-{near.uniqueid}"
        host.emit("BridgeCreate", "call", ev.bridge_headers(self._bridge, 0))
        for count, channel in enumerate((near, self.caller), start=1):
            host.emit(
                "BridgeEnter",
                "call",
                ev.bridge_headers(self._bridge, count) + channel.headers(),
            )
        talk = self.script.talk_seconds
        limit = self.request.limit
        if limit is not None and limit < talk:
            talk = limit
        self._later(talk, self._talk_ended)

    def _talk_ended(self) -> None:
        """The visitor hangs up (or the ``L()`` limit cut the call)."""
        host, near, far = self.host, self.near, self.far
        if self._done is None or near is None:
            return
        leg = far or near
        if far is not None:
            ev.emit_hangup_request(host, far, ev.CAUSE_NORMAL, soft=True)
            ev.emit_hangup_request(host, near, ev.CAUSE_NORMAL, soft=False)
        now = self._now
        ev.emit_hangup(host, host.registry, leg, ev.CAUSE_NORMAL)
        ev.emit_cdr(
            host,
            ev.CdrRecord(
                channel=leg,
                source=self.caller.caller_num,
                destination=self.target.number,
                destination_context=self.target.context or "default",
                caller_id=ev.caller_id_text(
                    self.caller.caller_name, self.caller.caller_num
                ),
                destination_channel="",
                last_application="Hangup",
                last_data="",
                start=leg.created,
                answer=self.answered_at,
                end=now,
            ),
        )
        for count, channel in ((1, near), (0, self.caller)):
            host.emit(
                "BridgeLeave",
                "call",
                ev.bridge_headers(self._bridge, count) + channel.headers(),
            )
        host.emit("BridgeDestroy", "call", ev.bridge_headers(self._bridge, 0))
        ev.emit_hangup(host, host.registry, near, ev.CAUSE_NORMAL)
        self._finish("ANSWER", -1)

    def far_end_hangs_up(self) -> None:
        """The visitor's channel is hung up from outside (AMI Hangup)."""
        if self._done is None:
            return
        self._cancel_timers()
        if self.answered_at is not None:
            self._talk_ended()
            return
        self._dial_event("DialEnd", [("DialStatus", "CHANUNAVAIL")])
        self._hangup_legs(ev.CAUSE_NORMAL)
        self._finish("CHANUNAVAIL", 0)

    def caller_hung_up(self) -> None:
        """The owner leg hung up during the Dial: cancel or end the call."""
        if self._done is None:
            return
        if self.answered_at is not None:
            self._cancel_timers()
            self._talk_ended()
            return
        self._cancel_timers()
        if self.near is not None:
            self._dial_event("DialEnd", [("DialStatus", "CANCEL")])
        self._hangup_legs(ev.CAUSE_NORMAL)
        self._finish("CANCEL", -1)

    def _finish(self, status: str, result: int) -> None:
        host, caller = self.host, self.caller
        if status == "ANSWER" and caller.answered_at is not None:
            # app_dial measures both from the caller channel (observed: 7 s
            # ANSWEREDTIME for 5.5 s of talk); Cdr BillableSeconds is the talk.
            now = self._now
            up_ms = int((now - caller.answered_at) * 1000)
            dialed_ms = int((now - caller.created) * 1000)
            ev.emit_varset(host, caller, "ANSWEREDTIME", str(up_ms // 1000))
            ev.emit_varset(host, caller, "ANSWEREDTIME_MS", str(up_ms))
            ev.emit_varset(host, caller, "DIALEDTIME", str(dialed_ms // 1000))
            ev.emit_varset(host, caller, "DIALEDTIME_MS", str(dialed_ms))
        ev.emit_varset(host, caller, "DIALSTATUS", status)
        done, self._done = self._done, None
        if done is not None:
            done(result)
