"""Route what EPICS C libraries print to fd 1/2 into the log.

The CA server library prints beacon errors and warnings with ``errlogPrintf``/``printf``
straight to the process's file descriptors, below Python. Left alone, that text lands on
the TUI's screen or interleaves with the headless log. :func:`capture` points fds 1 and 2
at a pipe read by a thread that logs each line on the ``epics`` logger, and hands back the
original terminal for the real output (Textual and the headless log handler). The
engine's processes (headless, the console's engine child) also log what Python code
prints, so a plugin's output reads like the rest of the log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
from typing import Iterator, TextIO

log = logging.getLogger("epics")

#: Seconds a line written without its newline and flushed waits for more before it is
#: logged (a warning is logged a second later; a progress bar once a second, not per dot).
PARTIAL_WAIT = 1.0
#: Characters of output logged as one record at most: longer lines (a 10 MB dump printed
#: without a newline, a dot per update for hours) are logged in pieces of this size, as
#: journald splits them, so no record or waiting line grows without bound.
MAX_LINE = 16 * 1024

_quiet = threading.local()


@contextlib.contextmanager
def unlogged() -> Iterator[None]:
    """What this thread writes to a :class:`LogStream` inside the block is dropped (a
    logging handler writing there: the console's handler has its record already)."""
    before = getattr(_quiet, "on", False)
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = before


class LogStream(io.TextIOBase):
    """A text stream whose lines become log records (Python-level output of plugins:
    ``print``, argparse's usage message, tracebacks of their threads)."""

    def __init__(self, logger: logging.Logger, level: int, fd: int) -> None:
        super().__init__()
        self._log, self._level, self._fd = logger, level, fd
        self._partial = ""
        self._waiting: threading.Timer | None = None
        self._lock = threading.Lock()
        self._inside = threading.local()

    def write(self, text: str) -> int:
        if getattr(self._inside, "active", False) or getattr(_quiet, "on", False):
            return len(text)  # logging itself failed and reports it here: not in a loop
        with self._lock:
            lines = (self._partial + text).split("\n")
            partial = _shown(lines.pop())
            cut = len(partial) - len(partial) % MAX_LINE
            self._partial = partial[cut:]
        self._emit([piece for line in lines for piece in _pieces(_shown(line))]
                   + _pieces(partial[:cut]))
        return len(text)

    def flush(self) -> None:
        """A line written without its newline and flushed (a warning, a prompt, a
        progress bar) is logged if nothing follows within :data:`PARTIAL_WAIT`."""
        with self._lock:
            if not self._partial.strip() or self._waiting is not None:
                return
            self._waiting = threading.Timer(PARTIAL_WAIT, self.flush_partial)
            self._waiting.daemon = True
            self._waiting.start()

    def flush_partial(self) -> None:
        """Log the line written so far without its newline, now."""
        with self._lock:
            partial, self._partial = self._partial, ""
            waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.cancel()
        self._emit([partial])

    def _emit(self, lines: list[str]) -> None:
        if getattr(self._inside, "active", False):
            return
        self._inside.active = True
        try:
            for line in lines:
                if line.strip():
                    self._log.log(self._level, "%s", line.rstrip())
        finally:
            self._inside.active = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The descriptor behind it (captured too): ``faulthandler.enable()`` and
        subprocesses given ``sys.stdout`` need one."""
        return self._fd

    @property
    def buffer(self) -> "LogStream":
        """Code that writes bytes (``sys.stdout.buffer.write``) gets them logged too."""
        return _BytesTo(self)  # type: ignore[return-value]


def _pieces(line: str) -> list[str]:
    """``line`` in pieces of at most :data:`MAX_LINE` characters."""
    return [line[i:i + MAX_LINE] for i in range(0, len(line), MAX_LINE)] or [line]


def _shown(line: str) -> str:
    """What a terminal shows of ``line``: the text after its last carriage return (a
    progress bar redraws itself with ``\\r``)."""
    if "\r" not in line:
        return line
    return line.rstrip("\r").rsplit("\r", 1)[-1]  # ("text\r\n": the text)


class _BytesTo:
    """The ``buffer`` of a :class:`LogStream`: bytes in, text lines out."""

    def __init__(self, stream: LogStream) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        self._stream.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


#: Seconds within which the C libraries' same line is logged once: the CA server repeats
#: a beacon error every few seconds for as long as nobody listens on the beacon port.
REPEAT_WINDOW = 300.0


class RepeatFilter:
    """Lets a line through once per :data:`REPEAT_WINDOW`, saying how often it was held."""

    def __init__(self, window: float = REPEAT_WINDOW, size: int = 256) -> None:
        self.window, self.size = window, size
        self._seen: dict[str, tuple[float, int]] = {}  # line -> (logged at, held since)

    def check(self, line: str, now: float) -> str | None:
        """The text to log for ``line`` now, or None to hold it back."""
        at, held = self._seen.get(line, (None, 0))
        if at is not None and now - at < self.window:
            self._seen[line] = (at, held + 1)
            return None
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[line] = (now, 0)
        return f"{line} (and {held} more times in {now - at:.0f} s)" if held else line


class FdCapture:
    """Active capture; :meth:`restore` puts the original descriptors back."""

    def __init__(self, python_to_log: bool = False) -> None:
        self.saved_out = os.dup(1)
        self.saved_err = os.dup(2)
        #: Python streams on the original descriptors (the terminal or the service log).
        self.stdout: TextIO = os.fdopen(os.dup(self.saved_out), "w", buffering=1)
        self.stderr: TextIO = os.fdopen(os.dup(self.saved_err), "w", buffering=1)
        r, w = os.pipe()
        self._read_fd = r
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(w)
        self._saved_py = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        sys.__stdout__ = self.stdout
        sys.__stderr__ = self.stderr
        if python_to_log:
            sys.stdout = LogStream(logging.getLogger("stdout"), logging.INFO, 1)
            sys.stderr = LogStream(logging.getLogger("stderr"), logging.WARNING, 2)
        else:
            sys.stdout, sys.stderr = self.stdout, self.stderr
        self._thread = threading.Thread(target=self._pump, name="fd-capture", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        repeats = RepeatFilter()
        with os.fdopen(self._read_fd, "rb") as pipe:
            for raw in iter(lambda: pipe.readline(MAX_LINE), b""):
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    text = repeats.check(line, time.monotonic())
                    if text is not None:
                        log.warning("%s", text)

    def restore(self) -> None:
        """Give fds 1/2 back (the pump ends once every writer of the pipe is gone); a
        line still without its newline is logged."""
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, LogStream):
                stream.flush_partial()
        os.dup2(self.saved_out, 1)
        os.dup2(self.saved_err, 2)
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = self._saved_py


def capture(python_to_log: bool = False) -> FdCapture:
    """Start capturing fds 1 and 2 (call once, early, before the servers start); with
    ``python_to_log``, what Python code writes to ``sys.stdout``/``sys.stderr`` becomes
    log records too (the ``stdout``/``stderr`` loggers). The real streams stay at
    :attr:`FdCapture.stdout`/:attr:`FdCapture.stderr`."""
    return FdCapture(python_to_log)
