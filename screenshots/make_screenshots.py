"""Take SVG screenshots of every console screen from the real app on the bundled plugins.

Usage (from the repository root)::

    python screenshots/make_screenshots.py            # writes screenshots/*.svg
    python screenshots/make_screenshots.py --out DIR  # elsewhere

It starts the engine with ``ioc_plugins/`` on loopback-only free ports (nothing leaves the
host), connects a PVA client that monitors a few PVs and makes some puts (accepted and
refused ones), lets the console run for a few seconds so the rates and the log fill up, then
saves each screen at 80x24 and 160x48, plus the PV table in the light theme.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from p4p.client.thread import Context  # noqa: E402

from pvconsole.engine import Engine  # noqa: E402
from pvconsole.tui.app import PvConsoleApp  # noqa: E402
from pvconsole.tui.logbuffer import LogBuffer  # noqa: E402
from pvconsole.loopback import loopback_config  # noqa: E402
from pvconsole.tui.screens.details import DetailsScreen  # noqa: E402

SIZES = ((80, 24), (160, 48))
#: Seconds the console runs before the first screenshot (rates and sparklines fill up).
WARM_UP = 4.0


def client_activity(ctx: Context) -> list:
    """What an operator's clients would do: monitors, accepted and refused puts."""
    subs = [ctx.monitor(name, lambda v: None) for name in ("PSU:VOLT", "PSU:CURR", "PSU:MODE")]
    ctx.put("PSU:MSG", "beam on in 5 min", timeout=5)
    ctx.put("PSU:VOLT:SP", 14.0, timeout=5)
    for name, value in (("PSU:MODE", 2), ("PSU:HIST", [1, 2, 3]), ("PSU:VOLT:SP", 250.0)):
        try:
            ctx.put(name, value, timeout=5)
        except Exception:
            pass  # refused on purpose: the put log shows why
    return subs


async def shoot(app: PvConsoleApp, out: Path, size: tuple[int, int], light: bool) -> list[Path]:
    saved: list[Path] = []
    tag = f"{size[0]}x{size[1]}"
    async with app.run_test(size=size) as pilot:
        while not app.loaded:
            await pilot.pause(0.05)
        deadline = time.monotonic() + WARM_UP
        while time.monotonic() < deadline:
            await pilot.pause(0.1)

        def save(name: str) -> None:
            path = out / f"{name}-{tag}.svg"
            app.save_screenshot(filename=path.name, path=str(out))
            saved.append(path)

        save("pvs")
        await pilot.press("j", *"VOLT", "enter", "enter")
        while not isinstance(app.screen, DetailsScreen):
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        save("details")
        await pilot.press("escape")
        for key, name in (("2", "connections"), ("3", "putlog"), ("4", "serverlog")):
            await pilot.press(key)
            await pilot.pause(0.5)
            save(name)
            if name == "putlog":  # the newest put in full (a refused one: its reason)
                await pilot.press("enter")
                await pilot.pause(0.3)
                save("put")
                await pilot.press("escape")
        await pilot.press("1", "j", *"MODE", "enter", "e")
        await pilot.pause(0.3)
        save("confirm")
        await pilot.press("n")
        if light:
            app.theme = "textual-light"
            await pilot.pause(0.5)
            save("pvs-light")
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    buffer = LogBuffer()
    logging.getLogger().addHandler(buffer)
    logging.getLogger().setLevel(logging.INFO)
    plugins = sorted(str(p) for p in (ROOT / "ioc_plugins").glob("*.py"))
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as state:
        engine = Engine(loopback_config(plugins, Path(state)))
        engine.start()
        ctx = Context("pva", conf=engine.pva_client_conf(), useenv=False)
        try:
            subs = client_activity(ctx)
            for size in SIZES:
                app = PvConsoleApp(engine, log_buffer=buffer)
                saved += asyncio.run(shoot(app, args.out, size, light=size == SIZES[0]))
            for sub in subs:
                sub.close()
        finally:
            ctx.close()
            engine.stop()
    for path in saved:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
