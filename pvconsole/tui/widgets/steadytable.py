"""A DataTable that keeps its render caches across view switches and live updates.

Textual's DataTable drops every cached cell on any ``Resize`` and on any restyle. A view
switch sends both to a table that is shown again (display toggle, focus in), so every
switch back re-rendered a whole screen of cells (~100 ms for 160x48) on the thread the
servers share the GIL with. The caches are keyed on the widget size, the base style and
the focus state already, so at an unchanged size and theme they are still right.
"""

from __future__ import annotations

from typing import Any

from textual.events import Resize
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


class SteadyDataTable(DataTable):
    """DataTable that re-renders only what changed: on a switch back, on a cell update."""

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

    def set_cells(self, changes: dict[str, dict[str, Any]]) -> None:
        """Write changed cells, re-rendering only their rows.

        ``DataTable.update_cell`` bumps a table-wide counter that every render cache is
        keyed on, so one changed cell re-renders every visible cell (~50 ms for a 160x48
        table, on the thread the servers share the GIL with). Here the
        cells are written and only the cache entries of the changed rows are dropped.
        Falls back to ``update_cell`` if a Textual release renames those internals.
        """
        try:
            data, rows = self._data, self._row_locations
            row_caches = (self._row_render_cache, self._cell_render_cache)
            by_index, lines = self._row_renderable_cache, self._line_cache
        except AttributeError:
            for name, cells in changes.items():
                for column, value in cells.items():
                    self.update_cell(name, column, value)
            return
        keys = {RowKey(name) for name in changes}
        for name, cells in changes.items():
            row = data[RowKey(name)]
            for column, value in cells.items():
                row[ColumnKey(column)] = value
        for cache in row_caches:  # keys start with the row key
            for key in [k for k in cache.keys() if k[0] in keys]:
                cache.discard(key)
        indexes = {rows.get(k) for k in keys}
        for key in [k for k in by_index.keys() if k[1] in indexes]:  # (count, row index)
            by_index.discard(key)
        lines.clear()  # per screen line; cheap to rebuild from the row caches
        self.refresh()

    def _on_resize(self, event: Resize) -> None:
        if event.size == self._shown_size:
            event.prevent_default()  # DataTable's handler would invalidate every cache
        self._shown_size = event.size
        self.on_shown_again()

    def on_shown_again(self) -> None:
        """Hook for subclasses: the table was resized or shown again."""
