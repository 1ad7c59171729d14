"""HTML rendering with Jinja2 (autoescaped), for the public pages."""

from __future__ import annotations

from typing import Any

import jinja2


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

    def render(self, name: str, **context: Any) -> bytes:
        """Render template ``name`` to UTF-8 bytes."""
        return self._env.get_template(name).render(**context).encode("utf-8")
