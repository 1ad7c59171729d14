"""Tests for the AMI sans-IO codec, driven by real Asterisk 22 transcripts."""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami import codec
from callnowd.ami.codec import (
    AmiEncodingError,
    AmiParser,
    AmiProtocolError,
    Message,
    encode_action,
    encode_message,
)
from callnowd.ami.events import EventSubscriptions

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transcripts"
SHARED = Path(__file__).parents[2].parent / "shared" / "asterisk" / "transcripts"
S1 = (FIXTURES / "s1-001002-accept.ami.raw").read_bytes()
S6 = (FIXTURES / "s6-bad-login.ami.raw").read_bytes()

# Expected (messages, OriginateResponse (Response, Reason, Uniqueid) or None).
EXPECTED = {
    "s1-001002-accept.ami.raw": (112, ("Success", "4", "1795641915.4")),
    "s2-001003-reject.ami.raw": (48, ("Success", "4", "1795641939.8")),
    "s3-001004-noanswer.ami.raw": (24, ("Failure", "3", "<unknown>")),
    "s4-001005-busy.ami.raw": (27, ("Failure", "5", "<unknown>")),
    "s5-001006-ringnoanswer.ami.raw": (28, ("Failure", "3", "<unknown>")),
    "s6-bad-login.ami.raw": (1, None),
    "s7-009999-nonexistent.ami.raw": (19, ("Failure", "0", "<unknown>")),
}


def parse_whole(data: bytes) -> list[Message]:
    return AmiParser().feed(data)


def parse_bytewise(data: bytes) -> list[Message]:
    parser = AmiParser()
    return [m for i in range(len(data)) for m in parser.feed(data[i : i + 1])]


class TranscriptTests(SynchronousTestCase):
    def check_transcript(self, name: str, data: bytes) -> None:
        whole = parse_whole(data)
        self.assertEqual(parse_bytewise(data), whole)
        count, originate = EXPECTED[name]
        self.assertEqual(len(whole), count)
        results = [m for m in whole if m.event == "OriginateResponse"]
        if originate is None:
            self.assertEqual(results, [])
        else:
            (result,) = results
            self.assertEqual(
                (result["Response"], result["Reason"], result["Uniqueid"]), originate
            )
            self.assertEqual(result.action_id, "o1")
        for message in whole:
            self.assertEqual(message.unparsed, ())
            self.assertTrue(message.event or message.response)

    def test_fixture_copies(self) -> None:
        """The transcripts kept in the tree parse the same whole and byte by byte."""
        for name in ("s1-001002-accept.ami.raw", "s6-bad-login.ami.raw"):
            self.check_transcript(name, (FIXTURES / name).read_bytes())

    def test_every_shared_transcript(self) -> None:
        """Every *.ami.raw from the real Asterisk parses whole and byte by byte."""
        if not SHARED.is_dir():
            raise self.skipTest(f"{SHARED} is not present")
        files = sorted(SHARED.glob("*.ami.raw"))
        self.assertEqual([f.name for f in files], sorted(EXPECTED))
        for path in files:
            self.check_transcript(path.name, path.read_bytes())

    def test_s1_known_values(self) -> None:
        """Banner, login, the Mary-leg Cdr and the empty values of s1 come out right."""
        parser = AmiParser()
        messages = parser.feed(S1)
        self.assertEqual(parser.banner, "Asterisk Call Manager/11.0.0")
        self.assertEqual(
            messages[0].headers,
            (
                ("Response", "Success"),
                ("ActionID", "login1"),
                ("Message", "Authentication accepted"),
            ),
        )
        cdr = next(
            m
            for m in messages
            if m.event == "Cdr" and m.get("Destination") == "5555555555"
        )
        self.assertEqual(cdr["CallerID"], '"CallNow Mary" <5555550000>')
        self.assertEqual(cdr["AccountCode"], "")
        self.assertEqual(cdr["BillableSeconds"], "5")
        self.assertEqual(cdr.get("uniqueid"), "1795641917.7")
        self.assertEqual(sum(m.event == "VarSet" for m in messages), 28)

    def test_s6_bad_login(self) -> None:
        """The bad login transcript is one Error with 'Authentication failed'."""
        (message,) = parse_whole(S6)
        self.assertEqual(message.response, "Error")
        self.assertEqual(message["Message"], "Authentication failed")

    def test_skip_events(self) -> None:
        """skip_events drops unwanted events by name but keeps responses."""
        names: list[bytes] = []

        def skip(name: bytes) -> bool:
            names.append(name)
            return name != b"OriginateResponse"

        messages = AmiParser(skip_events=skip).feed(S1)
        self.assertEqual(
            [m.event or m.response for m in messages],
            ["Success", "Success", "OriginateResponse", "Goodbye"],
        )
        self.assertEqual(len(names), 109)
        self.assertIn(b"VarSet", names)
        bare_lf = AmiParser(skip_events=skip).feed(S1.replace(b"\r\n", b"\n"))
        self.assertEqual(bare_lf, messages)


