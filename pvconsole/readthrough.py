"""Values a driver computes in ``read()``, brought to PVA.

pcaspy calls ``Driver.read(reason)`` for every CA get of a passive PV and serves what it
returns (its parameter database keeps the value it had): a driver that computes there
(``return random.random()``, a query to the hardware) is seen fresh by every ``caget``.
pvxs answers a PVA get from the PV's value without calling into Python (p4p has no get
hook), so the mirror calls ``read()`` itself, on the driver thread:

* when the first PVA channel of the PV opens, before anything is served on it: a
  ``pvget`` (a new channel each time) sees a value as fresh as ``caget``'s;
* every ``read_poll`` seconds while PVA channels stay open: a client that keeps its
  channel (Phoebus, a p4p ``Context``) sees a value at most that old. A read that takes
  long is made less often, so that reads cost the driver thread at most ``READ_DUTY`` of
  its time (a slow hardware query must not hold up CA).

A value that differs from the served one is posted with the parameter database's alarm
and timestamp, as pcaspy's CA get serves it. Only drivers whose class overrides ``read``
and PVs without ``scan`` (pcaspy's CA get of a scanned PV does not call ``read``) take
part; a read that returns what is served already costs one call and a comparison.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable, Iterable

import numpy as np
from pcaspy import Driver, cas

from .exitguard import PLUGIN_FAULTS
from .mirror import Entry, PvaMirror

log = logging.getLogger(__name__)

#: Share of the driver thread's time reads may take: a PV whose read takes 20 ms is
#: read every 2 s at most instead of every second.
READ_DUTY = 0.01
#: Reads made in one pass of the driver thread's loop (CA is served between passes).
READ_SLICE = 100
#: Seconds a first PVA connect waits for the driver thread to make the read (then the
#: channel is served the value it has).
FIRST_READ_TIMEOUT = 1.0


def overrides_read(driver: Any) -> bool:
    """Whether the driver computes values in ``read`` (pcaspy's own returns ``getParam``)."""
    return getattr(type(driver), "read", Driver.read) is not Driver.read


def same_value(a: Any, b: Any) -> bool:
    """Whether two driver values serve the same (lists, tuples and arrays by element)."""
    if a is b:
        return True
    if isinstance(a, (list, tuple, np.ndarray)) or isinstance(b, (list, tuple, np.ndarray)):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except Exception:  # unlike shapes or types: not the same
            return False
    try:
        return bool(a == b) or (a != a and b != b)  # NaN is NaN here
    except Exception:
        return False


class _ReadData:
    """What ``mirror.publish`` takes: the read value with the database's alarm and time,
    posted as a value change."""

    __slots__ = ("value", "alarm", "severity", "time", "mask")

    def __init__(self, value: Any, db: Any) -> None:
        self.value = value
        self.alarm = db.alarm
        self.severity = db.severity
        self.time = db.time
        self.mask = cas.DBE_VALUE | cas.DBE_LOG


class ReadThrough:
    """Calls ``read()`` for PVA: on first connect and periodically while watched."""

    def __init__(self, mirror: PvaMirror, call: Callable[[Callable[[], Any], float], Any],
                 default_poll: float) -> None:
        """
        Args:
            mirror: Where read values are published.
            call: ``call(fn, timeout)`` runs ``fn`` on the driver thread and waits.
            default_poll: ``read_poll`` of PVs whose pvdb entry does not set one (the
                engine's ``--read-poll``, ``PVCONSOLE_READ_POLL``; default 1 s).
        """
        self.mirror = mirror
        self.call = call
        self.default_poll = default_poll
        self._polled: list[Entry] = []
        self._every: dict[Entry, float] = {}
        self._due: dict[Entry, float] = {}
        self._queue: deque[Entry] = deque()
        self._swept = -1e9  # when the PVs in the queue were found due
        self._sweep_every = 0.0
        self._late: set[Entry] = set()
        self._none: set[Entry] = set()  # PVs whose read() returned None (said once)

    def add(self, entries: Iterable[Entry]) -> int:
        """Take part: the PVs of one driver that overrides ``read``. Returns how many."""
        n = 0
        for entry in entries:
            if entry.spec.scan > 0:
                continue
            every = self.default_poll if entry.spec.read_poll is None else entry.spec.read_poll
            entry.on_connect = lambda e=entry: self.first_read(e)
            if every > 0:
                self._every[entry] = every
                self._polled.append(entry)
            n += 1
        if self._every:
            self._sweep_every = max(0.1, min(self._every.values()))
        return n

    def first_read(self, entry: Entry) -> Any:
        """pvxs worker, first PVA channel of ``entry``: what ``read`` returns now (None:
        the stored value), made on the driver thread before the channel is served."""
        try:
            return self.call(lambda: self._read(entry)[0], FIRST_READ_TIMEOUT)
        except TimeoutError:
            if entry not in self._late:
                self._late.add(entry)
                log.warning("%s: the driver thread did not make its read() within %g s of a "
                            "PVA connect: the value it has is served", entry.name,
                            FIRST_READ_TIMEOUT)
            return None

    def read(self, entry: Entry) -> float:
        """Driver thread: call ``read`` and publish a value that differs from the served
        one. Returns the seconds the read took."""
        value, cost = self._read(entry)
        if value is not None and not same_value(value, entry.data[0]):
            self.mirror.publish(entry, _ReadData(value, entry.driver.pvDB[entry.spec.reason]),
                                ca=False)  # (pcaspy posts no read() to CA monitors)
        return cost

    def _read(self, entry: Entry) -> tuple[Any, float]:
        """Driver thread: (what ``read`` returns or None, seconds it took)."""
        driver = entry.driver
        if driver is None:
            return None, 0.0
        t0 = time.perf_counter()
        try:
            value = driver.read(entry.spec.reason)
        except PLUGIN_FAULTS:
            self.mirror.read_failed(entry, "driver read() raised")
            value = None
        else:
            self.mirror.read_ok(entry)
            if value is None and entry not in self._none:
                self._none.add(entry)
                log.warning("%s: driver read() returned None: CA gets of it fail (pcaspy "
                            "serves no value), PVA serves the value its parameter database "
                            "holds", entry.name)
        return value, time.perf_counter() - t0

    def poll(self, now: float) -> None:
        """Driver thread, each pass of its loop: read the watched PVs that are due, a
        slice at a time."""
        if not self._polled:
            return
        if not self._queue:
            if now < self._swept + self._sweep_every:
                return
            self._swept = now
            due = self._due
            self._queue.extend(e for e in self._polled if e.pva_clients and due.get(e, 0.0) <= now)
        for _ in range(min(READ_SLICE, len(self._queue))):
            entry = self._queue.popleft()
            if not entry.pva_clients:
                continue
            cost = self.read(entry)
            # due from the sweep that found it: a read late in the queue keeps its period
            self._due[entry] = self._swept + max(self._every[entry], cost / READ_DUTY)
