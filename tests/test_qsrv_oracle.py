"""pvconsole's PVA output against a native EPICS IOC with QSRV2 (pythonSoftIOC)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from p4p import Value

from conftest import HERE, free_port, plugin_path, pva_context, wait_for
from pvconsole import cagateway

# find, never import: softioc's EPICS 7 IOC libraries in this process would shadow
# pcaspy's EPICS 3.14 asLib symbols (the reference IOC runs in its own process)
if importlib.util.find_spec("softioc") is None:
    pytest.skip("softioc not installed", allow_module_level=True)

# pvconsole PV -> what an IOC serves for the equivalent record
PAIRS = ["FLOAT", "INT", "SHORT", "CHAR", "STRING", "ENUM", "FARR", "IARR", "SARR", "SLIST", "BYTES",
         "LONG"]


@pytest.fixture(scope="module")
def oracle_ioc():
    """(a PVA client context of the reference IOC's QSRV, the IOC's CA server port)."""
    ports = [free_port(), free_port(), free_port()]
    proc = subprocess.Popen([sys.executable, str(HERE / "qsrv_oracle_ioc.py"), *map(str, ports)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        for line in proc.stdout:  # the IOC prints its banner first
            if line.strip() == "ready":
                break
        else:
            pytest.fail("reference IOC did not start")
        ctx = pva_context({"EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{ports[1]}",
                           "EPICS_PVA_ADDR_LIST": "", "EPICS_PVA_AUTO_ADDR_LIST": "NO"})
        yield ctx, ports[0]
        ctx.close()
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def oracle(oracle_ioc):
    return oracle_ioc[0]


@pytest.mark.parametrize("name", PAIRS)
def test_same_structure_as_qsrv(engine_factory, pva, oracle, name):
    engine = engine_factory(plugin_path("alltypes"))
    ours = pva(engine).get(f"T:{name}")
    theirs = oracle.get(f"Q:{name}")
    assert ours.getID() == theirs.getID()
    assert repr(ours.type()) == repr(theirs.type())
    # as pvxs prints it: repr shows an empty sub-structure ID as 'structure', pvxs does not
    assert str(Value(ours.type())) == str(Value(theirs.type()))


@pytest.mark.parametrize("name", ["FLOAT", "INT", "ENUM", "STRING", "FARR", "SLIST", "LONG"])
def test_same_values_and_metadata_as_qsrv(engine_factory, pva, oracle, name):
    engine = engine_factory(plugin_path("alltypes"))
    ours = pva(engine).get(f"T:{name}").todict()
    theirs = oracle.get(f"Q:{name}").todict()
    for d in (ours, theirs):
        d.pop("timeStamp")
        if name == "LONG":
            d.pop("alarm")  # the IOC's longStringIn was never processed
    if "value" in ours and hasattr(ours["value"], "tolist"):
        ours["value"], theirs["value"] = ours["value"].tolist(), theirs["value"].tolist()
    assert ours == theirs


def _first_update(ctx, name: str):
    import queue
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor(name, q.put)
    try:
        return q.get(timeout=5)
    finally:
        sub.close()


@pytest.mark.parametrize("name", PAIRS)
def test_a_monitor_is_sent_the_fields_qsrv_sends(engine_factory, oracle, name):
    """The first update of a monitor carries (marks) the fields QSRV fills, and no more:
    a client that looks at what changed sees the same as with the IOC."""
    engine = engine_factory(plugin_path("alltypes"))
    ctx = pva_context(engine.pva_client_conf())
    try:
        ours = _first_update(ctx, f"T:{name}")
    finally:
        ctx.close()
    theirs = _first_update(oracle, f"Q:{name}")
    ours_changed = ours.changedSet()
    if name in ("SHORT", "CHAR"):  # the IOC's stand-in is a 1-element waveform: no alarm
        ours_changed -= {f"valueAlarm.{f}" for f in  # limits, while pcaspy's scalars have them
                         ("lowAlarmLimit", "lowWarningLimit", "highWarningLimit", "highAlarmLimit")}
    assert sorted(ours_changed) == sorted(theirs.changedSet())


#: pvatypes.py: served as QSRV serves records whose VAL CA carries in a wider type
CHOSEN_TYPES = ["F32ARR", "I8ARR", "U16ARR", "U32ARR", "I64ARR", "U64ARR", "I64"]


@pytest.mark.parametrize("name", CHOSEN_TYPES)
def test_a_chosen_pva_type_is_served_as_qsrv_serves_the_record(engine_factory, pva, oracle, name):
    engine = engine_factory(plugin_path("pvatypes"))
    ours = pva(engine).get(f"T:{name}")
    theirs = oracle.get(f"Q:{name}")
    assert repr(ours.type()) == repr(theirs.type())
    ours, theirs = ours.todict(), theirs.todict()
    for d in (ours, theirs):
        d.pop("timeStamp")
        d.pop("alarm")  # the IOC's records were never processed
        d.pop("display")  # (no DESC, EGU, limits here)
        d.pop("control")
        if hasattr(d["value"], "tolist"):
            d["value"] = d["value"].tolist()
    assert ours == theirs


def _comparable(d):
    """A Value's dict with arrays as lists and NaN as 'NaN' (NaN != NaN)."""
    if isinstance(d, dict):
        return {k: _comparable(v) for k, v in d.items()}
    if hasattr(d, "tolist"):
        return _comparable(d.tolist())
    if isinstance(d, list):
        return [_comparable(x) for x in d]
    return "NaN" if isinstance(d, float) and d != d else d


