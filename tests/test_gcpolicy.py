"""Full garbage collections wait until the operator is not typing (pvconsole.gcpolicy)."""

from __future__ import annotations

import asyncio
import gc

from pvconsole import gcpolicy
from pvconsole.gcpolicy import IdleCollector
from pvconsole.tui.app import PvConsoleApp
from pvconsole.tui.fixed import FixedSource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_collection_waits_for_a_quiet_moment() -> None:
    clock = Clock()
    c = IdleCollector(interval=60.0, clock=clock)
    clock.now += 30
    assert not c.due()  # too soon after the last one
    clock.now += 31
    c.input_seen()
    assert not c.due()  # the operator just typed
    clock.now += gcpolicy.QUIET
    assert c.poll() and c.collections == 1
    assert not c.due()
    clock.now += gcpolicy.FORCE_AFTER
    c.input_seen()  # typing non-stop does not put it off for ever
    assert c.poll() and c.collections == 2


def test_defer_stops_automatic_full_collections_and_restore_undoes_it() -> None:
    before = gc.get_threshold()
    c = IdleCollector()
    c.defer()
    c.defer()  # idempotent: restore still finds the original
    try:
        assert gc.get_threshold()[:2] == before[:2]  # young collections as before
        assert gc.get_threshold()[2] == gcpolicy.NEVER
    finally:
        c.restore()
    assert gc.get_threshold() == before


def test_the_live_console_defers_and_restores_on_exit() -> None:
    before = gc.get_threshold()

    async def main() -> None:
        app = PvConsoleApp(FixedSource(), live=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert gc.get_threshold()[2] == gcpolicy.NEVER
            app.gc.last_input = before_key = app.gc.clock() - 100
            await pilot.press("2")
            assert app.gc.last_input > before_key + 99  # the key was noticed

    asyncio.run(main())
    assert gc.get_threshold() == before
