"""Asynchronous (``asyn``) puts from both protocols, completed in the order they began.

A pcaspy driver ends an asynchronous write with one call, ``callbackPV(reason)``, which
does not say which put it ends. CA's server library runs one asynchronous CA write per PV
at a time and postpones the next; PVA puts follow the same rule here: a PVA put to an
``asyn`` PV waits while any put to it (CA or PVA) is in progress, and each ``callbackPV``
ends the oldest put in progress. A put counts as in progress before the driver's
``write`` runs, so a driver that calls ``callbackPV`` from ``write`` itself (pcaspy's
simscope example does) ends it at once. PVA puts that wait, or run, longer than the
timeout fail with a message that names ``callbackPV``; one that was running keeps its
place until its own ``callbackPV`` comes (the driver is still at work on it), so the
next put is not ended by it.

Only bookkeeping lives here (thread-safe: ``write`` runs on the driver thread,
``callbackPV`` on whichever thread the driver calls it from); the mirror calls the driver
and answers the clients.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

#: Marks a CA write in progress (pcaspy's own asynchronous write; CA answers it).
CA = "ca"


@dataclass(eq=False)
class PvaPut:
    """A PVA put to an ``asyn`` PV.

    Attributes:
        op: The p4p server operation to answer.
        client: ``account@peer`` for the put log.
        value: What ``Driver.write`` gets.
        deadline: ``time.monotonic()`` after which it fails.
        record: Its put-log record, once the driver is called.
        early: The client asked not to wait for completion (``record[block=false]``): it
            is answered once ``Driver.write`` took the value, as QSRV answers it; the put
            keeps its place until its ``callbackPV``.
    """

    op: Any
    client: str
    value: Any
    deadline: float
    record: Any = field(default=None)
    early: bool = False


@dataclass(eq=False)
class TimedOut:
    """Where a PVA put that timed out stood among the puts in progress: its client has
    its error, but the driver is still at work on it and will call ``callbackPV`` for
    it. That callback ends this placeholder, not the next put (which waits meanwhile, as
    a second CA put waits for the first)."""

    put: PvaPut


@dataclass(eq=False)
class CaPut:
    """A CA put to an ``asyn`` PV that came while a PVA put to it was in progress. CA's
    server library does not know of PVA puts and would call the driver at once; the put
    waits instead (its CA completion held), and when its turn comes it stands in for
    pcaspy's client (``host``, ``user``) and value (``get()``) in the usual CA write.

    Attributes:
        host: The CA client's host.
        user: The CA client's user.
        value: What ``Driver.write`` gets.
    """

    host: str
    user: str
    value: Any

    def get(self) -> Any:
        return self.value


class AsyncPuts:
    """In-progress and waiting asynchronous puts, per PV."""

    def __init__(self, start: Callable[[Hashable, Any], None]) -> None:
        """
        Args:
            start: Called (from :meth:`start_next`, on the driver thread) with a waiting
                put (:class:`PvaPut` or :class:`CaPut`) whose turn has come.
        """
        self._start = start
        self._lock = threading.Lock()
        self._busy: dict[Hashable, deque] = {}       # in progress, oldest first
        self._waiting: dict[Hashable, deque[PvaPut]] = {}

    def admit(self, pv: Hashable, put: Any) -> bool:
        """Whether ``put`` may start now; if not, it waits for the put in progress."""
        with self._lock:
            if self._busy.get(pv):
                self._waiting.setdefault(pv, deque()).append(put)
                return False
            return True

    def begin(self, pv: Hashable, item: Any) -> None:
        """A write (:data:`CA` or a :class:`PvaPut`) is about to reach the driver."""
        with self._lock:
            self._busy.setdefault(pv, deque()).append(item)

    def abandon(self, pv: Hashable, item: Any) -> bool:
        """The driver refused the write (or raised, or returned no truth): it is not in
        progress any more. Returns whether it still was (False: a ``callbackPV`` from
        ``write`` already ended it)."""
        with self._lock:
            busy = self._busy.get(pv)
            if not busy or item not in busy:
                return False
            busy.remove(item)
            return True

    def complete(self, pv: Hashable) -> Any:
        """A ``callbackPV``: the oldest put in progress is done. Returns it (:data:`CA`, a
        :class:`PvaPut`, a :class:`TimedOut`) or None when none was in progress."""
        with self._lock:
            busy = self._busy.get(pv)
            return busy.popleft() if busy else None

    def busy(self, pv: Hashable) -> bool:
        """Whether a put to ``pv`` is in progress."""
        with self._lock:
            return bool(self._busy.get(pv))

    def next_ready(self, pv: Hashable) -> bool:
        """Whether a waiting put may start now (nothing in progress)."""
        with self._lock:
            return not self._busy.get(pv) and bool(self._waiting.get(pv))

    def start_next(self, pv: Hashable) -> None:
        """Driver thread: start the oldest waiting put if nothing is in progress."""
        with self._lock:
            waiting = self._waiting.get(pv)
            if self._busy.get(pv) or not waiting:
                return
            put = waiting.popleft()
        self._start(pv, put)

    def expire(self, now: float) -> list[tuple[Hashable, PvaPut]]:
        """PVA puts past their deadline, with their PV: waiting ones taken out, ones in
        progress left as a :class:`TimedOut` for their own ``callbackPV`` to end."""
        if not self._busy and not self._waiting:  # no asyn PV was ever put to: no lock
            return []
        out: list[tuple[Hashable, PvaPut]] = []
        with self._lock:
            for pv, busy in self._busy.items():
                for i, p in enumerate(busy):
                    if isinstance(p, PvaPut) and p.deadline <= now:
                        busy[i] = TimedOut(p)
                        out.append((pv, p))
            for pv, waiting in self._waiting.items():
                late = [p for p in waiting if isinstance(p, PvaPut) and p.deadline <= now]
                for p in late:
                    waiting.remove(p)
                out += [(pv, p) for p in late]
        return out

    def drop(self, pv: Hashable) -> list[PvaPut]:
        """Every PVA put of ``pv`` (the PV leaves PVA, the server stops), taken out; CA's
        writes stay (a waiting one may start next)."""
        with self._lock:
            puts: list[PvaPut] = []
            for table in (self._busy, self._waiting):
                items = table.get(pv, deque())
                puts += [p for p in items if isinstance(p, PvaPut)]
                table[pv] = deque(p for p in items if not isinstance(p, PvaPut))
        return puts
