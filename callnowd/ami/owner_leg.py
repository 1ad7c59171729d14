"""The answered owner leg over FastAGI: announce, read 1/2, dial the visitor.

:class:`AgiOwnerLeg` implements :class:`callnowd.calls.ports.OwnerLeg` on an
:class:`~callnowd.ami.fastagi.AgiSession`; :func:`owner_route` is the FastAGI route
``owner`` that the ``callnow-owner`` dialplan context calls with the request id.
"""

from __future__ import annotations

import contextlib
import re

import attrs
from twisted.logger import Logger

from callnowd.ami.fastagi import AgiHangup, AgiSession, AgiSessionError, Handler
from callnowd.calls.flow import CallFlow
from callnowd.calls.ports import Choice, DialResult

_REQUEST_ID = re.compile(r"[0-9a-f]{16}")
_ANY_DIGIT = "0123456789*#"


@attrs.frozen
class Prompts:
    """Sound files (without extension) played to the owner, and the digit wait."""

    incoming: str = "callnow/incoming"
    choice: str = "callnow/choice"
    declined: str = "callnow/declined"
    digit_timeout_ms: int = 5000


class AgiOwnerLeg:
    """:class:`callnowd.calls.ports.OwnerLeg` on one FastAGI session."""

    log = Logger()

    def __init__(self, session: AgiSession, prompts: Prompts) -> None:
        self._session = session
        self._prompts = prompts

    async def confirm(self, visitor_digits: str) -> Choice:
        """Announce the visitor and read the owner's digit; one repeat on others.

        Every prompt can be interrupted by a key, because Asterisk drops digits
        pressed while no digit-reading command runs.
        """
        session, prompts = self._session, self._prompts
        try:
            await session.answer()
            for _attempt in range(2):
                digit = await session.stream_file(prompts.incoming, _ANY_DIGIT)
                if digit is None:
                    digit = await session.say_digits(visitor_digits, _ANY_DIGIT)
                if digit is None:
                    digit = await session.stream_file(prompts.choice, _ANY_DIGIT)
                if digit is None:
                    digit = await session.wait_for_digit(prompts.digit_timeout_ms)
                if digit == "1":
                    return Choice.ACCEPT
                if digit == "2":
                    return Choice.DECLINE
                if digit is None:
                    return Choice.HUNG_UP if session.hung_up else Choice.NO_RESPONSE
        except AgiSessionError:
            return Choice.HUNG_UP
        return Choice.NO_RESPONSE

    async def call_visitor(
        self, caller_id_number: str, account: str, dial_data: str
    ) -> DialResult:
        """Set the caller id and account code, ``Dial`` the visitor, read the result."""
        session = self._session
        try:
            await session.set_variable("CALLERID(num)", caller_id_number)
            if account:
                await session.set_variable("CDR(accountcode)", account)
            await session.exec("Dial", dial_data)
        except AgiHangup:
            return DialResult("CANCEL")
        except AgiSessionError as e:
            self.log.warn("Dial failed: {error}", error=str(e))
        try:
            # Both still work on a hung-up (dead) channel.
            status = await session.get_variable("DIALSTATUS") or "CHANUNAVAIL"
            answered = await session.get_variable("ANSWEREDTIME") or "0"
        except AgiSessionError:
            return DialResult("CANCEL")
        return DialResult(status, int(answered) if answered.isdigit() else 0)

    async def say_declined(self) -> None:
        """Tell the owner the request was declined (best effort)."""
        with contextlib.suppress(AgiSessionError):
            await self._session.stream_file(self._prompts.declined)

    async def finish(self) -> None:
        """Hang up unless already hung up; the server then closes the socket."""
        if self._session.hung_up or self._session.closed:
            return
        with contextlib.suppress(AgiSessionError):
            await self._session.hangup()


def owner_route(flow: CallFlow, prompts: Prompts) -> Handler:
    """The FastAGI handler for ``agi://…/owner,<request id>``."""
    log = Logger(namespace="callnowd.ami.owner_leg.route")

    async def handle(session: AgiSession) -> None:
        args = session.env.args
        request_id = args[0] if args else ""
        if not _REQUEST_ID.fullmatch(request_id):
            log.warn("FastAGI owner leg without a valid request id; hanging up")
            await AgiOwnerLeg(session, prompts).finish()
            return
        await flow.owner_answered(request_id, AgiOwnerLeg(session, prompts))

    return handle
