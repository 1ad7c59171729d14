"""Tests for the event subscriptions: routing by name and the parser's filter."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from callnowd.ami.codec import Message
from callnowd.ami.events import EventSubscriptions

HANGUP = Message((("Event", "Hangup"),))


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
