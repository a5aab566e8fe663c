"""Snapshot tests of every console screen, made deterministic.

The app is built on :class:`~pvconsole.tui.fixed.FixedSource` (frozen values, alarms,
timestamps and clients), with polling timers off (``live=False``), times shown in UTC, a
fake clock for the rate sparklines and a fixed terminal size. Update the snapshots after an
intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import itertools
import logging
from datetime import timezone

import pytest

from pvconsole.tui.app import PvConsoleApp
from pvconsole.tui.fixed import FIXED_NOW, FixedSource
from pvconsole.tui.logbuffer import LogBuffer

SMALL = (80, 24)
LARGE = (160, 48)
#: Stats samples taken before the frame, so the sparklines have a fixed shape.
SAMPLES = 12


def fixed_log() -> LogBuffer:
    """A log buffer holding the kinds of lines an operator sees, at fixed times."""
    buf = LogBuffer()
    lines = [
        (logging.INFO, "pvconsole.engine", "plugin psu: 9 PVs, driver PsuDriver"),
        (logging.INFO, "pvconsole.engine", "serving 12 PVs from 2 plugin(s): CA 127.0.0.1:5064, PVA 127.0.0.1:5075"),
        (logging.WARNING, "epics", "CA beacon (send to \"10.0.3.255:5065\") error was \"Network is unreachable\""),
        (logging.INFO, "pvconsole.engine", "PVA exposure off: VAC:VALVE1"),
        (logging.ERROR, "pvconsole.mirror", "PSU:WAVE: PVA post failed (value 'x'); further errors of this kind are counted, not logged"),
    ]
    for i, (level, name, msg) in enumerate(lines):
        rec = logging.LogRecord(name, level, __file__, 0, msg, None, None)
        rec.created = FIXED_NOW - 50 + 10 * i
        buf.handle(rec)
    return buf


def make_app(source: FixedSource | None = None) -> PvConsoleApp:
    """The console over frozen data: no timers, UTC times, a clock that ticks per read."""
    ticks = itertools.count()
    return PvConsoleApp(source or FixedSource(), log_buffer=fixed_log(), live=False,
                        clock=lambda: float(next(ticks)), tz=timezone.utc)


async def settle(pilot) -> None:
    """Feed the fixed stats and log, as the timers would."""
    app = pilot.app
    while not app.loaded:
        await pilot.pause()
    for _ in range(SAMPLES):
        app.sample_stats()
    app.poll()
    await pilot.pause()


def run_before(*keys: str, then=None):
    async def before(pilot) -> None:
        await settle(pilot)
        if keys:
            await pilot.press(*keys)
        if then is not None:
            then(pilot.app)
        await pilot.pause()
    return before


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_pv_table(snap_compare, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=run_before())


def test_pv_table_light_theme(snap_compare) -> None:
    def light(app: PvConsoleApp) -> None:
        app.theme = "textual-light"

    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run_before(then=light))


def test_pv_table_filtered_marked_sorted(snap_compare) -> None:
    def arrange(app: PvConsoleApp) -> None:
        app.pv_view.set_filter("PSU:*")
        app.pv_view.table.set_sort("sev")
        app.pv_view.update_info()

    assert snap_compare(make_app(), terminal_size=SMALL,
                        run_before=run_before("space", "space", then=arrange))


def test_live_update_touches_the_row(snap_compare) -> None:
    source = FixedSource()

    def update(app: PvConsoleApp) -> None:
        s = source.states["PSU:VOLT"]
        source.push(s._replace(value=96.0, text="96.000 V", severity=2, condition=3,
                            timestamp=FIXED_NOW))
        app.poll()

    assert snap_compare(make_app(source), terminal_size=SMALL, run_before=run_before(then=update))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_details(snap_compare, size) -> None:
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=run_before("j", *"VOLT", "enter", "enter"))


def test_details_enum_off(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=LARGE,
                        run_before=run_before("j", *"VALVE", "enter", "enter"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_connections(snap_compare, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=run_before("2"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_put_log(snap_compare, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=run_before("3"))


def test_server_log(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run_before("4"))


def test_confirm_exposure_off(snap_compare) -> None:
    assert snap_compare(make_app(), terminal_size=SMALL,
                        run_before=run_before("j", *"MODE", "enter", "e"))


def test_a_put_in_full(snap_compare) -> None:
    """Enter on a put: every field labelled, the reason whole at 80 columns."""
    assert snap_compare(make_app(), terminal_size=SMALL, run_before=run_before("3", "enter"))
