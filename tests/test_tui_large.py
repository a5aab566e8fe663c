"""The console with many PVs: what it draws must stay right where it skips work.

The PV table updates only on-screen rows (off-screen changes wait until they scroll into
view) and re-renders only changed rows; the connections view lists a bounded number of
PVs. These tests read the rendered lines, not the widgets' data, so a Textual change that
breaks the row-level cache handling shows up here.
"""

from __future__ import annotations

import asyncio
from datetime import timezone

from textual.geometry import Region

from pvconsole.tui.app import PvConsoleApp
from pvconsole.tui.fixed import FixedSource
from pvconsole.tui.widgets import connections
from pvconsole.tui.widgets.keybar import KeyBar
from pvconsole.tui.widgets.pvtable import PVTable


def rendered(widget) -> str:
    """The text the widget draws now (what a terminal would show)."""
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "\n".join(strip.text for strip in lines)


def changed(source: FixedSource, name: str, value: float) -> None:
    s = source.states[name]
    source.push(s._replace(value=value, text=f"{value:.3f}", timestamp=s.timestamp + 1))


def run(test):
    def wrapper():
        asyncio.run(test())
    wrapper.__name__ = test.__name__
    return wrapper


def console(extra: int) -> tuple[FixedSource, PvConsoleApp]:
    """A console over ``extra`` synthetic PVs besides the fixed ones; no timers (the
    test calls ``app.poll()`` where the live console's timer would)."""
    source = FixedSource(extra=extra)
    return source, PvConsoleApp(source, live=False, tz=timezone.utc)


@run
async def test_only_visible_rows_update_and_scrolled_rows_catch_up() -> None:
    source, app = console(2000)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.main.query_one(PVTable)
        names = table.visible_names()
        top, bottom = names[0], names[-1]
        before = rendered(table)
        changed(source, top, 111.125)
        changed(source, bottom, 222.375)
        app.poll()
        await pilot.pause()
        shown = rendered(table)
        assert "111.125" in shown and shown != before
        assert "222.375" not in shown
        assert bottom in table._pending  # waits until it is on screen
        table.move_cursor(row=len(names) - 1)  # as ctrl+end / page down would
        await pilot.pause()
        assert table.current_name() == bottom
        assert "222.375" in rendered(table)
        assert bottom not in table._pending
        table.move_cursor(row=0)
        await pilot.pause()
        assert "111.125" in rendered(table)  # the unchanged cache of the top row is right


@run
async def test_switching_back_to_the_table_shows_changes_made_while_away() -> None:
    source, app = console(300)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        first = app.main.query_one(PVTable).visible_names()[0]
        await pilot.press("2")
        changed(source, first, 333.5)
        app.poll()
        await pilot.pause()
        await pilot.press("1")
        await pilot.pause()
        assert "333.500" in rendered(app.main.query_one(PVTable))


@run
async def test_connections_lists_a_bounded_number_of_pvs() -> None:
    limit = connections.PV_ROWS_MAX
    connections.PV_ROWS_MAX = 3
    try:
        source, app = console(0)
        monitored = sorted(n for n, s in source.states.items() if s.ca_monitored or s.pva_clients)
        assert len(monitored) > 3
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("2")
            await pilot.pause()
            view = app.main.query_one(connections.ConnectionsView)
            table = view.query_one("#pv-clients")
            assert [str(r.key.value) for r in table.ordered_rows] == monitored[:3]
            summary = str(view.query_one("#conn-summary").render())
            assert f"first 3 of {len(monitored)}" in summary
            first = monitored[0]
            channels = sum(s.pva_clients for s in source.states.values())
            assert f"{channels} channel(s)" in summary
            before = source.states[first].pva_clients
            source.push(source.states[first]._replace(exposure="ro", pva_clients=7))
            app.poll()  # a live change reaches the listed row (row-level re-render)
            await pilot.pause()
            row = next(line for line in rendered(table).splitlines() if line.strip().startswith(first))
            assert "7" in row and "ro" in row
            summary = str(view.query_one("#conn-summary").render())  # running totals
            assert f"{channels - before + 7} channel(s)" in summary
    finally:
        connections.PV_ROWS_MAX = limit


def test_connections_view_is_filled_before_it_is_first_shown(monkeypatch) -> None:
    """Its first show walks every PV: done once, hidden, while nobody types."""
    from pvconsole.tui import app as app_module
    monkeypatch.setattr(app_module, "WARM_AFTER", 0.2)

    async def body() -> None:
        source = FixedSource(extra=200)
        app = PvConsoleApp(source, tz=timezone.utc)
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.main.query_one(connections.ConnectionsView).query_one("#pv-clients")
            for _ in range(100):
                await pilot.pause(0.05)
                if table.row_count:
                    break
            assert table.row_count > 0 and app.current_view == "pvs"
    asyncio.run(body())


