"""The put log: every put over CA and PVA, newest at the bottom, filterable, following."""

from __future__ import annotations

from collections import deque
from datetime import tzinfo
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from .. import fmt
from ..focus import focus_now
from ..settings import PUTLOG_ROWS
from ..screens.record import RecordScreen
from .steadytable import SteadyDataTable
from .line import show_line
from .pvtable import name_matches
from .pane import Pane

#: The outcome and who made the put right after the PV: at 80 columns they must not be
#: off screen ("who just changed that setpoint?"); old -> new and why follow (Enter: all).
PUT_COLUMNS = (("time", "Time"), ("pv", "PV"), ("proto", "Proto"), ("result", "Result"),
               ("client", "Client"), ("change", "Old → New"), ("reason", "Why"))


def result_text(result: str) -> Text:
    """Accepted in green, refusals and errors in red, pending dim."""
    style = "green" if result == "accepted" else "dim" if result == "pending" else "bold red"
    return Text(result, style=style)


def change_text(r: Any, width: int = 20) -> str:
    """'old → new' as the PV's values are shown (the texts the engine made), each side in
    ``width`` characters; records of older versions have raw values only."""
    if not (r.old_text or r.requested_text):
        return f"{fmt.short(r.old, width)} → {fmt.short(r.requested, width)}"
    return f"{fmt.cut(r.old_text, width)} → {fmt.cut(r.requested_text, width)}"


#: Widest PV name in the put table (longer ones are shortened in the middle): one long
#: name must not push the reason off the screen.
PV_WIDTH = 40


def put_cells(r: Any, tz: tzinfo | None, pv_width: int = 0, earlier: bool = False) -> tuple:
    """A ``PutRecord`` -> table cells (the PV name cut to ``pv_width`` when given); a put of
    an earlier run (``earlier``: before this pvconsole started) has its time and PV dimmed,
    so that this morning's puts do not read as tonight's."""
    pv = fmt.middle_cut(r.pv, pv_width) if pv_width else r.pv
    clock = fmt.iso_clock(r.time, tz)
    if earlier:
        return (Text(clock, style="dim"), Text(fmt.visible(pv), style="dim"), *put_cells(r, tz, pv_width)[2:])
    return (clock, fmt.literal(pv), r.protocol.upper(), result_text(r.result),
            fmt.literal(r.client), fmt.literal(change_text(r)),
            fmt.literal(r.reason.removeprefix(f"{r.pv}: ")))


def put_matches(r: Any, text: str) -> bool:
    """Filter: every word matches one of PV, protocol, client, result or reason; as in
    the PV table, a glob (``PSU:*``) matches a whole field, plain text any part of one,
    both ignoring case."""
    fields = (str(r.pv), str(r.protocol), str(r.client), str(r.result), str(r.reason))
    return all(any(name_matches(f, word) for f in fields) for word in text.split())


def put_fields(r: Any, tz: tzinfo | None) -> list[tuple[str, str]]:
    """A put record in full, a labelled field per line."""
    fields = [("Time", fmt.iso_clock(r.time, tz)), ("PV", fmt.visible(r.pv)),
              ("Protocol", r.protocol.upper()), ("Client", fmt.visible(r.client)),
              ("Old → new", fmt.visible(change_text(r, 200))), ("Result", r.result)]
    if r.reason:
        fields.append(("Why", fmt.visible(r.reason.removeprefix(f"{r.pv}: "))))
    if r.duration_ms:
        fields.append(("Driver", f"{r.duration_ms:g} ms"))
    return fields


class PutLogView(Pane):
    """Put records in a table; ``f`` toggles following the newest."""

    BINDINGS = [
        Binding("f", "follow", "Follow"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear", "Clear", show=False),
    ]

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self.follow = True
        self.pattern = ""
        self.records: deque[Any] = deque(maxlen=PUTLOG_ROWS)
        #: when the servers started (POSIX seconds): puts before are of earlier runs
        self.started = 0.0

    def compose(self) -> ComposeResult:
        with Horizontal(id="put-bar"):
            yield Static("Filter", classes="label")
            yield Input(placeholder="PV, client, result… (/)", id="put-filter", compact=True)
            yield Static(id="put-info")
        yield SteadyDataTable(id="put-table", cursor_type="row")

    @property
    def table(self) -> DataTable:
        return self.query_one("#put-table", DataTable)

    def on_mount(self) -> None:
        for key, label in PUT_COLUMNS:
            self.table.add_column(label, key=key)
        self._info()

    def add(self, records: list[Any]) -> None:
        """Append new put records (already in sequence order)."""
        if not records:
            return
        table = self.table
        for r in records:
            if len(self.records) == self.records.maxlen:
                old = self.records[0]
                if str(old.seq) in table.rows:
                    table.remove_row(str(old.seq))
            self.records.append(r)
            if put_matches(r, self.pattern):
                table.add_row(*self._cells(r), key=str(r.seq))
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._info()

    def _cells(self, r: Any) -> tuple:
        return put_cells(r, self.tz, PV_WIDTH, earlier=fmt.iso_seconds(r.time) < self.started)

    def set_started(self, started: float) -> None:
        """The servers' start: the puts before it are dimmed (earlier runs)."""
        self.started = started
        self._rebuild()

    def _rebuild(self) -> None:
        table = self.table
        table.clear()
        for r in self.records:
            if put_matches(r, self.pattern):
                table.add_row(*self._cells(r), key=str(r.seq))
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._info()

    def _info(self) -> None:
        shown = self.table.row_count
        show_line(self.query_one("#put-info", Static),
                  f"{shown}/{len(self.records)} puts  follow {'on' if self.follow else 'off'}")

    def set_filter(self, text: str) -> None:
        """Show only puts matching ``text``."""
        self.query_one("#put-filter", Input).value = text
        self.pattern = text
        self._rebuild()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.pattern = event.value
        self._rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        focus_now(self.table)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a put: all of it, whatever the terminal's width cuts off (who, why)."""
        event.stop()
        seq = str(event.row_key.value)
        record = next((r for r in self.records if str(r.seq) == seq), None)
        if record is not None:
            self.app.push_screen(RecordScreen(f"Put to {record.pv}", put_fields(record, self.tz)))

    def show_newest(self) -> None:
        """Shown: when following, the newest put is in view (records that arrived while the
        view was hidden moved the cursor of a table that could not scroll)."""
        if self.follow and self.table.row_count:
            self.table.move_cursor(row=self.table.row_count - 1, animate=False)
            self.table.scroll_end(animate=False)

    def action_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.table.row_count:
            self.table.move_cursor(row=self.table.row_count - 1, animate=False)
        self._info()

    def action_filter(self) -> None:
        focus_now(self.query_one("#put-filter", Input))

    def action_clear(self) -> None:
        flt = self.query_one("#put-filter", Input)
        if not flt.has_focus and flt.value:
            self.set_filter("")
        focus_now(self.table)
