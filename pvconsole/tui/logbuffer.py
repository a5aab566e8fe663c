"""A logging handler that buffers records for the console's server-log screen.

Records arrive on any thread (engine, pvxs callbacks, the fd-capture pump that turns what
the EPICS C libraries print into ``epics`` log records); the UI drains them on a timer.
The buffer is bounded: a flood drops the oldest records and counts them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from .settings import LOG_BUFFER


@dataclass(frozen=True)
class LogLine:
    """One formatted record.

    Attributes:
        created: POSIX time of the record.
        level: ``logging`` level number.
        name: Logger name ('epics' for C library output).
        message: The formatted message (with traceback, if any).
    """

    created: float
    level: int
    name: str
    message: str


class LogBuffer(logging.Handler):
    """Thread-safe bounded buffer of log lines, drained by the UI."""

    def __init__(self, capacity: int = LOG_BUFFER, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._lock_ = threading.Lock()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            line = LogLine(record.created, record.levelno, record.name, message)
        except Exception:
            self.handleError(record)
            return
        self.extend([line])

    def extend(self, lines: list[LogLine]) -> None:
        """Add lines formatted elsewhere (the engine process's log)."""
        with self._lock_:
            room = self._lines.maxlen
            if room is not None:
                self.dropped += max(0, len(self._lines) + len(lines) - room)
            self._lines.extend(lines)

    def drain(self) -> list[LogLine]:
        """Everything buffered since the last drain, oldest first."""
        with self._lock_:
            lines = list(self._lines)
            self._lines.clear()
        return lines