def wire(*lines: bytes) -> bytes:
    return b"".join(lines)


class ParserTests(SynchronousTestCase):
    def parse(
        self,
        data: bytes,
        max_line: int = 65536,
        max_headers: int = 2000,
        max_message: int = 1 << 20,
    ) -> list[Message]:
        parser = AmiParser(
            expect_banner=False,
            max_line=max_line,
            max_headers=max_headers,
            max_message=max_message,
        )
        return parser.feed(data)

    def test_bare_lf_and_crlf(self) -> None:
        """Bare LF and CRLF line ends give the same messages."""
        crlf = b"Event: A\r\nX: 1\r\n\r\nResponse: Success\r\n\r\n"
        self.assertEqual(self.parse(crlf), self.parse(crlf.replace(b"\r\n", b"\n")))
        self.assertEqual(len(self.parse(crlf)), 2)

    def test_crlf_split_across_reads(self) -> None:
        """A CR and its LF in different reads still end the line and the message."""
        parser = AmiParser(expect_banner=False)
        self.assertEqual(parser.feed(b"Event: A\r"), [])
        self.assertEqual(parser.feed(b"\nX: 1\r\n\r"), [])
        (message,) = parser.feed(b"\n")
        self.assertEqual(message.headers, (("Event", "A"), ("X", "1")))

    def test_values(self) -> None:
        """Leading blanks are stripped, trailing kept, colons in values kept."""
        (message,) = self.parse(b"Event: T\nA:   x y  \nB:\nC:\tz\nD: a: b:c\n\n")
        self.assertEqual(
            message.headers,
            (("Event", "T"), ("A", "x y  "), ("B", ""), ("C", "z"), ("D", "a: b:c")),
        )

    def test_duplicates_and_case(self) -> None:
        """Duplicate keys are kept in order; lookups ignore case."""
        (message,) = self.parse(b"Event: T\nOutput: 1\noutput: 2\nOUTPUT: 3\n\n")
        self.assertEqual(message.get_all("output"), ["1", "2", "3"])
        self.assertEqual(message["OuTpUt"], "1")
        self.assertIn("EVENT", message)
        self.assertNotIn("Missing", message)
        self.assertIsNone(message.get("Missing"))
        self.assertRaises(KeyError, lambda: message["Missing"])

    def test_lines_without_colon(self) -> None:
        """A line without ':' is kept aside and does not break the message."""
        (message,) = self.parse(b"Event: T\nnonsense here\nA: 1\n\n")
        self.assertEqual(message.headers, (("Event", "T"), ("A", "1")))
        self.assertEqual(message.unparsed, ("nonsense here",))

    def test_invalid_utf8(self) -> None:
        """Invalid UTF-8 becomes replacement characters, never an exception."""
        (message,) = self.parse(b"Event: T\nCallerIDName: \xff\xfeMary\xc3\n\n")
        self.assertEqual(message["CallerIDName"], "\ufffd\ufffdMary\ufffd")

    def test_blank_lines_between_messages(self) -> None:
        """Extra empty lines between messages are ignored."""
        messages = self.parse(b"\r\n\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n")
        self.assertEqual([m.event for m in messages], ["A", "B"])

    def test_banner_split(self) -> None:
        """The banner may arrive in pieces; it is not a message."""
        parser = AmiParser()
        self.assertEqual(parser.feed(b"Asterisk Call"), [])
        self.assertEqual(parser.feed(b" Manager/11.0.0\r\nResponse: Success\r\n"), [])
        self.assertEqual(parser.banner, "Asterisk Call Manager/11.0.0")
        (message,) = parser.feed(b"\r\n")
        self.assertEqual(message.response, "Success")

    def test_line_cap(self) -> None:
        """A line longer than max_line raises, whether complete or pending."""
        with self.assertRaises(AmiProtocolError):
            self.parse(b"Event: " + b"x" * 200 + b"\n\n", max_line=100)
        with self.assertRaises(AmiProtocolError):
            self.parse(b"Event: " + b"x" * 200, max_line=100)
        with self.assertRaises(AmiProtocolError):
            AmiParser(max_line=100).feed(b"A" * 200)

    def test_header_cap(self) -> None:
        """More lines than max_headers in one message raises."""
        with self.assertRaises(AmiProtocolError):
            self.parse(b"Event: T\n" + b"A: 1\n" * 20 + b"\n", max_headers=10)
        with self.assertRaises(AmiProtocolError):
            self.parse(b"Event: T\n" + b"A: 1\n" * 20, max_headers=10)
        self.assertEqual(len(self.parse(b"A: 1\n" * 10 + b"\n", max_headers=10)), 1)

    def test_header_cap_in_asterisk_layout(self) -> None:
        """CRLF messages in one read: max_headers lines pass, one more raises."""
        plain = b"Event: A\r\nX: 1\r\n\r\n" * 5
        fits = b"Event: B\r\n" + b"A: 1\r\n" * 9 + b"\r\n"
        self.assertEqual(len(self.parse(plain + fits + plain, max_headers=10)), 11)
        over = b"Event: B\r\n" + b"A: 1\r\n" * 10 + b"\r\n"
        for data in (over + plain, plain + over, plain + over + plain):
            with self.assertRaises(AmiProtocolError):
                self.parse(data, max_headers=10)

    def test_message_cap(self) -> None:
        """A message larger than max_message raises, complete or pending."""
        body = b"Event: T\n" + b"A: 12345678\n" * 100
        with self.assertRaises(AmiProtocolError):
            self.parse(body + b"\n", max_message=500)
        with self.assertRaises(AmiProtocolError):
            self.parse(body, max_message=500)
        parser = AmiParser(expect_banner=False, max_message=500)
        with self.assertRaises(AmiProtocolError):
            for i in range(len(body)):
                parser.feed(body[i : i + 1])


