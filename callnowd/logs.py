"""Log observers: JSON lines for ``twistd --logger=callnowd.logs.json_observer``."""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver


def json_observer() -> ILogObserver:
    """A log observer writing one JSON object per event to standard output."""
    return jsonFileLogObserver(sys.stdout)
