"""The server log: engine and EPICS library messages, drained from a LogBuffer."""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, tzinfo

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import RichLog

from .. import fmt
from ..logbuffer import LogLine
from ..settings import LOG_LINES

LEVEL_STYLES = {logging.DEBUG: "dim", logging.INFO: "", logging.WARNING: "yellow",
                logging.ERROR: "bold red", logging.CRITICAL: "bold reverse red"}


def log_text(line: LogLine, tz: tzinfo | None) -> Text:
    """One log line: time, level, logger, message; 'epics' lines are the C libraries'."""
    t = datetime.fromtimestamp(line.created, tz).strftime("%H:%M:%S.%f")[:-3]
    text = Text(f"{t} ", style="dim")
    level = logging.getLevelName(line.level)
    text.append(f"{level:<7} ", style=LEVEL_STYLES.get(line.level, ""))
    text.append(f"{line.name}: ", style="bold cyan" if line.name == "epics" else "bold")
    text.append(fmt.visible(line.message), style=LEVEL_STYLES.get(line.level, ""))
    return text


class ServerLog(RichLog):
    """Bounded log widget (``max_lines``); ``f`` toggles following the end."""

    BINDINGS = [Binding("f", "follow", "Follow")]

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        # wrapped: a C library line of 120 characters read "WARNING epics: ../../../../src/cas/io/C"
        # at 80 columns, the rest a side scroll away
        super().__init__(id=id, max_lines=LOG_LINES, wrap=True, min_width=20, markup=False,
                         highlight=False, auto_scroll=True)
        self.tz = tz
        self._lines: deque[LogLine] = deque(maxlen=LOG_LINES)  # to wrap again
        self._wrapped_at = 0

    def add(self, lines: list[LogLine]) -> None:
        """Append drained lines."""
        self._lines.extend(lines)
        for line in lines:
            self.write(log_text(line, self.tz))

    def on_resize(self, event: events.Resize) -> None:
        """Lines are wrapped when written: at another width, wrapped again (cut at 80
        columns after the terminal was 160 wide)."""
        width = event.size.width
        if width and width != self._wrapped_at:  # (also the first: written while hidden)
            self._wrapped_at = width
            if self._lines:
                self.call_after_refresh(self._rewrap)  # once the new width is laid out

    def _rewrap(self) -> None:
        self.clear()
        for line in self._lines:
            self.write(log_text(line, self.tz))

    def action_follow(self) -> None:
        self.auto_scroll = not self.auto_scroll
        if self.auto_scroll:
            self.scroll_end(animate=False)
        self.notify(f"server log: follow {'on' if self.auto_scroll else 'off'}")