class EncoderTests(SynchronousTestCase):
    def test_action_layout(self) -> None:
        """Action first, ActionID second, headers, then one Variable per variable."""
        data = encode_action(
            "Originate",
            "ab12-1-7",
            [("Channel", "Local/001002@phones"), ("Async", "true")],
            [("CALLNOW_REQUEST", "abc123"), ("CALLERID(num)", "+15555550000")],
        )
        self.assertEqual(
            data,
            b"Action: Originate\r\nActionID: ab12-1-7\r\n"
            b"Channel: Local/001002@phones\r\nAsync: true\r\n"
            b"Variable: CALLNOW_REQUEST=abc123\r\n"
            b"Variable: CALLERID(num)=+15555550000\r\n\r\n",
        )

    def test_refusals(self) -> None:
        """Unsafe names, values, variables and long lines are refused."""
        bad_headers = [
            ("Channel", "x\r\nAction: Hangup"),
            ("Channel", "x\nAction: Hangup"),
            ("Channel", "x\x00"),
            ("Chan nel", "x"),
            ("1Channel", "x"),
            ("Chan:nel", "x"),
            ("Channel", " leading"),
            ("Channel", "\tleading"),
            ("ActionID", "other"),
            ("Variable", "A=a,B=b"),
            ("Variable", "novalue"),
            ("Channel", "x" * 1020),
        ]
        for header in bad_headers:
            with self.assertRaises(AmiEncodingError, msg=repr(header)):
                encode_action("Ping", "id-1", [header])
        for variable in [
            ("A", "a,b"),
            ("A", 'a"b'),
            ("A", "a b"),
            ("A", "a\\b"),
            ("1A", "x"),
        ]:
            with self.assertRaises(AmiEncodingError, msg=repr(variable)):
                encode_action("Originate", "id-1", variables=[variable])
        with self.assertRaises(AmiEncodingError):
            encode_action("Ping", "id-1", [("X", "1")] * 127)
        with self.assertRaises(AmiEncodingError):
            encode_message([])

    def test_line_limit_boundary(self) -> None:
        """A 1023-byte line passes, a 1024-byte line is refused."""
        value = "x" * (1023 - len("Data: \r\n"))
        self.assertIn(value.encode(), encode_action("Ping", "i", [("Data", value)]))
        with self.assertRaises(AmiEncodingError):
            encode_action("Ping", "i", [("Data", value + "x")])


