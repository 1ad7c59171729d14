"""AMI injection through the visitor's name and number, checked on the AMI wire.

Asterisk ends an AMI line at CR LF or a bare LF and splits ``Variable:`` values at
commas (THREATS.md §3). Hostile names and numbers are sent through the form and
the one-step link of the real daemon; everything the simulator received is then
parsed with the codec and checked value by value.
"""

from __future__ import annotations

import re

from callnowd.ami.codec import AmiParser, Message
from callnowd.validation import normalize_name
from tests.integration.attack_case import AttackCase

MARKER = "Evil"
HOSTILE_NAMES = (
    f"Mary\r\nAction: Originate\r\nChannel: Local/666@{MARKER}",
    f"Mary\nAction: Command\nCommand: core stop now {MARKER}",
    f"Mary\rAction: Logoff {MARKER}",
    f"Mary,EXEC_COMMAND={MARKER}",
    f"Mary\x00{MARKER}",
    f"Mary\u2028Action: Command {MARKER}",
    f"Mary\u2029{MARKER}",
    f"Mary\u202e{MARKER}",
    f'Mary" <+15555550123> {MARKER}',
    f"Mary;{MARKER}",
    f"Mary|{MARKER}",
    f"Mary\\{MARKER}",
    f"Mary<{MARKER}>",
    f"Mary\x85{MARKER}",
)
HOSTILE_PHONES = (
    "+14155550160\r\nAction: Command",
    "+14155550161\nAction: Logoff",
    "+14155550162,EXEC_COMMAND=x",
    "+14155550163\x00",
    "+14155550164\u2028Action: Command",
    "+14155550165\rAction: Logoff",
)
# Names that are valid: they may reach the PBX, inside CallerID only.
GOOD = {
    "+14155550170": "Zoë O'Brien-Smith",
    "+14155550171": "José María",
    "+14155550172": "Nguyễn Thị Minh",
    "+14155550173": "محمد",
}
CALLER_ID = re.compile(r'"CallNow(?:: (?P<name>[^"]+))?" <\+[0-9]{6,15}>')
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[A-Za-z0-9_.:+-]*")
ACTIONS = {
    "Login",
    "Challenge",
    "Originate",
    "UserEvent",
    "Ping",
    "ExtensionState",
    "CoreShowChannels",
    "Hangup",
}


class InjectionTests(AttackCase):
    """Nothing a visitor types breaks an AMI line, a header or a variable."""

    async def test_hostile_names_and_numbers(self) -> None:
        """Hostile input is refused (400); good names reach only the CallerID."""
        await self.start(calls={"max_in_flight_per_extension": 20})
        ip = iter(f"10.9.{n // 250}.{n % 250 + 1}" for n in range(1000))
        refused = 0
        for n, name in enumerate(HOSTILE_NAMES):
            phone = f"+1415555{n + 200:04d}"
            for how in (self.one_step, self.form):
                answer = await how("victim", phone, name, next(ip))
                self.assertEqual(answer.code, 400, repr(name))
                refused += 1
        for phone in HOSTILE_PHONES:
            for how in (self.one_step, self.form):
                answer = await how("victim", phone, "Mary", next(ip))
                self.assertEqual(answer.code, 400, repr(phone))
                refused += 1
        locations = []
        for n, (phone, name) in enumerate(GOOD.items()):
            how = self.form if n % 2 else self.one_step
            answer = await how("victim", phone, name, next(ip))
            self.assertEqual(answer.code, 303, answer.body)
            locations.append(answer.header("location"))
        for location in locations:
            assert location is not None
            await self.final(location)
        self.assertEqual(self.stored("SELECT count(*) FROM call_requests"), [(4,)])

        wire = self.simulator.received_bytes
        self.assertNotIn(MARKER.encode(), wire)
        self.assertNotIn(b"EXEC_COMMAND", wire)
        messages = AmiParser(expect_banner=False).feed(wire)
        self.assertEqual(len(messages), len(self.simulator.received_actions))
        originates = [m for m in messages if m.action == "Originate"]
        self.assertEqual(len(originates), len(GOOD))
        seen_names = {check_message(self, m) for m in messages} - {None}
        self.assertEqual(seen_names, set(GOOD.values()))
        self.assertEqual(refused, 2 * (len(HOSTILE_NAMES) + len(HOSTILE_PHONES)))


def check_message(case: AttackCase, message: Message) -> str | None:
    """Check one message the daemon sent; return the visitor name it carried."""
    case.assertEqual(message.unparsed, ())
    case.assertEqual(len(message.get_all("Action")), 1, message)
    case.assertIn(message.action, ACTIONS)
    name = None
    for header, value in message.headers:
        for forbidden in ("\r", "\n", "\x00", "\u2028", "\u2029", "\x85"):
            case.assertNotIn(forbidden, value, (header, value))
        if header == "Variable":
            case.assertRegex(value, VARIABLE)
            case.assertNotIn(",", value)
        elif header == "CallerID":
            match = CALLER_ID.fullmatch(value)
            assert match is not None, value
            name = match.group("name")
            if name is not None:
                case.assertEqual(normalize_name(name), name)
        # Names appear in no other header.
        if header != "CallerID":
            for good in GOOD.values():
                case.assertNotIn(good, value, (header, value))
    return name
