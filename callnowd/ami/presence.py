"""Is the owner on the phone? Asked of Asterisk with ``Action: ExtensionState``.

Used only for extensions whose owner turned on "reject while I am on the phone";
the rules engine gets the answer as a flag. The extension's hint is found from its
dial string: ``Local/1002@phones`` → exten 1002 in context phones; ``PJSIP/1002``
→ exten 1002 in the configured hint context.
"""

from __future__ import annotations

from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.logger import Logger

from callnowd.ami.client import (
    AmiActionError,
    AmiClient,
    AmiConnectionLost,
    AmiNotConnected,
)
from callnowd.ami.codec import AmiEncodingError

# ExtensionState Status bits (Asterisk's ast_extension_states): 1 InUse, 2 Busy,
# 4 Unavailable, 8 Ringing, 16 OnHold; -1 no hint. On the phone = in use, busy or
# holding a call (ringing alone is not a call in progress).
_ON_THE_PHONE = 1 | 2 | 16


def hint_of(dial_string: str, default_context: str) -> tuple[str, str]:
    """The (exten, context) of the hint watching the phone ``dial_string`` rings."""
    resource = dial_string.split("/", 1)[-1]
    exten, _, context = resource.partition("@")
    return exten, context or default_context


def on_the_phone(status: int) -> bool:
    """Whether an ExtensionState status means a call is in progress."""
    return status > 0 and not status & 4 and bool(status & _ON_THE_PHONE)


class ExtensionPresence:
    """Answers "is this phone in a call" over AMI; unknown counts as not busy."""

    log = Logger()

    def __init__(
        self, client: AmiClient, default_context: str, timeout: float = 1.0
    ) -> None:
        self._client = client
        self._context = default_context
        self._timeout = timeout

    async def is_busy(self, dial_string: str) -> bool:
        """Whether the phone of ``dial_string`` is in a call now.

        When Asterisk cannot tell (no AMI session, no hint, a timeout) the answer is
        False: the request then goes on to the owner, who can still decline it.
        """
        exten, context = hint_of(dial_string, self._context)
        try:
            response = await self._client.send_action(
                "ExtensionState",
                [("Exten", exten), ("Context", context)],
                timeout=self._timeout,
            )
        except (
            AmiActionError,
            AmiConnectionLost,
            AmiNotConnected,
            AmiEncodingError,
            DeferredTimeoutError,
        ) as e:
            self.log.info(
                "Extension state of {exten}@{context} unknown: {error}",
                exten=exten,
                context=context,
                error=type(e).__name__,
            )
            return False
        try:
            status = int(response.get("Status") or "-1")
        except ValueError:
            return False
        return on_the_phone(status)