NAMES = st.from_regex(re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,20}"), fullmatch=True)
VALUES = st.text(
    st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]),
    max_size=40,
).filter(lambda v: not v or (not v[0].isspace() and ord(v[0]) >= 33))
HEADERS = st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=15)
UNSAFE = st.sampled_from(["\r", "\n", "\x00", "\r\n"])


# Valid headers with at most one name or value made wrong in any way: forbidden or
# blank characters, a ":" in a name, a lone surrogate (not encodable).
WRONG = ":\t \r\n\x00\x1f\xa0\u2028\u3000\ud800"
BAD_NAMES = st.builds(
    lambda a, c, b: f"{a}{c}{b}",
    st.sampled_from(["", "A", "Ab"]),
    st.sampled_from([*WRONG, "é", "1", "-"]),
    st.sampled_from(["", "B", "c1"]),
)
BAD_VALUES = st.builds(
    lambda a, c, b: f"{a}{c}{b}",
    st.sampled_from(["", "a", "x y"]),
    st.sampled_from(list(WRONG)),
    st.sampled_from(["", "z", " "]),
)


@st.composite
def one_header_wrong(draw: st.DrawFn) -> list[tuple[str, str]]:
    headers = draw(st.lists(st.tuples(NAMES, VALUES), max_size=6))
    wrong: bool = draw(st.booleans())
    if not headers or not wrong:
        return headers
    index = draw(st.integers(0, len(headers) - 1))
    name, value = headers[index]
    if draw(st.booleans()):
        name = draw(BAD_NAMES)
    else:
        value = draw(BAD_VALUES)
    headers[index] = (name, value)
    return headers


def block_and_lines(headers: list[tuple[str, str]]) -> tuple[object, object]:
    """What the one-pass and the per-line encodings give: bytes, or the refusal."""

    def outcome(encode: Callable[[], bytes]) -> object:
        try:
            return encode()
        except AmiEncodingError as e:
            return f"refused: {e}"

    return (
        outcome(lambda: codec._encode_block(headers)),
        outcome(lambda: b"".join(codec._encode_lines(headers))),
    )


class BlockEncodingTests(SynchronousTestCase):
    @given(one_header_wrong())
    def test_same_as_line_by_line(self, headers: list[tuple[str, str]]) -> None:
        """The one-pass checks give the bytes, or the refusal, of the per-line ones."""
        block, lines = block_and_lines(headers)
        self.assertEqual(block, lines)

    def test_every_wrong_piece_everywhere(self) -> None:
        """Each wrong name or value, alone among valid headers, is found."""
        pieces = ["", "a", "x y"]
        wrong_names = [
            f"{a}{c}{b}" for a in ("", "A") for c in WRONG for b in ("", "B")
        ]
        wrong_values = [f"{a}{c}{b}" for a in pieces for c in WRONG for b in ("", "z")]
        cases = [(name, "v") for name in wrong_names]
        cases += [("Name", value) for value in wrong_values]
        for wrong in cases:
            for position in range(3):
                headers = [("Action", "Ping"), ("ActionID", "i-1")]
                headers.insert(position, wrong)
                block, lines = block_and_lines(headers)
                self.assertEqual(block, lines, (wrong, position))

    def test_colon_in_a_name_is_refused(self) -> None:
        """Names joined with ":" are not mistaken for more, valid, names."""
        for name in ("A:B", "A:", ":A", "A::B"):
            with self.assertRaises(AmiEncodingError):
                encode_action("Ping", "i", [(name, "x")])

    def test_long_line_found_in_a_long_action(self) -> None:
        """Short lines adding up past the line cap are fine; one long line is not."""
        many = [(f"H{i}", "y" * 60) for i in range(30)]
        self.assertEqual(encode_action("Ping", "i", many).count(b"\r\n"), 33)
        with self.assertRaises(AmiEncodingError):
            encode_action("Ping", "i", [*many, ("Data", "z" * 1020)])


