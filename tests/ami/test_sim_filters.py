"""The simulator's manager.conf ``eventfilter``: parsing, matching, per-session use."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.codec import encode_message
from callnowd.ami.sim_config import AmiUser, SimulatorSettings
from callnowd.ami.sim_filters import (
    EventFilterError,
    EventFilters,
    manager_conf_section,
    parse_filter,
)
from callnowd.ami.simulator import AsteriskSimulator
from callnowd.pbx_services import AMI_EVENTFILTERS, AMI_READ, AMI_WRITE
from tests.ami.test_simulator import Peer, kinds, stop

MANAGER_CONF = Path(__file__).parents[2] / "conf" / "asterisk" / "manager.conf"


def event(name: str, *headers: tuple[str, str]) -> tuple[str, bytes]:
    """An event as the simulator broadcasts it: name and wire bytes."""
    return name, encode_message([("Event", name), ("Privilege", "call,all"), *headers])


NEWCHANNEL = event("Newchannel", ("Channel", "PJSIP/alice-0001"), ("Exten", "100"))
LOCAL_HANGUP = event("Hangup", ("Channel", "Local/001002@phones-0001;1"))
DAHDI_HANGUP = event("Hangup", ("Channel", "DAHDI/1-1"), ("Cause", "16"))
CDR = event("Cdr", ("Source", "5555550000"))


def allows(filters: EventFilters, named: tuple[str, bytes]) -> bool:
    return filters.allows(*named)


class ParseTests(SynchronousTestCase):
    def test_advanced_name_only(self) -> None:
        """``action(include),name(X) =`` is an include filter on the name alone."""
        f = parse_filter("eventfilter(action(include),name(OriginateResponse))", "")
        self.assertEqual(
            (f.exclude, f.name, f.header, f.method, f.pattern),
            (False, "OriginateResponse", None, "none", ""),
        )
        self.assertTrue(f.name_only)

    def test_action_defaults_to_include_and_any_order(self) -> None:
        """Criteria come in any order, spaces allowed; action defaults to include."""
        f = parse_filter(
            "eventfilter( method(starts_with), header(Channel) ,name(Hangup))",
            " Local/",
        )
        self.assertEqual(
            (f.exclude, f.name, f.header, f.method, f.pattern),
            (False, "Hangup", "Channel:", "starts_with", "Local/"),
        )

    def test_exclude_by_action_or_bang(self) -> None:
        """``action(exclude)`` and a ``!`` value both make an exclude filter."""
        self.assertTrue(
            parse_filter("eventfilter(action(exclude),name(Cdr))", "").exclude
        )
        self.assertTrue(parse_filter("eventfilter(name(Cdr))", "!").exclude)
        legacy = parse_filter("eventfilter", "!Channel: DAHDI/")
        self.assertEqual((legacy.exclude, legacy.method), (True, "regex"))
        self.assertEqual(legacy.pattern, "Channel: DAHDI/")

    def test_invalid_lines_name_their_key(self) -> None:
        """Every malformed line is refused with its key in the message."""
        bad = [
            ("eventfilter", ""),  # legacy with no pattern
            ("eventfilter", "!"),
            ("eventfilter", "Event: (Newchannel"),  # bad regex
            ("eventfilter(action(maybe),name(X))", ""),
            ("eventfilter(name(X),colour(red))", ""),
            ("eventfilter(names(X))", ""),
            ("eventfilter(name(X),method(glob))", "a"),
            ("eventfilter(name(X))", "pattern with method none"),
            ("eventfilter(name(X),method(exact))", ""),
            ("eventfilter(action(include))", ""),  # no name, header or pattern
            ("eventfilter()", ""),
            ("eventfilter(name(X)", ""),
            ("eventfilter(name())", ""),
            ("eventfilter(name(X),name(Y))", ""),
            ("eventfilter(name(X)) junk", ""),
            ("eventfilterx(name(X))", ""),
            ("secret", "x"),
        ]
        for key, value in bad:
            with self.assertRaises(EventFilterError, msg=key) as raised:
                parse_filter(key, value)
            self.assertIn(key.strip(), str(raised.exception))

    def test_ami_user_refuses_a_bad_filter(self) -> None:
        """An AmiUser with an invalid eventfilter line fails at construction."""
        with self.assertRaises(EventFilterError) as raised:
            AmiUser(
                "u",
                "s",
                read={"call"},
                write=set(),
                eventfilters=[("eventfilter(action(inclde),name(Hangup))", "")],
            )
        self.assertIn("eventfilter(action(inclde),name(Hangup))", str(raised.exception))
        self.assertIn("inclde", str(raised.exception))

    def test_ami_user_without_filters_gets_everything(self) -> None:
        """No eventfilter lines: every event passes (and the filters are falsy)."""
        user = AmiUser("u", "s", read={"call"}, write=set())
        self.assertFalse(user.eventfilters)
        for named in (NEWCHANNEL, LOCAL_HANGUP, CDR):
            self.assertTrue(allows(user.eventfilters, named))


class MatchTests(SynchronousTestCase):
    def test_include_only(self) -> None:
        """Include filters only: events matching none of them are dropped."""
        filters = EventFilters.parse(
            [
                ("eventfilter(action(include),name(Hangup))", ""),
                ("eventfilter(action(include),name(OriginateResponse))", ""),
            ]
        )
        self.assertTrue(allows(filters, LOCAL_HANGUP))
        self.assertTrue(allows(filters, event("OriginateResponse")))
        self.assertFalse(allows(filters, NEWCHANNEL))
        self.assertFalse(allows(filters, CDR))

    def test_exclude_only(self) -> None:
        """Exclude filters only: everything but the matching events passes."""
        filters = EventFilters.parse(
            [
                ("eventfilter(action(exclude),name(Cdr))", ""),
                (
                    "eventfilter(action(exclude),header(Channel),method(starts_with))",
                    "DAHDI/",
                ),
            ]
        )
        self.assertFalse(allows(filters, CDR))
        self.assertFalse(allows(filters, DAHDI_HANGUP))
        self.assertTrue(allows(filters, LOCAL_HANGUP))
        self.assertTrue(allows(filters, NEWCHANNEL))

    def test_include_then_exclude(self) -> None:
        """Both: included by one include filter and by no exclude filter."""
        filters = EventFilters.parse(
            [
                ("eventfilter(action(include),name(Newchannel))", ""),
                ("eventfilter(action(include),name(Hangup))", ""),
                (
                    "eventfilter(action(exclude),header(Channel),method(starts_with))",
                    "Local/",
                ),
            ]
        )
        self.assertTrue(allows(filters, NEWCHANNEL))
        self.assertTrue(allows(filters, DAHDI_HANGUP))
        self.assertFalse(allows(filters, LOCAL_HANGUP))
        self.assertFalse(allows(filters, CDR))

    def test_legacy_regex_on_the_whole_event(self) -> None:
        """Legacy filters search the whole event text, across lines, ``!`` excludes."""
        filters = EventFilters.parse([("eventfilter", "Event: Newchannel")])
        self.assertTrue(allows(filters, NEWCHANNEL))
        self.assertFalse(allows(filters, LOCAL_HANGUP))
        across = EventFilters.parse(
            [("eventfilter", "Event: Newchannel.*Channel: PJSIP/")]
        )
        self.assertTrue(allows(across, NEWCHANNEL))
        black = EventFilters.parse([("eventfilter", "!Channel: DAHDI/")])
        self.assertFalse(allows(black, DAHDI_HANGUP))
        self.assertTrue(allows(black, LOCAL_HANGUP))
        mixed = EventFilters.parse(
            [("eventfilter", "Event: Hangup"), ("eventfilter", "!Channel: DAHDI/")]
        )
        self.assertEqual(
            [allows(mixed, e) for e in (LOCAL_HANGUP, DAHDI_HANGUP, NEWCHANNEL)],
            [True, False, False],
        )

    def test_names_are_case_sensitive(self) -> None:
        """``name(hangup)`` does not match ``Hangup``; nor does a legacy regex."""
        lower = EventFilters.parse([("eventfilter(name(hangup))", "")])
        self.assertFalse(allows(lower, LOCAL_HANGUP))
        legacy = EventFilters.parse([("eventfilter", "Event: hangup")])
        self.assertFalse(allows(legacy, LOCAL_HANGUP))
        exact = EventFilters.parse([("eventfilter(name(Hangup))", "")])
        self.assertTrue(allows(exact, LOCAL_HANGUP))

    def test_header_methods(self) -> None:
        """Header filters look at that header's value only, with each method."""
        cases = {
            ("exact", "DAHDI/1-1"): (True, False),
            ("exact", "DAHDI/1"): (False, False),
            ("starts_with", "DAHDI/"): (True, False),
            ("ends_with", ";1"): (False, True),
            ("contains", "@phones"): (False, True),
            ("regex", "^Local/[0-9]+@"): (False, True),
        }
        for (method, pattern), expected in cases.items():
            filters = EventFilters.parse(
                [(f"eventfilter(header(Channel),method({method}))", pattern)]
            )
            got = (allows(filters, DAHDI_HANGUP), allows(filters, LOCAL_HANGUP))
            self.assertEqual(got, expected, (method, pattern))
        # The header with method none: events carrying it (non-empty) match.
        has_cause = EventFilters.parse([("eventfilter(header(Cause:))", "")])
        self.assertTrue(allows(has_cause, DAHDI_HANGUP))
        self.assertFalse(allows(has_cause, LOCAL_HANGUP))
        empty = event("Hangup", ("Cause", ""))
        self.assertFalse(allows(has_cause, empty))
        # Only the named header is searched, not the others' values.
        chan = EventFilters.parse(
            [("eventfilter(header(Exten),method(contains))", "alice")]
        )
        self.assertFalse(allows(chan, NEWCHANNEL))


