"""The console driven through Pilot against a real engine on loopback ports.

Each test gets its own engine (one per process at a time) on free ports and checks what
an operator would: the table is live, exposure toggles reach real PVA clients, puts show up
in the put log, filters, sorting and the details screen work by keyboard alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path
from typing import Callable

import pytest
from textual import events
from p4p.client.thread import Context, TimeoutError as PvaTimeout

from pvconsole.engine import Engine
from pvconsole.tui.app import PvConsoleApp
from pvconsole.tui.logbuffer import LogBuffer
from pvconsole.loopback import loopback_config
from pvconsole.tui.screens.confirm import ConfirmScreen
from pvconsole.tui.screens.details import DetailsScreen
from pvconsole.tui.screens.record import RecordScreen
from pvconsole.tui.widgets import pvtable
from pvconsole.tui.widgets.pvtable import PVTable

PSU = str(Path(__file__).resolve().parent.parent / "ioc_plugins" / "psu.py")
WAIT = 10.0  # seconds any condition may take on a slow CI machine
PVXS_SEARCH_CAP = 30.0  # longest interval between a pvxs client's searches for a lost PV


@pytest.fixture
def engine(tmp_path: Path):
    eng = Engine(loopback_config([PSU], tmp_path / "state"))
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture
def pva(engine: Engine):
    ctx = Context("pva", conf=engine.pva_client_conf(), useenv=False)
    try:
        yield ctx
    finally:
        ctx.close()


async def until(pilot, cond: Callable[[], object], timeout: float = WAIT, what: str = "") -> None:
    """Let the app run until ``cond()`` is true (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


def sync(test):
    """Run an async test body on a fresh event loop (no async pytest plugin needed)."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))
    return wrapper


def make_app(engine: Engine, **kw) -> PvConsoleApp:
    return PvConsoleApp(engine, refresh=0.05, stats_interval=0.2, **kw)


def table(app: PvConsoleApp) -> PVTable:
    return app.main.query_one(PVTable)


async def goto(pilot, app: PvConsoleApp, name: str) -> None:
    """Jump to a PV by typing (the end of) its name, as an operator would."""
    await pilot.press("j", *name.removeprefix("PSU:"), "enter")
    await until(pilot, lambda: table(app).current_name() == name, what=f"cursor on {name}")


@sync
async def test_table_lists_every_pv_and_is_live(engine: Engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: table(app).row_count == len(engine.entries), what="all rows")
        assert set(table(app).visible_names()) == set(engine.entries)
        first = app.states["PSU:CNT"].value
        await until(pilot, lambda: app.states["PSU:CNT"].value != first, what="CNT to count")
        await until(pilot, lambda: str(table(app).get_cell("PSU:CNT", "value")) ==
                    app.states["PSU:CNT"].text, what="CNT cell to follow")
        assert str(table(app).get_cell("PSU:SECRET", "exp")) == "off"


@sync
async def test_toggle_exposure_reaches_pva_clients(engine: Engine, pva: Context) -> None:
    assert pva.get("PSU:MSG", timeout=5) == "ready"
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.states["PSU:MSG"].pva_clients > 0, what="PVA client count")
        await goto(pilot, app, "PSU:MSG")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await until(pilot, lambda: engine.entry("PSU:MSG").exposure == "off", what="PVA off")
        await until(pilot, lambda: str(table(app).get_cell("PSU:MSG", "exp")) == "off", what="cell")
        with pytest.raises(PvaTimeout):
            pva.get("PSU:MSG", timeout=1.0)
        await pilot.press("e")  # back on: no client is connected, so no question
        await until(pilot, lambda: engine.entry("PSU:MSG").exposure == "on", what="PVA on")
        # the same client finds it again on its own search schedule: pvxs re-searches a lost
        # channel 1 s, 2 s, 3 s ... apart (capped at 30 s), so allow one full cap interval
        assert pva.get("PSU:MSG", timeout=PVXS_SEARCH_CAP + WAIT) == "ready"


@sync
async def test_the_question_for_marked_pvs_counts_those_already_off(engine: Engine,
                                                                    pva: Context) -> None:
    assert pva.get("PSU:MSG", timeout=5) == "ready"
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.states["PSU:MSG"].pva_clients > 0, what="PVA client count")
        for name in ("PSU:MSG", "PSU:SECRET"):  # PSU:SECRET: off as its pvdb has it
            await goto(pilot, app, name)
            await pilot.press("space")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        assert "Setting PVA off for 1 PV(s) (1 more marked: already PVA off)" in app.screen.question
        await pilot.press("n")


@sync
async def test_off_and_on_again_restores_what_the_pvdb_defines(engine: Engine) -> None:
    """`e` twice on a read-only PV leaves it read-only (not writable over PVA); a PV the
    pvdb hides comes on when the operator asks."""
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: table(app).row_count > 0, what="rows")
        assert engine.entry("PSU:HIST").exposure == "ro"
        await goto(pilot, app, "PSU:HIST")
        await pilot.press("e")
        await until(pilot, lambda: app.states["PSU:HIST"].exposure == "off", what="PVA off")
        await pilot.press("e")
        await until(pilot, lambda: app.states["PSU:HIST"].exposure == "ro", what="read-only again")
        assert engine.entry("PSU:SECRET").exposure == "off"
        await goto(pilot, app, "PSU:SECRET")
        await pilot.press("e")
        await until(pilot, lambda: engine.entry("PSU:SECRET").exposure == "on", what="PVA on")


@sync
async def test_q_asks_before_it_stops_ioc_with_clients(engine: Engine, pva: Context) -> None:
    pva.get("PSU:VOLT", timeout=5)  # a PVA client with a channel open
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.states["PSU:VOLT"].pva_clients > 0, what="PVA client count")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("q")  # not an answer
        await pilot.press("n")
        await until(pilot, lambda: app.screen is app.main, what="back")
        assert app.is_running
        await pilot.press("q", "y")
        await until(pilot, lambda: not app.is_running, what="quit")
    assert app.return_code == 0


@sync
async def test_q_asks_too_when_a_ca_client_only_polls(engine: Engine, ca) -> None:
    """A CA client with a channel and no monitor (a poller): no PV flag shows it, the
    client report does."""
    assert "value" in ca(engine).call(op="poll", pv="PSU:VOLT")  # the channel stays open
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.loaded, what="model")
        assert not any(s.ca_monitored or s.pva_clients for s in app.states.values())
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="question")
        await pilot.press("n")
        assert app.is_running


@sync
async def test_confirmation_can_be_declined(engine: Engine, pva: Context) -> None:
    pva.get("PSU:MODE", timeout=5)
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.states["PSU:MODE"].pva_clients > 0, what="PVA client count")
        await goto(pilot, app, "PSU:MODE")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="dialog closed")
        assert engine.entry("PSU:MODE").exposure == "on"
        assert pva.get("PSU:MODE", timeout=5) == 1


@sync
async def test_marked_rows_toggle_together(tmp_path: Path) -> None:
    engine = Engine(loopback_config([PSU], tmp_path / "state", control_prefix="CTL:"))
    engine.start()
    try:
        await _marked_rows_toggle_together(engine)
    finally:
        engine.stop()


async def _marked_rows_toggle_together(engine: Engine) -> None:
    app = make_app(engine)

    def shown(*names: str) -> set[str]:
        """Exposure of the PVs as the console shows it (what an operator acts on)."""
        return {app.states[n].exposure for n in names}

    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: table(app).row_count > 0, what="rows")
        await goto(pilot, app, "PSU:VOLT")
        await pilot.press("space", "space")  # marks VOLT and VOLT:SP (space moves down)
        assert table(app).marked == {"PSU:VOLT", "PSU:VOLT:SP"}
        await pilot.press("w")
        await until(pilot, lambda: shown("PSU:VOLT", "PSU:VOLT:SP") == {"ro"}, what="read-only")
        assert engine.entry("PSU:CURR").exposure == "on"
        await pilot.press("w")
        await until(pilot, lambda: shown("PSU:VOLT", "PSU:VOLT:SP") == {"on"}, what="back on")
        own = {n: e.exposure for n, e in engine.entries.items() if e.plugin == "pvconsole"}
        assert own
        assert engine.entry("PSU:SECRET").exposure == "off"  # its pvdb hides it
        await pilot.press("plus", "e")  # every PV off: the console's own control PVs stay
        await until(pilot, lambda: shown("PSU:CURR", "PSU:HIST") == {"off"}, what="all off")
        assert {n: engine.entries[n].exposure for n in own} == own
        await pilot.press("e", "minus")  # back on as defined, and unmark
        await until(pilot, lambda: shown("PSU:CURR") == {"on"}, what="back on")
        assert engine.entry("PSU:HIST").exposure == "ro"  # read-only, as its pvdb defines
        assert engine.entry("PSU:SECRET").exposure == "off"  # still hidden, as its pvdb defines
        await goto(pilot, app, "PSU:HIST")
        await pilot.press("w")  # off read-only: not one the pvdb makes read-only
        await until(pilot, lambda: any("left as their pvdb" in n.message for n in app._notifications),
                    what="told")
        assert engine.entry("PSU:HIST").exposure == "ro"
        table(app).set_marks(["PSU:VOLT", "PSU:VOLT:SP"], True)
        app.pv_view.set_filter("TEMP")  # the marks are hidden: nothing is changed
        await until(pilot, lambda: table(app).row_count == 1, what="filtered")
        await pilot.press("w")
        await until(pilot, lambda: any("hidden by the filter: nothing changed" in n.message
                                       for n in app._notifications), what="warned")
        assert engine.entry("PSU:TEMP:RAW").exposure == "on"
        assert engine.entry("PSU:VOLT").exposure == "on" and table(app).marked == {"PSU:VOLT", "PSU:VOLT:SP"}


@sync
async def test_pva_put_shows_in_put_log(engine: Engine, pva: Context) -> None:
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        assert app.current_view == "puts"
        pva.put("PSU:MSG", "hello tui", timeout=5)
        with pytest.raises(Exception):
            pva.put("PSU:MODE", 2, timeout=5)  # the driver refuses Fault
        puts = app.main.query_one("#put-table")

        def rows() -> list[list[str]]:
            return [[str(c) for c in puts.get_row_at(i)] for i in range(puts.row_count)]

        await until(pilot, lambda: len(rows()) >= 2, what="two put rows")
        msg = next(r for r in rows() if r[1] == "PSU:MSG")
        assert msg[2] == "PVA" and msg[3] == "accepted" and "hello tui" in msg[5]
        assert "@" in msg[4]  # who: on screen at 80 columns, after the outcome
        mode = next(r for r in rows() if r[1] == "PSU:MODE")
        assert mode[3] == "refused: driver"  # next to the PV: on screen at 80 columns
        await pilot.press("slash", *"MODE", "enter")
        await until(pilot, lambda: puts.row_count == 1, what="filtered put log")
        await pilot.press("escape", "slash", *"psu:m?g pva", "enter")  # a glob and a word
        await until(pilot, lambda: [r[1] for r in rows()] == ["PSU:MSG"], what="glob filter")
        await pilot.press("enter")  # the whole put, client and all, whatever the width
        await until(pilot, lambda: isinstance(app.screen, RecordScreen), what="the put in full")
        fields = dict(app.screen.fields)
        assert "hello tui" in fields["Old → new"] and "@" in fields["Client"]
        assert fields["Protocol"] == "PVA" and fields["Result"] == "accepted"
        await pilot.press("escape")  # closes, as Enter and q do
        await pilot.pause()
        assert app.screen is app.main and app.current_view == "puts"


@sync
async def test_sorting_by_a_column_off_screen_scrolls_it_into_view(engine: Engine) -> None:
    """At 80 cells the plugin and type columns are right of the screen: ``s`` onto one
    scrolls sideways to it, and back to the left for the next one on screen."""
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        t = table(app)
        await until(pilot, lambda: t.row_count == len(engine.entries), what="rows")
        seen = {}
        for _ in range(len(pvtable.SORTABLE)):
            await pilot.press("s")
            await pilot.pause()
            seen[t.sort_key] = t.scroll_x
        assert seen["name"] == seen["value"] == seen["sev"] == 0
        assert seen["plugin"] > 0 and seen["pvatype"] >= seen["catype"] >= seen["plugin"]


@sync
async def test_filter_plugin_and_sort(engine: Engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        t = table(app)
        await until(pilot, lambda: t.row_count == len(engine.entries), what="rows")
        await pilot.press("slash", *"volt", "enter")
        assert set(t.visible_names()) == {"PSU:VOLT", "PSU:VOLT:SP"}
        await pilot.press("escape")  # clears the filter
        assert t.row_count == len(engine.entries)
        app.pv_view.set_filter("psu:*:*")  # a glob matches the whole name (any case)
        assert set(t.visible_names()) == {"PSU:VOLT:SP", "PSU:TEMP:RAW"}
        app.pv_view.set_filter("")
        await pilot.press("p")  # plugin filter: psu is the only plugin
        assert t.plugin == "psu" and t.row_count == len(engine.entries)
        await pilot.press("p")
        assert t.plugin is None
        names = t.visible_names()
        assert names == sorted(names)
        await pilot.press("r")  # reverse
        assert t.visible_names() == sorted(names, reverse=True)
        t.set_sort("exp", reverse=False)
        exposures = [app.states[n].exposure for n in t.visible_names()]
        assert exposures == sorted(exposures)
        app.pv_view.set_filter("volt")  # a jump to a PV the filter hides: Enter goes there
        await pilot.press("j", *"MSG")
        assert app.pv_view.query_one("#jump").has_class("-hidden")
        await pilot.press("enter")
        await until(pilot, lambda: t.current_name() == "PSU:MSG", what="cursor on PSU:MSG")
        assert t.row_count == len(engine.entries)  # the filter was cleared
        for key in "MODE":  # typing a name in the table: the first capital opens the box
            await pilot.press(key)
            await pilot.pause(0.05)
        assert app.pv_view.query_one("#jump").value == "MODE"
        await pilot.press("enter")
        await until(pilot, lambda: t.current_name() == "PSU:MODE", what="cursor on PSU:MODE")


@sync
async def test_details_screen(engine: Engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: table(app).row_count > 0, what="rows")
        await goto(pilot, app, "PSU:VOLT")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen), what="details")
        rows = {row[0]: list(row) for row in app.screen.mapping}
        assert rows["unit"][2] == "display.units" and rows["unit"][3] == "'V'"
        assert rows["hihi"][2] == "valueAlarm.highAlarmLimit" and rows["hihi"][3] == "95"
        assert "NTScalar" in rows["type"][3]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, what="back to the table")


@sync
async def test_keys_bunched_in_one_read_do_not_crash_the_console(engine: Engine) -> None:
    """Over a slow ssh link keys arrive together: Enter Enter, Enter Escape Enter Escape."""
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: table(app).row_count > 0, what="rows")
        for burst in (("enter", "enter"), ("enter", "escape", "enter", "escape"),
                      ("enter", "enter", "enter", "escape", "2", "1", "enter", "escape")):
            for key in burst:  # queued before the app runs again, as in one read
                app.post_message(events.Key(key, None))
            await pilot.pause(0.3)
            assert app.is_running and app.return_code is None
            while app.screen is not app.main:
                await pilot.press("escape")
                await pilot.pause(0.1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen), what="details")


@sync
async def test_keys_bunched_after_a_focus_change_go_where_it_went(engine: Engine) -> None:
    """``/volt`` in one read: the letters go into the filter box, not to the table (whose
    ``t`` would toggle the theme); ``3/msg`` filters the put log, not the PV table."""
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: table(app).row_count > 0, what="rows")
        theme = app.theme
        for key in ("slash", *"volt"):  # queued before the app runs again, as in one read
            app.post_message(events.Key(key, None if len(key) > 1 else key))
        await until(pilot, lambda: app.pv_view.query_one("#filter").value == "volt", what="filter")
        assert app.theme == theme
        for key in ("enter", "3", "slash", *"msg"):
            app.post_message(events.Key(key, None if len(key) > 1 else key))
        await until(pilot, lambda: app.main.query_one("#put-filter").value == "msg", what="put filter")
        assert app.current_view == "puts" and app.pv_view.table.pattern == "volt"


@sync
async def test_screens_switch_by_number_and_log_shows_epics_output(engine: Engine) -> None:
    buffer = LogBuffer()
    logging.getLogger("epics").addHandler(buffer)
    try:
        app = make_app(engine, log_buffer=buffer)
        async with app.run_test(size=(80, 24)) as pilot:
            for key, view in (("2", "connections"), ("3", "puts"), ("4", "log"), ("1", "pvs")):
                await pilot.press(key)
                assert app.current_view == view
            logging.getLogger("epics").warning("CA beacon error (printed by the C library)")
            await pilot.press("4")
            log = app.main.query_one("#log")
            # (wrapped: a scrollbar, once the log is longer than the screen, narrows it)
            await until(pilot, lambda: "CA beacon error" in " ".join(
                " ".join(line.text.split()) for line in log.lines), what="log line")
            await pilot.press("q")
        assert app.return_code in (0, None)
    finally:
        logging.getLogger("epics").removeHandler(buffer)


@sync
async def test_screenshot_from_the_palette_lands_where_the_operator_is(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An IOC host's service account has no Downloads folder: the screenshot goes into the
    current directory, and the operator is told where."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.loaded, what="model loaded")
        await pilot.press("ctrl+p", *"screenshot")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: list(tmp_path.glob("*.svg")), what="screenshot file")
    assert "pvconsole" in next(tmp_path.glob("*.svg")).read_text()


@sync
async def test_a_plugin_that_failed_stays_in_the_header(tmp_path: Path) -> None:
    broken = str(Path(__file__).resolve().parent / "plugins" / "broken_init.py")
    engine = Engine(loopback_config([PSU, broken], tmp_path / "state"))
    engine.start()
    try:
        app = make_app(engine)
        async with app.run_test(size=(80, 24)) as pilot:
            servers = app.main.query_one("#servers")
            await until(pilot, lambda: "1 plugin(s) failed (4: log)" in str(servers.render()),
                        what="failure in the header")
    finally:
        engine.stop()
