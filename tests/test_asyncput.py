"""Asynchronous puts from both protocols end in the order they began, each at its own
callbackPV (real servers on loopback, pyepics and p4p clients)."""

from __future__ import annotations

import threading
import time

import pytest
from p4p.client.thread import RemoteError

from conftest import plugin_path, pva_context, wait_for

MOVES = plugin_path("asyn_moves")


def _ended(driver, value) -> float:
    return next(t for event, v, t in driver.log if event == "end" and v == value)


def test_a_write_that_calls_back_at_once_completes_at_once(engine_factory, pva, ca):
    engine = engine_factory(MOVES, asyn_timeout=5.0)
    t0 = time.monotonic()
    pva(engine).put("AM:RUN", 1, wait=True, timeout=5)
    assert time.monotonic() - t0 < 1.0  # not the asyn timeout
    assert pva(engine).get("AM:RUN").value.index == 1
    assert ca(engine).put("AM:RUN", 0, wait=True).get("ok")
    assert pva(engine).get("AM:RUN").value.index == 0


def test_a_pva_put_waits_for_a_ca_put_in_progress(engine_factory, pva, ca):
    engine = engine_factory(MOVES, asyn_timeout=5.0)
    driver = engine.drivers["asyn_moves"]
    client = ca(engine)
    ca_done = []
    t = threading.Thread(target=lambda: ca_done.append((client.put("AM:MOVE", 1.0, wait=True),
                                                        time.monotonic())))
    t.start()
    wait_for(lambda: driver.log)  # the CA move is under way
    pva(engine).put("AM:MOVE", 2.0, wait=True, timeout=5)
    pva_done = time.monotonic()
    t.join(5)
    assert ca_done and ca_done[0][0].get("ok")
    assert [(e, v) for e, v, _ in driver.log] == [("start", 1.0), ("end", 1.0), ("start", 2.0), ("end", 2.0)]
    assert driver.overlaps == 0
    assert ca_done[0][1] >= _ended(driver, 1.0) and pva_done >= _ended(driver, 2.0)


def test_pva_puts_queue_and_each_ends_with_its_own_move(engine_factory):
    engine = engine_factory(MOVES, asyn_timeout=5.0)
    driver = engine.drivers["asyn_moves"]
    done: dict[float, float] = {}
    errors: list[Exception] = []

    def put(value: float) -> None:
        ctx = pva_context(engine.pva_client_conf())
        try:
            ctx.put("AM:MOVE", value, wait=True, timeout=5)
            done[value] = time.monotonic()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            ctx.close()
    threads = [threading.Thread(target=put, args=(v,)) for v in (3.0, 4.0)]
    threads[0].start()
    wait_for(lambda: driver.log)
    threads[1].start()
    for t in threads:
        t.join(10)
    assert not errors  # the second waited instead of being refused
    assert driver.overlaps == 0
    for value in (3.0, 4.0):
        assert done[value] >= _ended(driver, value)


def test_a_ca_put_behind_a_pva_put_ends_with_its_own_move(engine_factory, pva, ca):
    """CA's server library does not know of the PVA put in progress: the CA put waits
    for it (as a second CA put would), then runs and ends with its own callbackPV."""
    engine = engine_factory(MOVES, asyn_timeout=5.0)
    driver = engine.drivers["asyn_moves"]
    client = ca(engine)
    pva_done = []

    def pva_put() -> None:
        ctx = pva_context(engine.pva_client_conf())
        try:
            ctx.put("AM:MOVE", 5.0, wait=True, timeout=5)
            pva_done.append(time.monotonic())
        finally:
            ctx.close()
    t = threading.Thread(target=pva_put)
    t.start()
    wait_for(lambda: driver.log)
    assert client.put("AM:MOVE", 6.0, wait=True).get("ok")
    ca_done = time.monotonic()
    t.join(5)
    assert pva_done and pva_done[0] >= _ended(driver, 5.0)
    assert ca_done >= _ended(driver, 6.0)
    assert [(e, v) for e, v, _ in driver.log] == [("start", 5.0), ("end", 5.0), ("start", 6.0), ("end", 6.0)]
    assert driver.overlaps == 0


def test_a_timed_out_pva_put_still_ends_with_its_own_move(engine_factory, ca):
    """The PVA client gets its timeout, but the driver is still moving: the next put
    waits for that move's callbackPV and then ends with its own, not with the first's."""
    engine = engine_factory(MOVES, asyn_timeout=0.15)  # shorter than a move
    driver = engine.drivers["asyn_moves"]
    ctx = pva_context(engine.pva_client_conf())
    try:
        with pytest.raises(RemoteError, match="timed out"):
            ctx.put("AM:MOVE", 7.0, wait=True, timeout=5)
    finally:
        ctx.close()
    assert ca(engine).put("AM:MOVE", 8.0, wait=True).get("ok")
    ca_done = time.monotonic()
    assert [(e, v) for e, v, _ in driver.log] == [("start", 7.0), ("end", 7.0), ("start", 8.0), ("end", 8.0)]
    assert driver.overlaps == 0 and ca_done >= _ended(driver, 8.0)


