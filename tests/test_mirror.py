"""End to end: an engine on loopback, a p4p client for PVA, pyepics (subprocess) for CA."""

from __future__ import annotations

import math
import queue
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from p4p.client.thread import Disconnected, RemoteError

from conftest import plugin_path, wait_for

from pvconsole import mirror as mirror_module
from pvconsole import typemap

ALLTYPES = plugin_path("alltypes")


@pytest.fixture
def engine(engine_factory):
    return engine_factory(ALLTYPES, asyn_timeout=1.0)


def driver_of(engine, name="alltypes"):
    return engine.drivers[name]


def test_a_get_after_a_completed_put_sees_the_put_also_when_posts_are_deferred(
        engine, pva, monkeypatch):
    """Above DEFER_RATE a post thread posts changes; a PVA put completes only once its
    change is posted, as an IOC's record is processed before its put completes: a get
    made at once (another client too) serves the new value. (Without: 75-161 of 300 were
    the old value under a 10,000 updates/s load.)"""
    monkeypatch.setattr(mirror_module, "DEFER_RATE", 0.0)  # every post deferred
    post = engine.mirror.post_unposted

    def late_post(entry):  # the post thread as on busy cores: late
        if threading.current_thread().name == "pva-post":
            time.sleep(0.02)
        post(entry)
    monkeypatch.setattr(engine.mirror, "post_unposted", late_post)
    putter, getter = pva(engine), pva(engine)
    seen: queue.Queue = queue.Queue()
    sub = putter.monitor("T:INT", seen.put)  # (posts are made to monitored PVs)
    try:
        seen.get(timeout=5)
        for i in range(20):  # past a rate window: deferred from now on
            putter.put("T:INT", 100 + i, wait=True)
        assert engine.mirror._busy
        stale = []
        for i in range(1000, 1200):  # (the driver refuses 13)
            putter.put("T:INT", i, wait=True)
            got = (putter if i % 2 else getter).get("T:INT").value
            if got != i:
                stale.append((i, got))
        assert not stale
    finally:
        sub.close()


def test_a_plugin_raising_the_ca_array_limit_at_import_gets_it(engine_factory, pva, ca,
                                                                monkeypatch, caplog):
    """The CA server library reads EPICS_CA_MAX_ARRAY_BYTES when it starts: it starts once
    the plugins ran, so a waveform IOC's own setting holds (ECA_TOLARGE before); a PV
    larger than the limit is named in the log."""
    monkeypatch.setenv("EPICS_CA_MAX_ARRAY_BYTES", "16384")  # (restored after the test)
    engine = engine_factory(plugin_path("big_array"))
    got = ca(engine).get("BIG:WAVE")
    assert len(got["value"]) == 100000 and got["value"][-1] == 99999.0
    assert len(pva(engine).get("BIG:WAVE").value) == 100000
    assert any("1 PV(s) larger than EPICS_CA_MAX_ARRAY_BYTES (2000000 bytes)" in r.getMessage()
               and "BIG:HUGE, 2400000 bytes" in r.getMessage() for r in caplog.records)


def test_every_type_and_metadata_over_pva(engine, pva):
    ctx = pva(engine)
    v = ctx.get("T:FLOAT")
    assert v.getID() == "epics:nt/NTScalar:1.0"
    assert v.value == 12.5
    assert v.display.precision == 3 and v.display.units == "V"
    assert (v.display.limitLow, v.display.limitHigh) == (0.0, 100.0)
    assert (v.control.limitLow, v.control.limitHigh) == (0.0, 100.0)
    assert v.display.description == "a float"
    va = v.valueAlarm
    assert (va.lowAlarmLimit, va.lowWarningLimit, va.highWarningLimit, va.highAlarmLimit) == (1, 2, 90, 95)
    assert v.display.form.choices[0] == "Default"
    assert ctx.get("T:INT").value == 7 and ctx.get("T:INT").display.units == "cts"
    assert ctx.get("T:SHORT").value == 3 and ctx.get("T:SHORT").display.limitLow == -10
    assert ctx.get("T:CHAR").value == 65
    assert ctx.get("T:STRING").value == "hello"
    assert ctx.get("T:STR").value == "synonym"
    e = ctx.get("T:ENUM")
    assert e.getID() == "epics:nt/NTEnum:1.0"
    assert (e.value.index, list(e.value.choices)) == (1, ["Off", "On", "Fault"])
    assert list(ctx.get("T:FARR").value) == [1.0, 2.0, 3.0]
    assert ctx.get("T:IARR").value.dtype == np.int32
    assert ctx.get("T:SARR").value.dtype == np.int16
    assert ctx.get("T:BYTES").value.dtype == np.uint8
    assert ctx.get("T:LONG").value == "a long string status"
    assert ctx.get("T:DOT.PREC").display.precision == 4


def test_timestamps_are_posix_and_alarm_follows_limits(engine, pva):
    ctx = pva(engine)
    drv = driver_of(engine)
    drv.setParam("FLOAT", 96.0)
    drv.updatePVs()
    v = wait_for(lambda: (lambda x: x if x.value == 96.0 else None)(ctx.get("T:FLOAT")))
    assert abs(v.timeStamp.secondsPastEpoch - time.time()) < 5
    assert (v.alarm.severity, v.alarm.status, v.alarm.message) == (2, 1, "HIHI")
    never = ctx.get("T:PLAIN")  # never written: UDF, as CA clients see it
    assert (never.alarm.severity, never.alarm.status, never.alarm.message) == (3, 2, "UDF")


def test_updates_reach_pva_without_any_ca_monitor(engine, pva):
    ctx = pva(engine)
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor("T:INT", q.put)
    try:
        wait_for(lambda: q.qsize() >= 1)
        drv = driver_of(engine)
        for i in range(100, 105):
            drv.setParam("INT", i)
            drv.updatePV("INT")
        seen = []
        wait_for(lambda: seen.extend(x.value for x in _drain(q)) or (seen and seen[-1] == 104))
        assert not engine.entry("T:INT").ca_monitored
    finally:
        sub.close()


@pytest.mark.parametrize("defer_rate", [0.0, math.inf], ids=["post-thread", "at-once"])
def test_a_burst_reaches_pva_monitors_whole_and_in_order(engine, pva, monkeypatch, defer_rate):
    """Above DEFER_RATE changes are written on the changing thread and posted by the post
    thread; a PV changed again before its post must be posted first, not merged into the
    newer one (a monitor with room for every update gets all of them, in order, on every
    PV). Below it they are posted at once."""
    monkeypatch.setattr(mirror_module, "DEFER_RATE", defer_rate)
    ctx = pva(engine)
    drv = driver_of(engine)
    names = ("INT", "SHORT", "FLOAT")
    got: dict[str, list] = {n: [] for n in names}
    subs = [ctx.monitor(f"T:{n}", lambda v, n=n: got[n].append(v.value),
                        request="record[queueSize=2000]field(value)") for n in names]
    try:
        wait_for(lambda: all(got.values()))
        for n in names:
            got[n].clear()
        sent = list(range(1, 301))
        for i in sent:  # each PV twice in a row, the three in turn
            for n in names:
                drv.setParam(n, i)
                drv.updatePV(n)
                drv.setParam(n, -i)
                drv.updatePV(n)
        want = [x for i in sent for x in (i, -i)]
        wait_for(lambda: all(len(v) >= len(want) for v in got.values()), timeout=20)
        for n in names:
            assert [int(x) for x in got[n]] == want, n
    finally:
        for sub in subs:
            sub.close()


