"""The JSON log observer writes what Twisted's writes, access-log lines included."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import (
    Logger,
    LoggingFile,
    LogLevel,
    LogPublisher,
    eventAsJSON,
    jsonFileLogObserver,
)
from twisted.trial.unittest import SynchronousTestCase

from callnowd.logs import event_as_json, json_file_observer


def line_events(text: str, level: LogLevel = LogLevel.info) -> list[dict[str, object]]:
    """The events twisted.python.log's file object (the access log) emits."""
    publisher = LogPublisher()
    events: list[dict[str, object]] = []
    publisher.addObserver(events.append)  # type: ignore[arg-type]
    logger = Logger(namespace="twisted.python.log", observer=publisher)
    LoggingFile(logger=logger, level=level).write(text + "\n")
    return events


class EventAsJsonTests(SynchronousTestCase):
    @given(st.text(), st.sampled_from(list(LogLevel.iterconstants())))
    def test_access_log_lines_as_twisted_writes_them(
        self, text: str, level: LogLevel
    ) -> None:
        """Any line at any level gives eventAsJSON's exact text and flattened event."""
        for event in line_events(text, level):
            mine, twisteds = dict(event), dict(event)
            self.assertEqual(event_as_json(mine), eventAsJSON(twisteds))
            self.assertEqual(mine, twisteds)

    def test_other_events_go_through_twisted(self) -> None:
        """Events of another shape are written by eventAsJSON itself."""
        publisher = LogPublisher()
        events: list[dict[str, object]] = []
        publisher.addObserver(events.append)  # type: ignore[arg-type]
        log = Logger(namespace="x", observer=publisher)
        log.info("Call request {request_id}", request_id=7, source="form")
        log.info("{log_io}", log_io="an access line", extra=1)
        (event,) = line_events("a line")
        events.append({**event, "log_source": self})
        events.append({**event, "log_time": float("nan")})
        for event in events:
            self.assertEqual(event_as_json(dict(event)), eventAsJSON(dict(event)))

    def test_observer_writes_the_same_lines(self) -> None:
        """The observer's output is jsonFileLogObserver's, byte for byte."""
        mine, twisteds = io.StringIO(), io.StringIO()
        for event in line_events('[x] "GET /callnow/index.php HTTP/1.1" 429 431'):
            json_file_observer(mine)(dict(event))
            jsonFileLogObserver(twisteds)(dict(event))
        self.assertEqual(mine.getvalue(), twisteds.getvalue())
        self.assertTrue(mine.getvalue().startswith("\x1e{"))
