"""The JSON log observer writes what Twisted's writes, access-log lines included."""

from __future__ import annotations

import io
from typing import cast

from constantly import NamedConstant, Names  # type: ignore[import-untyped]
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
from twisted.python.failure import Failure
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


class _Colour(Names):  # type: ignore[misc]  # constantly is untyped
    """Named constants that are not log levels."""

    red = NamedConstant()


_NAMES = st.sampled_from(["request_id", "state", "because", "x", "_y2", "log_io"])
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(list(LogLevel.iterconstants())),
    st.just(Logger(namespace="elsewhere")),
    st.just(object()),
    st.just(Failure(ValueError("boom"))),
    st.just(LogLevel.lookupByName("warn")),
    st.just(_Colour.red),
)
_FIELDS = st.tuples(
    _NAMES,
    st.sampled_from(["", "!r", "!s", "!a"]),
    st.sampled_from(["", ":>5", ":x"]),
)


def _format(literals: list[str], fields: list[tuple[str, str, str]]) -> str:
    escaped = [t.replace("{", "{{").replace("}", "}}") for t in literals]
    return "".join(
        f"{text}{{{name}{conversion}{spec}}}"
        for text, (name, conversion, spec) in zip(escaped, fields, strict=False)
    )


class GeneralEventTests(SynchronousTestCase):
    def emitted(self, log_format: str, **fields: object) -> dict[str, object]:
        publisher = LogPublisher()
        events: list[dict[str, object]] = []
        publisher.addObserver(events.append)  # type: ignore[arg-type]
        Logger(namespace="callnowd.calls.flow.CallFlow", observer=publisher).info(
            log_format, **fields
        )
        (event,) = events
        return event

    @given(
        st.lists(st.text(max_size=6), min_size=1, max_size=4),
        st.lists(_FIELDS, max_size=4),
        st.dictionaries(_NAMES, _VALUES),
        st.dictionaries(st.sampled_from(["reason", "extra"]), _VALUES),
    )
    def test_plain_fields_as_twisted_writes_them(
        self,
        literals: list[str],
        fields: list[tuple[str, str, str]],
        values: dict[str, object],
        extra: dict[str, object],
    ) -> None:
        """Any format of plain fields and any values give eventAsJSON's text."""
        log_format = _format(literals, fields)
        for name, _, _ in fields:
            values.setdefault(name, name)
        event = self.emitted(log_format, **values, **extra)
        mine, twisteds = dict(event), dict(event)
        self.assertEqual(event_as_json(mine), eventAsJSON(twisteds))
        self.assertEqual(mine, twisteds)

    def test_repeated_fields_get_numbered_keys(self) -> None:
        """A field used twice is flattened under ``/2`` keys, as Twisted does."""
        event = self.emitted("{a} {a!r} {a} {b:>3}", a="v", b=1)
        mine, twisteds = dict(event), dict(event)
        self.assertEqual(event_as_json(mine), eventAsJSON(twisteds))
        self.assertIn("a!s:/2", cast(dict[str, object], mine["log_flattened"]))

    def test_other_fields_go_through_twisted(self) -> None:
        """Calls, attribute and index fields, and no fields at all, are Twisted's."""
        cases: list[tuple[str, dict[str, object]]] = [
            ("{f()}", {"f": lambda: "called"}),
            ("{o.real}", {"o": 3}),
            ("{d[k]}", {"d": {"k": "v"}}),
            ("no fields", {}),
        ]
        for log_format, fields in cases:
            event = self.emitted(log_format, **fields)
            mine, twisteds = dict(event), dict(event)
            self.assertEqual(event_as_json(mine), eventAsJSON(twisteds))
            self.assertEqual(mine, twisteds)

    def test_missing_field_raises_as_twisted_does(self) -> None:
        """A format naming a field the event lacks raises KeyError, as Twisted."""
        event = self.emitted("Request {request_id}: {state}", request_id=1)
        with self.assertRaises(KeyError):
            eventAsJSON(dict(event))
        with self.assertRaises(KeyError):
            event_as_json(dict(event))

    def test_bad_format_raises_as_twisted_does(self) -> None:
        """An unparsable format or a positional field raises as in Twisted."""
        for log_format, error in [("{unclosed", ValueError), ("{0}", IndexError)]:
            event = self.emitted(log_format, unclosed=1)
            with self.assertRaises(error):
                eventAsJSON(dict(event))
            with self.assertRaises(error):
                event_as_json(dict(event))
