"""Simulated channels and the AMI events that describe them.

This module owns the channel model of the simulator (name, Uniqueid/Linkedid,
state, caller id, variables, dialplan location) and the builders of the
channel-related events (Newchannel, Newstate, NewCallerid, VarSet, Dial*,
DTMF*, Hangup*, Bridge*, Cdr) with the header order of the Asterisk 22.10.1
transcripts.  Events leave through an :class:`EventSink`.
"""

from __future__ import annotations

import time
from typing import Protocol

import attrs

Headers = list[tuple[str, str]]

STATE_DOWN = 0
STATE_RING = 4
STATE_RINGING = 5
STATE_UP = 6
STATE_BUSY = 7
_STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}

CAUSE_UNKNOWN = 0
CAUSE_NORMAL = 16
CAUSE_BUSY = 17
CAUSE_NO_ANSWER = 19
_CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}
UNKNOWN = "<unknown>"


class EventSink(Protocol):
    """Where simulated components send broadcast events."""

    def emit(self, event: str, klass: str, headers: Headers) -> None:
        """Broadcast ``Event: event`` with ``Privilege: klass,all`` and ``headers``."""


@attrs.define(eq=False)
class Channel:
    """One live simulated channel.

    Attributes:
        name: e.g. ``Local/001002@phones-00000002;1``.
        uniqueid: the channel's Uniqueid.
        linkedid: the Uniqueid of the call's first channel.
        context: current dialplan context.
        exten: current extension.
        priority: current priority.
        created: reactor time of creation.
        state: AST_STATE_* number.
        caller_num: CALLERID(num), empty if unset.
        caller_name: CALLERID(name), empty if unset.
        connected_num: connected line number.
        connected_name: connected line name.
        accountcode: CDR(accountcode).
        variables: channel variables.
        answered_at: reactor time the channel went Up, if it did.
        application: the running application (CoreShowChannels).
        app_data: its data.
        hung_up: whether Hangup was emitted.
    """

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int
    created: float
    state: int = STATE_DOWN
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    accountcode: str = ""
    variables: dict[str, str] = attrs.Factory(dict)
    answered_at: float | None = None
    application: str = ""
    app_data: str = ""
    hung_up: bool = False

    def headers(self, prefix: str = "") -> Headers:
        """The standard channel snapshot headers, optionally prefixed (``Dest``)."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", _STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", self.caller_num or UNKNOWN),
            (f"{prefix}CallerIDName", self.caller_name or UNKNOWN),
            (f"{prefix}ConnectedLineNum", self.connected_num or UNKNOWN),
            (f"{prefix}ConnectedLineName", self.connected_name or UNKNOWN),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", self.accountcode),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]


class ChannelRegistry:
    """Allocates Uniqueids and channel names and tracks live channels.

    Uniqueids look like Asterisk's (``1795641915.4``: creation epoch seconds,
    a dot, a counter); channel suffixes are 8 hex digits.
    """

    def __init__(self) -> None:
        self._uniqueids = 0
        self._sequence = 0
        self._threads = 0
        self.live: dict[str, Channel] = {}

    def next_uniqueid(self, now: float) -> str:
        """A fresh Uniqueid for a channel created at ``now``."""
        self._uniqueids += 1
        return f"{int(now)}.{self._uniqueids}"

    def next_suffix(self) -> str:
        """A fresh ``-0000000a`` style channel suffix (without the dash)."""
        self._sequence += 1
        return f"{self._sequence:08x}"

    def next_thread(self) -> int:
        """A fresh small number to make ``agi_threadid`` values differ."""
        self._threads += 1
        return self._threads * 4096

    def add(self, channel: Channel) -> Channel:
        """Register a live channel and return it."""
        self.live[channel.uniqueid] = channel
        return channel

    def remove(self, channel: Channel) -> None:
        """Forget a channel that hung up."""
        self.live.pop(channel.uniqueid, None)

    def by_name(self, name: str) -> Channel | None:
        """The live channel called ``name``, if any."""
        for channel in self.live.values():
            if channel.name == name:
                return channel
        return None


def cause_text(cause: int) -> str:
    """Asterisk's ``Cause-txt`` for a hangup cause."""
    return _CAUSE_TEXT.get(cause, "Unknown")


def state_desc(state: int) -> str:
    """Asterisk's ``ChannelStateDesc`` for a state number."""
    return _STATE_DESC.get(state, "Unknown")


def caller_id_text(name: str, num: str) -> str:
    """``"Name" <num>`` as in Cdr ``CallerID``."""
    if name and num:
        return f'"{name}" <{num}>'
    return f'"{name}" <>' if name else (f"<{num}>" if num else "")


def emit_newchannel(sink: EventSink, channel: Channel) -> None:
    """Newchannel."""
    sink.emit("Newchannel", "call", channel.headers())


def emit_newstate(sink: EventSink, channel: Channel, state: int) -> None:
    """Set the state and emit Newstate."""
    channel.state = state
    sink.emit("Newstate", "call", channel.headers())


