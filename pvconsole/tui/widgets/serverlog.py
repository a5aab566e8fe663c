"""The server log: engine and EPICS library messages, drained from a LogBuffer."""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo

from rich.text import Text
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
        super().__init__(id=id, max_lines=LOG_LINES, wrap=True, markup=False, highlight=False,
                         auto_scroll=True)
        self.tz = tz

    def add(self, lines: list[LogLine]) -> None:
        """Append drained lines."""
        for line in lines:
            self.write(log_text(line, self.tz))

    def action_follow(self) -> None:
        self.auto_scroll = not self.auto_scroll
        if self.auto_scroll:
            self.scroll_end(animate=False)
        self.notify(f"server log: follow {'on' if self.auto_scroll else 'off'}")
