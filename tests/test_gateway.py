"""The CA -> PVA gateway: a plain pcaspy IOC in its own process, served over PVA."""

from __future__ import annotations

import logging
import math
import os
import queue
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HERE, wait_for
from pvconsole import cagateway
from pvconsole.loopback import beacon_sink, free_port

NAMES = ["R:F", "R:I", "R:S", "R:E", "R:STR", "R:W", "R:TXT", "R:SP", "R:STAMP", "R:RO"]
ACF = """ASG(DEFAULT) {
    RULE(1, READ)
    RULE(1, WRITE)
}
ASG(RO) {
    RULE(1, READ)
}
"""


# ------------------------------------------------------------------ pure parts


def test_a_channel_becomes_the_pvdb_entry_pcaspy_would_have():
    ctrl = {"precision": 3, "units": "V", "lower_disp_limit": 0.0, "upper_disp_limit": 100.0,
            "lower_alarm_limit": 1.0, "upper_alarm_limit": 90.0, "lower_warning_limit": math.nan,
            "upper_warning_limit": math.nan}
    entry = cagateway.pvdb_entry({"dbf": "double", "count": 1, "ctrl": ctrl, "value": 5.0})
    assert entry == {"type": "float", "count": 1, "asyn": True, "prec": 3, "unit": "V",
                     "lolim": 0.0, "hilim": 100.0, "lolo": 1.0, "hihi": 90.0, "value": 5.0,
                     "low": math.nan, "high": math.nan}  # unset: NaN, as QSRV serves them
    enum = cagateway.pvdb_entry({"dbf": "enum", "count": 1, "write": False, "value": 1,
                                 "ctrl": {"enum_strs": ["Off", "On"]}})
    assert enum == {"type": "enum", "count": 1, "asyn": True, "enums": ["Off", "On"], "value": 1}
    assert cagateway.pvdb_entry({"dbf": "string", "count": 1, "value": "x"})["type"] == "string"
    assert cagateway.pvdb_entry({"dbf": "long", "count": 1, "value": 1, "desc": "Counts"})[
        "pva"] == {"description": "Counts"}
    assert cagateway.pvdb_entry({"dbf": "float32", "count": 3, "value": [1.0]})["count"] == 3
    enums = cagateway.pvdb_entry({"dbf": "enum", "count": 3, "value": [0, 1], "ctrl": {}})
    assert (enums["type"], enums["pva"]) == ("int", {"type": "uint16"})  # FTVL=ENUM


@pytest.mark.parametrize("info, served_as", [
    ({"dbf": "float32", "count": 4}, "float32"),  # CA's DBR_FLOAT: a float32 field
    ({"dbf": "char", "count": 4, "rtyp": "waveform", "ftvl": "CHAR"}, "int8"),
    ({"dbf": "char", "count": 4, "rtyp": "waveform", "ftvl": "UCHAR"}, None),
    ({"dbf": "long", "count": 4, "rtyp": "aai", "ftvl": "USHORT"}, "uint16"),
    ({"dbf": "double", "count": 4, "rtyp": "waveform", "ftvl": "ULONG"}, "uint32"),
    ({"dbf": "double", "count": 4, "rtyp": "waveform", "ftvl": "INT64"}, "int64"),
    ({"dbf": "double", "count": 4, "rtyp": "waveform", "ftvl": "UINT64"}, "uint64"),
    ({"dbf": "double", "count": 1, "rtyp": "int64in"}, "int64"),
    ({"dbf": "double", "count": 1, "rtyp": "ai"}, None),
    ({"dbf": "double", "count": 1}, None),  # (a pcaspy IOC: no record type)
])
def test_a_record_is_served_in_its_own_type_where_ca_carries_a_wider_one(info, served_as):
    entry = cagateway.pvdb_entry({"value": 0, **info})
    assert entry.get("pva", {}).get("type") == served_as