def emit_newcallerid(sink: EventSink, channel: Channel) -> None:
    """NewCallerid with the presentation header of the transcripts."""
    headers = channel.headers()
    headers.append(("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))
    sink.emit("NewCallerid", "call", headers)


def emit_new_connected_line(sink: EventSink, channel: Channel) -> None:
    """NewConnectedLine."""
    sink.emit("NewConnectedLine", "call", channel.headers())


def emit_varset(sink: EventSink, channel: Channel, name: str, value: str) -> None:
    """Set a channel variable and emit VarSet (class dialplan)."""
    channel.variables[name] = value
    headers = channel.headers()
    headers += [("Variable", name), ("Value", value)]
    sink.emit("VarSet", "dialplan", headers)


def emit_dial(
    sink: EventSink,
    event: str,
    caller: Channel | None,
    dest: Channel,
    tail: Headers,
) -> None:
    """DialBegin/DialState/DialEnd: caller snapshot (if any), Dest snapshot, tail."""
    headers = caller.headers() if caller is not None else []
    headers += dest.headers("Dest")
    headers += tail
    sink.emit(event, "call", headers)


def emit_dtmf(sink: EventSink, channel: Channel, digit: str) -> None:
    """DTMFBegin then DTMFEnd (100 ms, received) on ``channel``."""
    begin = [*channel.headers(), ("Digit", digit), ("Direction", "Received")]
    sink.emit("DTMFBegin", "dtmf", begin)
    end = [
        *channel.headers(),
        ("Digit", digit),
        ("DurationMs", "100"),
        ("Direction", "Received"),
    ]
    sink.emit("DTMFEnd", "dtmf", end)


def emit_hangup_request(
    sink: EventSink, channel: Channel, cause: int, *, soft: bool
) -> None:
    """HangupRequest or SoftHangupRequest."""
    headers = [*channel.headers(), ("Cause", str(cause))]
    sink.emit("SoftHangupRequest" if soft else "HangupRequest", "call", headers)


def emit_hangup(
    sink: EventSink, registry: ChannelRegistry, channel: Channel, cause: int
) -> None:
    """Hangup with Cause/Cause-txt; the channel leaves the registry. Idempotent."""
    if channel.hung_up:
        return
    channel.hung_up = True
    registry.remove(channel)
    headers = [
        *channel.headers(),
        ("Cause", str(cause)),
        ("Cause-txt", cause_text(cause)),
    ]
    sink.emit("Hangup", "call", headers)


def emit_local_bridge(sink: EventSink, one: Channel, two: Channel) -> None:
    """LocalBridge between the two halves of a Local channel."""
    headers = one.headers("LocalOne") + two.headers("LocalTwo")
    headers += [
        ("Context", two.context),
        ("Exten", two.exten),
        ("LocalOptimization", "Yes"),
    ]
    sink.emit("LocalBridge", "call", headers)


def bridge_headers(bridge_id: str, members: int) -> Headers:
    """The Bridge* snapshot of a basic two-party bridge."""
    return [
        ("BridgeUniqueid", bridge_id),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", UNKNOWN),
        ("BridgeName", UNKNOWN),
        ("BridgeNumChannels", str(members)),
        ("BridgeVideoSourceMode", "none"),
    ]


@attrs.frozen
class CdrRecord:
    """What one Cdr event reports (Asterisk ``cdr_manager``).

    Attributes:
        channel: the CDR's channel (its Uniqueid becomes ``UniqueID``).
        source: calling number.
        destination: called extension/number.
        destination_context: its context.
        caller_id: ``"Name" <num>``.
        destination_channel: the peer channel name, or "".
        last_application: last application run.
        last_data: its data.
        start: reactor time the CDR started.
        answer: reactor time of answer, or None.
        end: reactor time of the end.
    """

    channel: Channel
    source: str
    destination: str
    destination_context: str
    caller_id: str
    destination_channel: str
    last_application: str
    last_data: str
    start: float
    answer: float | None
    end: float


def _cdr_time(when: float | None) -> str:
    if when is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


def emit_cdr(sink: EventSink, record: CdrRecord) -> None:
    """Cdr (class cdr); durations truncate to whole seconds like Asterisk."""
    billable = int(record.end - record.answer) if record.answer is not None else 0
    headers: Headers = [
        ("AccountCode", record.channel.accountcode),
        ("Source", record.source),
        ("Destination", record.destination),
        ("DestinationContext", record.destination_context),
        ("CallerID", record.caller_id),
        ("Channel", record.channel.name),
        ("DestinationChannel", record.destination_channel),
        ("LastApplication", record.last_application),
        ("LastData", record.last_data),
        ("StartTime", _cdr_time(record.start)),
        ("AnswerTime", _cdr_time(record.answer)),
        ("EndTime", _cdr_time(record.end)),
        ("Duration", str(int(record.end - record.start))),
        ("BillableSeconds", str(billable)),
        ("Disposition", "ANSWERED" if record.answer is not None else "NO ANSWER"),
        ("AMAFlags", "DOCUMENTATION"),
        ("UniqueID", record.channel.uniqueid),
        ("UserField", ""),
    ]
    sink.emit("Cdr", "cdr", headers)
