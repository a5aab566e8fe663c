"""What a stopped engine leaves to its plugins' threads: their pcaspy calls keep working.

A plugin's worker thread (``while True: setParam(...); updatePVs(); sleep(...)``, the
common pattern) may still run after the engine stopped: a non-daemon thread while the
process exits, or any thread of an engine stopped and started again in one process.
pcaspy's ``Driver`` finds its PVs through ``manager.pvs[self.port]``; with that table gone,
every call raised ``KeyError`` (a traceback in the log, the thread dead), and with the
table of a restarted engine under the same port name it would have posted the old
driver's values to the new engine's clients. :func:`retire` moves the driver to a port
of its own whose PVs keep their ``PVInfo`` (limits, enums, alarm checks) and serve
nothing: ``setParam``, ``updatePV(s)``, ``setParamInfo``/``setParamEnums`` and
``callbackPV`` act on the driver's own parameter database only.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

from pcaspy.driver import manager

_ids = itertools.count(1)


class RetiredPV:
    """A stopped engine's PV as pcaspy's ``Driver`` methods use it (``info``,
    ``updateValue``, ``endAsyncWrite``); it holds nothing of the engine."""

    __slots__ = ("info",)

    def __init__(self, info: Any) -> None:
        self.info = info

    def updateValue(self, data: Any) -> None:
        """Nothing is served any more: no post."""

    def endAsyncWrite(self, status: int) -> None:
        """Its CA server is gone: no put to end."""


def retire(driver: Any, table: dict[str, Any]) -> None:
    """Point ``driver`` at a port of its own holding a :class:`RetiredPV` per PV of
    ``table`` (pcaspy's reason -> PV); the port goes with the driver."""
    port = f"{getattr(driver, 'port', 'pvconsole')}#stopped-{next(_ids)}"
    manager.pvs[port] = {reason: RetiredPV(pv.info) for reason, pv in table.items()}
    driver.port = port
    forget = weakref.finalize(driver, manager.pvs.pop, port, None)
    forget.atexit = False  # at exit a daemon thread may still call the driver: no KeyError