class PropertyTests(SynchronousTestCase):
    @given(HEADERS)
    def test_round_trip(self, headers: list[tuple[str, str]]) -> None:
        """parse(encode(m)) == m, whole and byte by byte."""
        data = encode_message(headers)
        (message,) = AmiParser(expect_banner=False).feed(data)
        self.assertEqual(message, Message(tuple(headers)))
        parser = AmiParser(expect_banner=False)
        self.assertEqual(
            [m for i in range(len(data)) for m in parser.feed(data[i : i + 1])],
            [message],
        )

    @given(HEADERS, st.data())
    def test_crlf_nul_anywhere_refused(
        self, headers: list[tuple[str, str]], data: st.DataObject
    ) -> None:
        """A CR, LF or NUL in any name or value is refused by both encoders."""
        index = data.draw(st.integers(0, len(headers) - 1))
        in_name = data.draw(st.booleans())
        bad = data.draw(UNSAFE)
        name, value = headers[index]
        position = data.draw(st.integers(0, len(name if in_name else value)))
        if in_name:
            name = name[:position] + bad + name[position:]
        else:
            value = value[:position] + bad + value[position:]
        headers[index] = (name, value)
        with self.assertRaises(AmiEncodingError):
            encode_message(headers)
        with self.assertRaises(AmiEncodingError):
            encode_action("Ping", "id-1", headers)

    @given(st.text(max_size=30))
    def test_variable_alphabet(self, value: str) -> None:
        """Variable values outside [A-Za-z0-9_.:+-] are refused, others pass."""
        if re.fullmatch(r"[A-Za-z0-9_.:+-]*", value):
            data = encode_action("Originate", "id-1", variables=[("V", value)])
            self.assertIn(f"Variable: V={value}\r\n".encode(), data)
        else:
            with self.assertRaises(AmiEncodingError):
                encode_action("Originate", "id-1", variables=[("V", value)])


def reference_parse(
    stream: bytes, skip: Callable[[bytes], bool] | None = None
) -> list[Message]:
    """The framing rules of PROTOCOL.md 1.2, one line at a time."""
    messages: list[Message] = []
    lines: list[bytes] = []
    for raw in stream.split(b"\n")[:-1]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line:
            lines.append(line)
            continue
        if not lines:
            continue
        first = lines[0]
        if skip is None or not (
            first.startswith(b"Event:") and skip(first[6:].strip())
        ):
            headers: list[tuple[str, str]] = []
            unparsed: list[str] = []
            for text in (item.decode("utf-8", "replace") for item in lines):
                if ":" in text:
                    name, value = text.split(":", 1)
                    headers.append((name, value.lstrip(" \t")))
                else:
                    unparsed.append(text)
            messages.append(Message(tuple(headers), tuple(unparsed)))
        lines = []
    return messages