class ShippedManagerConfTests(SynchronousTestCase):
    def test_daemon_user_matches_manager_conf(self) -> None:
        """The simulator's daemon user has the [callnowd] eventfilter, read, write."""
        lines = manager_conf_section(MANAGER_CONF.read_text(), "callnowd")
        filters = [(k, v) for k, v in lines if k.startswith("eventfilter")]
        self.assertEqual(tuple(filters), AMI_EVENTFILTERS)
        self.assertGreater(len(filters), 0)
        values = dict(lines)
        self.assertEqual(frozenset(values["read"].split(",")), AMI_READ)
        self.assertEqual(frozenset(values["write"].split(",")), AMI_WRITE)
        parsed = EventFilters.parse(filters)
        self.assertEqual(parsed.lines, AMI_EVENTFILTERS)

    def test_shipped_filters_keep_what_the_daemon_reads(self) -> None:
        """OriginateResponse, DialEnd and Hangup pass; the channel noise does not."""
        filters = EventFilters.parse(AMI_EVENTFILTERS)
        for name in ("OriginateResponse", "DialEnd", "Hangup", "FullyBooted"):
            self.assertTrue(allows(filters, event(name)), name)
        for name in (
            "Newchannel",
            "Newstate",
            "VarSet",
            "Cdr",
            "UserEvent",
            "DialBegin",
        ):
            self.assertFalse(allows(filters, event(name)), name)

    def test_section_parser(self) -> None:
        """Comments, ``=>`` and other sections are handled as Asterisk does."""
        text = (
            "[general]\nenabled = yes\n[u] ; the user\nsecret = a\\;b ; comment\n"
            "eventfilter => !Channel: DAHDI/\n; eventfilter = x\n[v]\nread = all\n"
        )
        self.assertEqual(
            manager_conf_section(text, "u"),
            [("secret", "a;b"), ("eventfilter", "!Channel: DAHDI/")],
        )


