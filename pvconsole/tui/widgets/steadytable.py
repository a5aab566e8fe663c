"""A DataTable that keeps its render caches across view switches.

Textual's DataTable drops every cached cell on any ``Resize`` and on any restyle. A view
switch sends both to a table that is shown again (display toggle, focus in), so every
switch back re-rendered a whole screen of cells (~100 ms for 160x48) on the thread the
servers share the GIL with. The caches are keyed on the widget size, the base style and
the focus state already, so at an unchanged size and theme they are still right.
"""

from __future__ import annotations

from textual.events import Resize
from textual.geometry import Size
from textual.widgets import DataTable


class SteadyDataTable(DataTable):
    """DataTable that re-renders on a switch back only what changed meanwhile."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown_size: Size | None = None
        self._styled_theme: str | None = None

    def notify_style_update(self) -> None:
        theme = self.app.theme
        if theme != self._styled_theme:
            self._styled_theme = theme
            super().notify_style_update()
            return
        super(DataTable, self).notify_style_update()
        self._get_styles_to_render_cell.cache_clear()  # not keyed on focus: always rebuilt
        self._line_cache.clear()
        self.refresh()

    def _on_resize(self, event: Resize) -> None:
        if event.size == self._shown_size:
            event.prevent_default()  # DataTable's handler would invalidate every cache
        self._shown_size = event.size
        self.on_shown_again()

    def on_shown_again(self) -> None:
        """Hook for subclasses: the table was resized or shown again."""
