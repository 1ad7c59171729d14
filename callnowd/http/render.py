"""HTML rendering with Jinja2 (autoescaped), for the public pages.

Pages that depend only on a few strings (the notices: "Too many requests", "Request
received", "This link is not available") are rendered once per distinct context and
kept (:meth:`Templates.render_kept`): a flood of refused requests then costs no
template rendering at all.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import jinja2

#: Rendered pages kept by :meth:`Templates.render_kept`; emptied when it is full.
KEPT_PAGES = 512


class Templates:
    """The public pages' templates, loaded once from the package."""

    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("callnowd.http", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._kept: dict[tuple[Hashable, ...], bytes] = {}

    def render(self, name: str, **context: Any) -> bytes:
        """Render template ``name`` to UTF-8 bytes."""
        return self._env.get_template(name).render(**context).encode("utf-8")

    def render_kept(self, name: str, **context: Hashable) -> bytes:
        """:meth:`render`, rendered once per distinct (hashable) context and kept.

        For pages whose context takes few values (fixed titles, a wait in whole
        minutes or hours): the same bytes as :meth:`render`, without Jinja.
        """
        key = (name, *sorted(context.items()))
        page = self._kept.get(key)
        if page is None:
            page = self.render(name, **context)
            if len(self._kept) >= KEPT_PAGES:
                self._kept.clear()
            self._kept[key] = page
        return page
