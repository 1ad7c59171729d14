"""A call flow over a fake PBX and the in-memory store, for the flow's tests."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.flow import CallFlow, FlowSettings
from callnowd.calls.ports import Choice, DialResult, OwnerOutcome, PbxError
from callnowd.calls.requests import new_request
from callnowd.models import (
    CallRequest,
    Extension,
    Preferences,
    RequestSource,
)
from callnowd.models import RequestState as S
from tests.fakes import MemoryStore

JOHN = Extension(
    number="001*002",
    display_name="John",
    external_number="+12125550100",
    dial_string="PJSIP/001002",
    timezone="UTC",
    account="acct1",
    preferences=Preferences(callnow_id="john"),
)


class FakePbx:
    """Records originates; outcomes are Deferreds the test fires."""

    def __init__(self) -> None:
        self.ready = True
        self.originated: list[tuple[str, str]] = []
        self.outcomes: list[Deferred[OwnerOutcome]] = []
        self.events: list[dict[str, str]] = []
        self.live: frozenset[str] = frozenset()
        self.refuse: PbxError | None = None

    async def wait_ready(self, timeout: float) -> bool:
        return self.ready

    async def originate_owner(
        self, request: CallRequest, extension: Extension, channel_id: str
    ) -> OwnerOutcome:
        if self.refuse is not None:
            raise self.refuse
        self.originated.append((request.id, channel_id))
        d: Deferred[OwnerOutcome] = Deferred()
        self.outcomes.append(d)
        return await d

    async def live_channels(self) -> frozenset[str]:
        return self.live

    def notify(self, fields: Sequence[tuple[str, str]]) -> None:
        self.events.append(dict(fields))


@attrs.define
class FakeLeg:
    """An owner leg with a scripted choice and dial result."""

    choice: Choice = Choice.ACCEPT
    dial: DialResult = attrs.Factory(lambda: DialResult("ANSWER", 12))
    confirmed: list[str] = attrs.Factory(list)
    dialled: list[tuple[str, str, str]] = attrs.Factory(list)
    declined_said: bool = False
    finished: bool = False

    async def confirm(self, visitor_digits: str) -> Choice:
        self.confirmed.append(visitor_digits)
        return self.choice

    async def call_visitor(
        self, caller_id_number: str, account: str, dial_data: str
    ) -> DialResult:
        self.dialled.append((caller_id_number, account, dial_data))
        return self.dial

    async def say_declined(self) -> None:
        self.declined_said = True

    async def finish(self) -> None:
        self.finished = True


class FlowCase(SynchronousTestCase):
    """A flow over the fake PBX and the in-memory store."""

    def setUp(self) -> None:
        self.store = MemoryStore()
        self.wait(self.store.add_extension(JOHN))
        self.pbx = FakePbx()
        self.now = 1000.0
        self.flow = CallFlow(
            self.store,
            self.pbx,
            lambda: self.now,
            FlowSettings(
                instance_id="a1", max_in_flight=3, max_in_flight_per_extension=2
            ),
        )

    def wait(self, coro: object) -> object:
        return self.successResultOf(Deferred.fromCoroutine(coro))  # type: ignore[arg-type]

    def request(
        self, phone: str = "+15555550123", decision: str | None = None
    ) -> CallRequest:
        request, event = new_request(JOHN, phone, "Mary", RequestSource.FORM, self.now)
        request = attrs.evolve(request, decision=decision)
        self.wait(self.store.create_request(request, event))
        return request

    def state(self, request: CallRequest) -> tuple[S, str | None]:
        current = self.store.requests[request.id]
        return current.state, current.reason

    def states(self, request: CallRequest) -> list[S]:
        return [e.state for e in self.store.events if e.request_id == request.id]
