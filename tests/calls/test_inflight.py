"""The call flow's in-flight bookkeeping, alone, with a fake clock."""

from __future__ import annotations

import attrs
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.inflight import InFlight
from callnowd.models import CallRequest, RequestSource
from callnowd.models import RequestState as S


def request(
    request_id: str,
    extension: str = "001*002",
    phone: str = "+15555550123",
    state: S = S.RECEIVED,
) -> CallRequest:
    return CallRequest(
        id=request_id,
        token="t-" + request_id,
        extension=extension,
        callnow_id="john",
        phone=phone,
        name="Mary",
        state=state,
        source=RequestSource.FORM,
        created_at=1000.0,
        updated_at=1000.0,
    )


class InFlightTests(SynchronousTestCase):
    """InFlight."""

    def setUp(self) -> None:
        self.now = 1000.0
        self.inflight = InFlight(
            lambda: self.now,
            max_in_flight=3,
            max_per_extension=2,
            finished_memory=30.0,
        )

    def test_track_and_forget_count_per_extension(self) -> None:
        """Tracking counts a request once; forgetting frees its extension's slot."""
        a, b = request("a"), request("b")
        c = request("c", extension="003")
        for r in (a, b, c, a):  # a twice: counted once
            self.inflight.track(r)
        self.assertEqual(len(self.inflight), 3)
        self.assertIn("a", self.inflight)
        self.assertNotIn("x", self.inflight)
        self.assertTrue(self.inflight.full_for("001*002"))
        self.inflight.forget("a", attrs.evolve(a, state=S.OWNER_BUSY))
        self.assertEqual(len(self.inflight), 2)
        self.assertNotIn("a", self.inflight)
        self.assertFalse(self.inflight.full_for("001*002"))
        self.inflight.forget("a", attrs.evolve(a, state=S.OWNER_BUSY))  # again
        self.assertEqual(len(self.inflight), 2)
        self.assertFalse(self.inflight.full_for("001*002"))

    def test_full_per_extension(self) -> None:
        """The per-extension limit holds for that extension only."""
        self.inflight.track(request("a"))
        self.assertFalse(self.inflight.full_for("001*002"))
        self.inflight.track(request("b"))
        self.assertTrue(self.inflight.full_for("001*002"))
        self.assertFalse(self.inflight.full_for("003"))

    def test_full_overall(self) -> None:
        """The overall limit holds for every extension, even one never seen."""
        self.inflight.track(request("a", extension="1"))
        self.inflight.track(request("b", extension="2"))
        self.assertFalse(self.inflight.full_for("4"))
        self.inflight.track(request("c", extension="3"))
        self.assertTrue(self.inflight.full_for("4"))
        self.inflight.forget("b", None)
        self.assertFalse(self.inflight.full_for("4"))

    def test_latest_copy_is_kept_for_carried_requests_only(self) -> None:
        """The newest copy of a carried request is kept; others are ignored."""
        a = request("a")
        self.assertIsNone(self.inflight.latest("a"))
        self.inflight.update(a)
        self.assertIsNone(self.inflight.latest("a"))
        self.inflight.track(a)
        self.assertIs(self.inflight.latest("a"), a)
        ringing = attrs.evolve(a, state=S.RINGING_OWNER)
        self.inflight.update(ringing)
        self.assertIs(self.inflight.latest("a"), ringing)
        self.inflight.track(a)  # already carried: the newest copy stays
        self.assertIs(self.inflight.latest("a"), ringing)
        self.inflight.forget("a", attrs.evolve(a, state=S.FAILED))
        self.assertIsNone(self.inflight.latest("a"))

    def test_joinable_is_the_first_open_request_until_forgotten(self) -> None:
        """A twin joins the first open request of its pair; none once it ended."""
        a, b = request("a"), request("b")
        other = request("c", phone="+15555550999")
        self.assertIsNone(self.inflight.joinable("001*002", "+15555550123"))
        for r in (a, b, other):
            self.inflight.mark_open(r)
        self.assertEqual(self.inflight.joinable("001*002", "+15555550123"), "a")
        self.assertEqual(self.inflight.joinable("001*002", "+15555550999"), "c")
        self.assertIsNone(self.inflight.joinable("003", "+15555550123"))
        # Forgetting another request of the pair leaves the open one in place.
        self.inflight.forget("b", attrs.evolve(b, state=S.OWNER_BUSY))
        self.assertEqual(self.inflight.joinable("001*002", "+15555550123"), "a")
        self.inflight.forget("a", attrs.evolve(a, state=S.OWNER_BUSY))
        self.assertIsNone(self.inflight.joinable("001*002", "+15555550123"))
        self.assertEqual(self.inflight.joinable("001*002", "+15555550999"), "c")

    def test_forgotten_request_is_remembered_as_finished(self) -> None:
        """A request forgotten with its final copy is finished; without one, not."""
        a, b = request("a"), request("b")
        self.inflight.track(a)
        self.inflight.track(b)
        self.inflight.forget("a", attrs.evolve(a, state=S.COMPLETED))
        self.inflight.forget("b", None)  # the store no longer has it
        self.assertEqual(self.inflight.finished, {"a"})

    def test_finished_memory_expires(self) -> None:
        """Ended requests are forgotten once older than finished_memory."""
        self.inflight.remember_finished("a")
        self.now += 20
        self.inflight.remember_finished("b")
        self.now += 10  # a is exactly 30 s old: still remembered
        self.inflight.remember_finished("c")
        self.assertEqual(self.inflight.finished, {"a", "b", "c"})
        self.now += 0.5  # a is older than 30 s now, b is not
        self.inflight.remember_finished("d")
        self.assertEqual(self.inflight.finished, {"b", "c", "d"})
        self.now += 100
        self.inflight.remember_finished("e")
        self.assertEqual(self.inflight.finished, {"e"})

    def test_finished_twice_keeps_first_time(self) -> None:
        """Remembering a request again does not extend its memory."""
        self.inflight.remember_finished("a")
        self.now += 20
        self.inflight.remember_finished("a")
        self.now += 11
        self.inflight.remember_finished("b")
        self.assertEqual(self.inflight.finished, {"b"})
