"""The twistd plugin is discoverable and builds the service from its options."""

from __future__ import annotations

from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from callnowd.tap import Options


class PluginTests(SynchronousTestCase):
    """Plugin discovery and options."""

    def test_discoverable(self) -> None:
        """GetPlugins finds the callnow tapname."""
        names = {plugin.tapname for plugin in getPlugins(IServiceMaker)}
        self.assertIn("callnow", names)

    def test_no_init_under_twisted(self) -> None:
        """The project's twisted/ tree has no __init__.py (it would shadow Twisted)."""
        root = Path(__file__).parents[1] / "twisted"
        self.assertEqual(list(root.rglob("__init__.py")), [])

    def test_options_load_config(self) -> None:
        """--config loads the file into options.config."""
        options = Options()
        options.parseOptions(
            ["--config", str(Path(__file__).parents[1] / "conf" / "callnow.toml")]
        )
        self.assertEqual(options.config.http.listen, "tcp:8080:interface=127.0.0.1")

    def test_bad_config_exits(self) -> None:
        """A bad config exits with status 2 before anything starts."""
        path = Path(self.mktemp())
        path.write_text("[http]\nlisten = 1\n")
        options = Options()
        error = self.assertRaises(
            SystemExit, options.parseOptions, ["--config", str(path)]
        )
        self.assertEqual(error.code, 2)
