"""The post-login AMI actions of the simulator and their replies.

This module owns what each simulated action answers, in Asterisk 22's wording
and header order: Ping, Logoff, Events, ListCommands, Originate (validation as
in PROTOCOL.md 1.9, ``Variable`` split on commas, ``CallerID`` parsed, queued
ack), CoreShowChannels (EventList), UserEvent (broadcast, class user), Hangup,
ExtensionState, Getvar and Setvar.  Permission checks happen before, in
:mod:`callnowd.ami.sim_ami`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from callnowd.ami import sim_perms
from callnowd.ami.codec import Message
from callnowd.ami.sim_call import OriginateRequest
from callnowd.ami.sim_channels import Channel, Headers, emit_varset
from callnowd.ami.sim_dialplan import parse_callerid, parse_variable_header

if TYPE_CHECKING:
    from callnowd.ami.sim_ami import AmiServerProtocol

MAX_UNIQUEID = 149
_SYNOPSIS = {
    "Login": "Login Manager.",
    "Challenge": "Generate Challenge for MD5 Auth.",
    "Logoff": "Logoff Manager.",
    "Ping": "Keepalive command.",
    "Events": "Control Event Flow.",
    "ListCommands": "List available manager commands.",
    "Originate": "Originate a call.",
    "CoreShowChannels": "List currently active channels.",
    "UserEvent": "Send an arbitrary event.",
    "Hangup": "Hangup channel.",
    "ExtensionState": "Check Extension Status.",
    "Getvar": "Gets a channel variable or function value.",
    "Setvar": "Sets a channel variable or function value.",
}


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class ActionHandlers:
    """Runs permitted actions for one AMI session."""

    def __init__(self, session: AmiServerProtocol) -> None:
        self.session = session
        self.simulator = session.simulator

    def run(self, action: str, message: Message) -> None:
        """Run ``action`` (lower case, known, permitted)."""
        getattr(self, "_" + action)(message)

    def _logoff(self, message: Message) -> None:
        self.session.respond(message, "Goodbye", "Thanks for all the fish.")
        self.session.close()

    def _ping(self, message: Message) -> None:
        now = self.simulator.clock.seconds()
        self.session.respond(
            message, "Success", extra=[("Ping", "Pong"), ("Timestamp", f"{now:.6f}")]
        )

    def _events(self, message: Message) -> None:
        session = self.session
        session.mask = sim_perms.parse_event_mask(
            message.get("EventMask") or "off", session.read
        )
        self.session.respond(
            message, "Success", extra=[("Events", "On" if session.mask else "Off")]
        )

    def _listcommands(self, message: Message) -> None:
        extra: Headers = []
        for name, synopsis in _SYNOPSIS.items():
            classes = sim_perms.ACTION_CLASSES[name.lower()]
            priv = ",".join(sorted(classes)) or "<none>"
            extra.append((name, f"{synopsis}  (Priv: {priv})"))
        self.session.respond(message, "Success", extra=extra)

    def _originate(self, message: Message) -> None:
        session = self.session
        dial_string = (message.get("Channel") or "").strip()
        priority_text = (message.get("Priority") or "").strip()
        timeout_text = (message.get("Timeout") or "").strip()
        app = (message.get("Application") or "").strip()
        data = message.get("Data") or ""
        context = (message.get("Context") or "").strip()
        exten = (message.get("Exten") or "").strip()
        channel_id = (message.get("ChannelId") or "").strip()
        other_id = (message.get("OtherChannelId") or "").strip()
        problem = None
        if not dial_string:
            problem = "Channel not specified"
        elif priority_text and not re.fullmatch(r"-?\d+", priority_text):
            problem = "Invalid priority"
        elif timeout_text and not re.fullmatch(r"\d+", timeout_text):
            problem = "Invalid timeout"
        elif "/" not in dial_string:
            problem = "Invalid channel"
        elif len(channel_id) > MAX_UNIQUEID or len(other_id) > MAX_UNIQUEID:
            problem = f"Uniqueid length exceeds maximum of {MAX_UNIQUEID}"
        elif app and not sim_perms.originate_app_permitted(app, data, session.write):
            problem = "Originate Access Forbidden: app or data blacklisted"
        elif not app and exten and not (context and priority_text):
            problem = "Originate with 'Exten' requires 'Context' and 'Priority'"
        elif not app and context not in self.simulator.settings.contexts:
            problem = "Extension does not exist."
        if problem is not None:
            session.error(message, problem)
            return
        name, number = parse_callerid(message.get("CallerID") or "")
        variables: list[tuple[str, str]] = []
        for value in message.get_all("Variable"):
            variables += parse_variable_header(value)
        request = OriginateRequest(
            action_id=message.action_id,
            dial_string=dial_string,
            context=context,
            exten=exten or "s",
            priority=int(priority_text or "1"),
            application=app,
            data=data,
            timeout=int(timeout_text or "30000") / 1000.0,
            caller_name=name,
            caller_num=number,
            variables=tuple(variables),
            channel_id=channel_id,
            other_channel_id=other_id,
            account=(message.get("Account") or "").strip(),
        )
        session.respond(message, "Success", "Originate successfully queued")
        self.simulator.originate(request)

    def _coreshowchannels(self, message: Message) -> None:
        session = self.session
        session.respond(
            message, "Success", "Channels will follow", extra=[("EventList", "start")]
        )
        action_id: Headers = (
            [("ActionID", message.action_id)] if message.action_id is not None else []
        )
        now = self.simulator.clock.seconds()
        live = list(self.simulator.registry.live.values())
        for channel in live:
            item: Headers = [
                ("Event", "CoreShowChannel"),
                *action_id,
                *channel.headers(),
            ]
            item += [
                ("Application", channel.application or "AppDial2"),
                ("ApplicationData", channel.app_data or "(Outgoing Line)"),
                ("Duration", _duration(now - channel.created)),
                ("BridgeId", ""),
            ]
            session.send(item)
        session.send(
            [
                ("Event", "CoreShowChannelsComplete"),
                *action_id,
                ("EventList", "Complete"),
                ("ListItems", str(len(live))),
            ]
        )

    def _userevent(self, message: Message) -> None:
        body: Headers = [
            (name, value)
            for name, value in message.headers
            if name.lower() not in ("action", "userevent")
        ]
        self.session.respond(message, "Success", "Event Sent")
        self.simulator.emit(
            "UserEvent", "user", [("UserEvent", message.get("UserEvent") or ""), *body]
        )

    def _find_channel(self, name: str) -> Channel | None:
        live = self.simulator.registry.live.values()
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            try:
                pattern = re.compile(name[1:-1])
            except re.error:
                return None
            return next((c for c in live if pattern.search(c.name)), None)
        return self.simulator.registry.by_name(name)

    def _hangup(self, message: Message) -> None:
        channel = self._find_channel((message.get("Channel") or "").strip())
        if channel is None:
            self.session.error(message, "No such channel")
            return
        cause_text = (message.get("Cause") or "").strip()
        cause = int(cause_text) if cause_text.isdigit() else 16
        self.simulator.hangup_channel(channel, cause)
        self.session.respond(message, "Success", "Channel Hungup")

    def _extensionstate(self, message: Message) -> None:
        exten = (message.get("Exten") or "").strip()
        context = (message.get("Context") or "").strip() or "default"
        status, hint = self.simulator.extension_state(exten, context)
        texts = {
            -1: "Unknown",
            0: "Idle",
            1: "InUse",
            2: "Busy",
            4: "Unavailable",
            8: "Ringing",
        }
        self.session.respond(
            message,
            "Success",
            "Extension Status",
            extra=[
                ("Exten", exten),
                ("Context", context),
                ("Hint", hint),
                ("Status", str(status)),
                ("StatusText", texts.get(status, "Unknown")),
            ],
        )

    def _variable_target(self, message: Message) -> tuple[str, Channel | None] | None:
        """The variable name and channel of a Getvar/Setvar; None after an error."""
        name = (message.get("Variable") or "").strip()
        if not name:
            self.session.error(message, "No variable specified")
            return None
        channel_name = (message.get("Channel") or "").strip()
        channel = (
            self.simulator.registry.by_name(channel_name) if channel_name else None
        )
        if channel_name and channel is None:
            self.session.error(message, "No such channel")
            return None
        return name, channel

    def _getvar(self, message: Message) -> None:
        target = self._variable_target(message)
        if target is None:
            return
        name, channel = target
        value = channel.variables.get(name, "") if channel is not None else ""
        self.session.respond(
            message, "Success", extra=[("Variable", name), ("Value", value)]
        )

    def _setvar(self, message: Message) -> None:
        target = self._variable_target(message)
        if target is None:
            return
        name, channel = target
        if channel is not None:  # without a channel Asterisk sets a global
            emit_varset(self.simulator, channel, name, message.get("Value") or "")
        self.session.respond(message, "Success", "Variable Set")
