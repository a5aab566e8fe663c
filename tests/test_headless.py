"""The ``pvconsole --headless`` process: start, serve, stop on a signal, fail fast."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from typing import Any, Callable

import pytest

from conftest import ROOT, CAClient, free_port, plugin_path, pva_context, wait_for


def start(tmp_path, *extra: str, pva_port: int | None = None, ca_port: int | None = None):
    pva_port = pva_port or free_port()
    args = [sys.executable, "-m", "pvconsole", "--headless", "--state-dir", str(tmp_path / "state"),
            "--ca-intf", "127.0.0.1", "--ca-port", str(ca_port or free_port()),
            "--ca-beacon-addr", "127.0.0.1", "--ca-beacon-port", str(free_port()),
            "--pva-intf", "127.0.0.1", "--pva-port", str(pva_port),
            "--pva-broadcast-port", str(free_port()), *extra]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, pva_port


def wait_serving(proc) -> list[str]:
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "pvconsole: serving" in line:
            return lines
    raise AssertionError("never started:\n" + "".join(lines))


def stops_within(proc, seconds: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig``; the process must exit 0 within ``seconds``."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=seconds + 5) == 0
    assert time.monotonic() - t0 < seconds


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_within_two_seconds(tmp_path, sig):
    proc, port = start(tmp_path, "--plugin", str(ROOT / "ioc_plugins" / "psu.py"))
    try:
        wait_serving(proc)
        ctx = pva_context({"EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{port}", "EPICS_PVA_ADDR_LIST": "",
                           "EPICS_PVA_AUTO_ADDR_LIST": "NO"})
        assert ctx.get("PSU:VOLT", timeout=5).display.units == "V"
        ctx.put("PSU:MSG", "before stop", wait=True)
        ctx.close()
        stops_within(proc, 2.0, sig)
    finally:
        proc.kill()
    putlog = (tmp_path / "state" / "putlog.jsonl").read_text()
    assert '"requested": "before stop"' in putlog


@pytest.mark.parametrize("protocol", ["ca", "pva"])
def test_a_stop_does_not_wait_for_a_driver_write_that_hangs(tmp_path, protocol):
    """The put is logged as interrupted (its outcome is unknown), the stop takes under 2 s
    and exits 0. Over CA the CA server's teardown waited for the write to return."""
    ca_port = free_port()
    proc, port = start(tmp_path, "--plugin", plugin_path("stuck_write"), ca_port=ca_port)
    client = None
    try:
        wait_serving(proc)
        if protocol == "ca":
            client = CAClient(ca_port)
            put = lambda: client.put("STUCK:POS", 1.5, timeout=20)  # noqa: E731
        else:
            client = pva_context({"EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{port}",
                                  "EPICS_PVA_ADDR_LIST": "", "EPICS_PVA_AUTO_ADDR_LIST": "NO"})
            put = lambda: client.put("STUCK:POS", 1.5, timeout=20, throw=False)  # noqa: E731
        threading.Thread(target=put, daemon=True).start()
        wait_for(lambda: (tmp_path / "writing").exists(), timeout=10)
        stops_within(proc, 2.0)
    finally:
        proc.kill()
        if client is not None:
            client.close()
    assert "stopping without it (1 put(s) logged as interrupted)" in proc.stderr.read()
    lines = (tmp_path / "state" / "putlog.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"result": "interrupted"' in lines[0] and '"requested": 1.5' in lines[0]


def test_a_plugin_thread_that_is_not_a_daemon_does_not_hold_the_stop(tmp_path):
    """Python waits at exit for every thread that is not a daemon: a plugin's worker loop
    without a stop() hook kept the process alive (or died on a KeyError traceback)."""
    proc, _ = start(tmp_path, "--plugin", plugin_path("worker_forever"))
    try:
        wait_serving(proc)
        time.sleep(0.3)  # the worker is busy calling the driver
        stops_within(proc, 2.0)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "plugin thread(s) still running after the stop: worker-loop" in err
    assert "Traceback" not in err and "KeyError" not in err


def test_a_script_serving_from_its_own_thread_stops_without_a_traceback(tmp_path):
    """The end of the script's server loop reached its thread as an uncaught exception."""
    proc, port = start(tmp_path, "--plugin", plugin_path("script_own_server_thread"))
    try:
        wait_serving(proc)
        ctx = pva_context({"EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{port}", "EPICS_PVA_ADDR_LIST": "",
                           "EPICS_PVA_AUTO_ADDR_LIST": "NO"})
        try:
            first = ctx.get("OWN:COUNT", timeout=5).value
            wait_for(lambda: ctx.get("OWN:COUNT", timeout=5).value > first, timeout=5)
        finally:
            ctx.close()
        stops_within(proc, 2.0)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and "_ScriptHandOver" not in err


@pytest.mark.parametrize("forever", [False, True], ids=["pool", "pool+forever"])
def test_idle_pool_workers_do_not_hold_the_stop_and_atexit_handlers_run(tmp_path, monkeypatch,
                                                                      forever):
    """Idle ThreadPoolExecutor workers (not daemons) counted as held threads: the process
    left through os._exit and the plugin's atexit handler never closed its hardware."""
    if forever:
        monkeypatch.setenv("POOL_FOREVER", "1")
    proc, _ = start(tmp_path, "--plugin", plugin_path("pool_and_atexit"))
    try:
        wait_serving(proc)
        stops_within(proc, 2.0)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert ("still running after the stop: forever" in err) == forever
    assert "ThreadPoolExecutor" not in err
    assert (tmp_path / "closed").read_text() == "ok"


def test_c_library_output_goes_through_the_log(tmp_path):
    """Beacon errors printed by the CA server library arrive as log records, nothing raw."""
    proc, _ = start(tmp_path, "--plugin", plugin_path("second"))
    try:
        first = wait_serving(proc)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    err = "".join(first) + err
    stamped = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \w+ +[\w.]+: |^pvconsole: serving")
    raw = [line for line in err.splitlines() if line and not stamped.match(line)]
    assert not raw, raw
    assert " epics: " in err  # the library did print, and it was captured


def _start_on_held_port(tmp_path, kind: int) -> tuple[int, str]:
    """Start with the CA port held by another program's socket: (port, stderr)."""
    held = socket.socket(socket.AF_INET, kind)
    held.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        held.listen()
    port = held.getsockname()[1]
    try:
        proc, _ = start(tmp_path, "--plugin", plugin_path("second"), ca_port=port)
        _, err = proc.communicate(timeout=20)
    finally:
        held.close()
    assert proc.returncode == 2
    return port, err


def test_port_in_use_is_a_one_line_error(tmp_path):
    port, err = _start_on_held_port(tmp_path, socket.SOCK_STREAM)
    assert err.strip().splitlines() == [f"pvconsole: error: CA port {port} on 127.0.0.1 is not "
                                        "usable: Address already in use"]


def test_headless_exits_2_when_no_plugin_it_was_given_can_be_served(tmp_path):
    """Alone, a script that cannot start exits; so does pvconsole when every plugin
    failed (a unit's Restart= may retry), not serve only its own control PVs. One that
    loads beside a broken one is served."""
    broken = plugin_path("broken_init")
    proc, _ = start(tmp_path, "--plugin", broken)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1].startswith("pvconsole: error: no plugin could be "
                                                   "served: ") and "hardware not found" in err
    proc, _ = start(tmp_path, "--plugin", broken, "--plugin", str(ROOT / "ioc_plugins" / "psu.py"))
    try:
        wait_serving(proc)
    finally:
        stops_within(proc, 2)