# Lines mostly shaped like Asterisk's, with every oddity the framing allows.
LINE_PIECES = st.sampled_from(
    [
        b"Event",
        b"Value",
        b": ",
        b":",
        b"  ",
        b"\t",
        b": x: y",
        b"\r",
        b"\x00",
        b"\x01",
        b"\xff",
        b"\xc3",
        b"\xc3\xa9",
        b"a",
        b"7",
        b" ",
    ]
)
LINE = st.one_of(
    st.tuples(
        st.sampled_from([b"Event", b"Response", b"ActionID", b"Channel", b"X"]),
        st.just(b": "),
        st.sampled_from([b"Hangup", b"VarSet", b"Success", b"a b ", b"", b"1"]),
    ).map(b"".join),
    st.lists(LINE_PIECES, max_size=6).map(b"".join),
)
LINE_END = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Messages (some with blank lines between) with CRLF and bare LF line ends."""
    out: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        for line in draw(st.lists(LINE, min_size=1, max_size=6)):
            out += [line.rstrip(b"\r\n") or b"X", draw(LINE_END)]
        for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
            out.append(draw(LINE_END))
    return b"".join(out)


def fed_in_pieces(
    stream: bytes, cuts: list[int], skip: Callable[[bytes], bool] | None
) -> list[Message]:
    parser = AmiParser(expect_banner=False, skip_events=skip)
    messages: list[Message] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        messages += parser.feed(stream[previous:cut])
        previous = cut
    return messages


class FastPathPropertyTests(SynchronousTestCase):
    @given(streams(), st.lists(st.integers(0, 400), max_size=8))
    def test_same_as_reference(self, stream: bytes, cuts: list[int]) -> None:
        """Any stream, cut anywhere, parses like the line-by-line reference."""
        self.assertEqual(fed_in_pieces(stream, cuts, None), reference_parse(stream))

    @given(streams(), st.lists(st.integers(0, 400), max_size=8))
    def test_skip_same_as_reference(self, stream: bytes, cuts: list[int]) -> None:
        """With skip_events, the kept messages and the names asked about match."""
        asked: list[bytes] = []
        expected_asked: list[bytes] = []

        def skip(name: bytes) -> bool:
            asked.append(name)
            return name != b"Hangup"

        def reference_skip(name: bytes) -> bool:
            expected_asked.append(name)
            return name != b"Hangup"

        self.assertEqual(
            fed_in_pieces(stream, cuts, skip), reference_parse(stream, reference_skip)
        )
        self.assertEqual(asked, expected_asked)

    @given(st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=8), st.data())
    def test_asterisk_layout_round_trip(
        self, messages: list[tuple[str, str]], data: st.DataObject
    ) -> None:
        """Encoded messages (CRLF, one ': ' per line) parse back in one read."""
        groups = data.draw(st.lists(HEADERS, min_size=1, max_size=5))
        stream = b"".join(encode_message(headers) for headers in groups)
        parsed = AmiParser(expect_banner=False).feed(stream)
        self.assertEqual(parsed, [Message(tuple(headers)) for headers in groups])
        self.assertEqual(parsed, reference_parse(stream))


class FastPathTests(SynchronousTestCase):
    def parse(
        self, data: bytes, max_line: int = 65536, max_message: int = 1 << 20
    ) -> list[Message]:
        return AmiParser(
            expect_banner=False, max_line=max_line, max_message=max_message
        ).feed(data)

    def test_odd_message_among_plain_ones(self) -> None:
        """Odd messages take the slow path alone; their neighbours stay exact.

        Odd: a value starting with a blank, a name holding ':', a line without one.
        """
        data = (
            b"Event: A\r\nX: 1\r\n\r\n"
            b"Event: B\r\nMessage: a: b\r\n\r\n"
            b"Event: C\r\nY:  2\r\n\r\n"
            b"Event: D\r\nNa:me: 3\r\nnothing\r\n\r\n"
            b"Event: E\r\nZ: \x00\r\n\r\n"
        )
        self.assertEqual(
            self.parse(data),
            [
                Message((("Event", "A"), ("X", "1"))),
                Message((("Event", "B"), ("Message", "a: b"))),
                Message((("Event", "C"), ("Y", "2"))),
                Message((("Event", "D"), ("Na", "me: 3")), ("nothing",)),
                Message((("Event", "E"), ("Z", "\x00"))),
            ],
        )

    def test_values_holding_colon_blank_stay_on_the_fast_path(self) -> None:
        """An owner channel's events (CallerIDName "CallNow: Mary") need no line loop."""
        data = (
            b"Response: Success\r\nActionID: a-4\r\n"
            b"Message: Originate successfully queued\r\n\r\n"
            b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: a-4\r\n"
            b"Response: Failure\r\nChannel: PJSIP/100\r\nReason: 3\r\n"
            b"CallerIDNum: +12125550123\r\nCallerIDName: CallNow: Mary\r\n\r\n"
            b"Event: Hangup\r\nChannel: PJSIP/100-00000001\r\n"
            b"CallerIDName: CallNow: Mary\r\nConnectedLineName: CallNow: Mary\r\n"
            b"AccountCode: \r\nCause-txt: User alerting, no answer\r\n\r\n"
        )
        parser = AmiParser(expect_banner=False)

        def no_line_loop(*args: object) -> list[Message]:
            raise AssertionError("line-by-line path used")

        parser._parse_general = no_line_loop  # type: ignore[method-assign,assignment]
        parsed = parser.feed(data)
        self.assertEqual(parsed, reference_parse(data))
        self.assertEqual(parsed[1]["CallerIDName"], "CallNow: Mary")
        self.assertEqual(parsed[2]["AccountCode"], "")
        self.assertEqual([len(m.names) for m in parsed], [3, 8, 6])

    def test_header_cap_with_values_holding_colon_blank(self) -> None:
        """The header cap holds on the fast path for values holding ': ' too."""
        line = b"X: a: b\r\n"
        parser = AmiParser(expect_banner=False, max_headers=5)
        with self.assertRaises(AmiProtocolError):
            parser.feed(b"Event: A\r\n" + line * 5 + b"\r\n")
        exact = b"Event: A\r\n" + line * 4 + b"\r\n"
        fresh = AmiParser(expect_banner=False, max_headers=5)
        self.assertEqual(len(fresh.feed(exact * 3)[2].names), 5)

    def test_fast_messages_behave_like_built_ones(self) -> None:
        """Messages from the fast path compare, hash and look up like Message(...)."""
        (fast,) = self.parse(b"Event: A\r\nactionid: 7\r\n\r\n")
        built = Message((("Event", "A"), ("actionid", "7")))
        self.assertEqual(fast, built)
        self.assertEqual(hash(fast), hash(built))
        self.assertEqual(fast.action_id, "7")
        self.assertEqual(fast.unparsed, ())
        self.assertEqual(repr(fast), repr(built))

    def test_long_line_in_a_large_read(self) -> None:
        """A long line inside a read of many messages raises, wherever it sits."""
        plain = b"Event: A\r\nX: 1\r\n\r\n" * 40
        bad = b"Event: B\r\nX: " + b"y" * 150 + b"\r\n\r\n"
        for data in (bad + plain, plain + bad, plain + bad + plain):
            with self.assertRaises(AmiProtocolError):
                self.parse(data, max_line=120)
        exact = b"Event: B\r\nX: " + b"y" * 117 + b"\r\n\r\n"
        self.assertEqual(len(self.parse(plain + exact + plain, max_line=120)), 81)

    def test_large_message_in_a_large_read(self) -> None:
        """A message over max_message among small ones raises."""
        plain = b"Event: A\r\nX: 1\r\n\r\n" * 10
        big = b"Event: B\r\n" + b"X: 12345678\r\n" * 60 + b"\r\n"
        with self.assertRaises(AmiProtocolError):
            self.parse(plain + big + plain, max_message=500)
        self.assertEqual(len(self.parse(plain * 5, max_message=500)), 50)

    def test_caps_apply_to_skipped_events(self) -> None:
        """An event dropped by skip_events still counts against max_headers."""
        big = b"Event: Skipped\r\n" + b"A: 1\r\n" * 30 + b"\r\n"
        parser = AmiParser(
            expect_banner=False, max_headers=10, skip_events=lambda name: True
        )
        with self.assertRaises(AmiProtocolError):
            parser.feed(b"Response: Success\r\n\r\n" + big)
        parser = AmiParser(
            expect_banner=False, max_headers=40, skip_events=lambda name: True
        )
        self.assertEqual(
            [m.response for m in parser.feed(b"Response: Success\r\n\r\n" + big)],
            ["Success"],
        )

    def test_skip_with_stray_blank_lines_and_bare_lf(self) -> None:
        """The skip loop hands unusual reads to the general path, same result."""
        data = (
            b"\r\nEvent: VarSet\r\nA: 1\r\n\r\n\r\n"
            b"Event: Hangup\nA: 2\n\n"
            b"Event: VarSet\r\n\r\n"
        )
        parser = AmiParser(expect_banner=False, skip_events=lambda n: n == b"VarSet")
        self.assertEqual(
            parser.feed(data), [Message((("Event", "Hangup"), ("A", "2")))]
        )

    def test_skip_read_starting_with_bare_blank_line(self) -> None:
        """A read that starts with a bare LF blank line still asks about each event."""
        asked: list[bytes] = []

        def skip(name: bytes) -> bool:
            asked.append(name)
            return False

        parser = AmiParser(expect_banner=False, skip_events=skip)
        self.assertEqual(len(parser.feed(b"Event: A\nX: 1\n\n")), 1)
        self.assertEqual(len(parser.feed(b"\nEvent: B\r\n\r\nEvent: C\r\n\r\n")), 2)
        self.assertEqual(asked, [b"A", b"B", b"C"])


