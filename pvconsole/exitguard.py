"""A hosted plugin's ``os._exit`` ends the plugin's thread, not every IOC of the process.

An unmodified pcaspy script may leave with ``os._exit`` (a watchdog, a fatal device
error). Alone, that ended its own IOC; hosted, it ended pvconsole and every other plugin,
without a word in the log. Once :func:`install` ran, ``os._exit`` called on any thread but
the main one (where pvconsole itself runs, and where a forked child continues) logs who
called it and raises ``SystemExit`` in that thread instead: a script's loop ends as if it
had died (its PVs turn INVALID/COMM), another plugin thread just ends.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import NoReturn

log = logging.getLogger("pvconsole.plugins")

#: The real ``os._exit``, for pvconsole's own exits.
real_exit = os._exit


def install() -> None:
    """Guard ``os._exit`` (idempotent)."""
    os._exit = _guarded_exit


def _guarded_exit(code: int) -> NoReturn:
    thread = threading.current_thread()
    if thread is threading.main_thread():
        real_exit(code)
    caller = sys._getframe(1)
    log.error("os._exit(%s) called on thread %r (%s:%d): only that thread ends, the other "
              "IOCs go on", code, thread.name, caller.f_code.co_filename, caller.f_lineno)
    raise SystemExit(code)
