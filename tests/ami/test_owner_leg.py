"""The owner leg over FastAGI: prompts, keys, the visitor's Dial, ending."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.agi import AgiEnvironment, AgiResult
from callnowd.ami.fastagi import AgiHangup
from callnowd.ami.owner_leg import AgiOwnerLeg, Prompts, owner_route
from callnowd.calls.ports import Choice, DialResult


class ScriptedSession:
    """Plays back digits for the digit-reading commands, records every command."""

    def __init__(
        self, digits: list[str | None], variables: dict[str, str] | None = None
    ) -> None:
        self.digits = digits
        self.variables = variables or {}
        self.commands: list[tuple[Any, ...]] = []
        self.hung_up = False
        self.closed = False
        self.env = AgiEnvironment(
            (("agi_network", "yes"), ("agi_arg_1", "0123456789abcdef"))
        )

    def _digit(self) -> str | None:
        if not self.digits:
            return None
        digit = self.digits.pop(0)
        if digit == "HANGUP":
            self.hung_up = True
            raise AgiHangup("gone")
        return digit

    async def answer(self) -> None:
        self.commands.append(("ANSWER",))

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        self.commands.append(("STREAM FILE", name, escape_digits))
        return self._digit() if escape_digits else None

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        self.commands.append(("SAY DIGITS", digits))
        return self._digit()

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        self.commands.append(("WAIT FOR DIGIT", timeout_ms))
        return self._digit()

    async def set_variable(self, name: str, value: str) -> None:
        self.commands.append(("SET VARIABLE", name, value))

    async def get_variable(self, name: str) -> str | None:
        self.commands.append(("GET VARIABLE", name))
        return self.variables.get(name)

    async def exec(self, application: str, data: str) -> AgiResult:
        self.commands.append(("EXEC", application, data))
        return AgiResult(200, "-1")

    async def hangup(self) -> None:
        self.commands.append(("HANGUP",))
        self.hung_up = True


def run(coro: Any) -> Any:
    d = Deferred.fromCoroutine(coro)
    results: list[Any] = []
    d.addBoth(results.append)
    return results[0]


class ConfirmTests(SynchronousTestCase):
    """AgiOwnerLeg.confirm."""

    def confirm(self, digits: list[str | None]) -> tuple[Choice, ScriptedSession]:
        session = ScriptedSession(digits)
        leg = AgiOwnerLeg(session, Prompts())  # type: ignore[arg-type]
        return run(leg.confirm("15555550123")), session

    def test_prompts_in_order_then_wait(self) -> None:
        """Answer, announce, say the number, ask, then wait for the key: 1 accepts."""
        choice, session = self.confirm([None, None, None, "1"])
        self.assertEqual(choice, Choice.ACCEPT)
        self.assertEqual(
            [c[0] for c in session.commands],
            ["ANSWER", "STREAM FILE", "SAY DIGITS", "STREAM FILE", "WAIT FOR DIGIT"],
        )
        self.assertEqual(session.commands[1][1:], ("callnow/incoming", "0123456789*#"))
        self.assertEqual(session.commands[2][1], "15555550123")
        self.assertEqual(session.commands[4][1], 5000)

    def test_key_during_prompt(self) -> None:
        """A key pressed during a prompt counts (2 declines) without waiting."""
        choice, session = self.confirm(["2"])
        self.assertEqual(choice, Choice.DECLINE)
        self.assertEqual([c[0] for c in session.commands], ["ANSWER", "STREAM FILE"])

    def test_other_key_repeats_once(self) -> None:
        """Another key repeats the announcement once; a second wrong key is no response."""
        choice, session = self.confirm([None, None, None, "5", None, None, None, "1"])
        self.assertEqual(choice, Choice.ACCEPT)
        self.assertEqual(
            sum(1 for c in session.commands if c[0] == "WAIT FOR DIGIT"), 2
        )
        choice, _ = self.confirm(["7", "9"])
        self.assertEqual(choice, Choice.NO_RESPONSE)

    def test_silence_and_hangup(self) -> None:
        """Silence is no response; a hang-up is hung up."""
        self.assertEqual(self.confirm([])[0], Choice.NO_RESPONSE)
        self.assertEqual(self.confirm([None, "HANGUP"])[0], Choice.HUNG_UP)


class CallVisitorTests(SynchronousTestCase):
    """AgiOwnerLeg.call_visitor and finish."""

    def test_dial_and_result(self) -> None:
        """Caller id and account are set, Dial runs, DIALSTATUS/ANSWEREDTIME are read."""
        session = ScriptedSession([], {"DIALSTATUS": "ANSWER", "ANSWEREDTIME": "42"})
        leg = AgiOwnerLeg(session, Prompts())  # type: ignore[arg-type]
        result = run(leg.call_visitor("+12125550100", "acct", "PJSIP/+1@t,30,L(1000)"))
        self.assertEqual(result, DialResult("ANSWER", 42))
        self.assertEqual(
            session.commands,
            [
                ("SET VARIABLE", "CALLERID(num)", "+12125550100"),
                ("SET VARIABLE", "CDR(accountcode)", "acct"),
                ("EXEC", "Dial", "PJSIP/+1@t,30,L(1000)"),
                ("GET VARIABLE", "DIALSTATUS"),
                ("GET VARIABLE", "ANSWEREDTIME"),
            ],
        )
        run(leg.finish())
        self.assertEqual(session.commands[-1], ("HANGUP",))
        run(leg.finish())  # already hung up: nothing more is sent
        self.assertEqual(sum(1 for c in session.commands if c == ("HANGUP",)), 1)

    def test_no_account_no_status(self) -> None:
        """Without an account nothing is set for it; no DIALSTATUS means unavailable."""
        session = ScriptedSession([], {})
        leg = AgiOwnerLeg(session, Prompts())  # type: ignore[arg-type]
        result = run(leg.call_visitor("+12125550100", "", "PJSIP/+1@t,30"))
        self.assertEqual(result, DialResult("CHANUNAVAIL", 0))
        self.assertNotIn("CDR(accountcode)", str(session.commands))


class RouteTests(SynchronousTestCase):
    """owner_route."""

    def test_invalid_request_id_hangs_up(self) -> None:
        """An AGI call without a valid request id is hung up and never reaches the flow."""

        class NoFlow:
            async def owner_answered(self, request_id: str, leg: object) -> None:
                raise AssertionError("must not be called")

        session = ScriptedSession([])
        session.env = AgiEnvironment(
            (("agi_network", "yes"), ("agi_arg_1", "x;EXEC System"))
        )
        run(owner_route(NoFlow(), Prompts())(session))  # type: ignore[arg-type]
        self.assertEqual(session.commands, [("HANGUP",)])
