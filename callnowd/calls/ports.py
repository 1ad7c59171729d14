"""The call flow's view of the PBX: narrow typed seams the AMI/AGI adapters implement.

The core (:mod:`callnowd.calls.flow`) depends only on these; ``callnowd.ami`` provides
the real ones, the tests provide fakes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import attrs

from callnowd.models import CallRequest, Extension


class OwnerOutcome(enum.Enum):
    """What became of ringing the owner's phone (OriginateResponse Reason)."""

    ANSWERED = "answered"  # Reason 4
    NO_ANSWER = "no_answer"  # Reason 3
    BUSY = "busy"  # Reason 5
    REJECTED = "rejected"  # Reason 1: hung up while ringing
    UNREACHABLE = "unreachable"  # Reason 0, 8 and anything else
    UNKNOWN = "unknown"  # the AMI link dropped or no result in time


@attrs.frozen
class PbxError(Exception):
    """The PBX refused or could not take the originate; ``reason`` is stored."""

    reason: str
    detail: str = ""


class Pbx(Protocol):
    """Placing the owner leg and talking to integrators, over AMI."""

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a logged-in AMI session; False if none."""

    async def originate_owner(
        self, request: CallRequest, extension: Extension, channel_id: str
    ) -> OwnerOutcome:
        """Ring the owner; return when the PBX says how it went.

        Raises:
            PbxError: the originate was refused (not queued).
        """

    async def live_channels(self) -> frozenset[str]:
        """The Uniqueids and Linkedids of every live channel (CoreShowChannels)."""

    def notify(self, fields: Sequence[tuple[str, str]]) -> None:
        """Send ``UserEvent: CallNow`` with these headers; never raises."""


class Choice(enum.Enum):
    """The owner's answer to "press 1 or 2"."""

    ACCEPT = "accept"
    DECLINE = "decline"
    NO_RESPONSE = "no_response"
    HUNG_UP = "hung_up"


@attrs.frozen
class DialResult:
    """How calling the visitor ended (DIALSTATUS and ANSWEREDTIME)."""

    status: str
    answered_seconds: int = 0


class OwnerLeg(Protocol):
    """The answered owner channel, driven over FastAGI."""

    async def confirm(self, visitor_digits: str) -> Choice:
        """Announce the visitor and read 1 (accept) or 2 (decline)."""

    async def call_visitor(
        self, caller_id_number: str, account: str, dial_data: str
    ) -> DialResult:
        """Set the caller id and account, dial the visitor, return the outcome."""

    async def say_declined(self) -> None:
        """Tell the owner the request was declined."""

    async def finish(self) -> None:
        """Hang up the owner channel (the session then closes)."""
