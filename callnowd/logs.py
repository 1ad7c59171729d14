"""Log observers: JSON lines for ``twistd --logger=callnowd.logs.json_observer``.

The observer writes exactly what Twisted's ``jsonFileLogObserver`` writes. One kind
of event is written without ``eventAsJSON``'s general machinery (flattening, a JSON
encoder with a fallback hook for every object): the access-log line twisted.web
writes for every request (``{log_io}`` from the ``twisted.python.log`` file
object). Its JSON is put together from a fixed template, the same bytes, several
times cheaper; under a flood of refused requests the access log is a tenth of the
daemon's work.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    eventAsJSON,
)

# The keys, in order, of the event twisted.logger's LoggingFile emits for a line.
_LINE_EVENT_KEYS = (
    "log_io",
    "log_logger",
    "log_level",
    "log_namespace",
    "log_source",
    "log_format",
    "log_time",
)
# How eventAsJSON writes each level (twisted.logger._json's NamedConstant saver).
_LEVEL_UUID = "02e59486-f24d-46ad-8224-3acdf2a5732a"
_LEVELS = {
    level: f'{{"name": "{level.name}", "__class_uuid__": "{_LEVEL_UUID}"}}'
    for level in LogLevel.iterconstants()
}


def event_as_json(event: LogEvent) -> str:
    """``twisted.logger.eventAsJSON(event)``, faster for access-log lines.

    Like ``eventAsJSON`` it adds ``log_flattened`` to ``event``.
    """
    if tuple(event) != _LINE_EVENT_KEYS:
        return eventAsJSON(event)
    line, level, namespace, when = (
        event["log_io"],
        _LEVELS.get(event["log_level"]),
        event["log_namespace"],
        event["log_time"],
    )
    if (
        type(line) is not str
        or level is None
        or type(namespace) is not str
        or type(when) is not float
        or event["log_format"] != "{log_io}"
        or event["log_source"] is not None
        or not isinstance(event["log_logger"], Logger)
        or when != when  # NaN
        or when in (float("inf"), float("-inf"))
    ):
        return eventAsJSON(event)
    event["log_flattened"] = {"log_io!s:": line, "log_io!:": line}
    text = json.dumps(line)
    return (
        f'{{"log_io": {text}, "log_logger": {{"unpersistable": true}}, '
        f'"log_level": {level}, "log_namespace": {json.dumps(namespace)}, '
        f'"log_source": null, "log_format": "{{log_io}}", "log_time": {when!r}, '
        f'"log_flattened": {{"log_io!s:": {text}, "log_io!:": {text}}}}}'
    )


def json_file_observer(out: IO[Any], record_separator: str = "\x1e") -> ILogObserver:
    """``twisted.logger.jsonFileLogObserver(out)`` with :func:`event_as_json`."""
    return FileLogObserver(
        out, lambda event: f"{record_separator}{event_as_json(event)}\n"
    )


def json_observer() -> ILogObserver:
    """A log observer writing one JSON object per event to standard output."""
    return json_file_observer(sys.stdout)
