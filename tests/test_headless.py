"""The ``pvconsole --headless`` process: start, serve, stop on a signal, fail fast."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, free_port, plugin_path, pva_context


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
        t0 = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 2.0
    finally:
        proc.kill()
    putlog = (tmp_path / "state" / "putlog.jsonl").read_text()
    assert '"requested": "before stop"' in putlog


def test_c_library_output_goes_through_the_log(tmp_path):
    """Beacon errors printed by the CA server library arrive as log records, nothing raw."""
    proc, _ = start(tmp_path, "--plugin", plugin_path("second"))
    try:
        wait_serving(proc)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    stamped = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \w+ +[\w.]+: |^pvconsole: serving")
    raw = [line for line in err.splitlines() if line and not stamped.match(line)]
    assert not raw, raw
    assert " epics: " in err  # the library did print, and it was captured


def test_port_in_use_is_a_one_line_error(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        proc, _ = start(tmp_path, "--plugin", plugin_path("second"), ca_port=port)
        out, err = proc.communicate(timeout=20)
    finally:
        s.close()
    assert proc.returncode == 2
    assert f"pvconsole: error: CA port {port} on 127.0.0.1 is not usable" in err
    assert "Traceback" not in err


def test_bad_config_file_is_a_clear_error(tmp_path):
    (tmp_path / "pvconsole.toml").write_text("[ca]\nport = 'x'\n")
    proc = subprocess.run([sys.executable, "-m", "pvconsole", "--headless"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2
    assert "pvconsole: error: ca_port: invalid value 'x'" in proc.stderr


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
