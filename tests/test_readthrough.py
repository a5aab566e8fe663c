"""Values a driver computes in read() reach PVA: on connect and while watched."""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace

from conftest import plugin_path, pva_context, wait_for
from pvconsole.readthrough import ReadThrough, same_value

COMPUTED = plugin_path("computed")


def test_a_new_pva_channel_reads_like_caget(engine_factory, ca):
    engine = engine_factory(COMPUTED, read_poll=0.2)
    calls = engine.drivers["computed"].calls
    seen = []
    for _ in range(3):  # a pvget: a new client, a new channel, a fresh read()
        ctx = pva_context(engine.pva_client_conf())
        seen.append(ctx.get("RD:COUNT").value)
        ctx.close()
        wait_for(lambda: engine.entry("RD:COUNT").pva_clients == 0)
    assert seen == sorted(seen) and len(set(seen)) == 3 and seen[0] >= 1
    before = calls["COUNT"]
    assert ca(engine).get("RD:COUNT")["value"] > before  # CA: pcaspy's own read()
    rand = ca(engine).get("RD:RAND")["value"]
    assert 0 <= rand < 1 and engine.entry("RD:RAND").data[0] != rand  # CA's read is CA's


def test_a_watched_pv_is_read_again_and_a_pass_through_is_not_posted(engine_factory, pva):
    engine = engine_factory(COMPUTED, read_poll=0.2)
    ctx = pva(engine)
    first = ctx.get("RD:COUNT").value
    wait_for(lambda: ctx.get("RD:COUNT").value >= first + 2, timeout=5)  # same channel
    waves: queue.Queue = queue.Queue()
    plain: queue.Queue = queue.Queue()
    subs = [ctx.monitor("RD:WAVE", waves.put), ctx.monitor("RD:PLAIN", plain.put)]
    try:
        wait_for(lambda: waves.qsize() >= 3, timeout=5)
        got = [list(waves.get().value) for _ in range(3)]
        assert got[1][0] > got[0][0] and got[1] == [got[1][0] + i for i in range(4)]
        calls = engine.drivers["computed"].calls
        n = calls["PLAIN"]
        wait_for(lambda: calls["PLAIN"] >= n + 3, timeout=5)  # read() ran ...
        assert plain.qsize() == 1 and plain.get().value == 5.0  # ... and posted nothing new
    finally:
        for s in subs:
            s.close()


def test_read_once_scanned_and_raising_pvs(engine_factory, pva, caplog):
    engine = engine_factory(COMPUTED, read_poll=0.2)
    ctx = pva(engine)
    calls = engine.drivers["computed"].calls
    assert ctx.get("RD:ONCE").value == 1
    n = calls["COUNT"]
    ctx.get("RD:COUNT")
    wait_for(lambda: calls["COUNT"] >= n + 3, timeout=5)  # polls ran meanwhile
    assert ctx.get("RD:ONCE").value == 1 and calls["ONCE"] == 1  # read_poll 0: not polled
    bad = ctx.get("RD:BAD")  # read() raised: the stored value is served, INVALID/READ
    assert (bad.value, bad.alarm.severity, bad.alarm.message) == (1.0, 3, "READ")
    wait_for(lambda: ctx.get("RD:SCANNED").value >= 2)  # the scan thread's own reads
    time.sleep(0.5)
    assert caplog.text.count("RD:BAD: driver read() raised") == 1  # once, then counted
    assert ctx.get("RD:PLAIN").value == 5.0
    assert ctx.get("RD:NONE").value == 2.0  # read() returned None: the stored value, said once
    wait_for(lambda: calls["NONE"] >= 3, timeout=5)
    assert caplog.text.count("RD:NONE: driver read() returned None") == 1


class _Mirror:
    def __init__(self) -> None:
        self.published: list = []

    def publish(self, entry, data, ca=True) -> None:
        self.published.append(data.value)
        entry.data = (data.value, *entry.data[1:])

    def read_failed(self, entry, what) -> None:
        raise AssertionError(what)

    def read_ok(self, entry) -> None:
        pass


class _Entry:
    """The part of a mirror Entry ReadThrough uses (hashable, as entries are)."""

    def __init__(self, read) -> None:
        self.driver = SimpleNamespace(read=read, pvDB={"X": SimpleNamespace(alarm=0, severity=0,
                                                                           time=None)})
        self.spec = SimpleNamespace(reason="X", scan=0, read_poll=None)
        self.data = (0.0, 0, 0, 0, 0)
        self.pva_clients = 1
        self.on_connect = None
        self.name = "P:X"


