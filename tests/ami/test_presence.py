"""ExtensionPresence: ExtensionState over AMI, against the simulator."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.trial.unittest import SynchronousTestCase, TestCase

from callnowd.ami.client import AmiClient, AmiSettings
from callnowd.ami.presence import ExtensionPresence, hint_of, on_the_phone
from callnowd.ami.sim_config import AmiUser, SimulatorSettings
from callnowd.ami.simulator import AsteriskSimulator
from callnowd.pbx_services import AMI_READ, AMI_WRITE


class HintTests(SynchronousTestCase):
    """hint_of and on_the_phone."""

    def test_hint_of(self) -> None:
        """Local dial strings carry their context; others use the default."""
        self.assertEqual(
            hint_of("Local/001002@phones", "default"), ("001002", "phones")
        )
        self.assertEqual(hint_of("PJSIP/1002", "office"), ("1002", "office"))

    def test_status_bits(self) -> None:
        """In use, busy and on hold are calls; idle, ringing, unavailable are not."""
        self.assertEqual(
            {s: on_the_phone(s) for s in (-1, 0, 1, 2, 4, 8, 9, 16, 5)},
            {
                -1: False,
                0: False,
                1: True,
                2: True,
                4: False,
                8: False,
                9: True,
                16: True,
                5: False,
            },
        )


class PresenceTests(TestCase):
    """Against the simulator over loopback TCP."""

    async def test_in_use_and_idle(self) -> None:
        """A phone the PBX reports in use is busy; idle, unknown or no AMI is not."""
        simulator = AsteriskSimulator(
            reactor,
            SimulatorSettings(
                users=(AmiUser("callnowd", "pw", read=AMI_READ, write=AMI_WRITE),)
            ),
        )
        port = await simulator.listen(
            TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        )
        self.addCleanup(lambda: Deferred.fromCoroutine(simulator.stop()))
        client = AmiClient(
            reactor,
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),  # type: ignore[attr-defined]
            AmiSettings(username="callnowd", secret="pw"),
            jitter=lambda: 0.0,
        )
        presence = ExtensionPresence(client, "default")
        self.assertFalse(await presence.is_busy("PJSIP/1002"))  # not connected yet
        client.startService()
        self.addCleanup(client.stopService)
        await client.wait_connected(5)
        simulator.set_extension_state("1002", in_use=True)
        self.assertTrue(await presence.is_busy("PJSIP/1002"))
        simulator.set_extension_state("1002", in_use=False)
        self.assertFalse(await presence.is_busy("PJSIP/1002"))
        self.assertFalse(await presence.is_busy("PJSIP/7777"))
        sent = [m for m in simulator.received_actions if m.action == "ExtensionState"]
        self.assertEqual(sent[0].get("Exten"), "1002")
        self.assertEqual(sent[0].get("Context"), "default")
