"""Fixtures for tests that run the real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A running daemon with its own files; stopped after the test."""
    d = Daemon(tmp_path)
    d.start()
    yield d
    d.stop()
