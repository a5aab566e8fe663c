"""pcaspy's parameter bookkeeping, one step at a time per driver.

pcaspy's ``Driver`` is not thread-safe, and plugins call ``setParam`` and ``updatePVs``
from several threads at once. ``setParam`` records a change in steps (event mask, value,
timestamp, then the flag) and ``updatePV`` hands it to the PV in steps (flag cleared,
posted, mask cleared). Interleaved, a change could be flagged with its mask already
cleared, or stored and never flagged, and the monitors of both protocols kept an older
value for good (pcaspy alone loses it on CA the same way).

Once :func:`install` ran, those steps hold the driver's lock, and ``updatePV`` hands the
PV one snapshot (:class:`Change`), read with the flag and the mask cleared in one go and
numbered in that order. The posts themselves are made outside the lock: the CA server's
thread calls ``setParam`` from ``write()`` while it holds what a CA post waits for.
"""

from __future__ import annotations

import functools
import itertools
import threading
from typing import Any, Callable

from pcaspy import Driver
from pcaspy.driver import manager

_LOCK = "_pvconsole_param_lock"
_numbers = itertools.count(1)


class Change:
    """One change of a parameter as it is posted (the attributes of pcaspy's ``Data``
    that a post reads), with ``seq``: the order of the snapshots (0: not numbered)."""

    __slots__ = ("value", "alarm", "severity", "time", "mask", "seq")

    def __init__(self, value: Any, alarm: int, severity: int, time: Any, mask: int,
                 seq: int = 0) -> None:
        self.value, self.alarm, self.severity, self.time, self.mask, self.seq = (
            value, alarm, severity, time, mask, seq)


def lock_of(driver: Any) -> threading.RLock:
    """The driver's bookkeeping lock (re-entrant: ``setParam`` calls ``setParamStatus``)."""
    lock = driver.__dict__.get(_LOCK)
    if lock is None:  # (dict.setdefault is atomic: two threads get one lock)
        lock = driver.__dict__.setdefault(_LOCK, threading.RLock())
    return lock


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock_of(self):
            return method(self, *args, **kwargs)
    locked.pvconsole = True  # type: ignore[attr-defined]
    return locked


def take(driver: Any, reason: str) -> Change | None:
    """The parameter's change if it is flagged, flag and mask cleared (``updatePV``'s
    hand-over, made atomic); None if nothing changed since."""
    with lock_of(driver):
        db = driver.pvDB[reason]
        if not db.flag:
            return None
        db.flag = False
        change = Change(db.value, db.alarm, db.severity, db.time, db.mask, next(_numbers))
        db.mask = 0
    return change


def update_pv(self: Any, reason: str) -> None:
    """Post update event on the PV if value, alarm status or metadata changes
    (pcaspy's ``Driver.updatePV``, with its hand-over atomic)."""
    pv = manager.pvs[self.port][reason]
    if pv.info.scan != 0:  # a scanned PV is posted by its scan, as in pcaspy
        return
    change = take(self, reason)
    if change is not None:
        pv.updateValue(change)


def install() -> None:
    """Lock pcaspy's own ``Driver`` methods, for every driver (once per process).
    Drivers that override them still reach these through ``super()``."""
    if getattr(Driver.setParam, "pvconsole", False):
        return
    for name in ("setParam", "setParamStatus", "setParamInfo", "setParamEnums"):
        setattr(Driver, name, _locked(getattr(Driver, name)))
    Driver.updatePV = update_pv  # type: ignore[method-assign]
