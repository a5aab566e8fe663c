"""A DataTable that keeps its render caches across view switches and live updates, and
renders plain one-line cells without Rich's layout machinery.

Textual's DataTable drops every cached cell on any ``Resize`` and on any restyle. A view
switch sends both to a table that is shown again (display toggle, focus in), so every
switch back re-rendered a whole screen of cells (~100 ms for 160x48) on the thread the
servers share the GIL with. The caches are keyed on the widget size, the base style and
the focus state already, so at an unchanged size and theme they are still right.
"""

from __future__ import annotations

import re
from typing import Any

from rich._emoji_codes import EMOJI
from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.events import Resize
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


#: Rich's emoji-code pattern: a ``str`` cell holding a known code changes when parsed
_EMOJI_CODE = re.compile(r":(\S*?)(?:(?:\-)(?:emoji|text))?:")


def _has_emoji_code(text: str) -> bool:
    return ":" in text and any(m.group(1).lower() in EMOJI for m in _EMOJI_CODE.finditer(text))

_SIMPLE_OVERFLOW = (None, "fold", "crop")
_SIMPLE_JUSTIFY = (None, "default", "left")


def plain_cell(datum: Any) -> tuple[str, Any] | None:
    """(text, style) of a cell DataTable would render as one unstyled-span line, or None.

    A ``str`` is markup to DataTable: only one without markup or emoji codes qualifies; a
    ``Text`` qualifies when it has one style over all of it and no layout options.
    """
    if datum is None:
        return "", None
    if type(datum) is str:
        if "[" in datum or "\n" in datum or "\t" in datum or _has_emoji_code(datum):
            return None
        return datum, None
    if type(datum) is Text:
        plain = datum.plain
        if (datum.spans or "\n" in plain or "\t" in plain or datum.overflow not in _SIMPLE_OVERFLOW
                or datum.justify not in _SIMPLE_JUSTIFY):
            return None
        return plain, datum.style
    return None


def _row_at(offsets: Any, y: int) -> Any:
    """The row key of table line ``y`` (``DataTable._get_offsets``), None past the end."""
    try:
        return offsets(y)[0]
    except (LookupError, IndexError):
        return None


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
            row_cache, cell_cache = self._row_render_cache, self._cell_render_cache
            by_index, lines = self._row_renderable_cache, self._line_cache
            offsets = self._get_offsets
        except AttributeError:
            for name, cells in changes.items():
                for column, value in cells.items():
                    self.update_cell(name, column, value)
            return
        keys = {RowKey(name) for name in changes}
        cells_changed = set()
        for name, cells in changes.items():
            row_key = RowKey(name)
            row = data[row_key]
            for column, value in cells.items():
                column_key = ColumnKey(column)
                row[column_key] = value
                cells_changed.add((row_key, column_key))
        for key in [k for k in row_cache.keys() if k[0] in keys]:  # (row key, ...)
            row_cache.discard(key)
        # (row key, column key, ...): the row's other cells stay rendered (a live value
        # changes two cells of eleven)
        for key in [k for k in cell_cache.keys() if k[:2] in cells_changed]:
            cell_cache.discard(key)
        indexes = {rows.get(k) for k in keys}
        for key in [k for k in by_index.keys() if k[1] in indexes]:  # (count, row index)
            by_index.discard(key)
        # screen lines are cached by table line; the lines of unchanged rows stay (row order
        # only changes with sort/add/remove, which bump the counter every key holds)
        for key in [k for k in lines.keys() if _row_at(offsets, k[0]) in keys]:
            lines.discard(key)
        self._refresh_rows(indexes)

    def _refresh_rows(self, indexes: set[int | None]) -> None:
        """Repaint the on-screen lines of these rows only. ``refresh()`` with no region
        drops the widget's whole line cache: every visible line would be styled again."""
        if self._total_row_height != self.row_count:  # a row taller than a line: by hand
            self.refresh()
            return
        top, height = round(self.scroll_y), self.size.height
        header = self.header_height if self.show_header else 0
        for i in indexes:
            if i is not None and top <= i < top + height:
                self.refresh_line(header + i)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:
        """A body cell that is plain text in one style: its segments built directly, the
        same ones DataTable gets from Rich's render of ``Styled(Padding(Text))`` (a
        tenth of the time; a screen of cells per frame under live updates). Anything else
        goes through DataTable."""
        try:
            return self._render_plain_cell(row_index, column_index, base_style, width, cursor, hover)
        except AttributeError:  # a Textual release renamed the internals: DataTable's way
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)

    def _render_plain_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                           cursor: bool, hover: bool) -> Any:
        fallback = super()._render_cell
        if row_index < 0 or column_index < 0:
            return fallback(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor,
               self._update_count, self._pseudo_class_state)  # DataTable's cell cache key
        cache = self._cell_render_cache
        lines = cache.get(key)
        if lines is not None:
            return lines
        row = self.rows.get(row_key)
        cell = plain_cell(self._data[row_key].get(column_key)) if row is not None and row.height == 1 else None
        if cell is None:
            return fallback(row_index, column_index, base_style, width, cursor, hover)
        text, text_style = cell
        fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
        component, post = self._get_styles_to_render_cell(
            False, False, fixed, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        console = self.app.console
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component
        post = console.get_style(post)
        blank = pre + post if post else pre
        pad = self.cell_padding
        inner = max(0, width - 2 * pad)
        if cell_len(text) > inner:
            text = set_cell_size(text, inner)
        segments = [Segment(" " * pad, blank)] if pad else []
        if text:
            own = console.get_style(text_style) if text_style else None
            style = pre + own if own else pre
            segments.append(Segment(text, style + post if post else style))
        fill = inner - cell_len(text)
        if fill > 0:
            segments.append(Segment(" " * fill, blank))
        if pad:
            segments.append(Segment(" " * pad, blank))
        lines = [segments]
        cache[key] = lines
        return lines

    def _on_resize(self, event: Resize) -> None:
        if event.size == self._shown_size:
            event.prevent_default()  # DataTable's handler would invalidate every cache
        self._shown_size = event.size
        self.on_shown_again()

    def on_shown_again(self) -> None:
        """Hook for subclasses: the table was resized or shown again."""
