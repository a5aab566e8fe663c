"""Console behaviour over frozen data (:class:`~pvconsole.tui.fixed.FixedSource`): what an
operator sees at 80x24, after a theme switch, in the command palette and the put log."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timezone

from textual.geometry import Region

from pvconsole import typemap
from pvconsole.tui import fmt
from pvconsole.tui.app import PvConsoleApp
from pvconsole.tui.commands import ConsoleCommands
from pvconsole.tui.fixed import FixedSource
from test_tui_snapshots import fixed_log
from pvconsole.tui.screens.details import DetailsScreen
from pvconsole.tui.screens.record import RecordScreen
from pvconsole.tui.widgets.keybar import KeyBar
from pvconsole.tui.widgets.pvtable import SORT_KEYS, SORTABLE
from pvconsole.tui.widgets.serverlog import ServerLog


def make_app() -> PvConsoleApp:
    ticks = itertools.count()
    return PvConsoleApp(FixedSource(), live=False, clock=lambda: float(next(ticks)),
                        tz=timezone.utc)


def run(test, size=(80, 24)) -> None:
    async def main() -> None:
        app = make_app()
        async with app.run_test(size=size) as pilot:
            while not app.loaded:
                await pilot.pause()
            await test(app, pilot)
    asyncio.run(main())


async def open_details(app: PvConsoleApp, pilot, name: str) -> DetailsScreen:
    await pilot.press("j", *name, "enter", "enter")
    await pilot.pause()
    assert isinstance(app.screen, DetailsScreen) and app.screen.state.name.endswith(name)
    return app.screen


async def run_command(pilot, command: str) -> None:
    """Type ``command`` into the command palette and run the best match, as an operator."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*command)
    await pilot.pause(0.3)
    await pilot.press("enter")
    await pilot.pause()


def shown_text(widget) -> str:
    width, height = widget.size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


def test_details_at_80_columns_show_every_served_value_in_full() -> None:
    """A DataTable cut the 'served' column to 5 characters at 80 columns ('NTSca')."""
    async def check(app, pilot) -> None:
        screen = await open_details(app, pilot, "VOLT")
        text = shown_text(screen.query_one("#mapping"))
        words = set(text.split())
        assert "…" not in text  # long cells wrap, none is cut
        for field, definition, pva_field, served in screen.mapping:
            assert set(served.split()) <= words, (field, served)
    run(check)


def test_details_follow_a_theme_switch() -> None:
    """The alarm colours of the value are the theme's (they stayed dark until the PV changed)."""
    async def check(app, pilot) -> None:
        screen = await open_details(app, pilot, "MODE")
        severity = screen.state.severity
        assert severity == 2

        def value_style() -> str:
            table = screen.query_one("#pv-state").content
            return str(table.columns[1]._cells[0].style)

        assert value_style() == fmt.severity_style(severity, dark=True)
        await pilot.press("t")
        await pilot.pause()
        assert not app.current_theme.dark
        assert value_style() == fmt.severity_style(severity, dark=False)
    run(check)


def test_the_palette_offers_the_keys_of_every_view() -> None:
    """Sorting, marks, the put-log filter, the server-log follow and the details of the
    cursor PV were keys only."""
    async def check(app, pilot) -> None:
        await run_command(pilot, "sort by alarm")
        assert app.pv_view.table.sort_key == "sev"
        commands = {name: run for name, _, run in ConsoleCommands(app.screen)._actions()}
        commands["Mark every shown PV"]()
        await pilot.pause()
        assert len(app.pv_view.table.marked) == app.pv_view.table.row_count > 1
        commands["Unmark every PV"]()
        commands["Reverse the PV sort order"]()
        await pilot.pause()
        assert not app.pv_view.table.marked and app.pv_view.table.sort_reverse
        commands["Toggle following the server log"]()
        await pilot.pause()
        assert not app.main.query_one(ServerLog).auto_scroll
        commands["Filter the put log"]()
        await pilot.pause()
        assert app.focused is app.main.query_one("#put-filter")
        await pilot.press("escape", "1")
        commands["Details of the cursor PV"]()
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
    run(check, size=(160, 48))


