"""Turns between the driver thread and the server loops of unmodified pcaspy scripts.

A pcaspy script often does its own work between ``server.process()`` calls::

    while True:
        server.process(0.1)
        driver.poll_hardware()
        driver.updatePVs()

In the script's own process that work and the CA requests (``Driver.read``/``write``)
ran on one thread, one after the other, and the script relies on it. pvconsole serves CA
on its driver thread and lets the script's loop go on on the script's thread (its
``process(delay)`` waits ``delay`` instead of serving CA); :class:`LoopTurns` keeps the
two from overlapping: the driver thread does not start a pass while a script's loop body
runs, and a body does not start during a pass. A body that runs longer than ``max_wait``
(slow hardware I/O) no longer holds up the servers: the driver thread goes on beside it
for the rest of that body (one wait per body, not per pass: a 5 s body held every CA get
of every plugin 0.1-0.2 s), and says so once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

#: Seconds the driver thread waits for a script's loop body before it goes on beside it.
#: In the script's own process such a body held up CA for as long as it ran; here it would
#: hold up every plugin's CA and PVA, so the wait is bounded.
SCRIPT_TURN_WAIT = float(os.environ.get("PVCONSOLE_SCRIPT_TURN_WAIT", "0.1"))


class LoopTurns:
    """Alternates the driver thread's passes with scripts' loop bodies.

    Costs nothing while no script has a loop of its own (:attr:`loops` is 0).
    """

    def __init__(self, max_wait: float = SCRIPT_TURN_WAIT) -> None:
        self.max_wait = max_wait
        #: Scripts whose own loop runs (their ``process()`` was called at least once).
        self.loops = 0
        #: The shortest ``process(delay)`` of a script loop (seconds; inf without one): a
        #: pass of the driver thread holds the loop up for as long as its CA wait, so that
        #: wait is kept no longer (a 5 ms wait made a loop of ``process(0.001)`` run at a
        #: fifth of its rate under pcaspy).
        self.shortest = float("inf")
        self._cv = threading.Condition()
        self._waiting = 0   # bodies waiting for the driver's pass to end
        #: bodies running: their script's loop -> when the body began (monotonic)
        self._bodies: dict[object, float] = {}
        self._driver = False
        self._overran = False
        self._for_bodies: list[_BodyJob] = []  # see run_for_body

    # ------------------------------------------------------------------ scripts

    def loop_started(self) -> None:
        with self._cv:
            self.loops += 1

    def loop_wait(self, delay: float) -> None:
        """A script's loop waits ``delay`` in its ``process()`` call."""
        if delay < self.shortest:
            self.shortest = delay

    def loop_ended(self, in_body: bool, owner: object = None) -> None:
        """A script's loop is over (pvconsole stops, or the script raised)."""
        with self._cv:
            self.loops -= 1
            if not self.loops:
                self.shortest = float("inf")
            if in_body:
                self._bodies.pop(owner, None)
            self._cv.notify_all()

    def begin_body(self, stopped: threading.Event, owner: object = None) -> None:
        """Called by a script's ``process()`` before it returns: waits for the driver
        thread's pass to end (or for ``stopped``). ``owner``: the script's loop."""
        with self._cv:
            self._waiting += 1
            try:
                while self._driver and not stopped.is_set():
                    self._cv.wait(0.05)
            finally:
                self._waiting -= 1
            self._bodies[owner] = time.monotonic()
            self._cv.notify_all()

    def run_for_body(self, fn: Callable[[], Any], timeout: float) -> Any:
        """From a script's loop body: ``fn`` run on the driver thread, which waits for the
        body in :meth:`begin_pass` (a ``createPV`` while serving: the driver thread makes
        the PVs), and its result. Nothing else of the driver's runs meanwhile: the body
        keeps its turn, as alone (before, each waited for the other for ``max_wait``).

        Raises:
            TimeoutError: the driver thread did not take ``fn`` within ``timeout`` (it
                never runs then); whatever ``fn`` raised.
        """
        job = _BodyJob(fn)
        with self._cv:
            self._for_bodies.append(job)
            self._cv.notify_all()
        if not job.done.wait(timeout):
            with self._cv:
                if job in self._for_bodies:  # not begun: never will be
                    self._for_bodies.remove(job)
                    raise TimeoutError("the driver thread did not take it in time")
            job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _run_body_jobs(self) -> None:
        """Driver thread, holding ``_cv``: run what bodies waiting on it asked for."""
        while self._for_bodies:
            job = self._for_bodies.pop(0)
            self._cv.release()
            try:
                job.result = job.fn()
            except Exception as e:  # handed back to the body
                job.error = e
            finally:
                self._cv.acquire()
                job.done.set()

    def end_body(self, owner: object = None) -> None:
        """Called when a script's ``process()`` is entered: its loop body is done."""
        with self._cv:
            self._bodies.pop(owner, None)
            self._cv.notify_all()

    # ------------------------------------------------------------------ driver thread

    def begin_pass(self) -> bool:
        """The driver thread is about to call drivers: wait (at most ``max_wait``) for
        script bodies that are about to run, and for those running that began less than
        ``max_wait`` ago. Returns whether :meth:`end_pass` is due."""
        if not self.loops:
            return False
        with self._cv:
            self._run_body_jobs()
            now = time.monotonic()
            deadline = now + self.max_wait
            while now < deadline:
                young = [t + self.max_wait for t in self._bodies.values() if t + self.max_wait > now]
                if not young and not self._waiting:
                    break
                self._cv.wait(min([deadline, *young]) - now)
                self._run_body_jobs()
                now = time.monotonic()
            if not self._overran and any(now - t >= self.max_wait for t in self._bodies.values()):
                self._overran = True
                log.warning("a script's own loop ran for more than %g s between its "
                            "server.process() calls: the servers go on beside it "
                            "(PVCONSOLE_SCRIPT_TURN_WAIT)", self.max_wait)
            self._driver = True
        return True

    def end_pass(self) -> None:
        with self._cv:
            self._driver = False
            self._cv.notify_all()


class _BodyJob:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn, self.result, self.error = fn, None, None
        self.done = threading.Event()


#: One per process, like pcaspy's CA server.
turns = LoopTurns()
