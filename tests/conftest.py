"""Test-wide settings: a deterministic Hypothesis profile for CI."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _run_in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own directory, as trial does, so nothing lands in the tree."""
    monkeypatch.chdir(tmp_path)


# Tests that need a reactor are twisted.trial TestCases (async def methods for a real
# reactor). pytest-twisted is installed but plain test *functions* must not need it:
# the first one it runs starts a reactor greenlet, and every trial TestCase after
# it then sees an unclean reactor.