class MessageTests(SynchronousTestCase):
    def test_names_values_and_pairs(self) -> None:
        """Names and values are parallel tuples; headers pairs them up in order."""
        message = Message.of(("Event", "A"), ("X", "1"), ("x", "2"))
        self.assertEqual(message.names, ("Event", "X", "x"))
        self.assertEqual(message.values, ("A", "1", "2"))
        self.assertEqual(message.headers, (("Event", "A"), ("X", "1"), ("x", "2")))
        self.assertEqual(message.unparsed, ())
        self.assertEqual(Message().headers, ())
        self.assertIsNone(Message().event)

    def test_immutable(self) -> None:
        """No attribute can be assigned or deleted, not even a new one."""
        message = Message.of(("Event", "A"))
        for name in ("names", "values", "unparsed", "headers", "other"):
            with self.assertRaises(AttributeError):
                setattr(message, name, ())
            with self.assertRaises(AttributeError):
                delattr(message, name)
        self.assertEqual(message.headers, (("Event", "A"),))

    def test_value_semantics(self) -> None:
        """Equal content is an equal message with the same hash; anything else is not."""
        (parsed,) = AmiParser(expect_banner=False).feed(b"Event: A\r\nX: 1\r\n\r\n")
        built = Message((("Event", "A"), ("X", "1")))
        self.assertEqual(parsed, built)
        self.assertEqual(len({parsed, built}), 1)
        self.assertNotEqual(built, Message((("X", "1"), ("Event", "A"))))
        self.assertNotEqual(built, Message((("Event", "A"), ("X", "1")), ("junk",)))
        self.assertNotEqual(built, Message((("Event", "A"), ("x", "1"))))
        self.assertNotEqual(built, (("Event", "A"), ("X", "1")))
        self.assertEqual(
            repr(built), "Message(headers=(('Event', 'A'), ('X', '1')), unparsed=())"
        )

    def test_copy_and_pickle(self) -> None:
        """Copies and pickles of a message (looked up or not) are equal to it."""
        message = Message((("Event", "A"), ("X", "1")), ("junk",))
        self.assertEqual(message.get("x"), "1")
        for other in (
            copy.copy(message),
            copy.deepcopy(message),
            pickle.loads(pickle.dumps(message)),  # noqa: S301 (our own bytes)
        ):
            self.assertEqual(other, message)
            self.assertEqual(other.get("X"), "1")

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["A", "a", "B", "b", "Event", "EVENT", "É", "é"]),
                VALUES,
            ),
            max_size=8,
        ),
        st.sampled_from(["a", "A", "b", "event", "é", "É", "c"]),
    )
    def test_lookup_like_reference(
        self, headers: list[tuple[str, str]], name: str
    ) -> None:
        """get, [], in and get_all find the first and all values, ignoring case."""
        message = Message(tuple(headers))
        matching = [value for key, value in headers if key.lower() == name.lower()]
        self.assertEqual(message.get_all(name), matching)
        self.assertEqual(message.get(name), matching[0] if matching else None)
        self.assertEqual(name in message, bool(matching))
        if matching:
            self.assertEqual(message[name], matching[0])
        else:
            self.assertRaises(KeyError, lambda: message[name])
        self.assertEqual(message.event, message.get("Event"))


class SkipFilterTests(SynchronousTestCase):
    """The filter the parser gets from the client's subscriptions."""

    def test_filter_is_live_and_case_insensitive(self) -> None:
        """A filter taken before a subscription answers by the new subscriptions."""
        subscriptions = EventSubscriptions()
        skip = subscriptions.skip_filter()
        assert skip is not None
        self.assertTrue(skip(b"Hangup"))
        self.assertFalse(skip(b"ORIGINATERESPONSE"))
        subscriptions.subscribe("hangup", lambda message: None)
        self.assertFalse(skip(b"Hangup"))
        self.assertTrue(skip(b"VarSet"))
        subscriptions.subscribe(None, lambda message: None)
        self.assertIsNone(subscriptions.skip_filter())