FILTERED = AmiUser(
    "filtered",
    "f",
    read={"call", "system", "user"},
    write={"originate", "call", "user", "reporting"},
    # No FullyBooted, CoreShowChannel* or UserEvent: written to the session anyway.
    eventfilters=[("eventfilter(action(include),name(Hangup))", "")],
)
OPEN = AmiUser(
    "open",
    "o",
    read={"call", "system", "user"},
    write={"originate", "call", "user", "reporting"},
)


class SessionFilterTests(SynchronousTestCase):
    """Which messages a filtered session gets, on StringTransports."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.sim = AsteriskSimulator(
            self.clock, SimulatorSettings(users=(FILTERED, OPEN))
        )

    def tearDown(self) -> None:
        stop(self, self.sim)

    def test_login_fully_booted_is_not_filtered(self) -> None:
        """The FullyBooted written after Login is not a broadcast: it always comes."""
        messages = Peer(self.sim).login(FILTERED)
        self.assertEqual(kinds(messages), ["Response:Success", "FullyBooted"])

    def test_responses_and_list_events_are_not_filtered(self) -> None:
        """Responses and CoreShowChannels' list events pass; broadcasts are filtered."""
        filtered, unfiltered = Peer(self.sim), Peer(self.sim)
        filtered.login(FILTERED)
        unfiltered.login(OPEN)
        filtered.send("UserEvent", "u1", ("UserEvent", "CallNow"), ("Id", "7"))
        filtered.send("CoreShowChannels", "c1")
        self.sim.emit("Hangup", "call", [("Channel", "Local/1@x-1;1"), ("Cause", "16")])
        self.sim.emit("Newchannel", "call", [("Channel", "Local/1@x-1;1")])
        self.assertEqual(
            kinds(filtered.read()),
            [
                "Response:Success",
                "Response:Success",
                "CoreShowChannelsComplete",
                "Hangup",
            ],
        )
        self.assertEqual(
            kinds(unfiltered.read()), ["UserEvent", "Hangup", "Newchannel"]
        )