@run
async def test_hidden_connections_view_catches_up_when_many_clients_changed() -> None:
    """Its next show would walk every changed PV on the key press: done when quiet."""
    source, app = console(40)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app._clients_ready(source.clients(), None)  # a report at hand (shown hidden once)
        view = app.main.query_one(connections.ConnectionsView)
        quiet = [n for n, s in source.states.items() if not (s.ca_monitored or s.pva_clients)]
        from pvconsole.tui import app as app_module
        app_module.CATCH_UP_PENDING, saved = 5, app_module.CATCH_UP_PENDING
        try:
            for name in quiet[:3]:  # a few: left for the next show
                source.push(source.states[name]._replace(pva_clients=1))
            app.gc.last_input = -1e9
            app.poll()
            assert view.pending == 3
            for name in quiet[3:10]:
                source.push(source.states[name]._replace(pva_clients=1))
            app.gc.input_seen()  # someone is typing: not now
            app.poll()
            assert view.pending == 10
            app.gc.last_input = -1e9
            app.poll()
            assert view.pending == 0 and app.current_view == "pvs"
            table = view.query_one("#pv-clients")
            assert str(quiet[9]) in {str(r.key.value) for r in table.ordered_rows}
        finally:
            app_module.CATCH_UP_PENDING = saved


@run
async def test_command_palette_switches_views_and_theme_restyles_the_table() -> None:
    source, app = console(0)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p", *"show connections")
        for _ in range(40):  # the palette searches in a task: wait for its hits
            await pilot.pause(0.05)
            if "Show connections" in rendered(app.screen):
                break
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_view == "connections"
        await pilot.press("1")
        await pilot.pause()
        table = app.main.query_one(PVTable)
        dark = app.theme
        await pilot.press("t")  # theme toggle re-styles every cell; the text stays right
        await pilot.pause()
        assert app.theme != dark and not app.current_theme.dark
        assert "PSU:VOLT" in rendered(table) and "12.503" in rendered(table)


@run
async def test_key_bar_follows_the_view() -> None:
    _, app = console(0)
    async with app.run_test(size=(160, 30)) as pilot:
        bars = []
        for key in ("1", "3", "1"):  # PV table, put log, PV table again
            await pilot.press(key)
            await pilot.pause()
            bars.append(rendered(app.main.query_one(KeyBar)))
    on_pvs, on_puts, back = bars
    assert "PVA on/off" in on_pvs and "palette" in on_pvs
    assert "Follow" in on_puts and "PVA on/off" not in on_puts
    assert back == on_pvs


@run
async def test_connections_follow_a_new_client_report_and_changes_made_while_hidden() -> None:
    source, app = console(50)
    quiet = next(n for n, s in sorted(source.states.items())
                 if not (s.ca_monitored or s.pva_clients) and n.startswith("SIM"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        table = app.main.query_one("#pv-clients")
        assert quiet not in rendered(table)
        report = [*source.clients(), {"protocol": "ca", "peer": "127.0.0.1:5", "user": "op",
                                      "host": "h", "channels": [quiet], "monitors": 1, "since": 0}]
        app._clients_ready(report, connections.client_counts(report))  # the worker's hand-over
        await pilot.pause()
        row = next(line for line in rendered(table).splitlines() if quiet in line)
        assert row.split()[1] == "1"  # its CA client count, from the report's counts
        await pilot.press("1")  # hidden: a change is noted, shown on the way back
        source.push(source.states[quiet]._replace(pva_clients=4))
        app.poll()
        await pilot.press("2")
        await pilot.pause()
        row = next(line for line in rendered(table).splitlines() if quiet in line)
        assert row.split()[1:3] == ["1", "4"]


@run
async def test_focus_redraws_the_cursor_row_only_and_it_shows_focus() -> None:
    """Focus is left out of the table's render caches (a view switch must not re-render
    every cell): the cursor row must still change with focus, the others must not."""
    _, app = console(0)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.main.query_one(PVTable)

        def lines() -> list[list]:
            region = Region(0, 0, table.size.width, table.size.height)
            return [list(strip) for strip in table.render_lines(region)]

        cursor_line = 1 + table.cursor_coordinate.row  # below the header
        focused = lines()
        await pilot.press("slash")  # the filter input takes focus
        await pilot.pause()
        assert not table.has_focus
        blurred = lines()
        assert blurred[cursor_line] != focused[cursor_line]  # the cursor shows the blur
        assert [l for i, l in enumerate(blurred) if i != cursor_line] == \
            [l for i, l in enumerate(focused) if i != cursor_line]
        await pilot.press("escape")
        await pilot.pause()
        assert table.has_focus
        assert lines() == focused


def test_columns_up_to_the_time_fit_80_columns_with_long_names():
    """A long IOC prefix (the console's own PVCONSOLE:<HOST>: PVs) must not push the time
    off an 80-column screen: the name is shortened in its middle instead."""
    from pvconsole.tui import fmt
    from pvconsole.tui.widgets.pvtable import (COLUMNS, MIN_VALUE_WIDTH, column_widths)
    widths = column_widths(80, names=len("PVCONSOLE:LI-RF-IOC03:EXPOSE:RESULT"), plugins=9,
                           pva_types=22)
    shown = [k for k, _, _ in COLUMNS][:[k for k, _, _ in COLUMNS].index("time") + 1]
    assert sum(widths[k] + 2 for k in shown) + 2 <= 80  # padding 1 each side, scrollbar 2
    assert widths["value"] >= MIN_VALUE_WIDTH and widths["name"] < 35
    cut = fmt.middle_cut("PVCONSOLE:LI-RF-IOC03:EXPOSE:RESULT", widths["name"])
    assert len(cut) == widths["name"] and cut.startswith("PVCON") and cut.endswith(":RESULT")
    wide = column_widths(160, names=35, plugins=9, pva_types=22)
    assert wide["name"] == 35  # room enough: the whole name
    huge = column_widths(200, names=94, plugins=9, pva_types=22)
    assert huge["name"] == 60 and huge["value"] > MIN_VALUE_WIDTH  # one odd name: shortened
