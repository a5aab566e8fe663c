"""Give the console's process a lower CPU priority than the engine's servers."""

from __future__ import annotations

import os
from pathlib import Path

TASKS = Path("/proc/self/task")


def lower_priority(delta: int) -> None:
    """Add ``delta`` to the niceness of every thread of this process.

    Linux keeps niceness per thread: ``os.nice`` alone would leave the threads started
    before it (the engine pipe's reader, which unpickles every pushed state) at the
    servers' priority. Threads started later inherit the caller's niceness.
    """
    if delta <= 0:
        return
    if not TASKS.is_dir():  # not Linux: niceness is per process
        os.nice(delta)
        return
    for task in TASKS.iterdir():
        tid = int(task.name)
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + delta)
        except (ProcessLookupError, PermissionError):
            pass  # a thread that just ended
