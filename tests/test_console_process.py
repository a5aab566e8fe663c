"""The console's engine in a process of its own (pvconsole.enginehost + tui.remote).

Real engine process on loopback ports, real PVA client: what the console reads through
:class:`RemoteSource` is what the engine serves, operator actions reach PVA clients, the
engine stops with the console, when the console goes away, and says why it cannot start.
The last test runs ``pvconsole`` itself in a pseudo-terminal and quits it with ``q``.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
import pytest
from conftest import pva_context, wait_for
from p4p.client.thread import Context, TimeoutError as PvaTimeout

from pvconsole.engine import StartupError
from pvconsole.loopback import beacon_sink, free_port, loopback_config
from pvconsole.tui.app import PvConsoleApp
from pvconsole.tui.logbuffer import LogBuffer
from pvconsole.tui.remote import EngineGone, RemoteSource
from pvconsole.tui.widgets.putlog import PutLogView

PSU = str(Path(__file__).resolve().parent.parent / "ioc_plugins" / "psu.py")
WAIT = 10.0


def gone(pid: int) -> bool:
    """True once ``pid`` is no more (a zombie not yet reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def logs() -> LogBuffer:
    return LogBuffer()


@pytest.fixture
def remote(tmp_path: Path, logs: LogBuffer):
    source = RemoteSource.start(loopback_config([PSU], tmp_path / "state"), 0, logs)
    try:
        yield source
    finally:
        source.stop()


@pytest.fixture
def pva(remote: RemoteSource):
    ctx = pva_context(remote.pva_client_conf())
    try:
        yield ctx
    finally:
        ctx.close()


def test_remote_source_reads_what_the_engine_serves(remote: RemoteSource, pva: Context,
                                                    logs: LogBuffer) -> None:
    changes = remote.subscribe()
    states = {s.name: s for s in remote.snapshot()}
    assert {"PSU:VOLT", "PSU:MODE", "PSU:MSG"} <= set(states)
    assert states["PSU:MODE"].pva_type == "NTEnum"
    assert remote.stats().pvs == len(states)
    assert [p.name for p in remote.plugins if not p.error] == ["psu"]

    pva.put("PSU:MSG", "from pva")
    seen: list = []
    wait_for(lambda: seen.extend(changes.drain()) or any(
        s.name == "PSU:MSG" and s.value == "from pva" for s in seen), timeout=WAIT)
    wait_for(lambda: any(r.pv == "PSU:MSG" and r.protocol == "pva" and r.result == "accepted"
                         for r in remote.putlog.since(0)), timeout=WAIT)
    assert [r.requested for r in remote.putlog.for_pv("PSU:MSG", 5)][-1] == "from pva"

    entry = remote.entry("PSU:VOLT")
    assert entry.spec.name == "PSU:VOLT" and entry.meta.unit == "V" and entry.plugin == "psu"
    served = remote.pva_structure("PSU:VOLT")
    assert served["display"]["units"] == "V" and served["value"] == pva.get("PSU:VOLT")["value"]
    clients = remote.clients()
    assert any(c["protocol"] == "pva" and "PSU:VOLT" in c["channels"] for c in clients)
    wait_for(lambda: any("serving" in line.message for line in logs.drain()), timeout=WAIT)


def test_exposure_and_refusals_through_the_pipe(remote: RemoteSource, pva: Context,
                                                logs: LogBuffer) -> None:
    assert pva.get("PSU:CURR", timeout=5) is not None
    assert remote.set_exposure("PSU:CURR", "off") == ["PSU:CURR"]
    with pytest.raises(PvaTimeout):
        pva.get("PSU:CURR", timeout=1.0)
    assert remote.set_exposure_many(["PSU:CURR"], "on") == ["PSU:CURR"]
    wait_for(lambda: _gets(pva, "PSU:CURR"), timeout=40)  # back on PVA (a client's search backs off)
    with pytest.raises(ValueError, match="no PV matches"):
        remote.set_exposure("NO:SUCH:*", "off")
    with pytest.raises(ValueError, match="unknown call"):
        remote.call("shutdown_everything")
    lines: list = []
    wait_for(lambda: lines.extend(logs.drain()) or any("PVA exposure off: PSU:CURR" in x.message
                                                       for x in lines), timeout=WAIT)


def _gets(ctx: Context, name: str) -> bool:
    try:
        ctx.get(name, timeout=1.0)
        return True
    except PvaTimeout:
        return False


def test_engine_stops_when_the_console_goes_away(tmp_path: Path, logs: LogBuffer) -> None:
    cfg = loopback_config([PSU], tmp_path / "state")
    source = RemoteSource.start(cfg, 0, logs)
    pid = source.proc.pid
    # the console died: the kernel closes its end of the pipe
    socket.socket(fileno=os.dup(source.conn.fileno())).shutdown(socket.SHUT_RDWR)
    wait_for(lambda: source.proc.poll() is not None, timeout=WAIT)  # the engine process to exit
    assert source.proc.returncode == 0
    wait_for(lambda: source.gone, timeout=WAIT)  # the console to notice
    with pytest.raises(EngineGone):
        source.call("snapshot")
    assert gone(pid)
    with socket.socket() as s:  # its PVA port is free again
        s.bind(("127.0.0.1", cfg.pva_port))


def test_stop_is_clean_and_fast(tmp_path: Path, logs: LogBuffer) -> None:
    source = RemoteSource.start(loopback_config([PSU], tmp_path / "state"), 0, logs)
    t0 = time.monotonic()
    assert source.stop() == 0
    assert time.monotonic() - t0 < 2.0


def test_port_in_use_is_a_one_line_startup_error(tmp_path: Path, logs: LogBuffer) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = loopback_config([PSU], tmp_path / "state", )
        cfg.pva_port = port
        with pytest.raises(StartupError) as err:
            RemoteSource.start(cfg, 0, logs)
    message = str(err.value)
    assert str(port) in message and "\n" not in message


def test_console_over_the_engine_process(remote: RemoteSource, pva: Context) -> None:
    async def body() -> None:
        app = PvConsoleApp(remote, refresh=0.05, stats_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + WAIT
            while not app.loaded or len(app.states) != remote.stats().pvs:
                assert time.monotonic() < deadline, "table never loaded"
                await pilot.pause(0.05)
            pva.put("PSU:MSG", "hello console")
            await pilot.press("3")
            view = app.main.query_one(PutLogView)
            while not any("hello console" in str(cell) for row in _rows(view) for cell in row):
                assert time.monotonic() < deadline + WAIT, "put never shown"
                await pilot.pause(0.05)
            await pilot.press("q", "y")  # clients are connected: it asks
    asyncio.run(body())


def test_console_tells_the_engine_what_it_shows(remote: RemoteSource, pva: Context) -> None:
    async def until(pilot: Any, cond: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not cond():
            assert time.monotonic() < deadline, what
            await pilot.pause(0.05)

    async def body() -> None:
        app = PvConsoleApp(remote, refresh=0.05, stats_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app._focus is not None and "PSU:VOLT" in app._focus,
                        "the rows on screen never became the focus")
            pva.put("PSU:MSG", "shown")
            await until(pilot, lambda: app.states["PSU:MSG"].value == "shown", "change not shown")
            shown = app._focus
            await pilot.press("ctrl+p")  # a dialog over the table: its rows still show
            await pilot.pause(0.3)
            assert app._focus == shown
            await pilot.press("escape")
            await pilot.press("3")  # the put log: no PV row on screen
            await until(pilot, lambda: app._focus == frozenset(), "focus kept off screen")
            await pilot.press("1")
            app.pv_view.table.set_sort("value")  # any change may move a row into view
            await until(pilot, lambda: app._focus is None, "sorted by value without every change")
            await pilot.press("q")
    asyncio.run(body())


def test_console_stays_up_when_the_engine_process_dies(remote: RemoteSource) -> None:
    async def body() -> None:
        app = PvConsoleApp(remote, refresh=0.05, stats_interval=0.1)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + WAIT
            while not app.loaded:
                assert time.monotonic() < deadline, "table never loaded"
                await pilot.pause(0.05)
            os.kill(remote.proc.pid, signal.SIGKILL)  # a plugin's C extension crashed it
            while not any("engine process exited" in str(n.message) for n in app._notifications):
                assert time.monotonic() < deadline + WAIT, "the console never said so"
                await pilot.pause(0.05)
            await pilot.press("enter", "escape", "2", "1")  # details and views still work
            assert app.is_running and app.current_view == "pvs"
            await pilot.pause(0.3)  # the header says so too, not the last addresses
            servers = str(app.main.query_one("#servers").render())
            assert "NOT SERVING" in servers and "127.0.0.1" not in servers
            await pilot.press("q")
    asyncio.run(body())
    assert remote.stop() == -signal.SIGKILL


def _rows(view: PutLogView) -> list[list]:
    table = view.query_one("#put-table")
    return [table.get_row_at(i) for i in range(table.row_count)]


class Terminal:
    """``pvconsole`` in a pseudo-terminal of 120x40, as an operator runs it."""

    def __init__(self, tmp_path: Path, *plugins: str, prelude: str = "") -> None:
        """``prelude``: Python run in the console's process before ``pvconsole`` starts."""
        start = ["-c", f"{prelude}\nfrom pvconsole.cli import entry\nentry()"] if prelude else \
            ["-m", "pvconsole"]
        args = [sys.executable, *start, "--state-dir", str(tmp_path / "state"),
                "--ca-intf", "127.0.0.1", "--ca-port", str(free_port(udp=True)),
                "--ca-beacon-addr", "127.0.0.1", "--ca-beacon-port", str(beacon_sink()),
                "--pva-intf", "127.0.0.1", "--pva-port", str(free_port()),
                "--pva-broadcast-port", str(free_port(udp=True))]
        for plugin in plugins:
            args += ["--plugin", plugin]
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40",
               "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO"}
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdin=slave, stdout=slave,
                                     stderr=slave)
        os.close(slave)
        self.screen = b""

    def read(self, timeout: float) -> None:
        if select.select([self.master], [], [], timeout)[0]:
            try:
                self.screen += os.read(self.master, 65536)
            except OSError:
                pass

    def wait_for(self, text: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.screen[-2000:]
            self.read(0.2)

    def wait_exit(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "console did not quit"
            self.read(0.1)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_pvconsole_in_a_terminal_quits_on_q_and_takes_the_engine_along(tmp_path: Path) -> None:
    term = Terminal(tmp_path, PSU)
    try:
        term.wait_for(b"PSU:VOLT")
        assert b"starting the CA and PVA servers" in term.screen  # before the UI takes over
        children = _children(term.proc.pid)
        assert children, "the engine runs in a child process"
        os.write(term.master, b"q")
        assert term.wait_exit() == 0
        assert all(gone(pid) for pid in children)
        assert b"CAS:" not in term.screen and b"Traceback" not in term.screen
        term.read(0.5)  # what is left on the terminal once the screen is gone
        assert re.search(rb"pvconsole: stopped after \d+s: served \d+ PVs \(CA 127\.0\.0\.1:\d+, "
                         rb"PVA 127\.0\.0\.1:\d+\); 0 put\(s\) this run, put log in ", term.screen)
    finally:
        term.close()


def test_a_signal_sent_to_the_console_reaches_the_scripts_handlers(tmp_path: Path) -> None:
    """The engine runs in a session of its own: SIGUSR1 (or an operator's SIGHUP) sent to
    the console goes on to it, where the hosted script's handler runs; the console stays."""
    mark = tmp_path / "mark"
    script = tmp_path / "usr1.py"
    script.write_text(
        "import signal\nfrom pcaspy import Driver, SimpleServer\n"
        f"def dump(signum, frame):\n    open({str(mark)!r}, 'a').write(f'{{signum}} ')\n"
        "if __name__ == '__main__':\n"
        "    signal.signal(signal.SIGUSR1, dump)\n    signal.signal(signal.SIGHUP, dump)\n"
        "    server = SimpleServer()\n    server.createPV('USR:', {'X': {}})\n"
        "    driver = Driver()\n    while True:\n        server.process(0.05)\n")
    term = Terminal(tmp_path, str(script))
    try:
        term.wait_for(b"USR:X")
        os.kill(term.proc.pid, signal.SIGUSR1)
        os.kill(term.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not (mark.exists() and len(mark.read_text().split()) == 2):
            assert time.monotonic() < deadline, "the script's handlers did not run"
            term.read(0.1)
        assert term.proc.poll() is None  # the console goes on
        os.write(term.master, b"q")
        assert term.wait_exit() == 0
    finally:
        term.close()


#: The console's theme key fails once, as a bug of the console would.
FAILS_ONCE = """
from pvconsole.tui.app import PvConsoleApp
failed = []
def toggle_dark(self):
    if not failed:
        failed.append(1)
        raise RuntimeError("a bug of the console")
PvConsoleApp.action_toggle_dark = toggle_dark
"""


def test_a_console_that_fails_starts_again_and_the_servers_go_on(tmp_path: Path) -> None:
    """An error in the console ended it and, with it, every IOC it hosted."""
    term = Terminal(tmp_path, PSU, prelude=FAILS_ONCE)
    try:
        term.wait_for(b"PSU:VOLT")
        children = _children(term.proc.pid)
        os.write(term.master, b"t")
        term.wait_for(b"started again", timeout=WAIT)
        assert children == _children(term.proc.pid) and not any(gone(p) for p in children)
        term.screen = b""
        term.wait_for(b"PSU:VOLT")  # the table is back
        os.write(term.master, b"q")
        assert term.wait_exit() == 0
        assert all(gone(pid) for pid in children)
    finally:
        term.close()


def test_ctrl_c_while_plugins_load_stops_cleanly(tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(60)\nprefix = 'SLOW:'\npvdb = {'X': {}}\n")
    term = Terminal(tmp_path, PSU, str(slow))
    try:
        term.wait_for(b"starting the CA and PVA servers")
        deadline = time.monotonic() + 10
        while not _children(term.proc.pid):
            assert time.monotonic() < deadline, "no engine process"
            time.sleep(0.05)
        children = _children(term.proc.pid)
        os.kill(term.proc.pid, signal.SIGINT)  # the terminal's ^C (the engine has a session of its own)
        assert term.wait_exit() == 130
        assert b"interrupted while starting" in term.screen and b"Traceback" not in term.screen
        left = [open(f"/proc/{p}/cmdline").read() for p in children if not gone(p)]
        assert not left, (left, term.screen[-3000:])
    finally:
        term.close()


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


MANY = '''
from pcaspy import Driver
prefix = "MANY:"
pvdb = {"GO": {"type": "float"}, **{"V%03d" % i: {"type": "float"} for i in range(300)}}
class ManyDriver(Driver):
    def write(self, reason, value):
        for i in range(300):
            self.setParam("V%03d" % i, value + i)
        self.setParam(reason, value)
        self.updatePVs()
        return True
'''


def test_a_push_larger_than_one_message_arrives_whole(tmp_path: Path, logs: LogBuffer) -> None:
    """The engine sends a push of many changed PVs as several messages (no pickle may
    hold the servers' GIL long): every state must still arrive, newest value each."""
    plugin = tmp_path / "many.py"
    plugin.write_text(MANY)
    source = RemoteSource.start(loopback_config([str(plugin)], tmp_path / "state"), 0, logs)
    try:
        changes = source.subscribe()
        ctx = pva_context(source.pva_client_conf())
        try:
            ctx.put("MANY:GO", 1000.0)
            seen: dict = {}
            wait_for(lambda: seen.update((s.name, s.value) for s in changes.drain()) or
                     all(seen.get("MANY:V%03d" % i) == 1000.0 + i for i in range(300)), timeout=WAIT)
        finally:
            ctx.close()
    finally:
        source.stop()


def test_focus_sends_shown_pvs_and_holds_the_rest(tmp_path: Path, logs: LogBuffer) -> None:
    """With a focus, value changes of PVs off screen wait until they are shown; the PVs
    on screen get every change."""
    plugin = tmp_path / "many.py"
    plugin.write_text(MANY)
    source = RemoteSource.start(loopback_config([str(plugin)], tmp_path / "state"), 0, logs)
    try:
        changes = source.subscribe()
        source.set_focus(["MANY:V000"])
        ctx = pva_context(source.pva_client_conf())
        try:
            seen: dict = {}

            def arrived(name: str, value: float) -> bool:
                seen.update((s.name, s.value) for s in changes.drain())
                return seen.get(name) == value

            ctx.put("MANY:GO", 10.0)
            wait_for(lambda: arrived("MANY:V000", 10.0), timeout=WAIT)
            ctx.put("MANY:GO", 20.0)  # a later push: the first one's V001 would have gone too
            wait_for(lambda: arrived("MANY:V000", 20.0), timeout=WAIT)
            assert seen.get("MANY:V001") != 21.0  # held: off screen
            source.set_focus(["MANY:V001"])
            wait_for(lambda: arrived("MANY:V001", 21.0), timeout=WAIT)  # shown: the newest
            assert seen.get("MANY:V002") != 22.0
            source.set_focus(None)
            wait_for(lambda: arrived("MANY:V299", 319.0), timeout=WAIT)  # focus lifted: all
        finally:
            ctx.close()
    finally:
        source.stop()
