"""When Python's cyclic garbage collector may stop the world.

A full collection walks every tracked object while holding the GIL. With 10,000 PVs that
is 70-150 ms: in the servers' process neither server moves meanwhile, in the console's a
key press waits for it. Young collections are cheap and catch most cyclic garbage (it
dies young); only the full ones are moved to where nobody waits for them.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import Callable, Iterator

#: Seconds without operator input before a deferred full collection may run.
QUIET = 2.0
#: A full collection runs at least this often (seconds), quiet or not.
FORCE_AFTER = 600.0
#: Generation-2 threshold that keeps the collector from starting full collections itself
#: (it counts generation-1 collections: days at any allocation rate).
NEVER = 1 << 30


def settle() -> None:
    """Move what exists now (PV tables, drivers, Values, widgets) out of the collector's
    reach, after loading: it is there for the process's lifetime. Objects made later are
    collected as usual."""
    gc.collect()
    gc.freeze()


@contextmanager
def loading() -> Iterator[None]:
    """The collector off while building what lives as long as the process: every full
    collection would walk the growing heap only to find nothing (five of them, ~0.35 s,
    while loading 10,000 PVs). Call :func:`settle` after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class IdleCollector:
    """Full collections only when the operator is not typing (the console's process).

    :meth:`defer` stops automatic full collections; :meth:`poll`, called on a timer, runs
    one when the last input is ``QUIET`` seconds old and the previous one ``interval``
    seconds, or unconditionally after ``FORCE_AFTER``. :meth:`restore` undoes it.
    """

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last_input = clock()
        self.last_full = clock()
        self.collections = 0
        self._saved: tuple[int, int, int] | None = None

    def defer(self) -> None:
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(self._saved[0], self._saved[1], NEVER)

    def restore(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def input_seen(self) -> None:
        self.last_input = self.clock()

    def quiet(self) -> bool:
        """No key pressed for ``QUIET`` seconds: a good time for work nobody waits for."""
        return self.clock() - self.last_input >= QUIET

    def due(self) -> bool:
        """True when a full collection should run now."""
        now = self.clock()
        since = now - self.last_full
        return since >= FORCE_AFTER or (since >= self.interval and self.quiet())

    def poll(self) -> bool:
        """Run a full collection when due; True when it did."""
        if not self.due():
            return False
        gc.collect()
        self.last_full = self.clock()
        self.collections += 1
        return True
