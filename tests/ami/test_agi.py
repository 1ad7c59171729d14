"""Tests for the FastAGI sans-IO codec (callnowd.ami.agi)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.agi import (
    HANGUP_LINE,
    MAX_COMMAND_LINE,
    AgiClientParser,
    AgiEncodingError,
    AgiEnvironment,
    AgiError,
    AgiHangupNotice,
    AgiProtocolError,
    AgiResult,
    AgiServerEvent,
    AgiServerParser,
    encode_command,
    encode_environment,
    encode_result,
    split_command,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transcripts"
SHARED = Path(__file__).parents[2].parent / "shared" / "asterisk" / "transcripts"
ENV_HEAD = b"agi_network: yes\n\n"


def parse_whole(data: bytes) -> list[AgiServerEvent]:
    return AgiServerParser().feed(data)


def parse_bytewise(data: bytes) -> list[AgiServerEvent]:
    parser = AgiServerParser()
    return [item for i in range(len(data)) for item in parser.feed(data[i : i + 1])]


def replies(data: bytes) -> list[AgiServerEvent]:
    """Parse status lines after a minimal environment block."""
    items = parse_whole(ENV_HEAD + data)
    assert isinstance(items[0], AgiEnvironment)
    return items[1:]


def r(result: str, data: str | None = None, *extra: tuple[str, str]) -> AgiResult:
    return AgiResult(200, result, data, tuple(extra))


_LINE = st.text(st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]))
# Words mixing the characters the tokenizer treats specially with arbitrary text.
_WORD = st.text(
    st.sampled_from(" \t\"\\'")
    | st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]),
    max_size=20,
)

S1_REPLIES = [
    r("0"),
    r("1", "abc123"),
    r("49"),
    r("1"),
    r("-1"),
    r("1", "ANSWER"),
    r("1"),
]
S2_REPLIES = [r("0"), r("1", "abc123"), r("50"), r("1")]


class TranscriptTests(SynchronousTestCase):
    def check_transcripts(self, directory: Path) -> None:
        files = sorted(directory.glob("*.agi.raw"))
        self.assertEqual(
            [f.name for f in files],
            ["s1-001002-accept.agi.raw", "s2-001003-reject.agi.raw"],
        )
        for path in files:
            data = path.read_bytes()
            whole = parse_whole(data)
            self.assertEqual(parse_bytewise(data), whole)
            env = whole[0]
            assert isinstance(env, AgiEnvironment)
            self.assertEqual(env.script, "confirm")
            self.assertEqual(env.args, ("abc123",))
            self.assertEqual(env.get("agi_accountcode"), "")
            self.assertEqual(env.get("agi_calleridname"), "CallNow Mary")
            self.assertEqual(env.variables[0], ("agi_network", "yes"))
            self.assertEqual(len(env.variables), 23)
            expected = S1_REPLIES if path.name.startswith("s1") else S2_REPLIES
            self.assertEqual(whole[1:], [*expected, AgiHangupNotice()])

    def test_fixture_copies(self) -> None:
        """The committed transcript copies parse whole and byte by byte alike."""
        self.check_transcripts(FIXTURES)

    def test_shared_transcripts(self) -> None:
        """The shared real-Asterisk transcripts parse whole and byte by byte alike."""
        if not SHARED.is_dir():
            self.skipTest(f"{SHARED} not present")
        self.check_transcripts(SHARED)

    def test_stray_carriage_returns(self) -> None:
        """CRLF line ends parse exactly like LF."""
        data = (FIXTURES / "s1-001002-accept.agi.raw").read_bytes()
        self.assertEqual(parse_whole(data.replace(b"\n", b"\r\n")), parse_whole(data))


class EnvironmentTests(SynchronousTestCase):
    def test_script_query_and_args(self) -> None:
        """The route path stops at '?', the query is parsed, args are numbered."""
        block = encode_environment(
            [
                ("agi_network", "yes"),
                ("agi_network_script", "ivr/verify?lang=en&x=&lang=fr"),
                ("agi_arg_1", "a b"),
                ("agi_arg_2", ""),
                ("agi_arg_4", "gap"),
            ]
        )
        [env] = parse_whole(block)
        assert isinstance(env, AgiEnvironment)
        self.assertEqual(env.script, "ivr/verify")
        self.assertEqual(env.query, {"lang": ["en", "fr"], "x": [""]})
        self.assertEqual(env.args, ("a b", ""))

    def test_script_from_request(self) -> None:
        """Without agi_network_script the path of agi_request is used."""
        env = AgiEnvironment((("agi_request", "agi://h:4573/confirm?k=v"),))
        self.assertEqual((env.script, env.query), ("confirm", {"k": ["v"]}))
        self.assertEqual(AgiEnvironment((("agi_request", "agi://h"),)).script, "")

    def test_drops_exactly_one_space(self) -> None:
        """Values keep everything after the one space following the first ':'."""
        [env] = parse_whole(b"agi_network: yes\nagi_x:  a: b \nagi_y:z\n\n")
        assert isinstance(env, AgiEnvironment)
        self.assertEqual(env.get("agi_x"), " a: b ")
        self.assertEqual(env.get("agi_y"), "z")
        self.assertIsNone(env.get("agi_z"))

    def test_must_start_with_agi_network(self) -> None:
        """A block not starting with 'agi_network: yes' is refused."""
        for data in (b"GET / HTTP/1.0\n", b"\n", b"agi_network: no\n"):
            self.assertRaises(AgiProtocolError, AgiServerParser().feed, data)

    def test_caps(self) -> None:
        """Too many lines, an overlong line or a colon-less line are refused."""
        lines = b"".join(b"agi_x%d: v\n" % i for i in range(10))
        parser = AgiServerParser(max_env_lines=5)
        self.assertRaises(AgiProtocolError, parser.feed, ENV_HEAD[:-1] + lines)
        parser = AgiServerParser(max_line=100)
        self.assertRaises(
            AgiProtocolError, parser.feed, b"agi_network: yes\n" + b"x" * 101
        )
        parser = AgiServerParser()
        self.assertRaises(AgiProtocolError, parser.feed, b"agi_network: yes\nnocolon\n")
        self.assertRaises(AgiProtocolError, parser.feed, b"\n")  # stays broken


class StatusLineTests(SynchronousTestCase):
    def test_result_forms(self) -> None:
        """Data may hold spaces and parentheses; result may be empty or negative."""
        cases = {
            b"200 result=1 (a (b) c)": r("1", "a (b) c"),
            b"200 result=1 (x) endpos=5)": r("1", "x) endpos=5"),
            b"200 result= (timeout)": r("", "timeout"),
            b"200 result=-1 endpos=0": r("-1", None, ("endpos", "0")),
            b"200 result=0 (timeout) endpos=123": r("0", "timeout", ("endpos", "123")),
            b"200 result=1 (digit) digit=1 endpos=5": r(
                "1", "digit", ("digit", "1"), ("endpos", "5")
            ),
            b"200 result=1 ()": r("1", ""),
        }
        for line, expected in cases.items():
            self.assertEqual(replies(line + b"\n"), [expected], line)

    def test_errors_and_notices(self) -> None:
        """510/511/520, HANGUP and an ignored 100 line keep their order."""
        data = (
            b"100 result=0 Trying...\n"
            b"510 Invalid or unknown command\n"
            b"HANGUP\n"
            b"511 Command Not Permitted on a dead channel or intercept routine\n"
            b"520 Invalid command syntax.  Proper usage not available.\n"
            b"520-Invalid command syntax.  Proper usage follows:\n"
            b" Usage: SET VARIABLE <name> <value>\n"
            b"\n"
            b"HANGUP\n"
            b"520 End of proper usage.\n"
            b"200 result=1\n"
        )
        expected = [
            AgiError(510, "Invalid or unknown command"),
            AgiHangupNotice(),
            AgiError(
                511, "Command Not Permitted on a dead channel or intercept routine"
            ),
            AgiError(520, ""),
            AgiError(520, " Usage: SET VARIABLE <name> <value>\n\nHANGUP"),
            r("1"),
        ]
        self.assertEqual(replies(data), expected)
        self.assertEqual(parse_bytewise(ENV_HEAD + data)[1:], expected)

    def test_glued_usage_end(self) -> None:
        """An end marker glued to the last usage line (Asterisk < 13.17) ends it."""
        data = b"520-Invalid command syntax.  Proper usage follows:\nuse it520 End of proper usage.\n"
        self.assertEqual(
            replies(data + b"HANGUP\n"), [AgiError(520, "use it"), AgiHangupNotice()]
        )

    def test_malformed(self) -> None:
        """Unknown codes, garbage and unterminated data are protocol errors."""
        for line in (
            b"300 what\n",
            b"hello\n",
            b"200 result=1 (open\n",
            b"200 resul\n",
        ):
            parser = AgiServerParser()
            parser.feed(ENV_HEAD)
            self.assertRaises(AgiProtocolError, parser.feed, line)

    def test_usage_cap(self) -> None:
        """A 520 block longer than the cap is refused."""
        parser = AgiServerParser(max_usage_lines=3)
        parser.feed(ENV_HEAD + b"520-x\n")
        self.assertRaises(AgiProtocolError, parser.feed, b"a\n" * 4)

    def test_as_int(self) -> None:
        """as_int converts numbers and refuses an empty result."""
        self.assertEqual(r("-1").as_int(), -1)
        self.assertRaises(AgiProtocolError, r("").as_int)


class CommandEncodingTests(SynchronousTestCase):
    def test_exact_lines(self) -> None:
        """Keywords and ints are bare, every other word is quoted and escaped."""
        self.assertEqual(encode_command("ANSWER"), b"ANSWER\n")
        self.assertEqual(
            encode_command("GET", "VARIABLE", "DIALSTATUS"),
            b'GET VARIABLE "DIALSTATUS"\n',
        )
        self.assertEqual(encode_command("FROB", "GET"), b'"FROB" "GET"\n')
        self.assertEqual(
            encode_command("WAIT", "FOR", "DIGIT", 5000), b"WAIT FOR DIGIT 5000\n"
        )
        self.assertEqual(
            encode_command("SET", "VARIABLE", "CALLERID(num)", "5555550000"),
            b'SET VARIABLE "CALLERID(num)" "5555550000"\n',
        )
        self.assertEqual(
            encode_command("EXEC", "Dial", 'a "b" \\c', ""),
            b'EXEC "Dial" "a \\"b\\" \\\\c" ""\n',
        )

    def test_refusals(self) -> None:
        """CR, LF, NUL, overlong lines, bad types and empty commands are refused."""
        for bad in ("a\nEXEC System x", "a\r", "a\0b"):
            self.assertRaises(AgiEncodingError, encode_command, "VERBOSE", bad)
        self.assertRaises(AgiEncodingError, encode_command, "V", "x" * MAX_COMMAND_LINE)
        self.assertRaises(AgiEncodingError, encode_command)
        self.assertRaises(AgiEncodingError, encode_command, *["A"] * 128)
        self.assertRaises(AgiEncodingError, encode_command, "V", True)
        self.assertRaises(AgiEncodingError, encode_command, "V", "\ud800")

    def test_split_like_asterisk(self) -> None:
        """Asterisk's tokenizer: quotes toggle, backslash escapes, ' is plain."""
        self.assertEqual(
            split_command("STREAM FILE x '#'"), ["STREAM", "FILE", "x", "'#'"]
        )
        self.assertEqual(split_command('A "" b"c d"e\t\\"f'), ["A", "", "bc de", '"f'])
        self.assertEqual(split_command("a\\ b  c\\\\ \\"), ["a b", "c\\"])
        self.assertEqual(split_command("ANSWER\r"), ["ANSWER\r"])
        self.assertEqual(split_command("  "), [])
        self.assertEqual(len(split_command(" ".join(["w"] * 200))), 127)

    @given(st.lists(_WORD, min_size=1, max_size=20))
    def test_round_trip(self, words: list[str]) -> None:
        """split_command inverts encode_command for any text without CR/LF/NUL."""
        line = encode_command(*words)  # at most 20 * (2 * 20 * 4 + 3) bytes: fits
        self.assertEqual(split_command(line[:-1].decode()), words)
        self.assertEqual(AgiClientParser().feed(line), [words])

    @given(st.text(), st.sampled_from("\r\n\0"), st.text(), st.integers(0, 3))
    def test_control_characters_refused(
        self, head: str, bad: str, tail: str, position: int
    ) -> None:
        """Any word holding CR, LF or NUL is refused wherever it appears."""
        words: list[str | int] = ["VERBOSE", "x", 1]
        words.insert(position, head + bad + tail)
        self.assertRaises(AgiEncodingError, encode_command, *words)


_RESULTS = st.builds(
    AgiResult,
    st.just(200),
    _LINE.filter(lambda s: " " not in s),
    st.none() | _LINE,
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z_][a-z0-9_]*", fullmatch=True),
            st.from_regex(r"[0-9a-z#*.-]*", fullmatch=True),
        ),
        max_size=3,
    ).map(tuple),
)
_ERRORS = st.builds(AgiError, st.sampled_from([510, 511]), _LINE) | st.builds(
    AgiError,
    st.just(520),
    st.lists(
        _LINE.filter(
            lambda s: not s.startswith("520 ") and "520 End of proper usage." not in s
        )
    ).map("\n".join),
)


class AsteriskSideTests(SynchronousTestCase):
    @given(st.lists(_RESULTS | _ERRORS | st.just(AgiHangupNotice()), max_size=5))
    def test_result_round_trip(
        self, items: list[AgiResult | AgiError | AgiHangupNotice]
    ) -> None:
        """AgiServerParser reads back exactly what encode_result wrote."""
        data = ENV_HEAD + b"".join(
            HANGUP_LINE if isinstance(i, AgiHangupNotice) else encode_result(i)
            for i in items
        )
        self.assertEqual(parse_whole(data)[1:], items)

    @given(
        st.lists(
            st.tuples(
                _LINE.filter(lambda s: s != "" and ":" not in s),
                _LINE,
            )
        )
    )
    def test_environment_round_trip(self, pairs: list[tuple[str, str]]) -> None:
        """An encoded environment block parses back to the same pairs."""
        env = [("agi_network", "yes"), *pairs]
        self.assertEqual(
            parse_whole(encode_environment(env)), [AgiEnvironment(tuple(env))]
        )

    def test_encoder_refusals(self) -> None:
        """Results and environments that would not frame correctly are refused."""
        bad: list[AgiResult | AgiError] = [
            r("1", "a\nb"),
            r("1 2"),
            r("1", None, ("endpos", "1 2")),
            r("1", None, ("bad key", "1")),
            AgiError(510, "x\ny"),
            AgiError(520, "x\n520 End of proper usage."),
            AgiError(530, "x"),
            AgiResult(300, "1"),
        ]
        for item in bad:
            self.assertRaises(AgiEncodingError, encode_result, item)
        for env in ([("", "v")], [("a:b", "v")], [("a", "v\r")]):
            self.assertRaises(AgiEncodingError, encode_environment, env)

    def test_client_parser(self) -> None:
        """Commands are read per LF, a CR stays, and an overlong line is cut."""
        parser = AgiClientParser()
        self.assertEqual(parser.feed(b"ANS"), [])
        self.assertEqual(
            parser.feed(b'WER\r\nGET VARIABLE "X Y"\n\n'),
            [["ANSWER\r"], ["GET", "VARIABLE", "X Y"], []],
        )
        long = b"VERBOSE " + b"x" * 9000 + b"\n"
        self.assertEqual(
            AgiClientParser().feed(long), [["VERBOSE", "x" * 8183], ["x" * 817]]
        )