def test_a_stop_with_puts_in_progress_and_waiting_ends_both(engine_factory, ca):
    """A PVA put whose callbackPV never comes and a CA put waiting behind it: the stop
    fails the PVA put and lets nothing else start (it raised 'engine not running')."""
    engine = engine_factory(MOVES, asyn_timeout=30.0)
    driver = engine.drivers["asyn_moves"]
    client = ca(engine)
    errors: list[Exception] = []

    def pva_put() -> None:
        ctx = pva_context(engine.pva_client_conf())
        try:
            ctx.put("AM:HOLD", 1.0, wait=True, timeout=20)
        except Exception as e:  # noqa: BLE001 - checked below
            errors.append(e)
        finally:
            ctx.close()
    t = threading.Thread(target=pva_put)
    t.start()
    wait_for(lambda: driver.log)
    ca_put = threading.Thread(target=lambda: client.put("AM:HOLD", 2.0, wait=True, timeout=20))
    ca_put.start()
    time.sleep(0.5)  # the CA put is waiting for the PVA put
    engine.stop()
    t.join(10)
    assert errors and "shutting down" in str(errors[0])
    assert [v for e, v, _ in driver.log] == [1.0]


def test_puts_from_both_protocols_end_in_the_order_they_came(engine_factory, ca):
    """CA 7, PVA 8, CA 9 to a PV whose moves end with a callbackPV from the driver's own
    thread: CA's library held CA 9 back behind CA 7 and ran it at 7's completion, before
    the PVA put that had waited longer (7, 9, 8: the older value won)."""
    engine = engine_factory(MOVES, asyn_timeout=5.0)
    driver = engine.drivers["asyn_moves"]
    first, third = ca(engine), ca(engine)
    results: dict[float, object] = {}

    def pva_put() -> None:
        ctx = pva_context(engine.pva_client_conf())
        try:
            ctx.put("AM:MOVE", 8.0, wait=True, timeout=5)
            results[8.0] = "ok"
        finally:
            ctx.close()
    threads = [threading.Thread(target=lambda: results.update({7.0: first.put("AM:MOVE", 7.0, wait=True)}))]
    threads[0].start()
    wait_for(lambda: driver.log)  # CA 7 is moving
    threads.append(threading.Thread(target=pva_put))
    threads[1].start()
    time.sleep(0.1)  # PVA 8 waits for it
    threads.append(threading.Thread(target=lambda: results.update({9.0: third.put("AM:MOVE", 9.0, wait=True)})))
    threads[2].start()
    for t in threads:
        t.join(10)
    assert [v for e, v, _ in driver.log if e == "start"] == [7.0, 8.0, 9.0]
    assert driver.overlaps == 0 and len(results) == 3
    assert engine.drivers["asyn_moves"].getParam("MOVE") == 9.0


def test_a_failed_asynchronous_write_fails_the_put_on_both_protocols(engine_factory, pva, ca,
                                                                      tmp_path):
    """``pvconsole.putlog.fail_put``: the device refused what ``write`` started (the
    gateway's CA put failed): the PVA client is told why, the CA client gets ECA_PUTFAIL,
    the put log says so; a good one still ends as done."""
    plugin = tmp_path / "failing.py"
    plugin.write_text(
        "import threading\n"
        "from pcaspy import Driver\n"
        "from pvconsole.putlog import fail_put\n"
        "prefix = 'FP:'\n"
        "pvdb = {'X': {'asyn': True}}\n"
        "class D(Driver):\n"
        "    def write(self, reason, value):\n"
        "        if value < 0:\n"
        "            end = lambda: fail_put(self, reason, 'the device said no')\n"
        "        else:\n"
        "            self.setParam(reason, value)\n"
        "            end = lambda: (self.updatePVs(), self.callbackPV(reason))\n"
        "        threading.Timer(0.05, end).start()\n"
        "        return True\n")
    engine = engine_factory(str(plugin), asyn_timeout=5.0)
    with pytest.raises(RemoteError, match="FP:X: the device said no"):
        pva(engine).put("FP:X", -1.0, wait=True, timeout=5)
    assert engine.putlog.tail(1)[0].result == "driver error"
    reply = ca(engine).call(op="put_status", pv="FP:X", value=-2.0)
    assert reply.get("message") == "Channel write request failed", reply  # ECA_PUTFAIL
    pva(engine).put("FP:X", 3.0, wait=True, timeout=5)
    assert pva(engine).get("FP:X").value == 3.0


def test_a_put_waiting_behind_an_asyn_one_starts_after_the_drivers_callback_is_done(
        engine_factory, pva):
    """pcaspy's pysh example: the worker calls callbackPV and then marks the driver idle.
    The waiting put was handed to the driver at once and refused as busy (4 of 20 over
    PVA); alone, pcaspy retries it at its loop's next turn."""
    engine = engine_factory(plugin_path("busy_asyn"), asyn_timeout=5.0)
    ctx = pva(engine)
    errors: list = []

    def put(value: str) -> None:
        try:
            ctx.put("BA:CMD", value, wait=True, timeout=5)
        except Exception as e:  # noqa: BLE001 - what the test reads
            errors.append(e)

    first = threading.Thread(target=put, args=("first",))
    first.start()
    time.sleep(0.05)
    put("second")
    first.join()
    assert not errors
    assert wait_for(lambda: ctx.get("BA:DONE").value == 2)
