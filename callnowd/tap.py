"""twistd glue: the ``callnow`` command's options and ``makeService``.

This is the only module that imports the global reactor (inside ``makeService``).
A bad configuration ends the command here, before the reactor starts, with one line
naming the file and the dotted key.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.application.service import IService
from twisted.python import usage
from typing_extensions import override

from callnowd.config import Config, ConfigError, default_config_path, load_config


class Options(usage.Options):
    """``twistd callnow [--config PATH]``."""

    optParameters = [  # noqa: N815 - twisted.python.usage API
        ["config", "c", None, "Path to the TOML config (default conf/callnow.toml)."],
    ]

    config: Config

    @override
    def postOptions(self) -> None:
        path = Path(self["config"]) if self["config"] else default_config_path()
        try:
            self.config = load_config(path)
        except ConfigError as e:
            # One clear line and a non-zero exit; usage text would bury the problem.
            print(f"callnow: configuration error: {e}", file=sys.stderr)
            raise SystemExit(2) from e


def makeService(options: Options) -> IService:  # noqa: N802 - twistd's required name
    """Build the daemon from parsed options (twistd calls this)."""
    from twisted.internet import reactor

    from callnowd.service import build_service
    from callnowd.store.errors import StoreError

    try:
        return build_service(options.config, reactor)
    except (StoreError, OSError) as e:
        print(f"callnow: cannot start: {e}", file=sys.stderr)
        raise SystemExit(1) from e
