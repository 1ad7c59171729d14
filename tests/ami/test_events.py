"""Tests for the event subscriptions: routing by name and the parser's filter."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.codec import Message
from callnowd.ami.events import EventSubscriptions

HANGUP = Message((("Event", "Hangup"),))


def event(name: str, number: int) -> Message:
    return Message((("Event", name), ("N", str(number))))


class DispatchTests(SynchronousTestCase):
    def test_routes_follow_subscriptions(self) -> None:
        """Handlers added or removed after a dispatch count for the next one."""
        subscriptions = EventSubscriptions()
        seen: list[str] = []
        remove_named = subscriptions.subscribe("hangup", lambda m: seen.append("named"))
        subscriptions.dispatch(HANGUP, "Hangup")
        subscriptions.subscribe(None, lambda m: seen.append("all"))
        subscriptions.dispatch(HANGUP, "Hangup")
        remove_named()
        subscriptions.dispatch(HANGUP, "Hangup")
        subscriptions.dispatch(HANGUP, "VarSet")
        self.assertEqual(seen, ["named", "named", "all", "all", "all"])

    def test_name_case_does_not_matter(self) -> None:
        """Any spelling of the name on the wire reaches the handlers."""
        subscriptions = EventSubscriptions()
        seen: list[str] = []
        subscriptions.subscribe("HangUp", lambda m: seen.append("h"))
        for name in ("Hangup", "HANGUP", "hangup"):
            subscriptions.dispatch(HANGUP, name)
        self.assertEqual(seen, ["h", "h", "h"])

    def test_gate_withholds_events_from_every_handler(self) -> None:
        """A gate sees its exact wire name first; False keeps the event from all handlers."""
        asked: list[tuple[str, str | None]] = []

        def gate(message: Message, name: str) -> bool:
            asked.append((name, message.get("N")))
            return message.get("N") != "2"

        subscriptions = EventSubscriptions({"UserEvent": gate})
        seen: list[str] = []
        subscriptions.subscribe("userevent", lambda m: seen.append(f"named {m['N']}"))
        subscriptions.subscribe(None, lambda m: seen.append(f"all {m['N']}"))
        subscriptions.dispatch_events([event("UserEvent", 1), event("UserEvent", 2)])
        subscriptions.dispatch(event("USEREVENT", 3), "USEREVENT")
        subscriptions.dispatch(event("UserEvent", 2), "UserEvent")
        self.assertEqual(
            asked, [("UserEvent", "1"), ("UserEvent", "2"), ("UserEvent", "2")]
        )
        self.assertEqual(seen, ["named 1", "all 1", "named 3", "all 3"])

    def test_dispatch_events_in_order_and_isolated(self) -> None:
        """A run of events is delivered in order; a failing handler stops nothing."""
        subscriptions = EventSubscriptions()
        seen: list[str] = []

        def fail(message: Message) -> None:
            raise RuntimeError("handler bug")

        subscriptions.subscribe("Hangup", fail)
        subscriptions.subscribe(None, lambda m: seen.append(f"{m.event} {m['N']}"))
        subscriptions.dispatch_events(
            [event("Newchannel", 1), event("Hangup", 2), event("Newchannel", 3)]
        )
        self.assertEqual(seen, ["Newchannel 1", "Hangup 2", "Newchannel 3"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_subscription_during_a_run_counts_for_the_rest(self) -> None:
        """A handler subscribing mid-run gets the later events of the same run."""
        subscriptions = EventSubscriptions()
        seen: list[str] = []

        def first(message: Message) -> None:
            seen.append(f"first {message['N']}")
            if message["N"] == "1":
                subscriptions.subscribe(
                    "Hangup", lambda m: seen.append(f"late {m['N']}")
                )

        subscriptions.subscribe("Hangup", first)
        subscriptions.dispatch_events([event("Hangup", 1), event("Hangup", 2)])
        self.assertEqual(seen, ["first 1", "first 2", "late 2"])

    def test_filter_follows_subscriptions(self) -> None:
        """The filter handed out before a subscription keeps the new name after it."""
        subscriptions = EventSubscriptions()
        skip = subscriptions.skip_filter()
        assert skip is not None
        self.assertTrue(skip(b"Hangup"))
        self.assertFalse(subscriptions.wants(b"Hangup"))
        subscriptions.subscribe("Hangup", lambda m: None)
        self.assertFalse(skip(b"HANGUP"))
        self.assertTrue(subscriptions.wants(b"hangup"))
