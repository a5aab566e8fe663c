"""The load generator both servers run in a Python thread (imported by the pvconsole
plugin and by the softioc server script; no EPICS imports here).

Every value written is ``time.time()`` at the moment of the write, so a client on the
same host computes the end-to-end latency as ``receive time - value``.

Timing comes from a JSON control file the orchestrator writes once every client is
connected: ``{"t_start", "t_begin", "t_end", "t_stop"}`` (POSIX seconds). The writer
starts at ``t_start``, counts its writes in the measurement window ``[t_begin, t_end)``
and stops at ``t_stop``; it then writes its statistics as JSON to the stats file.

Environment (set by the orchestrator):
    BENCH_CONTROL  path of the control file to wait for
    BENCH_STATS    path of the statistics file to write
    BENCH_RATE     total updates/s over all PVs; 0 = flat out
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

TICK = 0.005  # fixed-rate scheduling period (s)


def wait_control(path: str, poll: float = 0.02) -> dict:
    """Block until the orchestrator writes the control file (written atomically)."""
    while True:
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(poll)


def _sleep_until(t: float) -> None:
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def run(style: str, targets: Sequence, write: Callable, flush: Callable | None = None) -> None:
    """Run the load as configured by the environment, then write the stats file.

    Args:
        style: 'per-pv' (write then post each PV), 'batch' (write a sweep, then one
            flush), 'softioc' (``rec.set``; same loop as per-pv with a no-op post).
        targets: What ``write`` takes as first argument (pcaspy reasons or records).
        write: ``write(target, value)``; for per-pv it must also post the PV.
        flush: Batch style: called once per sweep (``updatePVs``).
    """
    ctl = wait_control(os.environ["BENCH_CONTROL"])
    rate = float(os.environ.get("BENCH_RATE", "0"))
    t_start, t_begin, t_end, t_stop = ctl["t_start"], ctl["t_begin"], ctl["t_end"], ctl["t_stop"]
    _sleep_until(t_start)
    if rate > 0:
        stats = _fixed_rate(targets, write, flush, rate, t_start, t_begin, t_end, t_stop)
    else:
        stats = _flat_out(targets, write, flush, t_begin, t_end, t_stop)
    stats.update(style=style, rate=rate, pvs=len(targets))
    tmp = os.environ["BENCH_STATS"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, os.environ["BENCH_STATS"])


def _fixed_rate(targets, write, flush, rate, t_start, t_begin, t_end, t_stop) -> dict:
    now = time.time
    n_targets = len(targets)
    i = n = in_window = 0
    next_tick = t_start
    late = 0
    while True:
        t = now()
        if t >= t_stop:
            break
        due = int((t - t_start) * rate)
        while n < due:  # catching up after a stall: but never past t_stop
            v = now()
            if v >= t_stop:
                break
            write(targets[i], v)
            if t_begin <= v < t_end:
                in_window += 1
            i += 1
            if i == n_targets:
                i = 0
            n += 1
        if flush is not None:
            flush()
        next_tick += TICK
        d = next_tick - now()
        if d > 0:
            time.sleep(d)
        else:
            late += 1
    return {"writes": in_window, "w_begin": t_begin, "w_end": t_end,
            "write_rate": in_window / (t_end - t_begin), "writes_total": n, "late_ticks": late}


def _flat_out(targets, write, flush, t_begin, t_end, t_stop) -> dict:
    """As fast as the loop goes; the window edges fall on sweep boundaries."""
    now = time.time
    n = 0
    n_targets = len(targets)
    b = e = None
    sweeps = 0
    while True:
        t = now()
        if b is None and t >= t_begin:
            b = (t, n)
        elif e is None and t >= t_end:
            e = (t, n)
        if t >= t_stop:
            break
        if flush is None:
            for x in targets:
                write(x, now())
        else:
            for x in targets:
                write(x, now())
            flush()
        n += n_targets
        sweeps += 1
    if b is None or e is None:
        raise RuntimeError("writer: measurement window missed")
    writes = e[1] - b[1]
    return {"writes": writes, "w_begin": b[0], "w_end": e[0],
            "write_rate": writes / (e[0] - b[0]), "writes_total": n, "sweeps": sweeps}