def test_the_record_fields_asked_are_those_that_may_change_the_type():
    from pvconsole.gwclient import asks_rtyp
    assert asks_rtyp({"dbf": "double", "count": 1, "ctrl": {"precision": 0}})  # int64in?
    assert not asks_rtyp({"dbf": "double", "count": 1, "ctrl": {"precision": 3}})  # a float
    assert asks_rtyp({"dbf": "long", "count": 8}) and asks_rtyp({"dbf": "char", "count": 8})
    assert not asks_rtyp({"dbf": "long", "count": 1}) and not asks_rtyp({"dbf": "float32", "count": 8})
    assert not asks_rtyp({"dbf": "string", "count": 3})


def test_char_arrays_are_text_by_record_type_else_by_what_they_hold():
    text = cagateway.pvdb_entry({"dbf": "char", "count": 8, "value": [104, 105, 0, 0]})
    assert text["value"] == "hi" and "pva" not in text
    data = cagateway.pvdb_entry({"dbf": "char", "count": 4, "value": [1, 2, 200, 0]})
    assert data["pva"] == {"longstring": False} and data["value"] == [1, 2, 200, 0]
    empty = cagateway.pvdb_entry({"dbf": "char", "count": 8, "value": [0] * 8})
    assert empty["value"] == "" and "pva" not in empty  # no record type: pcaspy's long string
    lso = cagateway.pvdb_entry({"dbf": "char", "count": 8, "value": [0] * 8, "rtyp": "lso"})
    assert lso["value"] == "" and "pva" not in lso
    for rtyp in ("waveform", "aai"):  # bytes, unless they hold text (a Q:form String's)
        wf = cagateway.pvdb_entry({"dbf": "char", "count": 8, "value": [0] * 8, "rtyp": rtyp})
        assert wf["pva"] == {"longstring": False}
        data = cagateway.pvdb_entry({"dbf": "char", "count": 4, "value": [104, 1, 0, 0], "rtyp": rtyp})
        assert data["pva"] == {"longstring": False}
        wf = cagateway.pvdb_entry({"dbf": "char", "count": 8, "value": [104, 105, 0, 0], "rtyp": rtyp})
        assert wf["value"] == "hi" and "pva" not in wf
        pixels = cagateway.pvdb_entry({"dbf": "char", "count": 4, "value": [200, 201, 202, 0],
                                       "rtyp": rtyp})  # no control byte, and not UTF-8 text
        assert pixels["pva"] == {"longstring": False}
    assert cagateway.text_of([104, 0, 1]) == "h"  # what follows the NUL is not the text
    assert cagateway.text_of([1, 104]) == "\x01h"  # a text PV's bytes are kept whatever they are


def test_a_catch_up_read_never_serves_an_older_value_than_a_monitor_did():
    assert cagateway.takes_update("update", (5, 0), (9, 0))  # a monitor's: as it comes
    assert cagateway.takes_update("catch-up", (9, 1), (9, 0))
    assert not cagateway.takes_update("catch-up", (9, 0), (9, 0))
    assert not cagateway.takes_update("catch-up", (8, 0), (9, 0))  # overtaken meanwhile
    assert cagateway.takes_update("catch-up", (8, 0), None)
    assert not cagateway.takes_update("meta", (9, 1), (9, 0))


def test_what_goes_to_the_ioc_for_a_put():
    assert cagateway.ca_put_value("grüß".encode().decode("latin-1"), True, 16) == \
        [*"grüß".encode(), 0]  # pcaspy's one character per byte -> the bytes, NUL-ended
    assert cagateway.ca_put_value("\x01\xc8\x03", False, 4) == [1, 200, 3]
    assert cagateway.ca_put_value(2.5, False, 1) == 2.5
    with pytest.raises(cagateway.WriteRefused, match="empty array"):
        cagateway.ca_put_value([], False, 16)


def test_pyepics_values_become_plain_python():
    import ctypes
    import numpy as np
    from pvconsole.gwclient import plain
    assert plain((ctypes.c_ubyte * 1)(9)) == [9]  # a one-element char waveform's value
    assert plain(np.array([1.0, 2.0])) == [1.0, 2.0] and plain(b"ab") == [97, 98]
    assert plain(3) == 3 and plain("x") == "x"