def test_the_key_bar_follows_a_theme_switch_by_key() -> None:
    """'t' switches the theme; the key bar kept the dark theme's colours (its line was
    drawn and kept under the new theme before the new styles reached it)."""
    async def check(app, pilot) -> None:
        def key_colour():
            bar = app.screen.query_one(KeyBar)
            return list(bar.render_lines(Region(0, 0, bar.size.width, 1))[0])[0].style.bgcolor
        for _ in range(5):
            await pilot.pause(0.05)
        dark = key_colour()
        for keys in ("t", "2", "1"):
            await pilot.press(keys)
            for _ in range(5):
                await pilot.pause(0.05)
            assert not app.current_theme.dark and key_colour() != dark, keys
    run(check)


def run_over(source: FixedSource, test, size=(80, 24)) -> None:
    async def main() -> None:
        ticks = itertools.count()
        app = PvConsoleApp(source, live=False, clock=lambda: float(next(ticks)), tz=timezone.utc)
        async with app.run_test(size=size) as pilot:
            while not app.loaded:
                await pilot.pause()
            await test(app, pilot)
    asyncio.run(main())


LONG = "SR:X:VERY:LONG:PV:NAME:THAT:AN:80:COLUMN:TABLE:SHORTENS:IN:ITS:MIDDLE:POS"


def odd_source() -> FixedSource:
    """PVs whose names and values look like markup: a cut name, emoji codes, tags."""
    source = FixedSource()
    for prefix, reason in (("SR:X:", "VERY:LONG:PV:NAME:THAT:AN:80:COLUMN:TABLE:SHORTENS:IN:ITS:MIDDLE:POS"),
                           ("SR:A:", "MSG")):
        source._add("odd", typemap.spec_from_pvdb(prefix, reason, {"type": "string"}))
    msg = source.states["SR:A:MSG"]
    source.states["SR:A:MSG"] = msg._replace(value="[b]x :ok:", text="[b]x :ok:",
                                             severity=2)
    return source


def test_sorting_with_shortened_names_orders_by_the_whole_name() -> None:
    """At 80 columns the name cells hold shortened names; the sort looked PVs up by
    them: KeyError, and the console died with every IOC it hosted."""
    async def check(app, pilot) -> None:
        table = app.pv_view.table
        assert "…" in str(table.get_row(LONG)[1])  # shortened on screen
        for _ in SORTABLE:  # every column, then back to the name
            await pilot.press("s")
            await pilot.pause()
            order = table.visible_names()
            key = SORT_KEYS[table.sort_key]
            ties = [(key(app.states[a]) == key(app.states[b]), a < b) for a, b in zip(order, order[1:])]
            assert all(by_name for same, by_name in ties if same), table.sort_key  # ties by name
        await pilot.press("r")  # reversed: ties still by name, the arrow says which way
        await pilot.pause()
        order = table.visible_names()
        assert order == sorted(order, reverse=True) and table.sort_arrow == "▼"
    run_over(odd_source(), check)


def test_names_and_values_are_shown_as_they_are_not_as_markup() -> None:
    """'SR:A:MSG' showed as 'SR🅰MSG' and '[b]x :ok:' as 'x 🆗' (DataTable and
    Rich read a str cell as markup and emoji codes)."""
    async def check(app, pilot) -> None:
        app.pv_view.set_filter("SR:A:*")
        await pilot.pause()
        await pilot.pause()
        text = shown_text(app.pv_view.table)
        assert "SR:A:MSG" in text and "[b]x :ok:" in text
        screen = await open_details(app, pilot, "SR:A:MSG")
        assert "[b]x :ok:" in shown_text(screen.query_one("#pv-state"))
    run_over(odd_source(), check, size=(120, 30))


def test_control_characters_are_shown_not_acted_on() -> None:
    """A CA put of 'x\\x1b[2Jy' cleared the operator's screen (the table, the details, the
    put log and the server log wrote values and plugins' output to the terminal as they
    were); a newline hid the rest of a cell."""
    assert fmt.visible("a\x1b[2J\nb\t\x07\x9b\u202e") == "a\u241b[2J\u240ab\u2409\u2407\ufffd\ufffd"
    assert fmt.visible("Größe ☃ 全角") == "Größe ☃ 全角"
    assert fmt.cut("line1\nline2", 8) == "line1\u240al…"
    source = odd_source()
    msg = source.states["SR:A:MSG"]
    source.states["SR:A:MSG"] = msg._replace(value="x\x1b[2Jy\nz", text="x\x1b[2Jy\nz")

    async def check(app, pilot) -> None:
        app.pv_view.set_filter("SR:A:*")
        await pilot.pause()
        await pilot.pause()
        assert "x\u241b[2Jy\u240az" in shown_text(app.pv_view.table)
        screen = await open_details(app, pilot, "SR:A:MSG")
        shown = shown_text(screen.query_one("#pv-state"))
        assert "x\u241b[2Jy\u240az" in shown and "\x1b" not in shown
    run_over(source, check, size=(120, 30))


