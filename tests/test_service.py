"""The composition root: the whole daemon built on a memory reactor."""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from callnowd.config import Config, HttpConfig, PublicConfig, StoreConfig
from callnowd.service import build_service


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