def test_pv_names_come_from_arguments_and_files(tmp_path):
    f = tmp_path / "pvs.txt"
    f.write_text("# the ring\nSR:A SR:B\n\nSR:C  # third\nSR:A\n")
    assert cagateway.pv_names(["X:1", "SR:B"], [f]) == ["X:1", "SR:B", "SR:A", "SR:C"]


# ------------------------------------------------------------------ end to end


class RemoteIOC:
    """tests/remote_ioc.py on a free loopback port."""

    def __init__(self, acf: Path, port: int | None = None, prefix: str = "R:") -> None:
        self.port = port or free_port(udp=True)
        env = dict(os.environ, REMOTE_ACF=str(acf), REMOTE_PREFIX=prefix, EPICS_CAS_INTF_ADDR_LIST="127.0.0.1",
                   EPICS_CAS_SERVER_PORT=str(self.port), EPICS_CAS_BEACON_ADDR_LIST="127.0.0.1",
                   EPICS_CAS_BEACON_PORT=str(beacon_sink()), EPICS_CAS_AUTO_BEACON_ADDR_LIST="NO")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "remote_ioc.py")], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def command(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def remote(monkeypatch, tmp_path):
    iocs: list[RemoteIOC] = []
    acf = tmp_path / "remote.acf"
    acf.write_text(ACF)

    def start(port: int | None = None, prefix: str = "R:") -> RemoteIOC:
        ioc = RemoteIOC(acf, port, prefix)
        iocs.append(ioc)
        # what the gateway's CA client process finds IOCs with
        monkeypatch.setenv("EPICS_CA_ADDR_LIST", f"127.0.0.1:{ioc.port}")
        monkeypatch.setenv("EPICS_CA_AUTO_ADDR_LIST", "NO")
        return ioc
    yield start
    for ioc in iocs:
        ioc.stop()


def gateway_spec(*names: str) -> str:
    return " ".join([cagateway.__file__, *names, "--connect-timeout", "3"])


def test_pva_serves_what_the_ca_ioc_serves(engine_factory, pva, remote):
    remote()
    engine = engine_factory(gateway_spec(*NAMES, "R:NOPE"))
    ctx = pva(engine)
    f = ctx.get("R:F")
    assert f.getID() == "epics:nt/NTScalar:1.0" and f.value == 95.0
    assert (f.alarm.severity, f.alarm.message) == (2, "HIHI")  # the IOC's alarm
    assert (f.display.units, f.display.precision, f.display.limitHigh) == ("V", 3, 100.0)
    assert f.display.description == "Output voltage"  # the IOC's DESC
    assert ctx.get("R:I").display.description == ""  # (none: not waited for beyond 1 s)
    assert (f.valueAlarm.highAlarmLimit, f.valueAlarm.lowWarningLimit) == (90.0, 2.0)
    assert ctx.get("R:I").value == 7 and ctx.get("R:I").display.units == "cts"
    assert str(ctx.get("R:S").type()["value"]) == "h" and ctx.get("R:S").value == -3
    e = ctx.get("R:E")
    assert (e.getID(), e.value.index, list(e.value.choices)) == ("epics:nt/NTEnum:1.0", 1,
                                                                 ["Off", "On", "Fault"])
    assert ctx.get("R:STR").value == "hello"
    assert ctx.get("R:W").value.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert ctx.get("R:TXT").value == "some text"
    stamp = ctx.get("R:STAMP").timeStamp  # the IOC's own timestamp, not the gateway's
    assert (stamp.secondsPastEpoch, stamp.nanoseconds) == (1704164645, 678)
    assert "R:NOPE" not in engine.entries  # did not connect: not served, and said so


def test_changes_on_the_ioc_reach_pva_monitors_and_pva_puts_reach_the_ioc(engine_factory, pva,
                                                                          remote):
    ioc = remote()
    engine = engine_factory(gateway_spec(*NAMES))
    ctx = pva(engine)
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor("R:F", q.put)
    try:
        assert q.get(timeout=5).value == 95.0
        ioc.command("set F 50")
        v = q.get(timeout=5)
        assert v.value == 50.0 and v.alarm.severity == 0
        ioc.command("meta")  # a property change on the IOC
        wait_for(lambda: ctx.get("R:F").display.units == "mV")
        assert ctx.get("R:F").display.precision == 1
    finally:
        sub.close()
    ioc.command("alarm")  # an alarm the IOC raises itself
    wait_for(lambda: ctx.get("R:I").alarm.message == "COMM")
    assert ctx.get("R:I").alarm.severity == 2
    ctx.put("R:SP", 7.25)  # completes when the IOC has processed it
    assert ctx.get("R:SP").value == 7.25
    ctx.put("R:TXT", "grüße")  # the IOC gets its UTF-8 bytes, and serves them back
    assert ctx.get("R:TXT").value == "grüße"
    ctx.put("R:E", "Fault")
    assert ctx.get("R:E").value.index == 2
    assert [r.pv for r in engine.putlog.tail(3)] == ["R:SP", "R:TXT", "R:E"]
    with pytest.raises(Exception, match="the IOC grants no write access"):
        ctx.put("R:RO", 1.0)
    assert ctx.get("R:RO").value == 3.0


def test_a_gone_ioc_is_a_link_alarm_and_refuses_puts_until_it_is_back(engine_factory, pva,
                                                                      remote):
    ioc = remote()
    engine = engine_factory(gateway_spec(*NAMES))
    ctx = pva(engine)
    assert ctx.get("R:SP").value == 1.5
    ioc.stop()
    wait_for(lambda: ctx.get("R:SP").alarm.message == "LINK", timeout=40)
    assert ctx.get("R:SP").alarm.severity == 3
    with pytest.raises(Exception, match="disconnected from its IOC"):
        ctx.put("R:SP", 2.0)
    remote(ioc.port)  # the IOC restarts
    wait_for(lambda: ctx.get("R:SP").alarm.severity == 0, timeout=40)
    ctx.put("R:SP", 2.0)
    assert ctx.get("R:SP").value == 2.0


def test_a_pv_whose_ioc_comes_up_later_is_served_then(engine_factory, pva, remote,
                                                      monkeypatch, caplog):
    """Not connected at start (its IOC is down): served, with the IOC's type, metadata
    and value, once it connects; puts go through; the console's table gets its row."""
    caplog.set_level(logging.INFO)
    ioc = remote()
    later = free_port(udp=True)
    monkeypatch.setenv("EPICS_CA_ADDR_LIST", f"127.0.0.1:{ioc.port} 127.0.0.1:{later}")
    engine = engine_factory(gateway_spec("R:F", "L:F", "L:E", "L:TXT", "L:SP"))
    changes = engine.subscribe()
    assert "L:F" not in engine.entries
    remote(later, prefix="L:")
    ctx = pva(engine)
    f = wait_for(lambda: ctx.get("L:F", timeout=1), timeout=30)
    assert (f.value, f.alarm.message, f.display.units, f.display.description) == (
        95.0, "HIHI", "V", "Output voltage")
    assert ctx.get("L:E").value.choices == ["Off", "On", "Fault"]
    assert ctx.get("L:TXT").value == "some text"
    ctx.put("L:SP", 2.5)  # through to the IOC and back
    assert ctx.get("L:SP").value == 2.5
    wait_for(lambda: "L:SP" in {s.name for s in changes.drain()})
    assert [p.pvs for p in engine.plugins if p.name == "cagateway"] == [5]
    assert any("4 PV(s) connected after start, now served" in r.getMessage() for r in caplog.records)


def test_a_gone_ca_client_process_is_said_and_shown(engine_factory, pva, remote, caplog):
    remote()
    engine = engine_factory(gateway_spec(*NAMES))
    ctx = pva(engine)
    assert ctx.get("R:SP").alarm.severity == 0
    engine.drivers["cagateway"].client.proc.kill()
    wait_for(lambda: ctx.get("R:SP").alarm.message == "LINK")
    assert any("CA client process ended" in r.getMessage() for r in caplog.records)
    with pytest.raises(Exception, match="disconnected from its IOC"):
        ctx.put("R:SP", 2.0)


def test_pvconsole_gateway_keeps_its_ca_server_out_of_the_way(remote, tmp_path):
    """``pvconsole gateway`` headless: its own CA server on loopback on a free port (CA
    clients keep finding the IOC), stops on SIGTERM with exit 0; no PV named is an error."""
    remote()
    pva_port, bcast = free_port(), free_port(udp=True)
    env = dict(os.environ, EPICS_PVAS_INTF_ADDR_LIST="127.0.0.1", EPICS_PVAS_SERVER_PORT=str(pva_port),
               EPICS_PVAS_BROADCAST_PORT=str(bcast))
    cmd = [sys.executable, "-m", "pvconsole", "gateway", "--headless", "--state-dir",
           str(tmp_path / "state"), "--control-prefix", ""]
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "name the PVs" in bad.stderr
    none = subprocess.run([*cmd, "R:NOPE", "--connect-timeout", "0.5"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert none.returncode == 2 and "none of the PVs connected" in none.stderr.splitlines()[-1]
    proc = subprocess.Popen([*cmd, "R:F", "--connect-timeout", "3"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("pvconsole: serving"):
                break
        assert "1 PVs from 1 plugin(s) (CA 127.0.0.1:" in line and "127.0.0.1:5064" not in line
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=10) == 0, rest
    assert "beacon" not in rest, rest


def test_a_put_the_ioc_fails_fails_over_pva(engine_factory, pva, monkeypatch, tmp_path):
    """The IOC answers the CA put's completion with ECA_PUTFAIL (here a pvconsole whose
    driver raises): the PVA put fails with CA's message, not ends as done."""
    plugin = tmp_path / "failing_ioc.py"
    plugin.write_text("from pcaspy import Driver\nprefix = 'R2:'\npvdb = {'BAD': {}, 'GOOD': {}}\n"
                      "class D(Driver):\n"
                      "    def write(self, reason, value):\n"
                      "        if reason == 'BAD':\n"
                      "            raise RuntimeError('device fault')\n"
                      "        self.setParam(reason, value)\n"
                      "        return True\n")
    port = free_port(udp=True)
    ioc = subprocess.Popen(
        [sys.executable, "-m", "pvconsole", "--headless", "--plugin", str(plugin), "--state-dir",
         str(tmp_path / "ioc-state"), "--control-prefix", "", "--ca-intf", "127.0.0.1",
         "--ca-port", str(port), "--ca-beacon-addr", "127.0.0.1", "--ca-beacon-port",
         str(beacon_sink()), "--pva-intf", "127.0.0.1", "--pva-port", str(free_port()),
         "--pva-broadcast-port", str(free_port(udp=True))],
        stderr=subprocess.PIPE, text=True)
    try:
        for line in ioc.stderr:
            if line.startswith("pvconsole: "):
                break
        assert line.startswith("pvconsole: serving"), line
        monkeypatch.setenv("EPICS_CA_ADDR_LIST", f"127.0.0.1:{port}")
        monkeypatch.setenv("EPICS_CA_AUTO_ADDR_LIST", "NO")
        ctx = pva(engine_factory(gateway_spec("R2:BAD", "R2:GOOD")))
        with pytest.raises(Exception, match="the IOC failed the put: Channel write request failed"):
            ctx.put("R2:BAD", 1.0)
        ctx.put("R2:GOOD", 2.0)
        assert ctx.get("R2:GOOD").value == 2.0
    finally:
        ioc.send_signal(signal.SIGTERM)
        ioc.wait(timeout=10)