def test_a_slow_read_is_made_less_often() -> None:
    slow = _Entry(lambda reason: time.sleep(0.02) or 1.0)   # 20 ms a read
    fast = _Entry(lambda reason: 2.0)
    mirror = _Mirror()
    reads = ReadThrough(mirror, lambda fn, timeout: fn(), default_poll=0.1)
    assert reads.add([slow, fast]) == 2 and slow.on_connect is not None
    t = 0.0
    counts = {"slow": 0, "fast": 0}
    real = reads.read

    def counted(entry):
        counts["slow" if entry is slow else "fast"] += 1
        return real(entry)
    reads.read = counted
    while t < 10.0:  # 10 s of a loop passing every 5 ms
        reads.poll(t)
        t += 0.005
    assert 90 <= counts["fast"] <= 101  # every 0.1 s
    assert 3 <= counts["slow"] <= 6     # 20 ms at 1 % duty: every ~2 s
    assert mirror.published == [1.0, 2.0]  # each value posted once: same values are not


def test_same_value() -> None:
    import numpy as np
    assert same_value([1, 2], np.array([1, 2])) and not same_value([1, 2], [1, 2, 3])
    assert same_value(float("nan"), float("nan")) and same_value(1, 1.0)
    assert not same_value("a", "b") and not same_value(np.zeros(3), None)


def test_a_first_connect_right_after_a_put_does_not_wait(engine_factory, pva, caplog):
    """An answered PVA put freed on the driver thread called into the pvxs loop while the
    loop waited for that thread (a first connect making its read()): both stood still
    until the read timed out (1 s)."""
    engine = engine_factory(COMPUTED)
    ctx = pva(engine)
    for i in range(3):
        ctx.put("RD:PLAIN", float(i), wait=True)
        fresh = pva_context(engine.pva_client_conf())
        try:
            t0 = time.monotonic()
            fresh.get("RD:COUNT")
            assert time.monotonic() - t0 < 0.5
        finally:
            fresh.close()
        wait_for(lambda: engine.entry("RD:COUNT").pva_clients == 0)
    assert "did not make its read()" not in caplog.text


def test_exposure_off_on_the_driver_thread_during_a_first_connect_does_not_stall(
        engine_factory, pva, caplog):
    """Closing a PV's PVA channels waits for pvxs's loop; the loop may be waiting for the
    driver thread (a first connect's read()). EXPOSE written over CA runs on that thread:
    the close must not wait there, or both sit until the read times out (1 s)."""
    engine = engine_factory(COMPUTED, read_poll=0)
    watcher = pva(engine)
    sub = watcher.monitor("RD:PLAIN", lambda v: None, notify_disconnect=True)
    try:
        wait_for(lambda: engine.entry("RD:PLAIN").pva_clients == 1)
        entry = engine.entry("RD:COUNT")
        connecting = threading.Event()
        first_read = entry.on_connect

        def on_connect():
            connecting.set()  # the pvxs loop is in onFirstConnect from here on
            return first_read()
        entry.on_connect = on_connect

        def expose_off() -> None:  # as a CA put to EXPOSE does it, on the driver thread
            assert connecting.wait(5)
            engine.set_exposure("RD:PLAIN", "off")
        engine.thread.submit(expose_off)
        t0 = time.monotonic()
        assert pva_context(engine.pva_client_conf()).get("RD:COUNT", timeout=5).value >= 1
        took = time.monotonic() - t0
        wait_for(lambda: engine.entry("RD:PLAIN").pva_clients == 0)
        assert took < 0.8, f"the first connect waited {took:.2f} s"
        assert "did not make its read()" not in caplog.text
    finally:
        sub.close()


