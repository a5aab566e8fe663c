"""A DataTable that keeps its render caches across view switches and live updates, and
renders plain one-line cells without Rich's layout machinery.

Textual's DataTable drops every cached cell on any ``Resize``, any restyle and any focus
change, and a live ``update_cell`` re-renders every visible cell. A view switch sends all
three to a table shown again, so every switch re-rendered a whole screen of cells. Here the
caches are kept at an unchanged size and theme, focus is left out of their keys (it only
changes the cursor row, which is redrawn), and a changed cell costs its own cell and its
row's screen line.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.events import Resize
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from ..fmt import has_markup

T = TypeVar("T")

_SIMPLE_OVERFLOW = (None, "fold", "crop")
_SIMPLE_JUSTIFY = (None, "default", "left")


def tie_by_name(items: Iterable[T], name: Callable[[T], Any], key: Callable[[T], Any],
                reverse: bool = False) -> list[T]:
    """``items`` ordered by ``key``; those that tie by ``name``, ascending whichever the
    direction (two sorts: the second is stable)."""
    ordered = sorted(items, key=name)
    ordered.sort(key=key, reverse=reverse)
    return ordered


def plain_cell(datum: Any) -> tuple[str, Any] | None:
    """(text, style) of a cell DataTable would render as one unstyled-span line, or None.

    A ``str`` is markup to DataTable: only one without markup or emoji codes qualifies; a
    ``Text`` qualifies when it has one style over all of it and no layout options.
    """
    if datum is None:
        return "", None
    if type(datum) is str:
        if "\n" in datum or "\t" in datum or has_markup(datum):
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


#: DataTable internals the render-cache handling below uses (Textual 8).
_INTERNALS = ("_data", "_row_locations", "_column_locations", "_row_render_cache",
              "_cell_render_cache", "_row_renderable_cache", "_line_cache", "_get_offsets",
              "_pseudo_class_state", "_get_styles_to_render_cell", "_total_row_height",
              "_show_hover_cursor", "_update_count")


class _FrameStyles:
    """A component's ``RenderStyles`` with its ``rich_style`` worked out once."""

    __slots__ = ("_styles", "_rich_style")

    def __init__(self, styles: Any) -> None:
        self._styles = styles
        self._rich_style: Style | None = None

    @property
    def rich_style(self) -> Style:
        if self._rich_style is None:
            self._rich_style = self._styles.rich_style
        return self._rich_style

    def __getattr__(self, name: str) -> Any:
        return getattr(self._styles, name)


