"""Run the console exactly as ``pvconsole`` does, stamping each frame that shows a new view.

bench/tui.py starts this in a pseudo-terminal with the same arguments it would give
``pvconsole`` and types view keys into the terminal. Each time a frame that is about to be
written to the terminal shows a different view than the frame before, one JSON line
``{"t": <time.time()>, "view": ..., "frames": <frames so far>}`` is appended to
``$BENCH_UI_FRAMES``: key time -> first such frame is the key-to-screen latency. Each key the app receives is
stamped too (``{"t", "key"}``), and each such frame with the time its write took, so the
latency splits into key delivery, the app's work and the frame's output.
The app, the engine and the loop are the product's own (``run_console``); only
``App._display`` is wrapped, which is where Textual hands a frame to the terminal driver.

With ``BENCH_UI_PILOT=1`` the app runs under Textual's Pilot instead of a terminal
(``App.run_test``, headless, 160x48): the bench writes one key per line to this
process's stdin, and each is pressed through ``Pilot.press`` and stamped
(``{"t", "inject"}``) when it is injected; key -> screen is then measured as the issue
asks, through Pilot (no terminal input parsing, no frame output). With
``BENCH_UI_DRAIN=1`` no app runs at all (:class:`DrainApp`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from textual import events

from pvconsole import cli
from pvconsole.tui import app as console


class StampedApp(console.PvConsoleApp):
    """The console, recording when the screen first shows each newly chosen view."""

    CSS_PATH = str(Path(console.__file__).with_name(console.PvConsoleApp.CSS_PATH))  # not bench/

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._stamps = open(os.environ["BENCH_UI_FRAMES"], "a", buffering=1)
        self._frames = 0
        self._shown = ""

    async def on_event(self, event: Any) -> None:
        if isinstance(event, events.Key):  # when the app gets the key (a bench diagnostic)
            self._stamps.write(json.dumps({"t": time.time(), "key": event.key}) + "\n")
        await super().on_event(event)

    def _display(self, screen: Any, renderable: Any) -> None:
        t0 = time.perf_counter()
        super()._display(screen, renderable)
        took = (time.perf_counter() - t0) * 1000.0
        if renderable is None:
            return
        self._frames += 1
        try:
            view = self.current_view
        except Exception:  # before the main screen is composed
            return
        if view != self._shown:
            self._shown = view
            self._stamps.write(json.dumps({"t": time.time(), "view": view, "frames": self._frames,
                                           "display_ms": round(took, 1)}) + "\n")


class PilotApp(StampedApp):
    """The stamped console driven by Pilot: keys come from stdin, one per line."""

    COLS, ROWS = 160, 48

    def run(self, *args: Any, **kw: Any) -> Any:
        return asyncio.run(self._drive())

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        keys: asyncio.Queue = asyncio.Queue()

        def read_keys() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(keys.put_nowait, line.strip())
        threading.Thread(target=read_keys, name="bench-keys", daemon=True).start()
        async with self.run_test(headless=True, size=(self.COLS, self.ROWS)) as pilot:
            while self.is_running:
                try:
                    key = await asyncio.wait_for(keys.get(), 0.2)
                except asyncio.TimeoutError:
                    continue
                self._stamps.write(json.dumps({"t": time.time(), "inject": key}) + "\n")
                asyncio.ensure_future(pilot.press(key))


class DrainApp:
    """No Textual at all: the console's process reading the engine as the PV table does
    (snapshot, change stream, focus on one screen of rows, counters every second), drawing
    nothing. With ``BENCH_UI_DRAIN=1``: what a console costs the servers apart from
    drawing (the engine's push thread, the focus filter, the pipe)."""

    ROWS = 45  # the PV table's rows in 160x48

    def __init__(self, source: Any, log_buffer: Any = None, **kw: Any) -> None:
        self.source = source
        self._stop = threading.Event()

    def run(self) -> None:
        changes = self.source.subscribe()
        states = {s.name: s for s in self.source.snapshot()}
        self.source.set_focus(sorted(states)[:self.ROWS])
        with open(os.environ["BENCH_UI_FRAMES"], "a", buffering=1) as stamps:
            stamps.write(json.dumps({"t": time.time(), "view": "pvs", "frames": 1}) + "\n")
        next_stats = 0.0
        while not self._stop.wait(console.REFRESH):
            for s in changes.drain():
                states[s.name] = s
            if time.monotonic() >= next_stats:
                self.source.stats()
                next_stats = time.monotonic() + 1.0

    def call_from_thread(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def exit(self, *args: Any) -> None:
        self._stop.set()


def main(argv: list[str]) -> int:
    args = cli.build_parser().parse_args(argv)
    cfg = cli.make_config(args)
    pilot = os.environ.get("BENCH_UI_PILOT") == "1"
    app = DrainApp if os.environ.get("BENCH_UI_DRAIN") == "1" else PilotApp if pilot else StampedApp
    console.PvConsoleApp = app  # run_console builds it by this name
    return console.run_console(cfg, args.verbose)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
