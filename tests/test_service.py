"""The composition root: the whole daemon built on a memory reactor."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import attrs
from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from callnowd.ami.client import AmiClient, AmiSettings
from callnowd.background import run_in_background
from callnowd.calls.flow import CallFlow, FlowSettings
from callnowd.calls.ports import OwnerOutcome, PbxError
from callnowd.calls.requests import new_request
from callnowd.calls.states import Reason
from callnowd.config import Config, HttpConfig, PublicConfig, StoreConfig
from callnowd.models import RequestSource
from callnowd.models import RequestState as S
from callnowd.pbx_services import PbxParts
from callnowd.service import CallNowService, StoreService, build_service
from callnowd.service import log as service_log
from callnowd.store.sqlite import SqliteStore
from tests.calls.flow_case import JOHN, FakePbx

reactor = cast(IReactorCore, global_reactor)
clock = cast(IReactorTime, global_reactor)
NOW = 1000.0


class BuildServiceTests(SynchronousTestCase):
    """build_service."""

    def test_builds_starts_and_stops_cleanly(self) -> None:
        """Everything listens where configured, and stopping leaves no timers."""
        workdir = Path(self.mktemp()).absolute()
        config = attrs.evolve(
            Config(),
            store=StoreConfig(url=f"sqlite:{workdir / 'db.sqlite3'}"),
            public=PublicConfig(secret_file=str(workdir / "secret.key")),
            http=HttpConfig(listen="tcp:18999:interface=127.0.0.1"),
        )
        reactor = MemoryReactorClock()
        service = build_service(config, reactor)
        self.assertTrue((workdir / "secret.key").exists())
        self.assertEqual(oct((workdir / "secret.key").stat().st_mode & 0o777), "0o600")
        service.privilegedStartService()
        service.startService()
        ports = {server[0] for server in reactor.tcpServers}
        self.assertIn(18999, ports)  # HTTP
        self.assertIn(4573, ports)  # FastAGI
        self.assertIn(9108, ports)  # metrics
        self.successResultOf(service.stopService())
        self.assertEqual(reactor.getDelayedCalls(), [])


class StopWithCallsInFlightTests(TestCase):
    """Stopping the daemon while the call flow carries requests, on a real store."""

    async def test_stop_leaves_requests_for_the_next_start(self) -> None:
        """Calls in flight end quietly at stop, stored as they were, with one summary."""
        path = Path(self.mktemp()).absolute() / "db.sqlite3"
        store = SqliteStore.open(reactor, path)
        self.addCleanup(store.close)  # closing twice is harmless
        await store.add_extension(JOHN)
        pbx = FakePbx()
        flow = CallFlow(
            store,
            pbx,
            lambda: NOW,
            FlowSettings(instance_id="a1", max_in_flight_per_extension=4),
        )
        root = CallNowService(store)
        StoreService(store).setServiceParent(root)
        client = AmiClient(
            clock,
            TCP4ClientEndpoint(reactor, "127.0.0.1", 5038),
            AmiSettings(username="callnowd", secret="s"),
        )
        root.pbx = PbxParts(flow=flow, client=client, simulator=None)
        root.startService()
        phones = ["+15555550121", "+15555550122", "+15555550123", "+15555550124"]
        requests = []
        for phone in phones:
            request, event = new_request(JOHN, phone, "Mary", RequestSource.FORM, NOW)
            await store.create_request(request, event)
            requests.append(request)
        ringing, waiting = requests[:3], requests[3]
        # Dispatched as the intake does it (service.build_service).
        dispatches = [
            run_in_background(service_log, "dispatch", flow.dispatch(r, JOHN))
            for r in ringing
        ]
        for _ in range(500):  # each is moved to ringing_owner first (committed)
            if len(pbx.outcomes) == len(ringing):
                break
            await deferLater(clock, 0.01, lambda: None)
        self.assertEqual(len(pbx.outcomes), len(ringing))
        watch = Logger(namespace="callnowd.ami.pbx.watch")
        with capturedLogs() as events:
            stopped = root.stopService()
            # What the shutdown makes of the calls in flight: the AMI connection
            # closes (outcome unknown, or a failed originate), or a late answer.
            pbx.outcomes[0].callback(OwnerOutcome.UNKNOWN)
            pbx.outcomes[1].callback(OwnerOutcome.NO_ANSWER)
            pbx.outcomes[2].errback(PbxError(Reason.PBX_UNAVAILABLE))
            for request in ringing:
                channel = flow.channel_prefix + request.id
                run_in_background(watch, "channel gone", flow.channel_gone(channel))
                answered = flow.visitor_answered(channel)
                run_in_background(watch, "visitor answered", answered)
            run_in_background(service_log, "dispatch", flow.dispatch(waiting, JOHN))
            run_in_background(watch, "periodic reconciliation", flow.reconcile())
            await stopped
            for dispatched in dispatches:
                await dispatched
        noisy = [
            e for e in events if e["log_level"] in (LogLevel.error, LogLevel.critical)
        ]
        self.assertEqual(noisy, [])
        summaries = [
            e for e in events if "count" in e and "Stopping" in e["log_format"]
        ]
        self.assertEqual([e["count"] for e in summaries], [3])
        self.assertEqual(summaries[0]["log_level"], LogLevel.info)
        reopened = SqliteStore.open(reactor, path)
        self.addCleanup(reopened.close)
        stored = [await reopened.get_request(r.id) for r in requests]
        self.assertEqual(
            [r.state if r else None for r in stored],
            [S.RINGING_OWNER] * 3 + [S.RECEIVED],
        )
        for request in requests:
            states = [e.state for e in await reopened.request_events(request.id)]
            self.assertNotIn(S.FAILED, states)
