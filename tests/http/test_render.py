"""Kept pages are the pages Jinja renders."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from callnowd.http import render
from callnowd.http.render import Templates


class RenderKeptTests(SynchronousTestCase):
    def test_kept_pages_are_rendered_pages(self) -> None:
        """The same bytes as render(), escaped, for every context."""
        templates = Templates()
        for text in ("Please try again in 3 hours.", "<b>&amp;</b>", "é"):
            for hours in ((), ("mon-fri 09:00-17:00",)):
                expected = templates.render(
                    "notice.html", title="T", text=text, hours=list(hours)
                )
                for _ in range(2):
                    self.assertEqual(
                        templates.render_kept(
                            "notice.html", title="T", text=text, hours=hours
                        ),
                        expected,
                    )
        self.assertIn(
            b"&lt;b&gt;&amp;amp;",
            templates.render_kept(
                "notice.html", title="T", text="<b>&amp;</b>", hours=()
            ),
        )

    def test_kept_pages_are_bounded(self) -> None:
        """The store of kept pages never grows past KEPT_PAGES."""
        templates = Templates()
        for i in range(render.KEPT_PAGES + 5):
            templates.render_kept("notice.html", title="T", text=str(i), hours=())
        self.assertLessEqual(len(templates._kept), render.KEPT_PAGES)