class SteadyDataTable(DataTable):
    """DataTable that re-renders only what changed: on a switch back, on a cell update."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown_size: Size | None = None
        self._styled_theme: str | None = None
        self._frame_style: Style | None = None
        self._frame_components: dict[tuple[str, ...], _FrameStyles] | None = None
        #: DataTable's internals this class relies on are there (else: DataTable's ways).
        self._steady = all(hasattr(self, name) for name in _INTERNALS)

    def notify_style_update(self) -> None:
        theme = self.app.theme
        if theme != self._styled_theme or not self._steady:
            self._styled_theme = theme
            super().notify_style_update()
            return
        super(DataTable, self).notify_style_update()
        self._get_styles_to_render_cell.cache_clear()  # not keyed on focus: always rebuilt
        self._forget_rows({self._cursor_row_key()})
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        """DataTable keys every render cache on its pseudo-classes, focus included, so a
        view switch (focus in) re-rendered every cell. Here focus is left out of the keys:
        the app's CSS gives a focused table no tint of its own, so focus changes only the
        cursor row, whose caches :meth:`notify_style_update` drops."""
        if not self._steady:
            return super().render_lines(crop)
        self._pseudo_class_state = self.get_pseudo_class_state()._replace(focus=False)
        self._frame_style = self.rich_style
        self._frame_components = {}
        try:
            return super(DataTable, self).render_lines(crop)
        finally:
            self._frame_style = self._frame_components = None

    @property
    def rich_style(self) -> Style:
        """The table's style, once per frame: DOMNode's walks the styles of every ancestor,
        and DataTable asks for it on every line it draws."""
        return self._frame_style or super().rich_style

    def get_component_styles(self, *names: str) -> Any:
        """A component's styles, once per frame: DataTable asks for the header's (and the
        zebra rows') on every line it draws, and each ``rich_style`` of them walks the
        styles of every ancestor (a fifth of a table line's time)."""
        frame = self._frame_components
        if frame is None:
            return super().get_component_styles(*names)
        styles = frame.get(names)
        if styles is None:
            styles = frame[names] = _FrameStyles(super().get_component_styles(*names))
        return styles

    def sort_by_key(self, key: Callable[[str], Any], reverse: bool = False) -> None:
        """Order the rows by ``key(row key)``, rows of equal keys by row key, ascending
        either way. ``DataTable.sort`` hands its key function the cells, which may be
        shortened (a PV name cut to fit) or not comparable (``Text``)."""
        ordered = tie_by_name(self.rows, lambda k: k.value, lambda k: key(k.value), reverse)
        if self._steady:
            self._row_locations = type(self._row_locations)({k: i for i, k in enumerate(ordered)})
            self._update_count += 1
            self.refresh()
            return
        rows = [(k, self.get_row(k), self.rows[k].height) for k in ordered]
        self.clear()
        for k, cells, height in rows:
            self.add_row(*cells, key=k.value, height=height)

    def _cursor_row_key(self) -> Any:
        try:
            return self._row_locations.get_key(self.cursor_coordinate.row)
        except (AttributeError, KeyError, LookupError):
            return None

    def _forget_rows(self, keys: set[Any], cells: set[tuple] | None = None) -> set[int | None]:
        """Drop the render cache entries of these rows (by row key); of their cells only
        ``cells`` ((row key, column key) pairs) when given. Returns the rows' indexes."""
        for key in [k for k in self._row_render_cache.keys() if k[0] in keys]:  # (row key, ...)
            self._row_render_cache.discard(key)
        cell_cache = self._cell_render_cache  # (row key, column key, ...)
        drop = [k for k in cell_cache.keys() if (k[:2] in cells if cells is not None else k[0] in keys)]
        for key in drop:
            cell_cache.discard(key)
        rows = self._row_locations
        indexes = {rows.get(k) for k in keys}
        by_index = self._row_renderable_cache
        for key in [k for k in by_index.keys() if k[1] in indexes]:  # (count, row index)
            by_index.discard(key)
        # screen lines are cached by table line; the lines of other rows stay (row order
        # only changes with sort/add/remove, which bump the counter every key holds)
        if self._total_row_height == self.row_count:  # one line a row: line = header + index
            header = self.header_height if self.show_header else 0
            lines = {header + i for i in indexes if i is not None}
            stale = [k for k in self._line_cache.keys() if k[0] in lines]
        else:
            offsets = self._get_offsets
            stale = [k for k in self._line_cache.keys() if _row_at(offsets, k[0]) in keys]
        for key in stale:
            self._line_cache.discard(key)
        return indexes

    def set_cells(self, changes: dict[str, dict[str, Any]]) -> None:
        """Write changed cells, re-rendering only those cells and their rows' lines.

        ``DataTable.update_cell`` bumps a table-wide counter that every render cache is
        keyed on, so one changed cell re-renders every visible cell (~50 ms for a 160x48
        table, on the thread the servers share the GIL with). Here the cells are written
        and only the cache entries of the changed cells and rows are dropped (a live value
        changes two cells of eleven). Falls back to ``update_cell`` if a Textual release
        renames those internals.
        """
        if not self._steady:
            for name, cells in changes.items():
                for column, value in cells.items():
                    self.update_cell(name, column, value)
            return
        data = self._data
        keys = {RowKey(name) for name in changes}
        cells_changed = set()
        for name, cells in changes.items():
            row_key = RowKey(name)
            row = data[row_key]
            for column, value in cells.items():
                column_key = ColumnKey(column)
                row[column_key] = value
                cells_changed.add((row_key, column_key))
        self._refresh_rows(self._forget_rows(keys, cells_changed))

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
        goes through DataTable, as everything does if a Textual release renamed the
        internals (``_INTERNALS``)."""
        if not self._steady:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return self._render_plain_cell(row_index, column_index, base_style, width, cursor, hover)

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

    def _update_dimensions(self, new_rows: Any) -> None:
        """DataTable measures new rows when idle, after they may have been drawn at the old
        column widths; its caches are not keyed on those widths. When they change, every
        cached cell, row and line goes (a filter typed while values update left rows
        drawn at the labels' widths, and only their changing cells were drawn again).
        When every column has a fixed width there is nothing to measure: only the
        scrollable size is set (DataTable measured every cell of 10,000 new rows)."""
        columns = self.columns.values()
        if self._steady and columns and not any(c.auto_width for c in columns):
            width = sum(c.get_render_width(self) for c in columns) + self._row_label_column_width
            header = self.header_height if self.show_header else 0
            self.virtual_size = Size(width, self._total_row_height + header)
            return
        before = [column.get_render_width(self) for column in self.columns.values()]
        super()._update_dimensions(new_rows)
        if self._steady and before != [c.get_render_width(self) for c in self.columns.values()]:
            self._update_count += 1
            self.refresh()

    def _on_resize(self, event: Resize) -> None:
        if event.size == self._shown_size:
            event.prevent_default()  # DataTable's handler would invalidate every cache
        self._shown_size = event.size
        self.on_shown_again()

    def on_shown_again(self) -> None:
        """Hook for subclasses: the table was resized or shown again."""