def test_escape_and_a_digit_read_together_are_alt_and_the_digit() -> None:
    """Textual reads Esc+3 as macOS's Option+3 ('£'): the view key was lost, or '£' typed
    into the filter."""
    from textual._xterm_parser import XTermParser
    from pvconsole.tui.app import esc_key_as_alt
    esc_key_as_alt()
    def keys(data: str) -> list:
        parser = XTermParser()
        return [(k.key, k.character) for k in [*parser.feed(data), *parser.feed("")]]
    assert keys("\x1b3") == [("alt+3", "3")]
    assert keys("£") == [("pound_sign", "£")]  # typed: itself


def test_the_screenshot_notice_names_the_file_without_markup(tmp_path) -> None:
    """Textual's notice is markup ('[$text-success]'), shown as it was."""
    async def check(app, pilot) -> None:
        app.deliver_screenshot(path=str(tmp_path), filename="shot.svg")
        for _ in range(50):
            await pilot.pause()
            if app._notifications:
                break
        texts = [n.message for n in app._notifications]
        assert texts == [f"Saved screenshot to {tmp_path / 'shot.svg'}"]
    run(check)


def test_a_filter_or_a_jump_that_finds_nothing_says_so() -> None:
    async def check(app, pilot) -> None:
        app.pv_view.set_filter("NOPE:*")
        await pilot.pause()
        assert "no match (Esc clears)" in str(app.pv_view.query_one("#pv-info").content)
        app.pv_view.set_filter("")
        await pilot.press("j", *"XYZZY", "enter")
        await pilot.pause()
        assert any("no PV name starts with or contains 'XYZZY'" in str(n.message)
                   for n in app._notifications)
    run(check)


def test_a_status_line_too_narrow_drops_what_matters_least() -> None:
    from pvconsole.tui.widgets.header import fitted
    parts = [(" pvconsole ", "", 0), (" 2 plugin(s) failed (4: log) ", "", 0),
             ("  CA 127.0.0.1:5064", "", 1), ("  PVA 127.0.0.1:5075", "", 1),
             ("  12 PVs, 10 on PVA", "", 2), ("  puts 4", "", 4), ("  up 1h02m", "", 3)]
    assert fitted(parts, 0).plain == "".join(p[0] for p in parts)
    shown = fitted(parts, 80).plain
    assert len(shown) <= 80 and "failed" in shown and "PVA 127.0.0.1:5075" in shown
    assert "puts" not in shown  # the highest rank went first


def test_a_cut_array_summary_keeps_its_bracket_and_count() -> None:
    assert fmt.cut("[-0.75, -0.43, -0.05, 0.31, 0.5, …] (16)", 28) == "[-0.75, -0.43, -0.05…] (16)"
    assert fmt.cut("[30, 29, 28, 27, …] (8)", 20) == "[30, 29, 28…] (8)"  # whole items
    assert fmt.cut("[1, 2] (2)", 20) == "[1, 2] (2)"
    assert fmt.cut("a long plain text", 10) == "a long pl…"
    assert fmt.cut("全角文字全角文字", 10) == "全角文字…"  # 9 cells: the ellipsis shows
    assert fmt.cut("全角文字全", 10) == "全角文字全"  # 10 cells fit


def test_escape_and_a_key_read_together_are_two_keys() -> None:
    """Esc then 2 typed fast reach the console as one alt+2 (xterm's meta prefix): it
    was dropped, neither clearing the put log's filter nor switching views."""
    from textual import events
    from pvconsole.tui.app import unalt
    assert (unalt("alt+2"), unalt("alt+shift+j"), unalt("alt+slash")) == ("2", "J", "slash")

    async def check(app, pilot) -> None:
        await pilot.press("3")
        await pilot.pause()
        view = app.main.query_one("PutLogView")
        view.set_filter("PSU")
        view.table.focus()
        await pilot.pause()
        app.post_message(events.Key("alt+2", "2"))
        await pilot.pause()
        await pilot.pause()
        assert view.pattern == "" and app.main.query_one("ContentSwitcher").current == "connections"
    run(check)