def test_exposure_off_during_the_pvs_own_first_connect_does_not_deadlock(engine_factory):
    """A toggle (console, ctl) while the PV's first PVA channel is being served: the first
    connect takes entry.lock; the toggle must not wait for pvxs's loop while it holds it."""
    engine = engine_factory(COMPUTED, read_poll=0)
    entry = engine.entry("RD:COUNT")
    inside = threading.Event()
    first_read = entry.on_connect

    def on_connect():
        inside.set()
        time.sleep(0.3)  # the toggle below runs meanwhile
        return first_read()
    entry.on_connect = on_connect
    ctx = pva_context(engine.pva_client_conf())
    got: list = []
    getter = threading.Thread(target=lambda: got.append(ctx.get("RD:COUNT", timeout=3, throw=False)),
                              daemon=True)
    getter.start()
    try:
        assert inside.wait(5)
        toggler = threading.Thread(target=engine.set_exposure, args=("RD:COUNT", "off"), daemon=True)
        toggler.start()
        toggler.join(3)
        assert not toggler.is_alive(), "set_exposure hung"
        getter.join(5)
        assert got, "the PVA get hung"
        wait_for(lambda: "RD:COUNT" not in engine.mirror.provider.keys())
        assert entry.pva_pv is None and entry.pva_clients == 0
        engine.set_exposure("RD:COUNT", "on")
        again = pva_context(engine.pva_client_conf())
        try:
            assert again.get("RD:COUNT", timeout=5).value >= 1  # and back, with a fresh read
        finally:
            again.close()
    finally:
        ctx.close()


def test_a_read_that_raises_fails_nothing_over_ca(engine_factory, ca, caplog):
    """pcaspy lets a read() exception cross the CA server library and the process dies:
    a CA get serves the database value instead, and a scanned PV keeps scanning."""
    engine = engine_factory(COMPUTED, read_poll=0)
    client = ca(engine)
    for _ in range(3):
        assert client.get("RD:BAD")["value"] == 1.0
    assert client.get("RD:PLAIN")["value"] == 5.0  # the server is still there
    calls = engine.drivers["computed"].calls
    wait_for(lambda: calls["FLAKY"] >= 6, timeout=5)
    assert client.get("RD:FLAKY")["value"] >= 4  # scanned on past the raises
    assert caplog.text.count("RD:BAD: driver read() raised on a CA get") == 1
    assert caplog.text.count("RD:FLAKY: driver read() raised in a scan") == 1
    got = client.get("RD:BAD")  # the last value, which an operator must not take for a
    assert (got["severity"], got["status"]) == (3, 1)  # current one: INVALID/READ


def test_a_read_that_raises_is_a_read_alarm_until_one_succeeds(engine_factory, pva, ca):
    """As a record whose device read fails: INVALID/READ on both protocols, until a read
    returns; then the alarm it replaced (none here) is back."""
    engine = engine_factory(COMPUTED, read_poll=0.2)
    ctx, client = pva(engine), ca(engine)
    v = ctx.get("RD:HEALS")  # the first read raises: the stored value, INVALID/READ
    assert (v.value, v.alarm.severity, v.alarm.message) == (1.0, 3, "READ")
    assert client.get("RD:BAD")["severity"] == 3  # (over CA too)
    wait_for(lambda: ctx.get("RD:HEALS").value == 3.0)  # polled: raised again, then read
    v = ctx.get("RD:HEALS")
    assert (v.alarm.severity, v.alarm.message) == (0, "")  # (its driver set it at start)
    got = client.get("RD:HEALS")
    assert (got["value"], got["severity"], got["status"]) == (3.0, 0, 0)


def test_a_read_alarm_of_a_scan(engine_factory, pva, ca):
    """A CA get of a scanned PV (which reads nothing) leaves its scan's READ alarm as it
    is (it ended it, and the next scan set it again); a setParam ends it until the next
    read that raises."""
    engine = engine_factory(COMPUTED, read_poll=0)
    client, ctx = ca(engine), pva(engine)
    wait_for(lambda: ctx.get("RD:SBAD").alarm.message == "READ")
    for _ in range(3):
        assert client.get("RD:SBAD")["severity"] == 3
    assert ctx.get("RD:SBAD").alarm.severity == 3
    drv = engine.drivers["computed"]
    engine.run_on_driver_thread(lambda: (drv.setParam("SBAD", 5.0), drv.updatePVs()))
    # (a scanned PV is posted by its scan: the next one's read raises, and posts it READ)
    wait_for(lambda: (ctx.get("RD:SBAD").value, ctx.get("RD:SBAD").alarm.message) == (5.0, "READ"))


def test_scanned_pvs_scan_again_when_the_same_engine_starts_again(engine_factory):
    """A stopped engine started again: its mirror's 'stopped' ended the new scan threads
    at once (and would have kept waiting asyn puts from starting)."""
    engine = engine_factory(COMPUTED, read_poll=0.2)
    engine.stop()
    engine.start()
    ctx = pva_context(engine.pva_client_conf())
    try:
        first = ctx.get("RD:SCANNED").value
        wait_for(lambda: ctx.get("RD:SCANNED").value >= first + 2)
    finally:
        ctx.close()
