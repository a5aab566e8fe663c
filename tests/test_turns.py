"""Turns between the driver thread and scripts' own loops (pure threading, no servers)."""

import threading
import time

from pvconsole.turns import LoopTurns


def test_no_script_loop_costs_nothing() -> None:
    turns = LoopTurns()
    assert turns.begin_pass() is False  # no lock taken, nothing to end


def test_pass_waits_for_a_running_body_and_a_body_for_the_pass() -> None:
    turns = LoopTurns(max_wait=5.0)
    stopped = threading.Event()
    turns.loop_started()
    turns.begin_body(stopped)
    released = []
    threading.Timer(0.1, lambda: (released.append(time.monotonic()), turns.end_body())).start()
    assert turns.begin_pass()
    assert released and time.monotonic() >= released[0]  # the pass began after the body ended
    entered = []
    t = threading.Thread(target=lambda: (turns.begin_body(stopped), entered.append(time.monotonic())))
    t.start()
    time.sleep(0.1)
    assert not entered  # the body waits while the pass runs
    ended = time.monotonic()
    turns.end_pass()
    t.join(2)
    assert entered and entered[0] >= ended


def test_a_long_body_does_not_hold_the_servers_beyond_max_wait(caplog) -> None:
    turns = LoopTurns(max_wait=0.05)
    turns.loop_started()
    turns.begin_body(threading.Event())
    t0 = time.monotonic()
    assert turns.begin_pass()
    assert 0.04 < time.monotonic() - t0 < 1.0
    assert "more than 0.05 s" in caplog.text
    turns.end_pass()


def test_a_loop_that_ends_in_its_body_releases_its_turn() -> None:
    turns = LoopTurns(max_wait=5.0)
    turns.loop_started()
    turns.begin_body(threading.Event())
    turns.loop_ended(in_body=True)  # the script raised between two process() calls
    t0 = time.monotonic()
    assert turns.begin_pass() is False  # no loop left: no turns at all
    assert time.monotonic() - t0 < 0.1


def test_a_stopped_script_does_not_wait_for_the_pass() -> None:
    turns = LoopTurns(max_wait=5.0)
    turns.loop_started()
    assert turns.begin_pass()
    stopped = threading.Event()
    stopped.set()
    t0 = time.monotonic()
    turns.begin_body(stopped)
    assert time.monotonic() - t0 < 0.5


def test_the_shortest_script_wait_bounds_the_driver_threads_pass():
    """A pass holds a script's loop up for as long as its CA wait (5 ms idle): a loop of
    process(0.001) ran at a fifth of its rate (187 loops/s here, 480 with the bound)."""
    turns = LoopTurns()
    assert turns.shortest == float("inf")
    turns.loop_started()
    turns.loop_wait(0.1)
    turns.loop_started()
    turns.loop_wait(0.002)
    turns.loop_wait(0.05)
    assert turns.shortest == 0.002
    turns.loop_ended(in_body=False)
    turns.loop_ended(in_body=False)
    assert turns.shortest == float("inf")  # no loop left: the CA wait is the pace's again


def test_a_long_body_holds_the_servers_once_not_on_every_pass() -> None:
    """A script's loop sleeping 5 s in its body held every pass of the driver thread for
    max_wait: every CA get of every plugin took 0.1-0.2 s while it slept."""
    turns = LoopTurns(max_wait=0.05)
    turns.loop_started()
    turns.begin_body(threading.Event())
    assert turns.begin_pass()
    turns.end_pass()
    t0 = time.monotonic()
    for _ in range(5):
        assert turns.begin_pass()
        turns.end_pass()
    assert time.monotonic() - t0 < 0.02
    turns.end_body()
    turns.begin_body(threading.Event())  # the next body is waited for again
    t0 = time.monotonic()
    assert turns.begin_pass()
    assert time.monotonic() - t0 >= 0.04
    turns.end_pass()
