"""Strict parameter reading: the unquoting shortcut changes nothing."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from callnowd.http.forms import _unquote

_PIECES = st.lists(
    st.one_of(
        st.binary(max_size=4),
        st.sampled_from([b"%", b"+", b"%2B", b"%FF", b"%e2%82%ac", b"%4", b"%zz"]),
    ),
    max_size=8,
)


class UnquoteTests(SynchronousTestCase):
    @given(_PIECES)
    def test_same_as_unquote_to_bytes(self, pieces: list[bytes]) -> None:
        """Any bytes unquote as unquote_to_bytes with '+' read as a space."""
        raw = b"".join(pieces)
        self.assertEqual(_unquote(raw), unquote_to_bytes(raw.replace(b"+", b" ")))

    def test_examples(self) -> None:
        """Plain text is kept; escapes and '+' are decoded."""
        self.assertEqual(_unquote(b"phone"), b"phone")
        self.assertEqual(_unquote(b"Mary+Ann"), b"Mary Ann")
        self.assertEqual(_unquote(b"%2B1212"), b"+1212")
        self.assertEqual(_unquote(b"%FF"), b"\xff")