def test_bad_config_file_is_a_clear_error(tmp_path):
    (tmp_path / "pvconsole.toml").write_text("[ca]\nport = 'x'\n")
    proc = subprocess.run([sys.executable, "-m", "pvconsole", "--headless"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2
    assert "pvconsole: error: pvconsole.toml: ca_port: invalid value 'x'" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "pvconsole", "--headless"], capture_output=True,
                          text=True, timeout=20, cwd=tmp_path / "empty",
                          env={**os.environ, "EPICS_CAS_SERVER_PORT": "abc"})
    assert proc.returncode == 2
    assert "pvconsole: error: EPICS_CAS_SERVER_PORT: invalid value 'abc'" in proc.stderr


@pytest.mark.parametrize("first", ["p4p", "pcaspy"])
def test_both_epics_builds_serve_in_either_import_order(tmp_path, first):
    """pcaspy carries EPICS 3.14 CAS, p4p carries EPICS 7: both in one process."""
    second = "pcaspy" if first == "p4p" else "p4p"
    code = (f"import {first}, {second}, sys\n"
            "sys.path.insert(0, {tests!r})\n"
            "from conftest import loopback_config, plugin_path, pva_context\n"
            "from pathlib import Path\n"
            "from pvconsole.engine import Engine\n"
            "e = Engine(loopback_config(Path({state!r}), [plugin_path('second')])); e.start()\n"
            "ctx = pva_context(e.pva_client_conf()); print(ctx.get('S:X', timeout=5).value)\n"
            "ctx.close(); e.stop()\n").format(tests=str(ROOT / "tests"), state=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.5"


def _plugin(tmp_path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return str(path)


def serve_and_stop(tmp_path, plugin: str, seconds: float,
                   ready: Callable[[], Any] | None = None) -> tuple[subprocess.Popen, str]:
    """Serve ``plugin`` headless, SIGTERM it once serving (and ``ready()``: it must stop
    within ``seconds``, exit 0); the process and everything it logged."""
    proc, _ = start(tmp_path, "--plugin", plugin)
    try:
        lines = wait_serving(proc)
        if ready is not None:
            wait_for(ready)
        stops_within(proc, seconds)
    finally:
        proc.kill()
    return proc, "".join(lines) + proc.stderr.read()


def test_a_signal_during_a_slow_start_up_stops_at_once(tmp_path):
    slow = [_plugin(tmp_path, f"slow{i}", f"import time\ntime.sleep(4)\nprefix = 'SLOW{i}:'\n"
                    "pvdb = {'X': {}}\n") for i in (1, 2)]
    proc, _ = start(tmp_path, "--plugin", slow[0], "--plugin", slow[1])
    try:
        time.sleep(1.0)  # loading the first plugin
        stops_within(proc, 2.0)
    finally:
        proc.kill()
    assert "signal SIGTERM during start-up: stopped" in proc.stderr.read()


def test_plugin_output_is_logged_and_a_hung_stop_hook_is_left(tmp_path):
    """A plugin's print() and argparse-style stderr text arrive as log lines; a stop()
    that never returns does not keep the process from stopping."""
    noisy = _plugin(tmp_path, "noisy", (
        "import sys, threading\n"
        "from pcaspy import Driver\n"
        "import faulthandler\n"
        "faulthandler.enable()  # needs sys.stderr.fileno()\n"
        "print('noisy: hello from the plugin')\n"
        "sys.stdout.buffer.write(b'noisy: bytes too\\n')\n"
        "sys.stderr.write('noisy: a warning\\n')\n"
        "sys.stderr.write('noisy: no newline'); sys.stderr.flush()\n"
        "prefix = 'NOISY:'\npvdb = {'X': {}}\n"
        "class D(Driver):\n"
        "    def stop(self):\n"
        "        threading.Event().wait()  # a device that never answers\n"))
    proc, err = serve_and_stop(tmp_path, noisy, 4.0)  # the 2 s stop() wait included
    assert re.search(r"INFO +stdout: noisy: hello from the plugin", err)
    assert re.search(r"INFO +stdout: noisy: bytes too", err)
    assert re.search(r"WARNING +stderr: noisy: a warning", err)
    assert re.search(r"WARNING +stderr: noisy: no newline", err)
    assert "stop() still running" in err
    assert proc.stdout.read() == ""


def test_ca_udp_port_held_is_a_one_line_error(tmp_path):
    """The CA server library aborts the process when its UDP port is held unshared."""
    port, err = _start_on_held_port(tmp_path, socket.SOCK_DGRAM)
    assert err.strip().splitlines() == [f"pvconsole: error: CA port {port} on 127.0.0.1 (UDP, "
                                        "name searches) is not usable: Address already in use"]


def test_an_acf_that_does_not_parse_is_a_one_line_error(tmp_path):
    acf = tmp_path / "bad.acf"
    acf.write_text("ASG(DEFAULT) {\n  RULE(1, READ)\n  RULE(1, WRITE) { UAG(ops)\n}\n")
    proc, _ = start(tmp_path, "--plugin", plugin_path("second"), "--acf", str(acf))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert f"pvconsole: error: access security file {acf}: syntax error" in err


def test_paths_in_a_config_file_are_relative_to_it(tmp_path):
    from pvconsole.config import build
    conf = tmp_path / "etc" / "pvconsole.toml"
    conf.parent.mkdir()
    conf.write_text("state_dir = 'state'\nplugins = ['iocs/psu.py', 'mypkg.motors', 'ep:vac', "
                    "'iocs/seis.py -P SEIS:']\n[ca]\nport = 5070\n")
    cfg = build({}, conf, environ={})
    assert cfg.state_dir == tmp_path / "etc" / "state"
    assert cfg.plugins == [str(tmp_path / "etc" / "iocs" / "psu.py"), "mypkg.motors", "ep:vac",
                           f"{tmp_path / 'etc' / 'iocs' / 'seis.py'} -P SEIS:"]
    assert cfg.ca_port == 5070


def test_a_plugin_path_with_spaces_in_a_config_file_is_one_file(tmp_path):
    from pvconsole.config import build
    conf = tmp_path / "etc" / "pvconsole.toml"
    (tmp_path / "etc" / "my iocs").mkdir(parents=True)
    (tmp_path / "etc" / "my iocs" / "psu.py").write_text("")
    conf.write_text("plugins = ['my iocs/psu.py', \"'my iocs/psu.py' -P X:\"]\n")
    cfg = build({}, conf, environ={})
    psu = tmp_path / "etc" / "my iocs" / "psu.py"
    assert cfg.plugins == [str(psu), f"'{psu}' -P X:"]


def test_a_line_the_c_library_repeats_is_logged_once_a_while():
    from pvconsole.fdcapture import RepeatFilter
    f = RepeatFilter(window=60)
    assert f.check("beacon error", 0.0) == "beacon error"
    assert f.check("beacon error", 5.0) is None
    assert f.check("other", 6.0) == "other"
    assert f.check("beacon error", 30.0) is None
    assert f.check("beacon error", 61.0) == "beacon error (and 2 more times in 61 s)"
    assert f.check("beacon error", 62.0) is None


def test_a_second_signal_exits_at_once(tmp_path):
    """While a stop waits (here for a plugin's stop() that hangs), a second SIGTERM
    means now: exit code 1 and one line, at once."""
    hung = _plugin(tmp_path, "hung", (
        "import threading\nfrom pcaspy import Driver\nprefix = 'HUNG:'\npvdb = {'X': {}}\n"
        "class D(Driver):\n    def stop(self):\n        threading.Event().wait()\n"))
    proc, _ = start(tmp_path, "--plugin", hung)
    try:
        wait_serving(proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # inside the stop, waiting for the plugin
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 1
        assert time.monotonic() - t0 < 1.0
    finally:
        proc.kill()
    assert "pvconsole: SIGTERM while stopping: exiting without finishing the stop" in proc.stderr.read()


@pytest.mark.parametrize("force", [False, True])
def test_a_plugins_logging_setup_works_and_keeps_the_console_log(tmp_path, force):
    """``logging.basicConfig(filename=..., level=...)`` in a plugin writes its file, as
    in a process of its own (the root already had pvconsole's handler: nothing
    happened), and with ``force=True`` it no longer takes pvconsole's log away."""
    audit = tmp_path / "audit.log"
    plugin = _plugin(tmp_path, "audited", (
        "import logging\n"
        f"logging.basicConfig(filename={str(audit)!r}, level=logging.DEBUG, force={force},\n"
        "                    format='%(levelname)s %(message)s')\n"
        "logging.getLogger('audit').debug('audit: ready')\n"
        "print('audit: printed')\n"
        "prefix = 'AUD:'\npvdb = {'X': {}}\n"))
    _, err = serve_and_stop(tmp_path, plugin, 2.0)
    assert "DEBUG audit: ready" in audit.read_text()
    assert re.search(r"DEBUG +audit: audit: ready", err)  # the console's log has it too, once
    assert err.count("audit: ready") == 1
    assert "pvconsole: stopped" in err
    assert "pvconsole" not in audit.read_text() and "printed" not in audit.read_text()


@pytest.mark.parametrize("setup", [
    "logging.basicConfig(level=logging.WARNING)",  # the root's level: not print()'s
    "from rich.logging import RichHandler\nlogging.basicConfig(handlers=[RichHandler()])",
    "import logging.config\nlogging.config.dictConfig({'version': 1, 'root': {'level': 'ERROR',"
    " 'handlers': ['out']}, 'handlers': {'out': {'class': 'logging.StreamHandler',"
    " 'stream': 'ext://sys.stdout'}}})",
    # a module logger at DEBUG with a stderr handler of its own at INFO, as scripts do
    "mine = logging.getLogger('mine'); mine.setLevel(logging.DEBUG)\n"
    "h = logging.StreamHandler(); h.setLevel(logging.INFO); mine.addHandler(h)\n"
    "mine.debug('mine: a debug line')",
    # a handler on the root and on a logger that does not propagate
    "import logging.config\nlogging.config.dictConfig({'version': 1, 'root': {'handlers': ['out']},"
    " 'loggers': {'mine': {'handlers': ['out'], 'propagate': False}},"
    " 'handlers': {'out': {'class': 'logging.StreamHandler', 'stream': 'ext://sys.stdout'}}})",
])
def test_a_plugins_logging_setup_loses_and_doubles_nothing(tmp_path, setup):
    """Whatever a plugin does to the root logger, the console's log keeps pvconsole's
    records and what plugins print, and a handler writing to stdout adds no copies."""
    plugin = _plugin(tmp_path, "configured", (
        f"import logging\n{setup}\n"
        "logging.getLogger('mine').error('mine: an error')\n"
        "print('mine: printed')\n"
        "prefix = 'CFG:'\npvdb = {'X': {}}\n"))
    _, err = serve_and_stop(tmp_path, plugin, 2.0)
    assert re.search(r"INFO +stdout: mine: printed", err)
    assert err.count("mine: an error") == 1, err
    assert "mine: a debug line" not in err
    assert "pvconsole: stopped" in err and "stopping" in err
    assert re.search(r"pvconsole\.engine: plugin configured", err), err  # a child logger


def _stream_to_list(name: str):
    """A LogStream whose records' messages are collected in the list returned with it."""
    import logging
    from pvconsole import fdcapture
    got: list[str] = []
    logger = logging.getLogger(name)
    handler = logging.Handler()
    handler.emit = lambda record: got.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return fdcapture.LogStream(logger, logging.INFO, 1), got


def test_partial_lines_are_logged_as_a_terminal_shows_them(monkeypatch):
    """Dots printed with flush=True: one record, not one per dot; a progress bar redrawn
    with \\r: its last state; a CRLF line: its text."""
    from pvconsole import fdcapture
    monkeypatch.setattr(fdcapture, "PARTIAL_WAIT", 0.2)
    stream, got = _stream_to_list("test.partial")
    for _ in range(50):
        stream.write(".")
        stream.flush()
    wait_for(lambda: got == ["." * 50])
    stream.write("\r10%\r50%\r100%\n")
    stream.write("crlf\r\n")
    assert got == ["." * 50, "100%", "crlf"]
    time.sleep(0.3)
    assert len(got) == 3


def test_output_without_end_is_logged_in_bounded_pieces():
    """A dot per update for hours, or a 40,000-character dump: logged in records of at
    most MAX_LINE characters, nothing lost, and no line kept waiting grows past it (it
    grew without bound, each write copying it)."""
    from pvconsole import fdcapture
    stream, got = _stream_to_list("test.long")
    size = fdcapture.MAX_LINE
    for _ in range(2 * size + 5):
        stream.write(".")
    assert got == ["." * size] * 2
    stream.write("x" * (2 * size + 1) + "\n")
    assert got[2:] == ["." * 5 + "x" * (size - 5), "x" * size, "x" * 6]


@pytest.mark.parametrize("sig, how", [(signal.SIGTERM, "its SIGTERM handler"),
                                      (signal.SIGINT, "KeyboardInterrupt")])
def test_a_script_is_told_the_signal_that_stops_pvconsole(tmp_path, monkeypatch, sig, how):
    mark = tmp_path / "mark"
    monkeypatch.setenv("CLEANUP_MARK", str(mark))
    proc, _ = start(tmp_path, "--plugin", str(ROOT / "tests" / "plugins" / "script_cleanup.py"))
    try:
        wait_serving(proc)
        stops_within(proc, 2.0, sig)
    finally:
        proc.kill()
    assert mark.read_text() == how
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("stops_poller", [True, False])
def test_a_script_with_a_poller_process_stops_cleanly(tmp_path, stops_poller):
    """A ``multiprocessing`` poller: the script's clean-up terminates it (the child has
    Python's own SIGTERM, not pvconsole's, which printed a traceback from it), or leaves
    it running (it is terminated: Python's exit waited for it, and the stop hung until
    the 10 s deadline, exit 1)."""
    pid_file = tmp_path / "poller.pid"
    cleanup = "p.terminate(); p.join()" if stops_poller else "pass"
    script = _plugin(tmp_path, "poller", (
        "import multiprocessing, os, time\nfrom pcaspy import Driver, SimpleServer\n"
        "def poll(path):\n    open(path, 'w').write(str(os.getpid()))\n"
        "    while True:\n        time.sleep(0.05)\n"
        "if __name__ == '__main__':\n"
        f"    p = multiprocessing.Process(target=poll, args=({str(pid_file)!r},), name='poller')\n"
        "    p.start()\n    server = SimpleServer()\n    server.createPV('MP:', {'X': {}})\n"
        "    driver = Driver()\n    try:\n        while True:\n            server.process(0.05)\n"
        f"    except KeyboardInterrupt:\n        {cleanup}\n"))
    _, err = serve_and_stop(tmp_path, script, 3.0, ready=lambda: pid_file.exists() and pid_file.read_text())
    assert "Traceback" not in err
    assert ("still running after the stop: terminated" in err) is not stops_poller
    child = int(pid_file.read_text())
    wait_for(lambda: not os.path.exists(f"/proc/{child}") or _zombie(child))


def _zombie(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_sighup_runs_a_script_handler_for_it_or_stops_cleanly(tmp_path):
    """A script's SIGHUP/SIGUSR1 handler (a configuration reload) runs when pvconsole gets
    the signal, and pvconsole serves on; one the script ignores is ignored; one that no
    script handles (a terminal's hangup) stops pvconsole cleanly. Before, each killed the
    process without a stop."""
    mark = tmp_path / "mark"
    script = _plugin(tmp_path, "reload", (
        "import signal\nfrom pcaspy import Driver, SimpleServer\n"
        f"def reload(signum, frame):\n    open({str(mark)!r}, 'a').write(f'{{signum}} ')\n"
        "if __name__ == '__main__':\n"
        "    signal.signal(signal.SIGHUP, reload)\n    signal.signal(signal.SIGUSR1, reload)\n"
        "    signal.signal(signal.SIGUSR2, signal.SIG_IGN)\n"
        "    server = SimpleServer()\n    server.createPV('HUP:', {'X': {}})\n"
        "    driver = Driver()\n    while True:\n        server.process(0.05)\n"))
    proc, _ = start(tmp_path, "--plugin", script)
    try:
        wait_serving(proc)
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            proc.send_signal(sig)
        wait_for(lambda: mark.exists() and len(mark.read_text().split()) == 2)
        time.sleep(0.3)
        assert proc.poll() is None  # still serving
        assert sorted(mark.read_text().split()) == sorted([str(int(signal.SIGHUP)),
                                                           str(int(signal.SIGUSR1))])
        stops_within(proc, 2.0)
    finally:
        proc.kill()
    proc, _ = start(tmp_path, "--plugin", str(ROOT / "ioc_plugins" / "psu.py"))
    try:
        wait_serving(proc)
        stops_within(proc, 2.0, signal.SIGHUP)  # handled by none: a clean stop
    finally:
        proc.kill()
    assert "signal SIGHUP: stopping" in proc.stderr.read()


@pytest.mark.parametrize("handler", [True, False])
def test_a_script_in_signal_pause_runs_its_clean_up(tmp_path, handler):
    """ServerThread, the main thread in signal.pause(): with a SIGTERM handler, the
    handler runs at the stop and the pause returns (alone, the signal itself ended it), so
    the code after it runs; without, the pause ends in its KeyboardInterrupt at once."""
    mark = tmp_path / "mark"
    setup = ("def handler(signum, frame):\n    print('handler', signum, flush=True)\n"
             if handler else "")
    install = "    signal.signal(signal.SIGTERM, handler)\n" if handler else ""
    script = _plugin(tmp_path, "paused", (
        "import signal\nfrom pcaspy import Driver, SimpleServer\n"
        f"from pcaspy.tools import ServerThread\n{setup}"
        f"if __name__ == '__main__':\n{install}"
        "    server = SimpleServer()\n    server.createPV('PAUSE:', {'X': {}})\n"
        "    driver = Driver()\n    st = ServerThread(server)\n    st.daemon = True\n"
        "    st.start()\n    try:\n        signal.pause()\n    except KeyboardInterrupt:\n"
        "        pass\n"
        f"    open({str(mark)!r}, 'w').write('clean')\n"))
    _, err = serve_and_stop(tmp_path, script, 2.0)
    assert ("handler 15" in err) is handler
    assert mark.read_text() == "clean"


def test_a_script_handler_that_chains_to_the_one_it_replaced_stops_cleanly(tmp_path):
    """``old = signal.signal(SIGTERM, h)`` and ``h`` ending in ``old(signum, frame)``: old
    was pvconsole's own handler, so the script's clean-up counted as a second SIGTERM
    and the stop was cut short (exit 1)."""
    mark = tmp_path / "mark"
    script = _plugin(tmp_path, "chains", (
        "import signal\nfrom pcaspy import Driver, SimpleServer\nrunning = True\n"
        "def on_term(signum, frame):\n    global running\n    running = False\n"
        "    if callable(old):\n        old(signum, frame)\n"
        "old = signal.signal(signal.SIGTERM, on_term)\n"
        "server = SimpleServer()\nserver.createPV('CHAIN:', {'X': {}})\ndriver = Driver()\n"
        "while running:\n    server.process(0.05)\n"
        f"open({str(mark)!r}, 'w').write('clean')\n"))
    serve_and_stop(tmp_path, script, 2.0)
    assert mark.read_text() == "clean"


def test_a_plugin_holding_the_ca_port_stops_start_up_with_the_port_named(tmp_path):
    """A script that runs a CA server of its own (pcaspy's casnooper example) took the
    port while loading: pvconsole's CA server then served on a random port, and the log
    named the configured one, which no client could reach it on."""
    plugin = _plugin(tmp_path, "holder", (
        "import os, socket\n"
        "held = socket.socket()\n"
        "held.bind(('127.0.0.1', int(os.environ['EPICS_CAS_SERVER_PORT'])))\n"
        "held.listen()\n"
        "prefix = 'HOLD:'\npvdb = {'X': {}}\n"))
    proc, _ = start(tmp_path, "--plugin", plugin)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2, err
    assert "taken while the plugins loaded" in err and "CA port" in err
