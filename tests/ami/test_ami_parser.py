"""Tests for dropping unwanted events by name with a WantedEvents filter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.codec import AmiParser, AmiProtocolError, Message, WantedEvents
from tests.ami.test_codec import S1, SHARED, fed_in_pieces, reference_parse

# First lines of events: names in several spellings, with blanks around them.
EVENT_LINE = st.tuples(
    st.sampled_from([b"Event:", b"Event: ", b"Event:  ", b"Event:\t", b"event: "]),
    st.sampled_from(
        [b"Hangup", b"HANGUP", b"hangupx", b"VarSet", b"Dial End", b"", b"Hang\rup"]
    ),
    st.sampled_from([b"", b" ", b"\t ", b"\r", b"\x0b"]),
).map(b"".join)
OTHER_LINE = st.sampled_from(
    [
        b"Response: Success",
        b"ActionID: a-1",
        b"Event: Hangup",
        b"Channel: X",
        b"Message: a: b",
        b"no colon",
        b"Y:  2",
        b"\xff\xfe",
    ]
)
END = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])
WANTED = [b"hangup", b"dial end", b"", b" padded", b"two\nlines", b"hang\rup"]


@st.composite
def event_streams(draw: st.DrawFn) -> bytes:
    """Messages, most of them events, with odd layouts mixed in."""
    out: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        first = draw(st.one_of(EVENT_LINE, OTHER_LINE))
        out += [first, draw(END)]
        for line in draw(st.lists(OTHER_LINE, max_size=3)):
            out += [line, draw(END)]
        for _ in range(draw(st.sampled_from([1, 1, 1, 1, 2]))):
            out.append(draw(END))
    return b"".join(out)


def keep(names: list[bytes]) -> WantedEvents:
    return WantedEvents(names)


class WantedEventsPropertyTests(SynchronousTestCase):
    @given(
        event_streams(),
        st.lists(st.integers(0, 300), max_size=8),
        st.lists(st.sampled_from(WANTED), max_size=4),
    )
    def test_same_as_reference(
        self, stream: bytes, cuts: list[int], names: list[bytes]
    ) -> None:
        """Any stream, cut anywhere, keeps exactly what skip(name) would keep."""
        wanted = keep(names)
        self.assertEqual(
            fed_in_pieces(stream, cuts, wanted), reference_parse(stream, wanted)
        )

    @given(event_streams(), st.lists(st.sampled_from(WANTED), max_size=4))
    def test_byte_by_byte(self, stream: bytes, names: list[bytes]) -> None:
        """One byte per read gives the same messages as one read."""
        parser = AmiParser(expect_banner=False, skip_events=keep(names))
        pieces = [m for i in range(len(stream)) for m in parser.feed(stream[i : i + 1])]
        whole = AmiParser(expect_banner=False, skip_events=keep(names)).feed(stream)
        self.assertEqual(pieces, whole)


class WantedEventsTests(SynchronousTestCase):
    def test_call_is_case_insensitive(self) -> None:
        """skip(name) is True exactly for names outside the set, in any case."""
        wanted = WantedEvents([b"Hangup"])
        self.assertFalse(wanted(b"HANGUP"))
        self.assertTrue(wanted(b"VarSet"))
        self.assertEqual(wanted.names, frozenset({b"hangup"}))

    def test_add_replaces_the_patterns(self) -> None:
        """add() of a new name gives new patterns; a known name keeps them."""
        wanted = WantedEvents([b"hangup"])
        before = wanted.patterns()
        wanted.add(b"HANGUP")
        self.assertIs(wanted.patterns(), before)
        wanted.add(b"DialEnd")
        self.assertIsNot(wanted.patterns(), before)

    def test_newly_wanted_event_is_delivered(self) -> None:
        """An event dropped before add() is kept by the same parser after it."""
        wanted = WantedEvents([b"hangup"])
        parser = AmiParser(expect_banner=False, skip_events=wanted)
        data = b"Event: DialEnd\r\nX: 1\r\n\r\nEvent: Hangup\r\nX: 2\r\n\r\n"
        self.assertEqual([m.event for m in parser.feed(data)], ["Hangup"])
        wanted.add(b"DialEnd")
        self.assertEqual([m.event for m in parser.feed(data)], ["DialEnd", "Hangup"])

    def test_s1_keeps_wanted_events_and_responses(self) -> None:
        """On the s1 transcript: the wanted events and every response, in order."""
        wanted = WantedEvents([b"originateresponse", b"hangup"])
        messages = AmiParser(skip_events=wanted).feed(S1)
        self.assertEqual(messages, reference_parse(S1.split(b"\r\n", 1)[1], wanted))
        self.assertEqual(
            [m.event or m.response for m in messages],
            ["Success", "Success", "OriginateResponse", *["Hangup"] * 4, "Goodbye"],
        )

    def test_every_shared_transcript(self) -> None:
        """Every *.ami.raw, whole and byte by byte, keeps what the reference keeps."""
        if not SHARED.is_dir():
            raise self.skipTest(f"{SHARED} is not present")
        wanted = WantedEvents([b"hangup", b"dialend", b"cdr", b"originateresponse"])
        for path in sorted(SHARED.glob("*.ami.raw")):
            data = path.read_bytes()
            expected = reference_parse(data.split(b"\n", 1)[1], wanted)
            whole = AmiParser(skip_events=wanted).feed(data)
            parser = AmiParser(skip_events=wanted)
            bytewise = [
                m for i in range(len(data)) for m in parser.feed(data[i : i + 1])
            ]
            self.assertEqual(whole, expected, path.name)
            self.assertEqual(bytewise, expected, path.name)

    def test_long_blank_runs(self) -> None:
        """Event lines with long runs of blanks are decided like skip(name) decides."""
        wanted = WantedEvents([b"", b"hangup"])
        blanks = b" \t" * 15000
        data = (
            b"Event:" + blanks + b"x\r\n\r\n"
            b"Event:" + blanks + b"\r\n\r\n"
            b"Event:" + blanks + b"Hangup" + blanks + b"\r\n\r\n"
            b"Event:" + blanks + b"Hangup" + blanks + b"x\r\n\r\n"
        )
        parser = AmiParser(expect_banner=False, skip_events=wanted)
        self.assertEqual(parser.feed(data), reference_parse(data, wanted))
        self.assertEqual(len(reference_parse(data, wanted)), 2)

    def test_event_header_not_first_is_kept(self) -> None:
        """Only the first line decides: a later Event: line never drops a message."""
        data = b"Privilege: call,all\r\nEvent: VarSet\r\n\r\nEvent: VarSet\r\n\r\n"
        parser = AmiParser(expect_banner=False, skip_events=WantedEvents())
        (message,) = parser.feed(data)
        self.assertEqual(
            message, Message((("Privilege", "call,all"), ("Event", "VarSet")))
        )

    def test_line_cap_of_dropped_events_in_a_large_read(self) -> None:
        """A dropped event with too many lines raises, wherever it sits in a read."""
        plain = b"Event: A\r\nX: 1\r\n\r\n" * 40
        big = b"Event: B\r\n" + b"A: 1\r\n" * 30 + b"\r\n"
        for data in (big + plain, plain + big, plain + big + plain):
            parser = AmiParser(
                expect_banner=False, max_headers=10, skip_events=WantedEvents()
            )
            with self.assertRaises(AmiProtocolError):
                parser.feed(data)
        fits = b"Event: B\r\n" + b"A: 1\r\n" * 9 + b"\r\n"
        parser = AmiParser(
            expect_banner=False, max_headers=10, skip_events=WantedEvents([b"b"])
        )
        self.assertEqual(len(parser.feed(plain + fits + plain)), 1)

    def test_stray_blank_lines(self) -> None:
        """Stray CRLF blank lines hand the rest of the read to the general path."""
        data = (
            b"Event: VarSet\r\n\r\n\r\nEvent: VarSet\r\nA: 1\r\n\r\n"
            b"Event: Hangup\r\nA: 2\r\n\r\n\r\n"
        )
        parser = AmiParser(expect_banner=False, skip_events=WantedEvents([b"hangup"]))
        self.assertEqual(
            parser.feed(data), [Message((("Event", "Hangup"), ("A", "2")))]
        )
