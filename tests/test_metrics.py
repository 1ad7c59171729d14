"""Tests for the daemon's counters (callnowd.metrics)."""

from __future__ import annotations

import attrs
from twisted.trial.unittest import SynchronousTestCase

from callnowd.calls.requests import new_request
from callnowd.metrics import Metrics
from callnowd.models import CallRequest, RequestSource, RequestState
from tests.store.builders import make_extension


def make_request() -> CallRequest:
    request, _ = new_request(
        make_extension(), "+15555550123", "Mary", RequestSource.FORM, 1e9
    )
    return request


class CountingTests(SynchronousTestCase):
    def sample(self, metrics: Metrics, name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    def test_transitions_by_state_and_reason(self) -> None:
        """Each (state, reason) pair counts apart, however often it is seen."""
        metrics = Metrics()
        base = make_request()
        ringing = attrs.evolve(base, state=RequestState.RINGING_OWNER, reason=None)
        no_answer = attrs.evolve(
            base, state=RequestState.OWNER_NO_ANSWER, reason="no_answer"
        )
        busy = attrs.evolve(base, state=RequestState.OWNER_NO_ANSWER, reason="busy")
        for request in (ringing, ringing, no_answer, ringing, busy, no_answer):
            metrics.transition(request)
        total = "callnow_request_transitions_total"
        self.assertEqual(
            self.sample(metrics, total, state="ringing_owner", reason=""), 3.0
        )
        self.assertEqual(
            self.sample(metrics, total, state="owner_no_answer", reason="no_answer"),
            2.0,
        )
        self.assertEqual(
            self.sample(metrics, total, state="owner_no_answer", reason="busy"), 1.0
        )

    def test_requests_by_source(self) -> None:
        """Stored requests count by source, each source apart."""
        metrics = Metrics()
        base = make_request()
        form = attrs.evolve(base, source=RequestSource.FORM)
        one_step = attrs.evolve(base, source=RequestSource.ONE_STEP)
        for request in (form, one_step, form):
            metrics.request_created(request)
        total = "callnow_requests_total"
        self.assertEqual(self.sample(metrics, total, source="form"), 2.0)
        self.assertEqual(self.sample(metrics, total, source="one_step"), 1.0)