def _drain(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_status_and_metadata_changes_reach_pva(engine, pva):
    ctx = pva(engine)
    drv = driver_of(engine)
    drv.setParamStatus("INT", 9, 3)  # COMM / INVALID
    drv.setParamInfo("FLOAT", {"prec": 5, "unit": "kV", "hilim": 200})
    drv.setParamEnums("ENUM", ["A", "B", "C", "D"])
    drv.updatePVs()
    wait_for(lambda: ctx.get("T:INT").alarm.message == "COMM")
    v = ctx.get("T:FLOAT")
    assert (v.display.precision, v.display.units, v.display.limitHigh) == (5, "kV", 200.0)
    assert v.control.limitHigh == 200.0  # pcaspy's one pair of limits
    assert list(ctx.get("T:ENUM").value.choices) == ["A", "B", "C", "D"]
    drv.setParamInfo("FLOAT", {"control": (10, 20)})  # pvconsole's: an ao's DRVL/DRVH
    drv.updatePVs()
    wait_for(lambda: ctx.get("T:FLOAT").control.limitLow == 10.0)
    v = ctx.get("T:FLOAT")
    assert (v.control.limitHigh, v.display.limitHigh) == (20.0, 200.0)


def test_a_condition_without_severity_posts_nothing_to_pva(engine, pva):
    """``setParamStatus(r, COMM, NO_ALARM)`` is no alarm over PVA (an IOC's STAT follows
    SEVR): a monitor gets no update that changes nothing, as from an IOC's record; the next
    real change comes with only the fields that changed."""
    ctx = pva(engine)
    drv = driver_of(engine)
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor("T:INT", q.put)
    try:
        first = q.get(timeout=5)
        drv.setParamStatus("INT", 9, 0)  # COMM / NO_ALARM
        drv.updatePVs()
        drv.setParamStatus("INT", 0, 0)  # and back: still nothing PVA shows
        drv.updatePVs()
        drv.setParam("INT", first.value + 1)
        drv.updatePVs()
        nxt = q.get(timeout=5)
        assert nxt.value == first.value + 1  # the change, not an update in between
        assert not {"alarm.severity", "alarm.status", "alarm.message"} & nxt.changedSet()
    finally:
        sub.close()


def test_a_pva_client_connecting_later_sees_the_newest_data(engine, pva):
    """While no PVA channel is open the mirror only notes changes; the first channel must
    still see the newest value, alarm, timestamp and metadata (and a monitor's first
    update too)."""
    drv = driver_of(engine)
    first = pva(engine)
    assert first.get("T:FLOAT").value == 12.5
    first.close()
    wait_for(lambda: engine.entry("T:FLOAT").pva_clients == 0)
    posts = engine.mirror.pva_posts
    for x in (50.0, 60.0, 96.0):
        drv.setParam("FLOAT", x)
        drv.updatePV("FLOAT")
    drv.setParamInfo("FLOAT", {"unit": "mV", "prec": 1})
    drv.updatePVs()
    assert engine.mirror.pva_posts == posts  # nobody was looking: nothing posted
    v = pva(engine).get("T:FLOAT")
    assert v.value == 96.0
    assert (v.alarm.severity, v.alarm.message) == (2, "HIHI")
    assert (v.display.units, v.display.precision) == ("mV", 1)
    assert abs(v.timeStamp.secondsPastEpoch - time.time()) < 5
    q: queue.Queue = queue.Queue()
    sub = pva(engine).monitor("T:FLOAT", q.put)
    try:
        assert wait_for(lambda: _drain(q))[0].value == 96.0
        drv.setParam("FLOAT", 97.0)
        drv.updatePV("FLOAT")
        seen: list = []
        wait_for(lambda: seen.extend(x.value for x in _drain(q)) or 97.0 in seen)
    finally:
        sub.close()


def test_scanned_pv_reaches_pva(engine_factory, pva, tmp_path):
    plugin = tmp_path / "scanned.py"
    plugin.write_text(
        "from pcaspy import Driver\nimport itertools\nprefix='SC:'\n"
        "pvdb={'N': {'type': 'int', 'scan': 0.05}}\n"
        "class D(Driver):\n    c = itertools.count()\n"
        "    def read(self, reason):\n        return next(self.c)\n")
    engine = engine_factory(str(plugin))
    ctx = pva(engine)
    first = ctx.get("SC:N").value
    wait_for(lambda: ctx.get("SC:N").value > first + 2)


def test_pva_put_reaches_driver_and_ca_monitor(engine, pva, ca):
    ctx = pva(engine)
    client = ca(engine)
    client.monitor("T:INT")
    wait_for(lambda: client.events())
    ctx.put("T:INT", 42, wait=True)
    assert ("INT", 42) in driver_of(engine).writes
    wait_for(lambda: any(e["value"] == 42 for e in client.events()))
    assert client.get("T:INT")["value"] == 42


def test_non_ascii_long_strings_are_the_same_bytes_on_both(engine, pva, ca):
    """A PVA put of text to a char array holds its UTF-8 bytes, as a CA put of that text
    does; PVA reads back the text, CA the bytes; the limit counts those bytes."""
    ctx = pva(engine)
    text = "\u20acuro \u00fc"
    ctx.put("T:LONG", text)
    assert ctx.get("T:LONG").value == text
    got = ca(engine).get("T:LONG")["value"]
    assert bytes(got).split(b"\0", 1)[0] == text.encode("utf-8")
    ctx.put("T:LONG", "\u00e9" * 128)  # 256 bytes: the whole array, as CA takes them
    assert ctx.get("T:LONG").value == "\u00e9" * 128
    with pytest.raises(RemoteError, match="258 bytes exceeds the limit of 256"):
        ctx.put("T:LONG", "\u00e9" * 129)


def test_ca_put_seen_on_pva_monitor(engine, pva, ca):
    ctx = pva(engine)
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor("T:STRING", q.put)
    try:
        wait_for(lambda: q.qsize())
        reply = ca(engine).put("T:STRING", "from ca")
        assert reply["ok"], reply
        seen = []
        wait_for(lambda: seen.extend(x.value for x in _drain(q)) or "from ca" in seen)
    finally:
        sub.close()
    rec = wait_for(lambda: [r for r in engine.putlog.tail(10) if r.protocol == "ca"])
    assert rec[-1].requested == "from ca" and rec[-1].result == "accepted"


@pytest.mark.parametrize("pv", ["T:INT", "T:ASYN"])
def test_a_ca_put_whose_driver_raises_fails_on_the_client(engine, ca, pv):
    """pcaspy answers such a put with success (its process then aborts): the client gets
    ECA_PUTFAIL, the value stays, and the next put to the PV succeeds."""
    client = ca(engine)
    before = client.get(pv)["value"]
    reply = client.call(op="put_status", pv=pv, value=666)
    assert reply.get("message") == "Channel write request failed", reply  # ECA_PUTFAIL
    assert client.get(pv)["value"] == before
    assert engine.putlog.tail(1)[0].result == "driver error"
    reply = client.call(op="put_status", pv=pv, value=7)
    assert reply.get("message", "").lower().startswith("normal"), reply
    wait_for(lambda: client.get(pv)["value"] == 7)


def test_a_ca_put_of_an_enum_index_without_a_state_is_refused(engine, ca, pva):
    """pcaspy hands any index to the driver, which stores a state that does not exist; it
    is refused as over PVA: ECA_PUTFAIL, the value stays, the put log says why."""
    client = ca(engine)
    client.call(op="put_status", pv="T:ENUM", value=1)
    wait_for(lambda: client.get("T:ENUM")["value"] == 1)
    reply = client.call(op="put_status", pv="T:ENUM", value=7)
    assert reply.get("message") == "Channel write request failed", reply  # ECA_PUTFAIL
    assert client.get("T:ENUM")["value"] == 1
    assert pva(engine).get("T:ENUM").value.index == 1
    last = engine.putlog.tail(1)[0]
    assert (last.protocol, last.result) == ("ca", "refused: type")
    assert "enum index 7 out of range 0..2" in last.reason
    reply = client.call(op="put_status", pv="T:ENUM", value=2)
    assert reply.get("message", "").lower().startswith("normal"), reply


def test_an_enum_given_more_than_16_states_takes_the_16_both_protocols_serve(engine, ca, pva):
    """``setParamEnums`` with 20 states: both protocols serve the first 16 (CA carries no
    more), and an index past them is refused on CA as on PVA (CA stored it)."""
    driver = driver_of(engine)
    engine.run_on_driver_thread(lambda: (
        driver.setParamEnums("ENUM", [f"S{i}" for i in range(20)]), driver.updatePVs()))
    ctx = pva(engine)
    wait_for(lambda: len(ctx.get("T:ENUM").value.choices) == 16)
    client = ca(engine)
    assert len(client.get("T:ENUM")["enum_strs"]) == 16
    reply = client.call(op="put_status", pv="T:ENUM", value=17)
    assert reply.get("message") == "Channel write request failed", reply
    assert "enum index 17 out of range 0..15" in engine.putlog.tail(1)[0].reason
    assert client.call(op="put_status", pv="T:ENUM", value=15).get("message", "").lower().startswith("normal")
    assert wait_for(lambda: ctx.get("T:ENUM").value.index == 15)


def test_an_array_count_set_by_setparaminfo_is_followed_on_pva(engine, ca, pva, caplog):
    """pcaspy's ``setParamInfo`` sets ``count`` too, and CA serves the new count: PVA
    takes arrays and puts of that length (it cut them at the old one); a scalar made an
    array keeps its PVA type, with a warning."""
    driver = driver_of(engine)
    engine.run_on_driver_thread(lambda: (
        driver.setParamInfo("IARR", {"count": 8}), driver.setParam("IARR", list(range(8))),
        driver.setParamInfo("INT", {"count": 3}), driver.updatePVs()))
    ctx = pva(engine)
    wait_for(lambda: list(ctx.get("T:IARR").value) == list(range(8)))
    assert ca(engine).get("T:IARR")["count"] == 8
    ctx.put("T:IARR", list(range(10, 16)), wait=True)
    assert list(ctx.get("T:IARR").value) == list(range(10, 16))
    with pytest.raises(RemoteError, match="exceeds count 8"):
        ctx.put("T:IARR", list(range(9)), wait=True)
    assert "T:INT: setParamInfo changed count from 1 to 3: PVA serves it as the" in caplog.text
    assert ctx.get("T:INT").type()["value"] == "i"


def test_ca_sees_the_same_metadata(engine, ca):
    got = ca(engine).get("T:FLOAT")
    assert got["value"] == 12.5 and got["units"] == "V" and got["precision"] == 3
    assert got["enum_strs"] == []
    assert ca(engine).get("T:ENUM")["enum_strs"] == ["Off", "On", "Fault"]


def test_enum_put_by_index_and_by_choice_string(engine, pva):
    ctx = pva(engine)
    ctx.put("T:ENUM", 0, wait=True)
    assert ctx.get("T:ENUM").value.index == 0
    ctx.put("T:ENUM", "Fault", wait=True)
    v = ctx.get("T:ENUM")
    assert v.value.index == 2
    assert (v.alarm.severity, v.alarm.message) == (2, "STATE")


@pytest.mark.parametrize("pv, value, message", [
    ("T:ENUM", 5, "out of range"),
    ("T:ENUM", {"value.index": -1}, "out of range"),
    ("T:FARR", list(range(17)), "exceeds count 16"),
    ("T:STRING", "x" * 60, "exceeds the limit of 39 bytes"),
    ("T:LONG", "y" * 300, "exceeds the limit of 256 bytes"),
    ("T:INT", 13, "driver refused"),
    ("T:INT", 666, "driver error: RuntimeError: driver exploded"),
    ("T:RO", 1.0, "read-only"),
])
def test_bad_puts_are_refused_and_change_nothing(engine, pva, pv, value, message):
    ctx = pva(engine)
    before = ctx.get(pv)
    with pytest.raises(RemoteError, match=message):
        ctx.put(pv, value, wait=True)
    after = ctx.get(pv)
    field = "value.index" if before.getID().startswith("epics:nt/NTEnum") else "value"
    assert np.array_equal(np.asarray(after[field]), np.asarray(before[field]))
    assert engine.putlog.tail(1)[0].result.startswith(("refused", "driver error"))
    ctx.put("T:FLOAT", 50.0, wait=True)  # the console keeps serving
    assert ctx.get("T:FLOAT").value == 50.0
    assert not engine.mirror._open_puts  # every put answered is off the list a stop logs


def test_unknown_enum_choice_is_refused(engine, pva):
    ctx = pva(engine)
    with pytest.raises((RemoteError, ValueError)):
        ctx.put("T:ENUM", "Maybe", wait=True)
    assert ctx.get("T:ENUM").value.index == 1


def test_asyn_put_completes_on_callback_and_times_out_without(engine, pva):
    ctx = pva(engine)
    t0 = time.monotonic()
    ctx.put("T:ASYN", 3.0, wait=True, timeout=5)
    assert time.monotonic() - t0 >= 0.15  # waited for the driver's callbackPV
    assert ctx.get("T:ASYN").value == 3.0
    with pytest.raises(RemoteError, match="timed out .* callbackPV"):
        ctx.put("T:NOCB", 1.0, wait=True, timeout=5)


def test_an_asyn_put_that_does_not_wait_is_answered_once_the_driver_takes_it(engine, pva):
    """``record[block=false]`` (p4p ``wait=False``, pvput without -w): QSRV answers when
    the record took the value, not when it completes. The put keeps its place (the put
    log has it once its callbackPV came, or here, never coming, once it timed out)."""
    ctx = pva(engine)
    driver = engine.entries["T:NOCB"].driver
    ctx.put("T:NOCB", 2.0, wait=False, timeout=5)  # a callbackPV never comes
    assert ("NOCB", 2.0) in driver.writes
    t0 = time.monotonic()
    ctx.put("T:ASYN", 4.0, wait=False, timeout=5)
    wait_for(lambda: ctx.get("T:ASYN").value == 4.0)  # set at its callbackPV
    rec = wait_for(lambda: [r for r in engine.putlog.tail(5) if r.pv == "T:ASYN" and r.result == "accepted"])
    assert rec[-1].duration_ms >= 150  # logged at completion (0.2 s), not when answered
    assert time.monotonic() - t0 >= 0.15


def test_slow_driver_write_does_not_block_puts_to_other_pvs(engine, pva):
    ctx = pva(engine)
    done = threading.Event()

    def slow():
        try:
            ctx.put("T:ASYN", 7.0, wait=True, timeout=5)
        finally:
            done.set()
    threading.Thread(target=slow).start()
    t0 = time.monotonic()
    ctx.put("T:FLOAT", 33.0, wait=True)
    assert time.monotonic() - t0 < 0.15
    assert done.wait(5)


def test_exposure_off_disconnects_and_on_reconnects(engine, pva):
    ctx = pva(engine)
    events: queue.Queue = queue.Queue()
    sub = ctx.monitor("T:INT", events.put, notify_disconnect=True)
    try:
        wait_for(lambda: events.qsize())
        _drain(events)
        assert engine.set_exposure("T:INT", "off") == ["T:INT"]
        wait_for(lambda: any(isinstance(e, Disconnected) for e in _drain(events)))
        with pytest.raises(TimeoutError):
            ctx.get("T:INT", timeout=0.5)
        drv = driver_of(engine)
        drv.setParam("INT", 77)  # changes while off are served when it comes back
        drv.updatePVs()
        engine.set_exposure("T:I*", "on")
        # the client finds it again on its next search (pvxs re-searches 1 s, 2 s, 3 s ... apart)
        got = wait_for(lambda: [e for e in _drain(events) if not isinstance(e, Exception)], timeout=30)
        assert got[-1].value == 77
        assert ctx.get("T:INT").value == 77
    finally:
        sub.close()


def test_exposure_flipped_fast_ends_as_last_asked(engine, pva):
    """Removals from the PVA provider are made on the clean-up thread, additions after any
    removal of the same name: however fast the flips, the provider ends as the last one."""
    watcher = pva(engine)
    sub = watcher.monitor("T:FLOAT", lambda v: None)
    try:
        wait_for(lambda: engine.entry("T:FLOAT").pva_clients == 1)
        gate = threading.Event()  # the clean-up thread busy: every removal waits there
        mirror_module._cleanup.later(lambda: gate.wait(10))
        try:
            for i in range(21):
                engine.set_exposure("T:FLOAT", "off" if i % 2 == 0 else "on")
            assert engine.mirror._queued == {"T:FLOAT": 21}  # the adds queued behind them
        finally:
            gate.set()
        wait_for(lambda: not engine.mirror._queued)
        assert "T:FLOAT" not in engine.mirror.provider.keys()
        assert engine.entry("T:FLOAT").pva_pv is None and engine.entry("T:FLOAT").pva_clients == 0
        engine.set_exposure("T:FLOAT", "on")
        wait_for(lambda: not engine.mirror._queued)
        assert "T:FLOAT" in engine.mirror.provider.keys()
        fresh = pva(engine)
        assert fresh.get("T:FLOAT", timeout=5).value == driver_of(engine).getParam("FLOAT")
        wait_for(lambda: engine.entry("T:FLOAT").pva_clients >= 1)
    finally:
        sub.close()


def test_exposure_persists_across_restart(engine_factory, pva, tmp_path):
    state = tmp_path / "keep"
    first = engine_factory(ALLTYPES, state_dir=state)
    first.set_exposure("T:FLOAT", "off")
    first.set_exposure("T:INT", "ro")
    first.set_exposure("T:HIDDEN", "on")
    first.stop()
    second = engine_factory(ALLTYPES, state_dir=state)
    ctx = pva(second)
    assert second.entry("T:FLOAT").exposure == "off"
    with pytest.raises(TimeoutError):
        ctx.get("T:FLOAT", timeout=0.5)
    with pytest.raises(RemoteError, match="read-only"):
        ctx.put("T:INT", 1, wait=True)
    assert ctx.get("T:HIDDEN").value == 0


def test_a_plugin_thread_outliving_its_engine_calls_pcaspy_harmlessly(engine_factory, pva):
    """A plugin's worker that does not stop with the engine (no stop() hook) goes on
    calling setParam, updatePVs, setParamInfo and callbackPV without an error, and
    nothing it writes reaches an engine started again in the process."""
    first = engine_factory(plugin_path("worker_forever"))
    old = driver_of(first, "worker_forever")
    try:
        wait_for(lambda: old.getParam("COUNT") > 0)
        first.stop()
        n = old.getParam("COUNT")
        wait_for(lambda: old.getParam("COUNT") > n + 10)  # it went on without a KeyError
        second = engine_factory(plugin_path("worker_forever"))
        new = driver_of(second, "worker_forever")
        try:
            ctx = pva(second)
            mine = f"{id(new):x}"
            wait_for(lambda: ctx.get("WORKER:OWNER", timeout=2).value == mine)
            seen = set()
            sub = ctx.monitor("WORKER:OWNER", lambda v: seen.add(v.value))
            try:
                c = new.getParam("COUNT")
                wait_for(lambda: new.getParam("COUNT") > c + 20)  # both loops ran meanwhile
            finally:
                sub.close()
            assert seen == {mine}
            assert old.worker.is_alive()
        finally:
            new.quit.set()
    finally:
        old.quit.set()
        old.worker.join(2)


def test_read_only_and_hidden_from_pvdb(engine, pva, ca):
    ctx = pva(engine)
    with pytest.raises(TimeoutError):
        ctx.get("T:HIDDEN", timeout=0.5)
    assert ca(engine).get("T:HIDDEN")["value"] == 0  # CA untouched
    assert ca(engine).put("T:RO", 5.0)["ok"]
    assert ctx.get("T:RO").value == 5.0


def test_two_plugins_side_by_side(engine_factory, pva):
    engine = engine_factory(ALLTYPES, plugin_path("second"))
    ctx = pva(engine)
    ctx.put("S:X", 2.0, wait=True)
    assert ctx.get("S:X").value == 4.0  # its own driver doubled it
    ctx.put("T:FLOAT", 2.0, wait=True)
    assert ctx.get("T:FLOAT").value == 2.0
    assert {p.name for p in engine.plugins if not p.error} == {"alltypes", "second"}
    assert engine.drivers["alltypes"] is not engine.drivers["second"]


def test_a_driver_timestamp_in_posix_seconds_is_served_and_ends_nothing(engine_factory, pva, ca):
    """setParam(..., timestamp=1700000000.5) at start-up ended the whole process (the
    mirror's first read of the PV raised); plain pcaspy failed every CA get of it."""
    engine = engine_factory(ALLTYPES, plugin_path("float_stamp"))
    assert {p.name for p in engine.plugins if not p.error} == {"alltypes", "float_stamp"}
    ctx = pva(engine)
    x = ctx.get("FTS:X")
    assert x.value == 1.5 and abs(x.timeStamp.secondsPastEpoch + x.timeStamp.nanoseconds * 1e-9
                                  - 1700000000.5) < 1e-6
    assert ctx.get("FTS:Y").timeStamp.secondsPastEpoch == typemap.POSIX_TIME_AT_EPICS_EPOCH
    got = ca(engine).get("FTS:X", form="time")
    assert got["value"] == 1.5 and abs(got["timestamp"] - 1700000000.5) < 1e-6
    updates: list = []
    sub = ctx.monitor("FTS:X", updates.append)  # a put: the driver stamps it again
    try:
        wait_for(lambda: updates)
        ctx.put("FTS:X", 3.0, wait=True)
        wait_for(lambda: updates[-1].value == 3.0)
    finally:
        sub.close()
    assert updates[-1].timeStamp.secondsPastEpoch == 1700000100
    assert ctx.get("T:FLOAT") is not None  # the other plugin serves on


def test_one_pvdb_under_two_prefixes_is_one_value_on_both_names(engine_factory, pva, ca, tmp_path):
    """pcaspy keeps the last PV of a parameter in its table: the first name's PVA value
    never changed again (plain pcaspy's CA monitors on it got nothing either)."""
    script = tmp_path / "two_channels.py"
    script.write_text(
        "from pcaspy import Driver, SimpleServer\n"
        "pvdb = {'X': {'prec': 1}}\n"
        "if __name__ == '__main__':\n"
        "    server = SimpleServer()\n"
        "    server.createPV('CH1:', pvdb)\n"
        "    server.createPV('CH2:', pvdb)\n"
        "    driver = Driver()\n"
        "    while True:\n"
        "        server.process(0.1)\n")
    engine = engine_factory(str(script))
    ctx = pva(engine)
    updates: list = []
    sub = ctx.monitor("CH1:X", updates.append)
    try:
        wait_for(lambda: updates)
        ctx.put("CH1:X", 5.0, wait=True)
        wait_for(lambda: updates[-1].value == 5.0)
        assert ca(engine).put("CH2:X", 7.0)["ok"]
        wait_for(lambda: updates[-1].value == 7.0)
    finally:
        sub.close()
    assert ctx.get("CH2:X").value == 7.0
    engine.stop()
    assert not {"CH1:X", "CH2:X"} & set(engine.entries)


ASYNCIO_SCRIPT = """
import asyncio, signal
from pcaspy import Driver, SimpleServer
pvdb = {{'N': {{'type': 'int'}}}}

async def main():
    {setup}
    server = SimpleServer()
    server.createPV('{prefix}', pvdb)
    driver = Driver()
    n = 0
    while True:
        server.process(0.01)
        n += 1
        driver.setParam('N', n)
        driver.updatePVs()
        await asyncio.sleep(0)

if __name__ == '__main__':
    {run}
"""


def test_unmodified_asyncio_scripts_are_served(engine_factory, tmp_path):
    """They were skipped: no event loop on the thread a script runs on ('There is no
    current event loop'), and asyncio's add_signal_handler works on the main thread only."""
    (tmp_path / "loop_of_its_own.py").write_text(ASYNCIO_SCRIPT.format(
        prefix="AIO1:", setup="pass", run="asyncio.get_event_loop().run_until_complete(main())"))
    (tmp_path / "with_signals.py").write_text(ASYNCIO_SCRIPT.format(
        prefix="AIO2:", run="asyncio.run(main())",
        setup="asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, print)"))
    engine = engine_factory(str(tmp_path / "loop_of_its_own.py"), str(tmp_path / "with_signals.py"))
    assert [p.error for p in engine.plugins if p.source != "builtin"] == ["", ""]
    for name in ("loop_of_its_own", "with_signals"):
        driver = engine.drivers[name]
        n = driver.getParam("N")
        wait_for(lambda: driver.getParam("N") > n + 5)


def test_an_asyncio_script_s_signal_handler_runs_in_its_loop_when_pvconsole_stops(
        engine_factory, tmp_path):
    (tmp_path / "aio_stop.py").write_text(
        "import asyncio, signal, sys\n"
        "from pcaspy import Driver, SimpleServer\n"
        "async def main():\n"
        "    stop = asyncio.Event()\n"
        "    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)\n"
        "    server = SimpleServer()\n"
        "    server.createPV('AIO3:', {'N': {'type': 'int'}})\n"
        "    while not stop.is_set():\n"
        "        server.process(0.01)\n"
        "        await asyncio.sleep(0)\n"
        f"    open({str(tmp_path / 'mark')!r}, 'w').write('stopped')\n"
        "asyncio.run(main())\n")
    engine = engine_factory(str(tmp_path / "aio_stop.py"))
    assert not [p.error for p in engine.plugins if p.error]
    engine.stop(signal.SIGTERM)
    assert (tmp_path / "mark").read_text() == "stopped"


def test_a_put_to_a_pv_holding_a_0d_array_is_logged_and_kills_nothing(engine_factory, pva, ca,
                                                                       tmp_path):
    """Formatting the put's old value (len() of a 0-d array) raised on the CA server's
    thread inside pcaspy's write: the process aborted."""
    plugin = tmp_path / "zerod.py"
    plugin.write_text(
        "import numpy as np\nfrom pcaspy import Driver\n"
        "prefix = 'ZD:'\npvdb = {'Y': {'prec': 1}}\n"
        "class D(Driver):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.setParam('Y', np.array(3.0))\n")
    engine = engine_factory(str(plugin))
    assert ca(engine).put("ZD:Y", 4.0, wait=True)["ok"]
    pva(engine).put("ZD:Y", 5.0, wait=True, timeout=5)
    records = [r for r in engine.putlog.tail(10) if r.pv == "ZD:Y"]
    assert [r.result for r in records] == ["accepted", "accepted"]
    assert (records[-1].old_text, records[-1].requested_text) == ("4.0", "5.0")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # SystemExit:
def test_a_script_serving_from_its_own_thread_ends_its_turns_at_the_stop(engine_factory):  # silent outside pytest
    """Its loop thread ended without giving back its turns: an engine started again in
    the process kept a script loop's CA poll bound and took the turn lock on every pass."""
    from pvconsole.turns import turns

    engine = engine_factory(plugin_path("script_own_server_thread"))
    driver = engine.drivers["script_own_server_thread"]
    wait_for(lambda: driver.getParam("COUNT") > 2)
    assert turns.loops == 1
    engine.stop()
    wait_for(lambda: turns.loops == 0 and turns.shortest == float("inf"))


def test_broken_plugins_are_reported_and_others_run(engine_factory, pva):
    engine = engine_factory(plugin_path("broken_import"), ALLTYPES, plugin_path("broken_init"),
                            plugin_path("clash"), plugin_path("script_ports"))
    errors = {p.name: p.error for p in engine.plugins if p.error}
    assert "PV SP:POS asks for pcaspy port 'motor'" in errors["script_ports"]
    assert "SP:POS" not in engine.entries
    assert "No module named 'this_module_does_not_exist'" in errors["broken_import"]
    assert errors["broken_import"].endswith("(at broken_import.py:2, in <module>)")  # where
    assert "hardware not found" in errors["broken_init"]
    assert errors["broken_init"].endswith("(at broken_init.py:11, in __init__)")
    assert "PV name clash: T:FLOAT" in errors["clash"] and "alltypes" in errors["clash"]
    assert "BI:A" not in engine.entries and "T:OTHER" not in engine.entries
    assert pva(engine).get("T:FLOAT").value == 12.5


@pytest.mark.parametrize("entry", ['{"count": "10"}', '{"count": 1.5}', '{"hihi": "abc"}',
                                   '{"scan": "fast"}', '{"states": "x"}',
                                   '{"type": "enum", "enums": [1, 2]}'])
def test_a_pvdb_entry_pcaspy_cannot_take_skips_its_plugin_only(engine_factory, pva, tmp_path,
                                                              entry):
    """pcaspy's own checks raised TypeError/ValueError at start-up, which stopped every
    plugin's start (exit 1, a traceback)."""
    bad = tmp_path / "sloppy.py"
    bad.write_text(f'prefix = "SL:"\npvdb = {{"OK": {{}}, "A": {entry}}}\n')
    engine = engine_factory(str(bad), ALLTYPES)
    errors = {p.name: p.error for p in engine.plugins if p.error}
    assert errors["sloppy"].startswith("SL:A: ") and "pvdb entry" in errors["sloppy"], errors
    assert "SL:OK" not in engine.entries
    assert pva(engine).get("T:FLOAT").value == 12.5


def test_a_plugin_closing_fds_1_and_2_leaves_them_to_the_log(engine, caplog):
    """A plugin's os.close(1/2) (a daemon's habit) let sockets take those numbers, and the
    C libraries' output went into a PVA client's connection."""
    import os
    before = os.fstat(2)
    os.close(2)
    os.close(1)
    assert os.fstat(2).st_ino == before.st_ino
    assert "a plugin's os.close(2) ignored" in caplog.text
    r, w = os.pipe()
    os.close(r)
    os.close(w)  # other fds close as ever
    with pytest.raises(OSError):
        os.fstat(w)


def test_a_script_whose_loop_dies_says_so_on_its_pvs(engine_factory, pva, ca):
    """Alone, the script's process would end and its clients see a disconnect; hosted,
    its PVs stay served, so they turn INVALID with a COMM alarm on both protocols."""
    engine = engine_factory(plugin_path("script_dies"), ALLTYPES)
    ctx = pva(engine)
    wait_for(lambda: ctx.get("DIE:T").alarm.message == "COMM", timeout=10)
    v = ctx.get("DIE:T")
    assert (v.value, v.alarm.severity) == (21.0, 3)
    client = ca(engine)
    got = client.get("DIE:T")
    assert got["severity"] == 3 and got["status"] == 9  # COMM_ALARM
    assert ctx.get("T:FLOAT").alarm.severity == 0  # the other plugin is untouched
    # a put would set it healthy again, with nothing left to service the device: refused
    with pytest.raises(RemoteError, match="plugin script_dies's loop stopped .*device not responding"):
        ctx.put("DIE:T", 7.0, wait=True)
    reply = client.call(op="put_status", pv="DIE:T", value=7.0)
    assert reply.get("message") == "Channel write request failed", reply  # ECA_PUTFAIL
    v, got = ctx.get("DIE:T"), client.get("DIE:T")
    assert (v.value, v.alarm.severity, v.alarm.message) == (21.0, 3, "COMM")
    assert (got["value"], got["severity"], got["status"]) == (21.0, 3, 9)
    assert [r.result for r in engine.putlog.tail(2)] == ["refused: driver"] * 2


def test_a_script_that_calls_os_exit_ends_its_own_loop_only(engine_factory, pva, caplog):
    """Alone, the script's process ended; hosted, os._exit ended every IOC of pvconsole.
    Now it ends the script's thread: its PVs say so, the other plugin serves on."""
    engine = engine_factory(plugin_path("script_osexit"), ALLTYPES)
    ctx = pva(engine)
    wait_for(lambda: ctx.get("OSX:T").alarm.message == "COMM", timeout=10)
    assert any("os._exit(3) called on thread" in r.getMessage() and "script_osexit.py" in r.getMessage()
               for r in caplog.records)
    ctx.put("T:FLOAT", 51.0, wait=True)
    assert ctx.get("T:FLOAT").value == 51.0


def test_a_script_that_restarts_itself_with_exec_is_refused(engine_factory, pva, caplog,
                                                             tmp_path):
    """An IOC's REBOOT PV (``os.execv(sys.executable, [...])``): alone, the IOC restarted;
    hosted, it replaced pvconsole and every other IOC with itself. Now the put fails, the
    log says where, and everything serves on."""
    plugin = tmp_path / "reboot.py"
    plugin.write_text(
        "import os, sys\n"
        "from pcaspy import Driver, SimpleServer\n"
        "class D(Driver):\n"
        "    def write(self, reason, value):\n"
        "        os.execl(sys.executable, sys.executable, '-c', 'pass')\n"
        "if __name__ == '__main__':\n"
        "    server = SimpleServer()\n"
        "    server.createPV('RB:', {'REBOOT': {'type': 'int'}})\n"
        "    D()\n"
        "    while True:\n"
        "        server.process(0.1)\n")
    engine = engine_factory(str(plugin), ALLTYPES)
    ctx = pva(engine)
    with pytest.raises(Exception, match="os.execv refused"):
        ctx.put("RB:REBOOT", 1, wait=True)
    assert any("os.execv(" in r.getMessage() and "reboot.py:5" in r.getMessage()
               for r in caplog.records), caplog.text
    ctx.put("T:FLOAT", 52.0, wait=True)
    assert ctx.get("T:FLOAT").value == 52.0


def test_unmodified_pcaspy_scripts_run(engine_factory, pva):
    engine = engine_factory(plugin_path("script_loop"), plugin_path("script_main"))
    assert not [p.error for p in engine.plugins if p.error]
    ctx = pva(engine)
    assert ctx.get("SCR:RAND").value == 0.5
    ctx.put("MAIN:A", 5, wait=True)
    assert ctx.get("MAIN:A").value == 5
    assert ctx.get("MAIN:LAST").value == "A"


def test_pvs_without_a_pvdb_value_show_what_the_servers_serve(engine, pva, ca):
    """pcaspy gives them 0, '' or zeros: the engine's states (the console's table) too."""
    states = {s.name: s for s in engine.snapshot()}
    assert not [n for n, s in states.items() if s.value is None or s.text == "None"]
    assert states["T:PLAIN"].value == pva(engine).get("T:PLAIN").value == ca(engine).get("T:PLAIN")["value"]
    assert list(states["T:SARR"].value) == list(pva(engine).get("T:SARR").value) == [0, 0, 0, 0]


def test_a_char_scalar_without_a_value_takes_numbers(engine_factory, pva, ca, tmp_path):
    """pcaspy starts it at '' (as its char arrays): every number after that failed its
    deadband test ('' - 66), a PVA put and the driver's own setParam alike."""
    plugin = tmp_path / "charscalar.py"
    plugin.write_text("from pcaspy import Driver\nprefix = 'CS:'\n"
                      "pvdb = {'ST': {'type': 'char'}, 'N': {}}\n"
                      "class D(Driver):\n"
                      "    def write(self, reason, value):\n"
                      "        self.setParam(reason, value)\n"
                      "        self.setParam('N', self.getParam('N') + 1)\n"
                      "        self.updatePVs()\n"
                      "        return True\n")
    engine = engine_factory(str(plugin))
    ctx = pva(engine)
    assert ctx.get("CS:ST").value == 0 and ca(engine).get("CS:ST")["value"] == 0
    ctx.put("CS:ST", 66, wait=True)
    assert ctx.get("CS:ST").value == 66 and ctx.get("CS:N").value == 1
    assert ca(engine).get("CS:ST")["value"] == 66


def test_script_with_server_thread_keeps_its_own_loop(engine_factory, pva):
    engine = engine_factory(plugin_path("script_thread"))
    assert not [p.error for p in engine.plugins if p.error]
    assert "UNUSED:COUNT" not in engine.entries  # its __main__ part chose the prefix
    ctx = pva(engine)
    first = ctx.get("THR:COUNT").value
    wait_for(lambda: ctx.get("THR:COUNT").value > first + 2)  # its loop goes on after hand-over
    assert ctx.get("THR:SP").value == 1.5


def test_script_loop_work_goes_on_in_turns_with_the_driver(engine_factory, pva, ca):
    """What a script does between its server.process() calls still runs, and never at the
    same time as its driver's write (CA or PVA puts), as when it served CA itself."""
    engine = engine_factory(plugin_path("script_work"))
    assert not [p.error for p in engine.plugins if p.error]
    ctx = pva(engine)
    first = ctx.get("WORK:N").value
    wait_for(lambda: ctx.get("WORK:N").value > first + 5)  # no CA monitor: PVA sees the loop
    client = ca(engine)
    for i in range(40):
        ctx.put("WORK:SP", float(i), wait=True)
        assert client.put("WORK:SP", i + 0.5, wait=True).get("ok")
    assert ctx.get("WORK:SP").value == 39.5
    assert ctx.get("WORK:OVERLAP").value == 0


def test_script_with_pvs_made_on_demand_is_served_with_a_warning(engine_factory, pva, caplog):
    engine = engine_factory(plugin_path("script_dynamic"))
    assert "made on demand" in caplog.text and "script_dynamic" in caplog.text
    assert "rules.as (P=DYN:) is not applied" in caplog.text  # said, not silently dropped
    assert pva(engine).get("DYN:STATIC").value == 3.0


def test_script_that_never_hands_over_is_skipped(engine_factory, pva, monkeypatch):
    monkeypatch.setattr("pvconsole.plugins.HANDOVER_TIMEOUT", 1.0)
    started = time.monotonic()
    engine = engine_factory(plugin_path("script_stuck"), plugin_path("script_fallback"), ALLTYPES)
    assert time.monotonic() - started < 5
    errors = {p.name: p.error for p in engine.plugins if p.error}
    assert "script_stuck" in errors and "without handing its server over" in errors["script_stuck"]
    assert "(at script_stuck.py:6, in <module>)" in errors["script_stuck"]  # where it is stuck
    assert "script_fallback" not in errors  # its main part exited: module-level pvdb served
    ctx = pva(engine)
    assert ctx.get("FB:X").value == 2.0
    assert ctx.get("T:FLOAT").value == 12.5


def test_script_whose_createpv_clashes_is_reported_as_such(engine_factory, caplog):
    caplog.set_level("INFO", logger="pvconsole.plugins")
    engine = engine_factory(plugin_path("script_thread"), plugin_path("script_dynamic"),
                            plugin_path("script_thread_again"))
    errors = {p.name: p.error for p in engine.plugins if p.error}
    assert "PV name clash: THR:" in errors["script_thread_again"]
    assert "stopped before createPV" not in caplog.text  # no fallback to its module pvdb


def test_ca_port_zero_means_a_free_port(engine_factory, ca):
    engine = engine_factory(ALLTYPES, ca_port=0)
    assert engine.config.ca_port != 0
    assert ca(engine).get("T:FLOAT")["value"] == 12.5


def test_plugin_threads_calling_updatepvs_are_mirrored_consistently(engine_factory, pva):
    engine = engine_factory(plugin_path("threaded"))
    ctx = pva(engine)
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor("TH:COUNT", q.put)
    try:
        time.sleep(1.0)
        values = [v.value for v in _drain(q)]
    finally:
        sub.close()
        engine.drivers["threaded"].stop()
    assert len(values) > 10
    assert values == sorted(values)  # never out of order
    assert engine.mirror.errors == 0


def test_plugin_threads_racing_on_one_pv_leave_both_protocols_on_its_last_value(
        engine_factory, pva, ca):
    """Four threads setting one PV and calling updatePVs at once: once they end, CA and
    PVA gets and monitors all hold the last value. The parameter was read apart for each
    protocol, and posted in another order on each, and pcaspy's updatePV clears the event
    mask of a change another thread flagged meanwhile: monitors kept an older value."""
    engine = engine_factory(plugin_path("racing"))
    driver = engine.drivers["racing"]
    ctx = pva(engine)
    client = ca(engine)
    client.monitor("RACE:TOTAL")
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor("RACE:TOTAL", q.put)
    ca_last = pva_last = None
    try:
        for done in range(1, 7):
            ctx.put("RACE:RUN", 1)
            wait_for(lambda: ctx.get("RACE:DONE").value == done, timeout=10)
            total = driver.total

            def settled():
                nonlocal ca_last, pva_last
                ca_last = ([e["value"] for e in client.events()] or [ca_last])[-1]
                pva_last = ([v.value for v in _drain(q)] or [pva_last])[-1]
                return ca_last == pva_last == total
            wait_for(settled, timeout=5)
            assert client.get("RACE:TOTAL")["value"] == ctx.get("RACE:TOTAL").value == total
    finally:
        sub.close()
    assert engine.mirror.errors == 0


def test_a_change_overtaken_by_a_newer_one_is_not_posted_after_it(engine, pva, ca):
    """Two threads' changes of one PV reach the mirror in the other order than pcaspy's
    hand-over numbered them: the older one is not posted after the newer one, on either
    protocol, and the metadata it carried is."""
    from pvconsole.paramlock import Change
    ctx = pva(engine)
    client = ca(engine)
    client.monitor("T:INT")
    q: queue.Queue = queue.Queue()
    sub = ctx.monitor("T:INT", q.put)
    try:
        wait_for(lambda: q.qsize() and client.events())
        entry = engine.entries["T:INT"]
        pv, db = entry.ca_pv, driver_of(engine).getParamDB("INT")
        value_mask = mirror_module.cas.DBE_VALUE | mirror_module.cas.DBE_LOG
        pv.updateValue(Change(2002, db.alarm, db.severity, db.time, value_mask, seq=10**9 + 2))
        pv.info.hilim = 777.0
        pv.updateValue(Change(1001, db.alarm, db.severity, db.time,
                              value_mask | mirror_module.DBE_PROPERTY, seq=10**9 + 1))
        wait_for(lambda: ctx.get("T:INT")["display.limitHigh"] == 777)
        assert ctx.get("T:INT").value == 2002
        assert 1001 not in [v.value for v in _drain(q)]
        wait_for(lambda: client.get("T:INT")["upper_disp_limit"] == 777)
        assert 1001 not in [e["value"] for e in client.events()]
        assert client.get("T:INT")["value"] == 7  # (the database: these were posts only)
    finally:
        sub.close()


@pytest.mark.parametrize("junk", [np.float32(1.5), {}, 1 + 2j, np.datetime64(0, "s"),
                                  [1.0, "x", 3.0], [1.0, None], [[1.0, 2.0], [3.0]],
                                  ["a", "b"], np.array([1, None], dtype=object)],
                         ids=["float32", "dict", "complex", "datetime64", "list-str",
                              "list-none", "nested", "strings", "object-array"])
def test_a_value_an_array_pv_cannot_hold_kills_nothing(engine, pva, ca, junk):
    """pcaspy's gdd.put leaves an array gdd without data for these, and the CA server
    library crashed the process on the next CA get or monitor post (plain pcaspy too).
    A numpy scalar is served as the number it holds; the others are logged and not
    served on CA, and the next good value is."""
    client = ca(engine)
    client.monitor("T:FARR")
    driver = driver_of(engine)
    engine.run_on_driver_thread(lambda: (driver.setParam("FARR", junk), driver.updatePVs()))
    reply = client.call(op="get", pv="T:FARR")
    if isinstance(junk, np.floating):
        assert reply["value"] in (1.5, [1.5])
    engine.run_on_driver_thread(lambda: (driver.setParam("FARR", [4.0, 5.0]),
                                         driver.updatePVs()))
    assert wait_for(lambda: list(client.get("T:FARR")["value"][:2]) == [4.0, 5.0])
    assert list(pva(engine).get("T:FARR").value[:2]) == [4.0, 5.0]


def test_bad_driver_value_is_contained(engine, pva):
    drv = driver_of(engine)
    ctx = pva(engine)
    sub = ctx.monitor("T:INT", lambda v: None)  # a PVA client sees it: the mirror posts
    try:
        wait_for(lambda: engine.entry("T:INT").pva_clients == 1)
        drv.pvDB["INT"].value = "not a number"  # a plugin bug
        drv.pvDB["INT"].mask |= 1  # DBE_VALUE, as setParam marks a change
        drv.pvDB["INT"].flag = True
        drv.updatePV("INT")
        assert engine.mirror.errors >= 1
        bad = ctx.get("T:INT")  # the last good value, flagged: not a value that froze
        assert bad.value == 7 and bad.alarm.severity == 3
        assert bad.alarm.message == "driver value not servable (str)"
    finally:
        sub.close()
    drv.setParam("INT", 5)
    drv.updatePVs()
    wait_for(lambda: pva(engine).get("T:INT").value == 5)
    assert pva(engine).get("T:INT").alarm.severity == 0


def test_a_value_pva_cannot_hold_does_not_stop_start_up(engine_factory, pva, tmp_path):
    """pcaspy serves a pvdb 'value': None and an int16 register set to 40000; neither may
    take the engine (or the other PVs) down."""
    plugin = tmp_path / "oddstart.py"
    plugin.write_text(
        "from pcaspy import Driver\n"
        "prefix = 'ODD:'\n"
        "pvdb = {'NONE': {'value': None}, 'REGS': {'type': 'short', 'count': 2}, 'OK': {}}\n"
        "class D(Driver):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.setParam('REGS', [40000, 5])\n"
        "        self.setParam('OK', 1.5)\n"
        "        self.updatePVs()\n")
    engine = engine_factory(str(plugin))
    ctx = pva(engine)
    assert ctx.get("ODD:OK").value == 1.5
    assert list(ctx.get("ODD:REGS").value) == [-25536, 5]  # as CA serves it
    none = ctx.get("ODD:NONE")
    assert none.value == 0.0 and none.alarm.severity == 3


def test_port_in_use_fails_fast_with_the_port_named(engine_factory, tmp_path):
    import socket

    from conftest import loopback_config
    from pvconsole.engine import Engine, StartupError
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        cfg = loopback_config(tmp_path, [ALLTYPES])
        cfg.pva_port = port
        with pytest.raises(StartupError, match=f"PVA port {port} on 127.0.0.1"):
            Engine(cfg).start()
        cfg = loopback_config(tmp_path, [ALLTYPES])
        cfg.ca_port = port
        with pytest.raises(StartupError, match=f"CA port {port}"):
            Engine(cfg).start()
    finally:
        s.close()


def test_unset_float_alarm_limits_are_nan(engine, pva):
    assert math.isnan(pva(engine).get("T:PLAIN").valueAlarm.highAlarmLimit)


def test_batched_updatepvs_posts_only_changed_pvs_unless_the_plugin_overrides(engine_factory, pva, tmp_path):
    plugin = tmp_path / "counting.py"
    plugin.write_text(
        "from pcaspy import Driver\nprefix='CNT:'\npvdb={'A': {}, 'B': {}, 'C': {}}\n"
        "class D(Driver):\n    calls = []\n"
        "    def updatePV(self, reason):\n        self.calls.append(reason)\n"
        "        super().updatePV(reason)\n")
    engine = engine_factory(ALLTYPES, str(plugin))
    fast, counting = engine.drivers["alltypes"], engine.drivers["counting"]
    assert "updatePVs" in vars(fast)  # pcaspy's own, per PV, replaced by the changed-only one
    assert "updatePVs" not in vars(counting)  # an override may rely on every call
    ctx = pva(engine)
    fast.setParam("INT", 11)
    fast.setParam("SHORT", 12)
    fast.updatePVs()
    wait_for(lambda: (ctx.get("T:INT").value, ctx.get("T:SHORT").value) == (11, 12))
    counting.setParam("B", 5.0)
    counting.updatePVs()
    assert sorted(counting.calls) == ["A", "B", "C"]
    wait_for(lambda: ctx.get("CNT:B").value == 5.0)


def test_monitors_get_what_ca_monitors_get_and_a_new_channel_the_database(engine_factory, pva, ca):
    """A change within ``mdel`` is for archivers (DBE_LOG): neither CA nor PVA monitors
    get it, as with QSRV. A new PVA channel (a pvget) is served the parameter database
    as it is, as a CA get is: also values set without updatePVs and metadata changed by
    setParamInfo without updatePVs."""
    from conftest import pva_context
    engine = engine_factory(plugin_path("deadband"))
    drv = engine.drivers["deadband"]
    drv.setParam("MDEL", 0.0)  # out of UDF: an alarm change, which monitors do get
    drv.updatePVs()
    client = ca(engine)
    client.monitor("DB:MDEL")
    ctx = pva_context(engine.pva_client_conf())
    seen: queue.Queue = queue.Queue()
    sub = ctx.monitor("DB:MDEL", seen.put)
    try:
        wait_for(lambda: seen.qsize() == 1)
        for v in (1.0, 2.0, 3.0):  # within mdel
            drv.setParam("MDEL", v)
            drv.updatePVs()
        drv.setParam("MDEL", 500.0)  # beyond it
        drv.updatePVs()
        wait_for(lambda: seen.qsize() == 2)
        time.sleep(0.3)
        assert [v.value for v in _drain(seen)] == [0.0, 500.0]
        assert [e["value"] for e in client.events()] == [0.0, 500.0]
        drv.setParam("MDEL", 510.0)
        drv.updatePVs()
    finally:
        sub.close()
        ctx.close()
    drv.setParam("NOUPD", 9)  # no updatePVs
    drv.setParamInfo("INFO", {"unit": "um", "prec": 4, "hilim": 99})
    wait_for(lambda: engine.entry("DB:MDEL").pva_clients == 0)
    fresh = pva_context(engine.pva_client_conf())
    try:
        assert fresh.get("DB:MDEL").value == 510.0
        assert fresh.get("DB:NOUPD").value == 9 == client.get("DB:NOUPD")["value"]
        info = fresh.get("DB:INFO")
        assert (info.display.units, info.display.precision, info.display.limitHigh) == ("um", 4, 99.0)
        assert info.alarm.severity == client.get("DB:INFO")["severity"]
    finally:
        fresh.close()


def test_ca_puts_to_a_string_array_do_not_crash_the_server(engine_factory, pva, ca, tmp_path):
    """pcaspy's own server dies (SIGSEGV) within a few CA puts to a string array."""
    plugin = tmp_path / "sarr.py"
    plugin.write_text("prefix = 'SA:'\npvdb = {'SARR': {'type': 'string', 'count': 3}}\n")
    engine = engine_factory(str(plugin))
    client = ca(engine)
    client.monitor("SA:SARR")
    for i in range(20):  # whole arrays: pyepics asks a get for the count it last saw
        sent = [f"a{i}", "b", f"c{i % 3}"]
        assert client.put("SA:SARR", sent, wait=True).get("ok")
        assert client.get("SA:SARR")["value"] == sent
    assert list(pva(engine).get("SA:SARR").value) == ["a19", "b", "c1"]
    pva(engine).put("SA:SARR", ["x", "y", "z"], wait=True)
    assert client.get("SA:SARR")["value"] == ["x", "y", "z"]


def test_a_property_change_marks_what_qsrv_marks(engine, pva):
    """setParamInfo/setParamEnums + updatePVs: the monitor update carries the metadata,
    not the value or timestamp (QSRV's property updates carry neither)."""
    ctx = pva(engine)
    drv = driver_of(engine)
    got: queue.Queue = queue.Queue()
    subs = [ctx.monitor("T:FLOAT", got.put), ctx.monitor("T:ENUM", got.put)]
    try:
        wait_for(lambda: got.qsize() == 2)
        drv.setParam("FLOAT", 20.0)  # written: the alarm leaves UDF before the property change
        drv.updatePVs()
        wait_for(lambda: got.qsize() == 3)
        _drain(got)
        drv.setParamInfo("FLOAT", {"unit": "kV"})
        drv.setParamEnums("ENUM", ["A", "B"])
        drv.updatePVs()
        wait_for(lambda: got.qsize() == 2)
        updates = {"value" in u and hasattr(u.value, "choices"): u for u in _drain(got)}
        f, e = updates[False], updates[True]
        assert f.display.units == "kV" and "display.units" in f.changedSet()
        assert not {"value", "timeStamp.secondsPastEpoch", "display.form.index",
                    "control.minStep"} & f.changedSet()
        assert e.changedSet() == {"value.choices", "display.description"}
        drv.setParam("FLOAT", 21.0)  # the alarm stays as it was: not marked (QSRV's is not)
        drv.updatePVs()
        wait_for(lambda: got.qsize() == 1)
        assert not {"alarm.severity", "alarm.status", "alarm.message"} & _drain(got)[0].changedSet()
    finally:
        for s in subs:
            s.close()


def test_plugins_of_the_same_name_with_helpers_of_their_own(engine_factory, pva):
    """Two plugin files called ioc.py, each with its own _common.py: both run, each with
    its own helper (one interpreter for all, as if each had its own process), and a
    module the driver imports later, on a put, is found."""
    engine = engine_factory(plugin_path("same_a/ioc"), plugin_path("same_b/ioc"))
    assert not [p.error for p in engine.plugins if p.error]
    assert {p.name for p in engine.plugins} >= {"ioc", "same_b.ioc"}
    ctx = pva(engine)
    assert ctx.get("SAMEA:X").value == 1.0 and ctx.get("SAMEB:X").value == 1.0
    ctx.put("SAMEA:X", 4.0, wait=True)
    assert ctx.get("SAMEA:X").value == 8.0


def test_the_bundled_example_takes_a_ca_put_to_its_char_scalar(engine_factory, pva, ca):
    """pcaspy hands a CA put of a char scalar over as a 1-char str (PVA's as an int): the
    example plugin stores both as the byte."""
    psu = str(Path(__file__).resolve().parent.parent / "ioc_plugins" / "psu.py")
    engine = engine_factory(psu)
    assert ca(engine).put("PSU:STATUS", 65)["ok"]
    wait_for(lambda: pva(engine).get("PSU:STATUS").value == 65)
    pva(engine).put("PSU:STATUS", 66)
    wait_for(lambda: ca(engine).get("PSU:STATUS")["value"] == 66)
    assert engine.putlog.for_pv("PSU:STATUS", 5)[-1].result == "accepted"


def test_the_bundled_script_example_serves_unmodified(engine_factory, pva, ca):
    """ioc_plugins/vac.py is a plain pcaspy script (its own server loop polls the
    simulated hardware): its asyn valve put completes on PVA when the move is over, CA
    sees the readback, and a gauge switched off makes the pressure INVALID on both."""
    vac = str(Path(__file__).resolve().parent.parent / "ioc_plugins" / "vac.py")
    engine = engine_factory(f"{vac} --prefix TVAC:")
    assert not [p.error for p in engine.plugins if p.error]
    ctx = pva(engine)
    assert ctx.get("TVAC:VALVE1:POS").value.index == 0 and ctx.get("TVAC:MSG").alarm.severity == 0
    started = time.monotonic()
    ctx.put("TVAC:VALVE1", "Open", wait=True, timeout=10)
    assert time.monotonic() - started >= 1.0  # the valve's travel
    client = ca(engine)
    assert client.get("TVAC:VALVE1:POS", as_string=True)["value"] == "Open"
    ctx.put("TVAC:GAUGE:CMD", "Off", wait=True)
    wait_for(lambda: ctx.get("TVAC:P1").alarm.severity == 3)
    wait_for(lambda: client.get("TVAC:P1")["severity"] == 3)
    assert ctx.get("TVAC:GAUGE:STAT").value.index == 2


def test_a_script_adds_pvs_while_it_serves(engine_factory, pva, ca):
    """A ``createPV`` from a script's thread after start-up is served on both protocols
    as its others (alone, pcaspy serves it too, but the driver has no parameter for it:
    here it has), PVA puts reach the driver, and a clash is an error to the script."""
    engine = engine_factory(plugin_path("script_late"))
    ctx = pva(engine)
    wait_for(lambda: ctx.get("LATE:ADDED", timeout=1).value == 2.5)
    assert ctx.get("LATE:TEXT").value == "hello"  # a char array as text, as at start
    assert ctx.get("LATE:ADDED").display.units == "mm"
    ctx.put("LATE:ADDED", 3.0, wait=True)
    client = ca(engine)
    wait_for(lambda: client.get("LATE:ADDED")["value"] == 6.0)
    wait_for(lambda: "clash" in ctx.get("LATE:ERR").value)
    assert {"LATE:ADDED", "LATE:TEXT"} <= {s.name for s in engine.snapshot()}
    assert [p.pvs for p in engine.plugins if p.name == "script_late"] == [4]


def test_createpv_from_a_scripts_loop_body_takes_no_turn_wait(engine_factory, pva, caplog):
    """The body gives its turn up while the driver thread makes the PVs: each waited for
    the other for the turn's 0.1 s, and a warning said the loop ran long."""
    engine = engine_factory(plugin_path("script_work"))
    wait_for(lambda: "WORK:FOUND" in engine.entries)
    ctx = pva(engine)
    wait_for(lambda: ctx.get("WORK:FOUND", timeout=1).value == 7.0)
    wait_for(lambda: ctx.get("WORK:TOOK").value > 0)
    assert ctx.get("WORK:TOOK").value < 0.08
    assert "between its server.process() calls" not in caplog.text


def test_a_late_pv_turned_off_stays_off_after_a_restart(engine_factory, pva, tmp_path):
    """The operator's choice holds for PVs added while serving too, and the table says
    'off' (it showed the pvdb's default)."""
    state = tmp_path / "state"
    engine = engine_factory(plugin_path("script_late"), state_dir=state)
    wait_for(lambda: "LATE:ADDED" in engine.entries)
    engine.set_exposure("LATE:ADDED", "off")
    engine.stop()
    engine = engine_factory(plugin_path("script_late"), state_dir=state)
    wait_for(lambda: "LATE:ADDED" in engine.entries)
    assert {s.name: s.exposure for s in engine.snapshot()}["LATE:ADDED"] == "off"
    assert pva(engine).get("LATE:TEXT").value == "hello"
    with pytest.raises(Exception):
        pva(engine).get("LATE:ADDED", timeout=1)


def test_createpv_from_a_scripts_thread_while_it_loads_and_from_write(engine_factory, pva, ca):
    """A script's own thread that creates PVs before its Driver exists gets them served
    once pvconsole serves, with a parameter (not a KeyError in setParam); a Driver.write
    (on the driver thread) may add PVs as well."""
    engine = engine_factory(plugin_path("script_early_thread"))
    ctx = pva(engine)
    wait_for(lambda: ctx.get("EARLY:THREAD", timeout=1).value == 2.0)
    ctx.put("EARLY:ADD", 1, wait=True, timeout=5)
    assert ctx.get("EARLY:NEW1", timeout=2).value == 1.5
    assert ca(engine).put("EARLY:ADD", 2, timeout=5).get("ok")
    wait_for(lambda: ca(engine).get("EARLY:NEW2")["value"] == 2.5)


def test_a_driver_thread_job_not_begun_in_time_never_runs_when_asked_so(engine):
    """A late createPV the driver thread cannot take in time is refused and not served
    later behind its caller's back."""
    held, ran = threading.Event(), []
    engine._submit(lambda: held.wait(5))  # a plugin's slow call
    with pytest.raises(TimeoutError):
        engine.run_on_driver_thread(lambda: ran.append(1), timeout=0.2, or_not_at_all=True)
    held.set()
    assert engine.run_on_driver_thread(lambda: "after") == "after"  # the thread moved on
    assert ran == []


def test_a_server_thread_script_sleeping_in_its_main_loop_gets_its_keyboard_interrupt(
        engine_factory, tmp_path, monkeypatch):
    """A ServerThread script without a signal handler: alone, Ctrl-C raised
    KeyboardInterrupt in its main thread's loop, wherever it was; so it does at the stop,
    and its clean-up (stop the server thread, join it, its driver's stop()) runs, once."""
    mark = tmp_path / "mark"
    monkeypatch.setenv("ST_MARK", str(mark))
    engine = engine_factory(plugin_path("script_thread_stop"))
    assert not [p.error for p in engine.plugins if p.error]
    engine.stop()
    assert mark.read_text() == "stop\nclean-up ran\n"


def test_a_server_thread_script_blocked_in_a_long_call_gets_its_stop_hook(
        engine_factory, tmp_path, monkeypatch):
    """Its KeyboardInterrupt waits for its time.sleep(30): past its clean-up time, its
    driver's stop() is called, as for a script pvconsole could not tell."""
    mark = tmp_path / "mark"
    monkeypatch.setenv("ST_MARK", str(mark))
    monkeypatch.setenv("ST_SLEEP", "30")
    engine = engine_factory(plugin_path("script_thread_stop"))
    assert not [p.error for p in engine.plugins if p.error]
    engine.stop()
    assert mark.read_text() == "stop\n"  # by pvconsole: the clean-up never ran


@pytest.mark.parametrize("signum, how", [(signal.SIGTERM, "its SIGTERM handler"),
                                         (signal.SIGINT, "KeyboardInterrupt")])
def test_a_script_cleans_up_as_it_would_alone_when_pvconsole_stops(
        engine_factory, pva, tmp_path, monkeypatch, signum, how):
    """Stopped on SIGTERM, the script's own SIGTERM handler ends its loop; on SIGINT (or
    the console's quit) its ``except KeyboardInterrupt`` runs. Either way its clean-up
    runs before the servers go: a PVA monitor sees what it sets. Its driver's stop() is its
    own clean-up: pvconsole does not call it as it calls a plugin's."""
    mark = tmp_path / "mark"
    monkeypatch.setenv("CLEANUP_MARK", str(mark))
    engine = engine_factory(plugin_path("script_cleanup"))
    assert not [p.error for p in engine.plugins if p.error]
    seen: list = []
    sub = pva(engine).monitor("CLN:STATE", seen.append, notify_disconnect=True)
    try:
        wait_for(lambda: any(not isinstance(v, Exception) for v in seen))
        engine.stop(signum)
        assert mark.read_text() == how
        assert (tmp_path / "mark.stop").read_text() == "stop\n"  # by the script alone
        wait_for(lambda: any(not isinstance(v, Exception) and v.value == f"stopped by {how}"
                             for v in seen))
    finally:
        sub.close()


def test_a_script_calling_process_through_the_class_waits_and_is_stopped_as_alone(
        engine_factory, pva, tmp_path, monkeypatch):
    """``pcaspy.SimpleServer.process(0.1)`` once the script's code is loaded (the class is
    pcaspy's again by then) ran pcaspy's CA loop on the script's thread beside pvconsole's:
    its loop spun thousands of times a second and never got its KeyboardInterrupt."""
    mark = tmp_path / "mark"
    monkeypatch.setenv("CLEANUP_MARK", str(mark))
    engine = engine_factory(plugin_path("script_class_process"))
    ctx = pva(engine)
    first = wait_for(lambda: ctx.get("CLP:LOOPS").value)
    time.sleep(1.0)
    assert ctx.get("CLP:LOOPS").value - first < 30  # ~10 passes a second
    engine.stop(signal.SIGINT)
    assert mark.read_text() == "KeyboardInterrupt"


def test_a_server_thread_script_gets_its_signal_handler_run_when_pvconsole_stops(engine_factory):
    """Its main loop waits for its SIGINT handler (pcaspy's ServerThread pattern): run at
    the stop, the handler ends the loop, as Ctrl-C did alone."""
    engine = engine_factory(plugin_path("script_thread"))
    thread = next(t for t in threading.enumerate() if t.name == "plugin-script_thread")
    engine.stop()
    assert not thread.is_alive()


def test_a_script_gets_the_command_line_given_after_its_name(engine_factory, pva):
    """``--plugin 'ioc.py -P SEIS:'``: twice, with two prefixes; without its required
    option it says how arguments are given."""
    script = plugin_path("script_args")
    engine = engine_factory(f"{script} -P ARG1:", f"{script} --prefix 'ARG2:' --gain 2.5",
                            script)
    errors = [p.error for p in engine.plugins if p.error]
    assert len(errors) == 1 and "SystemExit 2" in errors[0]
    assert "takes them after its name" in errors[0]
    ctx = pva(engine)
    assert ctx.get("ARG1:GAIN").value == 1.0
    assert ctx.get("ARG2:GAIN").value == 2.5
    assert [p.name for p in engine.plugins if not p.error and p.source != "builtin"][0] == "script_args"


def test_a_script_reads_its_own_command_line_after_start_up(engine_factory, pva, caplog,
                                                            tmp_path):
    """A script's threads and driver read ``sys.argv`` later too (PV names built from
    ``sys.argv[1]`` in a polling thread): they see the script's command line, not
    pvconsole's; a second script with other arguments is told that one process has one."""
    plugin = tmp_path / "argv.py"
    plugin.write_text(
        "import sys, threading, time\n"
        "from pcaspy import Driver, SimpleServer\n"
        "class D(Driver):\n"
        "    def write(self, reason, value):\n"
        "        self.setParam('IN_WRITE', ' '.join(sys.argv[1:]))\n"
        "        self.updatePVs()\n"
        "        return True\n"
        "if __name__ == '__main__':\n"
        "    P = sys.argv[2]\n"
        "    server = SimpleServer()\n"
        "    server.createPV(P, {'POKE': {'type': 'int'}, 'IN_THREAD': {'type': 'string'},\n"
        "                        'IN_WRITE': {'type': 'string'}})\n"
        "    d = D()\n"
        "    def later():\n"
        "        time.sleep(0.2)\n"
        "        d.setParam('IN_THREAD', ' '.join(sys.argv[1:]))\n"
        "        d.updatePVs()\n"
        "    threading.Thread(target=later, daemon=True).start()\n"
        "    while True:\n"
        "        server.process(0.1)\n")
    engine = engine_factory(f"{plugin} -P A1:", f"{plugin} -P A2:")
    ctx = pva(engine)
    wait_for(lambda: ctx.get("A1:IN_THREAD").value == "-P A1:")
    ctx.put("A1:POKE", 1, wait=True)
    assert ctx.get("A1:IN_WRITE").value == "-P A1:"
    assert any("sys.argv is plugin argv's command line" in r.getMessage()
               and r.getMessage().endswith("sees ['argv.py', '-P', 'A1:']") for r in caplog.records)


def test_a_script_thread_nothing_tells_to_end_does_not_hold_up_the_stop(engine_factory, tmp_path):
    (tmp_path / "forever.py").write_text(
        "import time\nfrom pcaspy import Driver, SimpleServer\nfrom pcaspy.tools import ServerThread\n"
        "if __name__ == '__main__':\n"
        "    server = SimpleServer()\n    server.createPV('FOREVER:', {'X': {}})\n"
        "    driver = Driver()\n    ServerThread(server).start()\n"
        "    while True:\n        time.sleep(0.05)\n")
    engine = engine_factory(str(tmp_path / "forever.py"))
    assert "FOREVER:X" in engine.entries
    t0 = time.monotonic()
    engine.stop()
    assert time.monotonic() - t0 < 0.5  # not the clean-up wait of scripts told to end


def test_a_nan_and_the_value_after_it_reach_the_monitors(engine, pva, ca):
    """pcaspy's deadband test is False for NaN: a driver's NaN (a failed sensor) reached
    no monitor, nor did the value after it when it equalled the one before."""
    driver = engine.drivers["alltypes"]
    seen: queue.Queue = queue.Queue()
    sub = pva(engine).monitor("T:FLOAT", seen.put)
    try:
        assert seen.get(timeout=5).value == 12.5
        for value in (float("nan"), float("nan"), 12.5, float("inf"), float("inf"), 12.5):
            driver.setParam("FLOAT", value)
            driver.updatePVs()
        got = [seen.get(timeout=5).value for _ in range(4)]
        assert math.isnan(got[0]) and got[1:] == [12.5, math.inf, 12.5]
        time.sleep(0.2)
        assert seen.empty()  # NaN to NaN, inf to inf: unchanged, as for a record (mdel 0)
        assert ca(engine).get("T:FLOAT")["value"] == 12.5
    finally:
        sub.close()


def test_a_script_s_handler_set_after_it_handed_over_is_kept_too(engine_factory, tmp_path):
    """A ServerThread script that sets its Ctrl-C handler after start() called
    signal.signal off the main thread: ValueError, and its loop died (PVs INVALID)."""
    (tmp_path / "late.py").write_text(
        "import signal, time\nfrom pcaspy import Driver, SimpleServer\nfrom pcaspy.tools import ServerThread\n"
        "if __name__ == '__main__':\n"
        "    server = SimpleServer()\n    server.createPV('LATE:', {'N': {'type': 'int'}})\n"
        "    driver = Driver()\n    ServerThread(server).start()\n    time.sleep(0.05)\n"
        "    stop = []\n    signal.signal(signal.SIGINT, lambda *a: stop.append(1))\n"
        "    n = 0\n    while not stop:\n"
        "        n += 1\n        driver.setParam('N', n)\n        driver.updatePVs()\n        time.sleep(0.02)\n"
        f"    open({str(tmp_path / 'mark')!r}, 'w').write('clean')\n")
    engine = engine_factory(str(tmp_path / "late.py"))
    driver = engine.drivers["late"]
    wait_for(lambda: driver.getParam("N") > 10)  # its loop lives on past the handler
    engine.stop()
    assert (tmp_path / "mark").read_text() == "clean"


STOP_SCRIPT = """
import signal, time
from pcaspy import Driver, SimpleServer
{setup}
server = SimpleServer()
server.createPV('{prefix}', {{'X': {{}}}})
driver = Driver()
try:
    while running:
        server.process(0.05)
except KeyboardInterrupt:
    {on_interrupt}
{cleanup}
"""


def _stop_script(tmp_path, name: str, setup: str = "running = True", cleanup: str = "",
                 on_interrupt: str = "pass") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(STOP_SCRIPT.format(prefix=f"{name.upper()}:", setup=setup, cleanup=cleanup,
                                       on_interrupt=on_interrupt))
    return str(path)


def test_a_daemon_style_script_that_ignores_sigint_gets_its_sigterm_clean_up(
        engine_factory, tmp_path):
    """Stopped as an operator's quit (SIGINT): its SIGINT is ignored, so its SIGTERM
    handler is what ends it; it was left to die without its clean-up."""
    mark = tmp_path / "mark"
    engine = engine_factory(_stop_script(
        tmp_path, "daemonish",
        "running = True\ndef on_term(s, f):\n    global running\n    running = False\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, on_term)",
        cleanup=f"open({str(mark)!r}, 'w').write('clean')"))
    engine.stop()
    assert mark.read_text() == "clean"


def test_a_script_s_clean_up_that_raises_is_logged(engine_factory, tmp_path, caplog):
    engine = engine_factory(_stop_script(tmp_path, "badclean",
                                         on_interrupt="raise RuntimeError('device gone')"))
    engine.stop()
    assert "badclean: its clean-up raised RuntimeError: device gone" in caplog.text


def test_the_stop_hooks_and_scripts_clean_up_share_the_wait(engine_factory, tmp_path, monkeypatch):
    """A hung stop() hook and a script whose clean-up blocks waited one after the
    other (3 s of a 2 s stop); now side by side."""
    monkeypatch.setattr("pvconsole.engine.STOP_HOOK_TIMEOUT", 0.6)
    monkeypatch.setattr("pvconsole.engine.SCRIPT_STOP_TIMEOUT", 0.6)
    (tmp_path / "hung.py").write_text(
        "import threading\nfrom pcaspy import Driver\nprefix = 'HUNG:'\npvdb = {'X': {}}\n"
        "class Hung(Driver):\n    def stop(self):\n        threading.Event().wait()\n")
    engine = engine_factory(str(tmp_path / "hung.py"),
                            _stop_script(tmp_path, "slowclean", on_interrupt="time.sleep(30)"))
    t0 = time.monotonic()
    engine.stop()
    took = time.monotonic() - t0
    assert 0.6 <= took < 1.0  # the hook's 0.6 s and the script's 0.6 s side by side, not 1.2 s


def test_bytes_in_a_string_pv_are_its_text_on_both_protocols(engine_factory, pva, ca, tmp_path):
    """pcaspy's own pysh example puts a subprocess's output (``bytes``) into a string PV
    from a thread: pcaspy took them for a list and the process died (SIGSEGV) within a few
    CA gets and monitor posts."""
    plugin = tmp_path / "shout.py"
    plugin.write_text(
        "import threading\n"
        "from pcaspy import Driver\n"
        "prefix = 'SH:'\n"
        "pvdb = {'CMD': {'type': 'int', 'asyn': True}, 'ERR': {'type': 'string'}}\n"
        "OUT = [b'', b'ls: cannot access', b'x' * 60]\n"
        "class D(Driver):\n"
        "    def write(self, reason, value):\n"
        "        self.setParam(reason, value)\n"
        "        threading.Thread(target=self.work, args=(value,)).start()\n"
        "        return True\n"
        "    def work(self, value):\n"
        "        self.setParam('ERR', OUT[value % 3])\n"
        "        self.callbackPV('CMD')\n"
        "        self.updatePVs()\n")
    engine = engine_factory(str(plugin))
    client = ca(engine)
    client.monitor("SH:ERR")
    ctx = pva(engine)
    expected = ["", "ls: cannot access", "x" * 39]
    for i in range(9):
        assert client.put("SH:CMD", i, wait=True).get("ok")
        want = expected[i % 3]
        assert client.get("SH:ERR")["value"] == want
        assert ctx.get("SH:ERR").value == want
    wait_for(lambda: [e["value"] for e in client.events() if e.get("pv") == "SH:ERR"][-1:] == ["x" * 39])


def test_a_script_loop_body_of_seconds_holds_the_other_plugins_once(engine_factory, pva,
                                                                     monkeypatch):
    """The driver thread waits for a script's loop body at most max_wait, once per body: it
    waited on every pass, so every CA get and PVA put of every plugin took up to max_wait
    while a slow script's body ran (0.1-0.2 s each at the default 0.1 s)."""
    from pvconsole.turns import turns
    monkeypatch.setattr(turns, "max_wait", 1.0)
    monkeypatch.setenv("WORK_BODY_SECONDS", "5")
    engine = engine_factory(plugin_path("script_work"), ALLTYPES)
    ctx = pva(engine)
    wait_for(lambda: ctx.get("WORK:N").value >= 1)  # its first body has begun
    time.sleep(1.2)  # ... and has run longer than max_wait
    started = time.monotonic()
    for i in range(5):  # each waited up to max_wait
        ctx.put("T:FLOAT", float(i), wait=True)
    assert time.monotonic() - started < 1.0
    assert ctx.get("T:FLOAT").value == 4.0


def test_an_array_alarm_comes_with_its_limits_and_no_severity_no_condition(engine_factory, pva,
                                                                           tmp_path):
    plugin = tmp_path / "arralarm.py"
    plugin.write_text(
        "from pcaspy import Driver\n"
        "from pcaspy.alarm import Alarm, Severity\n"
        "prefix = 'AA:'\n"
        "pvdb = {'W': {'count': 4, 'lolo': 1, 'hihi': 9}, 'C': {'value': 1.0}}\n"
        "class D(Driver):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.setParam('W', [2, 3, 9.5, 4])\n"
        "        self.setParamStatus('C', Alarm.COMM_ALARM, Severity.NO_ALARM)\n"
        "        self.updatePVs()\n")
    ctx = pva(engine_factory(str(plugin)))
    w = ctx.get("AA:W")
    assert (w.alarm.severity, w.alarm.message) == (2, "HIHI")
    assert (w.valueAlarm.lowAlarmLimit, w.valueAlarm.highAlarmLimit) == (1.0, 9.0)
    assert w.valueAlarm.lowWarningLimit == 0.0  # a pair pcaspy ignores: QSRV's waveform zero
    c = ctx.get("AA:C")
    assert (c.alarm.severity, c.alarm.status, c.alarm.message) == (0, 0, "")


@pytest.mark.parametrize("long", [[float(i) for i in range(21)], np.arange(21.0),
                                  np.arange(24.0).reshape(4, 6)], ids=["list", "array", "image"])
def test_a_driver_array_longer_than_count_is_served_cut_on_both_protocols(engine, pva, ca, long):
    """An IOC's waveform holds at most NELM elements. pcaspy's CA side served all 21 to a
    client asking for the current length, PVA the first 16 (FARR's count): both serve 16."""
    client = ca(engine)
    client.monitor("T:FARR")
    driver = driver_of(engine)
    engine.run_on_driver_thread(lambda: (driver.setParam("FARR", long), driver.updatePVs()))
    first = [float(i) for i in range(16)]
    seen: list = []
    assert wait_for(lambda: seen.extend(e["value"] for e in client.events()) or first in seen)
    assert client.get("T:FARR")["value"] == first
    assert list(pva(engine).get("T:FARR").value) == first


@pytest.fixture
def unruly(engine_factory):
    return engine_factory(plugin_path("unruly"), asyn_timeout=1.0)


@pytest.mark.parametrize("pv", ["UR:SHUTDOWN", "UR:OSEXIT"])
def test_a_driver_that_exits_in_write_fails_the_put_and_every_ioc_serves_on(unruly, pva, ca, pv):
    """Alone, the IOC would exit (a supervisor restarts it). Hosted, the SystemExit ended
    the CA server's thread: every plugin's PVs were gone from CA, PVA puts hung."""
    client = ca(unruly)
    reply = client.call(op="put_status", pv=pv, value=1)
    assert reply.get("message") == "Channel write request failed", reply
    assert "asked to exit" in unruly.putlog.tail(1)[0].reason
    with pytest.raises(Exception, match="asked to exit"):
        pva(unruly).put(pv, 1, timeout=5)
    assert client.get("UR:OK")["value"] == 1.0  # the CA server loop still runs
    pva(unruly).put("UR:OK", 4.0, timeout=5)
    assert wait_for(lambda: client.get("UR:OK")["value"] == 4.0)


@pytest.mark.parametrize("pv", ["UR:ARRAY_OK", "UR:ARRAY_OK_ASYN"])
def test_a_write_returning_an_array_is_success(unruly, pva, ca, pv):
    """pcaspy's ``not`` of a numpy array raised inside the CA server library's callback:
    the process aborted (pcaspy alone too)."""
    client = ca(unruly)
    reply = client.call(op="put_status", pv=pv, value=5)
    assert reply.get("message", "").lower().startswith("normal"), reply
    assert wait_for(lambda: client.get(pv)["value"] == 5)
    pva(unruly).put(pv, 6, timeout=5)
    assert client.get(pv)["value"] == 6


def test_counts_made_by_numpy_or_zero_are_served(unruly, pva, ca):
    """A numpy count ended the CA server's thread at the first CA get (SWIG takes no
    numpy int); a count of 0 is a scalar, as pcaspy serves it (it refused the plugin)."""
    client = ca(unruly)
    assert client.get("UR:IMG")["value"] == [0] * 32
    assert len(pva(unruly).get("UR:IMG").value) == 32
    assert client.get("UR:ZERO")["value"] == 2.5
    assert pva(unruly).get("UR:ZERO").value == 2.5
    assert client.get("UR:OK")["value"] == 1.0


def test_a_ca_put_of_latin1_text_to_a_string_pv_is_that_text(engine, pva, ca):
    """A client in a Latin-1 locale puts b'caf\\xe9'. pcaspy handed the driver a str with a
    surrogate escape, which neither protocol could serve again: every CA get of the PV
    failed and PVA kept an older value, INVALID."""
    client = ca(engine)
    assert client.put("T:STRING", "café", latin1=True, wait=True).get("ok")
    assert wait_for(lambda: pva(engine).get("T:STRING").value == "café")
    assert pva(engine).get("T:STRING").alarm.severity == 0
    assert client.get("T:STRING")["value"] == "café"  # (served as UTF-8)
    assert engine.putlog.tail(1)[0].requested == "café"


@pytest.mark.parametrize("value, requested", [(5, 5), ({"value.index": -1}, -1),
                                              ({"value.choices": ["Nope"]}, "Nope")])
def test_a_refused_pva_enum_put_logs_what_was_asked(engine, pva, value, requested):
    """The put log showed the whole NTEnum value structure ({'index': 7, 'choices': …})
    where a CA put of the same logs the index."""
    with pytest.raises(RemoteError):
        pva(engine).put("T:ENUM", value, wait=True)
    assert engine.putlog.tail(1)[0].requested == requested


def test_an_update_pvs_posts_its_pvs_on_pva_before_ca(engine, pva, ca, monkeypatch):
    """A tick's changes flushed by one updatePVs(): the PVA posts go first, then the CA
    posts (the tenth PVA post waited for nine CA posts too), and both protocols get all."""
    import types
    from pvconsole import capost
    client = ca(engine)
    names = ("T:FLOAT", "T:INT")
    for name in names:
        client.monitor(name)
    ctx = pva(engine)
    subs = [ctx.monitor(name, lambda v: None) for name in names]
    try:
        wait_for(lambda: all(engine.entry(n).pva_clients for n in names))
        wait_for(lambda: all(engine.entry(n).ca_pv.interest for n in names))
        order: list[str] = []
        raw_post, ca_post = mirror_module._RawSharedPV.post, capost.post
        monkeypatch.setattr(mirror_module, "_RawSharedPV", types.SimpleNamespace(
            post=lambda pv, V: (order.append("pva"), raw_post(pv, V))))
        monkeypatch.setattr(capost, "post", lambda pv, db: (order.append("ca"), ca_post(pv, db)))
        driver = driver_of(engine)
        engine.run_on_driver_thread(lambda: (driver.setParam("FLOAT", 11.5), driver.setParam("INT", 12),
                                             driver.updatePVs()))
        assert order == ["pva", "pva", "ca", "ca"]
        seen: dict = {}
        assert wait_for(lambda: seen.update((e["pv"], e["value"]) for e in client.events())
                        or seen == {"T:FLOAT": 11.5, "T:INT": 12})
        assert [ctx.get(n).value for n in names] == [11.5, 12]
    finally:
        for sub in subs:
            sub.close()


def test_a_numpy_false_from_write_is_a_refusal(unruly, pva, ca):
    """pcaspy checks ``is False``: np.False_ was taken as success."""
    client = ca(unruly)
    client.call(op="put_status", pv="UR:NP_REFUSES", value=3)
    assert unruly.putlog.tail(1)[0].result == "refused: driver"
    assert (client.get("UR:NP_REFUSES")["severity"], pva(unruly).get("UR:NP_REFUSES").alarm.message) \
        == (3, "WRITE")  # flagged as for False, on both protocols
    with pytest.raises(RemoteError, match="driver refused"):
        pva(unruly).put("UR:NP_REFUSES", 4, timeout=5)

