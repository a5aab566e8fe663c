"""SteadyDataTable draws plain cells itself: the segments must look exactly like
DataTable's own (Rich) rendering, for every kind of cell, row and cursor state."""

from __future__ import annotations

import asyncio
import types

from rich.segment import Segment
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from pvconsole.tui.widgets.steadytable import SteadyDataTable, plain_cell

CELLS = [
    "plain", "PSU:VOLT:SET", "12:34:56.789", "", None, "a name much longer than the column is",
    Text(" MAJOR ", style="bold white on red"), Text("12.500 V", style="yellow"),
    Text("on", style=""), Text("ünïcødé ✓"), Text("full width 漢字漢字漢字"),
    "[b]markup[/b]", "A:smile:B", Text.assemble(("two", "red"), ("spans", "blue")), 42, 3.5,
]


class One(App):
    def compose(self) -> ComposeResult:
        yield SteadyDataTable(id="steady", cursor_type="row", fixed_columns=1)

    def on_mount(self) -> None:
        for table in self.query(DataTable):
            table.add_column("A", width=12, key="a")
            table.add_column("B", width=8, key="b")
            for i, cell in enumerate(CELLS):
                table.add_row(cell, cell, key=f"r{i}")


def _styled_cells(lines: list[list[Segment]]) -> list[tuple[str, object]]:
    """One (char, style) per cell: equal for equal-looking output, however segmented."""
    return [(ch, seg.style) for line in lines for seg in line for ch in seg.text]


def test_plain_cells_render_like_datatable() -> None:
    async def check() -> None:
        app = One()
        async with app.run_test(size=(60, 40)) as pilot:
            await pilot.pause()
            table = app.query_one(SteadyDataTable)
            cache = table._cell_render_cache  # shared by both paths: emptied between them
            for focused in (True, False):
                table.can_focus = focused
                if not focused:
                    table.blur()
                    await pilot.pause()
                base = table.rich_style
                for row in range(len(CELLS)):
                    for column, width in ((0, 12), (1, 8)):
                        for cursor, hover in ((False, False), (True, False), (False, True)):
                            cache.clear()
                            ours = table._render_cell(row, column, base, width, cursor, hover)
                            cache.clear()
                            theirs = DataTable._render_cell(table, row, column, base, width, cursor, hover)
                            assert _styled_cells(ours) == _styled_cells(theirs), (CELLS[row], column, cursor)

    asyncio.run(check())


def test_which_cells_take_the_fast_path() -> None:
    assert plain_cell("PSU:VOLT") == ("PSU:VOLT", None)
    assert plain_cell(None) == ("", None)
    assert plain_cell(Text("x", style="red")) == ("x", "red")
    for odd in ("[b]x[/b]", "A:smile:B", "a\tb", Text.assemble(("a", "red"), ("b", "blue")), 1.5):
        assert plain_cell(odd) is None


class Many(App):
    def compose(self) -> ComposeResult:
        yield SteadyDataTable(id="steady", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(SteadyDataTable)
        table.add_column("Name", width=8, key="name")
        table.add_column("Value", width=8, key="value")
        for i in range(60):
            table.add_row(f"pv{i}", f"v{i}", key=f"pv{i}")


def _screen_text(table: SteadyDataTable) -> list[str]:
    return ["".join(seg.text for seg in strip).rstrip() for strip in table.render_lines(table.size.region)]


def test_a_changed_cell_is_redrawn_where_it_is_shown() -> None:
    """Only the changed rows' cached lines are dropped (found by their line number): the
    screen then reads as if the whole table had been drawn again."""
    async def check() -> None:
        app = Many()
        async with app.run_test(size=(40, 12)) as pilot:
            table = app.query_one(SteadyDataTable)
            await pilot.pause()
            table.scroll_to(y=20, animate=False)
            await pilot.pause()
            before = _screen_text(table)
            table.set_cells({"pv22": {"value": "NEW22"}, "pv5": {"value": "off-screen"}})
            await pilot.pause()
            after = _screen_text(table)
            changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
            assert len(changed) == 1 and "pv22" in after[changed[0]] and "NEW22" in after[changed[0]]
            table._clear_caches()  # drawn from nothing: the same screen
            table.refresh()
            assert _screen_text(table) == after
            assert table.get_cell("pv5", "value") == "off-screen"

    asyncio.run(check())


class Auto(App):
    def compose(self) -> ComposeResult:
        yield SteadyDataTable(cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(SteadyDataTable)
        table.add_column("PV", key="name")  # widths follow the rows, as the PV table's
        table.add_column("Value", key="value")
        table.add_row("a", "1", key="a")


def test_rows_drawn_before_their_widths_are_known_are_drawn_again():
    """Rows added and drawn before the table measured them (a filter typed while values
    update) are drawn at the first, narrow widths; when the widths follow, the table's
    virtual size changes and every cached cell must go, though its size stayed."""
    async def check() -> None:
        app = Auto()
        async with app.run_test(size=(60, 12)) as pilot:
            table = app.query_one(SteadyDataTable)
            await pilot.pause()
            table.clear()
            for column in table.columns.values():
                column.content_width = column.label.cell_len
            table.add_row("pv-with-a-long-name", "12.5 V", key="late")
            _screen_text(table)  # drawn before the idle pass measures the new row
            await pilot.pause()
            await pilot.pause()
            assert any("pv-with-a-long-name  12.5 V" in line for line in _screen_text(table))

    asyncio.run(check())


class Striped(App):
    def compose(self) -> ComposeResult:
        yield SteadyDataTable(zebra_stripes=True, fixed_rows=1)

    def on_mount(self) -> None:
        table = self.query_one(SteadyDataTable)
        table.add_column("PV", width=10, key="name")
        table.add_column("Value", width=8, key="value")
        for i in range(12):
            table.add_row(f"pv{i}", str(i), key=f"pv{i}")


def test_header_fixed_and_zebra_rows_are_styled_as_without_the_frame_cache() -> None:
    """The header, fixed and zebra rows' styles are looked up once per frame, not once per
    line: the lines must be those drawn with a lookup per line, after a theme change too."""
    async def check() -> None:
        app = Striped()
        async with app.run_test(size=(40, 20)) as pilot:
            table = app.query_one(SteadyDataTable)
            for theme in ("textual-dark", "textual-light"):
                app.theme = theme
                await pilot.pause()
                drawn = []
                for per_line in (False, True):
                    if per_line:  # DataTable's own lookup, every time it is asked
                        table.get_component_styles = types.MethodType(DataTable.get_component_styles, table)
                    table._clear_caches()
                    drawn.append(_styled_cells([list(s) for s in table.render_lines(table.size.region)]))
                del table.get_component_styles
                assert drawn[0] == drawn[1], theme
                assert len({style for _, style in drawn[0]}) > 3  # header, fixed, odd, even rows
                assert table._frame_components is None  # nothing held between frames

    asyncio.run(check())
