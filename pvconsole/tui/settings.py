"""Tuning values of the console, each overridable by an environment variable."""

from __future__ import annotations

import os


def _float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


#: Seconds between drains of the engine's change stream. 0.25 s keeps values visibly live
#: while bounding the UI work to 4 batches a second whatever the update rate.
REFRESH = _float("PVCONSOLE_TUI_REFRESH", 0.25)
#: Seconds between status-header samples (rates, sparklines).
STATS_INTERVAL = _float("PVCONSOLE_TUI_STATS", 1.0)
#: Samples kept for the header's rate sparklines (one per STATS_INTERVAL).
SPARK_SAMPLES = _int("PVCONSOLE_TUI_SPARK", 30)
#: A re-sort of the PV table costs O(n log n): at most this often (seconds).
SORT_INTERVAL = _float("PVCONSOLE_TUI_SORT", 1.0)
#: Lines the server-log widget keeps (older ones scroll away).
LOG_LINES = _int("PVCONSOLE_TUI_LOG_LINES", 5000)
#: Records the log handler buffers between drains (a flood drops the oldest).
LOG_BUFFER = _int("PVCONSOLE_TUI_LOG_BUFFER", 10000)
#: Rows the put-log screen keeps.
PUTLOG_ROWS = _int("PVCONSOLE_TUI_PUTLOG_ROWS", 2000)
#: Puts shown in the PV details screen.
DETAIL_PUTS = _int("PVCONSOLE_TUI_DETAIL_PUTS", 20)
#: Characters of a value cell before it is cut with an ellipsis.
VALUE_WIDTH = _int("PVCONSOLE_TUI_VALUE_WIDTH", 28)
#: Seconds between client reports while the connections or details screen shows. The CA
#: report runs on the driver thread, so it is fetched in a worker and not more often.
CLIENTS_INTERVAL = _float("PVCONSOLE_TUI_CLIENTS", 2.0)
#: Niceness added to the console's process once the engine process runs: when the cores
#: are busy (a plugin writing flat out), the servers get them first and the console what
#: is left; on an idle host it changes nothing. 0 keeps the console level with the servers.
UI_NICE = _int("PVCONSOLE_TUI_NICE", 10)
#: Seconds between full garbage collections of the console's process, run only when no
#: key was pressed for a while (a full collection holds the UI for 50-150 ms with 10,000
#: PVs; see :mod:`pvconsole.gcpolicy`).
GC_INTERVAL = _float("PVCONSOLE_TUI_GC", 60.0)
#: Seconds between checks whether that collection is due.
GC_CHECK = 1.0
#: Seconds after start-up before the hidden connections view is filled once (its first
#: show is the costly one); put off while keys are being pressed (``gcpolicy.QUIET``).
WARM_AFTER = _float("PVCONSOLE_TUI_WARM", 3.0)
#: PVs with changed clients after which the hidden connections view catches up at once
#: (when nobody typed for a while) instead of on the key that shows it.
CATCH_UP_PENDING = _int("PVCONSOLE_TUI_CATCH_UP", 500)