def test_a_jump_puts_the_pv_in_the_middle_of_the_table() -> None:
    async def check(app, pilot) -> None:
        table = app.pv_view.table
        await pilot.press("j", *"SIM:00150", "enter")
        await pilot.pause()
        await pilot.pause()
        row = table.get_row_index("SIM:00150")
        assert table.cursor_row == row
        middle = table.scroll_y + table.size.height // 2
        assert abs(middle - row) <= 2, (table.scroll_y, row, table.size.height)
    run_over(FixedSource(extra=300), check)


def test_a_value_takes_its_alarm_colour_when_only_the_alarm_changes() -> None:
    """A PV back to NO_ALARM with the same value text kept the INVALID colour (and one
    that went into alarm stayed uncoloured): Rich's Text compares characters only."""
    async def check(app, pilot) -> None:
        table = app.pv_view.table
        name = "PSU:CURR"  # MINOR in the fixed data
        before = table.get_row(name)[2]
        for severity in (0, 3, 0):
            state = app.states[name]._replace(severity=severity)
            table.apply([state])
            await pilot.pause()
            cell = table.get_row(name)[2]
            assert cell.plain == before.plain
            assert cell.style == fmt.value_text(state.text, severity, app.current_theme.dark,
                                                table.value_width).style, severity
    run(check)


def test_a_new_sort_starts_in_its_own_direction_at_the_top() -> None:
    """After ``r``, the next column sorted (alarm: worst first) listed the PVs without
    alarm first, and the view stayed on the cursor's row; Home went sideways only."""
    async def check(app, pilot) -> None:
        table = app.pv_view.table
        await pilot.press("end", "r")
        await pilot.pause()
        while table.sort_key != "sev":
            await pilot.press("s")
            await pilot.pause()
        assert table.sort_arrow == "▼" and table.cursor_row == 0
        top = app.states[table.visible_names()[0]]
        assert top.severity == max(s.severity for s in app.states.values())
        await pilot.press("end", "home")
        await pilot.pause()
        assert table.cursor_row == 0 and table.scroll_y == 0
    run(check)


def test_the_mapping_says_an_alarm_limit_left_at_zero_is_unset() -> None:
    """'lolo 0 -> valueAlarm.lowAlarmLimit nan' read as a limit at 0 (pcaspy: unset)."""
    from pvconsole.tui.mapping import mapping_rows
    spec = typemap.spec_from_pvdb("X:", "V", {"type": "float", "hihi": 90})
    rows = {r[0]: r[1] for r in mapping_rows(spec, spec.meta, "1.0", None)}
    assert rows["lolo"] == "0 (unset)" and rows["hihi"] == "90"


def test_a_wide_table_says_why_a_pv_is_in_alarm() -> None:
    """'PSU:MODE … INVALID' after a refused put looked like a hardware fault: with room to
    spare the alarm names its condition; at 80 columns the severity alone."""
    async def check(app, pilot) -> None:
        table = app.pv_view.table
        assert table.get_row("PSU:CURR")[3].plain.strip() == ("MINOR HIGH" if wide else "MINOR")
    for wide, size in ((True, (160, 48)), (False, (80, 24))):
        run(check, size=size)


def test_puts_of_earlier_runs_are_dimmed() -> None:
    """After a restart the put log listed this morning's puts as tonight's (same day: no
    date): those from before the servers started are dimmed."""
    from pvconsole.tui.fixed import FIXED_NOW
    from pvconsole.tui.widgets.putlog import PutLogView

    async def check(app, pilot) -> None:
        app.poll()  # (as the timer would)
        await pilot.press("3")
        await pilot.pause()
        view = app.main.query_one(PutLogView)
        view.set_started(FIXED_NOW - 150)  # the two newest puts are of this run
        await pilot.pause()
        table = view.table
        styles = [str(getattr(table.get_row_at(i)[0], "style", "")) for i in range(table.row_count)]
        assert styles[-2:] == ["", ""] and all(s == "dim" for s in styles[:-2]), styles
    run(check)