def test_the_gateway_serves_the_ioc_records_as_its_qsrv_does(engine_factory, pva, oracle_ioc,
                                                              monkeypatch):
    """The gateway in front of the reference IOC: each record as the IOC's own QSRV serves
    it, the types CA carries wider (float32, signed char, unsigned, int64) included."""
    ctx, ca_port = oracle_ioc
    monkeypatch.setenv("EPICS_CA_ADDR_LIST", f"127.0.0.1:{ca_port}")
    monkeypatch.setenv("EPICS_CA_AUTO_ADDR_LIST", "NO")
    names = [n for n in PAIRS + CHOSEN_TYPES if n != "CHAR"]  # (a 1-element waveform: an array)
    names += ["ONLYHIHI", "ONLYLOW", "NEVER", "HYST", "DRIVE"]  # alarm limits NaN; UDF; DRVH
    names += ["LSI", "LSO"]  # long strings
    engine = engine_factory(" ".join([cagateway.__file__, *(f"Q:{n}" for n in names), "Q:ENUMARR"]))
    ours = pva(engine)
    # QSRV serves no enum waveform; the others are served beside it
    assert ours.get("Q:ENUMARR").value.tolist() == [0, 1, 2]
    assert str(ours.get("Q:ENUMARR").type()["value"]) == "aH"
    differ = {}
    for name in names:
        a, b = ours.get(f"Q:{name}"), ctx.get(f"Q:{name}")
        if repr(a.type()) != repr(b.type()):
            differ[name] = ("type", repr(a.type()), repr(b.type()))
            continue
        a, b = _comparable(a.todict()), _comparable(b.todict())
        for d in (a, b):
            d.pop("timeStamp")
        if a != b:
            differ[name] = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not differ
    text = "a long string put over PVA, " * 4  # 112 bytes
    ours.put("Q:LSO", text)
    assert ours.get("Q:LSO").value == ctx.get("Q:LSO").value == text
    # a put that shortens an array: the get after it serves the IOC's new length
    for n in range(3):
        ours.put("Q:FARR", [9.0 + n] * (3 - n))
        assert ours.get("Q:FARR").value.tolist() == ctx.get("Q:FARR").value.tolist() == [9.0 + n] * (3 - n)
    # a property change (a new EGU) keeps the IOC's alarm, which pcaspy's setParamInfo
    # replaced by its own rules' (an unset LOLO taken for 0: LOLO/MAJOR at 0; no HYST)
    env = dict(os.environ, EPICS_CA_ADDR_LIST=f"127.0.0.1:{ca_port}", EPICS_CA_AUTO_ADDR_LIST="NO")
    puts = [("Q:HYST", 96), ("Q:HYST", 93.5), ("Q:ONLYHIHI.EGU", "bar"), ("Q:HYST.EGU", "bar"),
            ("Q:DRIVE.DRVH", 90)]
    subprocess.run([sys.executable, "-c", f"import epics\nfor n, v in {puts!r}: epics.caput(n, v, wait=True)"],
                   env=env, check=True, timeout=30, stderr=subprocess.DEVNULL)
    for name, alarm in [("Q:ONLYHIHI", (0, "")), ("Q:HYST", (2, "HIHI"))]:  # HYST: held
        wait_for(lambda: ours.get(name).display.units == "bar")
        got = ours.get(name).alarm
        assert (got.severity, got.message) == alarm, name
    wait_for(lambda: ours.get("Q:DRIVE").control.limitHigh == 90.0)  # DRVH followed
    assert ours.get("Q:DRIVE").control.todict() == ctx.get("Q:DRIVE").control.todict()