def test_the_rate_sparklines_start_from_zero() -> None:
    """Scaled from the window's lowest rate, a steady 4/s drew as '▁▁▁█▁▁▁▁' and a rate
    halved looked like none."""
    from textual.widgets import Sparkline

    async def check(app, pilot) -> None:
        status = app.status
        status.ca_rates.clear()
        status.ca_rates.extend([4.0] * 16)
        app.sample_stats()
        await pilot.pause()
        spark = app.query_one("#ca-spark", Sparkline)
        assert min(spark.data) == 0.0 and max(spark.data) == max(status.ca_rates)
    run(check)


def test_the_server_log_wraps_again_at_a_new_width() -> None:
    """Lines wrap as they are written: after the terminal went from 160 to 80 columns the
    log's lines were cut at 80 (here: from 80 to 60)."""
    async def check(app, pilot) -> None:
        app.poll()
        await pilot.press("4")
        await pilot.pause()
        log_view = app.main.query_one(ServerLog)
        assert log_view.lines and max(s.cell_length for s in log_view.lines) > 60
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        await pilot.pause()
        assert max(s.cell_length for s in log_view.lines) <= log_view.size.width

    async def main() -> None:
        app = PvConsoleApp(FixedSource(), log_buffer=fixed_log(), live=False, tz=timezone.utc)
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.loaded:
                await pilot.pause()
            await check(app, pilot)
    asyncio.run(main())


def test_enter_on_a_client_lists_all_its_channels() -> None:
    """The Channels column shows 30 characters of them; Enter did nothing."""
    from pvconsole.tui.fixed import FIXED_CLIENTS

    async def check(app, pilot) -> None:
        await pilot.press("2")
        await pilot.pause()
        table = app.main.query_one("#clients")
        table.focus()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RecordScreen)
        channels = next(v for k, v in app.screen.fields if k.startswith("Channels"))
        assert all(ch in channels for ch in FIXED_CLIENTS[0]["channels"]), channels
        await pilot.press("q")  # closes it (q is not quit there)
        await pilot.pause()
        assert app.screen is app.main and app.is_running
    run(check, size=(160, 48))


def test_the_palettes_exposure_toggle_off_the_pv_table_changes_nothing_unseen() -> None:
    """From another view the palette's toggle turned off the table's cursor PV, which the
    operator could not see, without asking: it now shows the table and says what to do."""
    async def check(app, pilot) -> None:
        asked: list = []
        app.request_exposure = lambda names, mode: asked.append((names, mode))
        for view_key, expected in (("4", 0), ("1", 1)):
            await pilot.press(view_key)
            await pilot.pause()
            await run_command(pilot, "toggle pva exposure of marked")
            assert len(asked) == expected
            assert app.current_view == "pvs"
    run(check)


def test_q_on_the_details_screen_goes_back() -> None:
    """q there stopped every IOC (without asking when no client was connected)."""
    async def check(app, pilot) -> None:
        await open_details(app, pilot, "PSU:CNT")
        await pilot.press("q")
        await pilot.pause()
        assert app.screen is app.main and app.is_running
    run(check)


def test_enter_on_a_pv_of_the_connections_view_opens_its_details() -> None:
    """The view opens with the PVs-with-clients table focused, where Enter did nothing."""
    async def check(app, pilot) -> None:
        await pilot.press("2")
        await pilot.pause()
        table = app.main.query_one("#pv-clients")
        assert app.focused is table and table.row_count
        first = str(table.coordinate_to_cell_key((0, 0)).row_key.value)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen) and app.screen.state.name == first
    run(check)


def test_question_mark_and_f1_show_and_hide_the_keys() -> None:
    """? and F1 did nothing, and the palette had no "help"."""
    async def check(app, pilot) -> None:
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen.query("HelpPanel")
            await pilot.press(key)
            await pilot.pause()
            assert not app.screen.query("HelpPanel")
        names = [name for name, _, _ in ConsoleCommands(app.screen)._actions()]
        assert any(name.lower().startswith("help") for name in names)
        await pilot.press("slash", "P", "S", "U", "question_mark")  # a glob's ? is typed
        await pilot.pause()
        assert app.focused.value == "PSU?" and not app.screen.query("HelpPanel")
    run(check)
