"""One record in full (a put, a client), a labelled line per field; Esc, Enter or q
closes it."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def field_table(fields: list[tuple[str, str]]) -> Table:
    """Labels in a column of their own, values wrapping beside them (never markup: they
    quote what clients sent)."""
    t = Table(box=box.SIMPLE, show_header=False, show_edge=False, pad_edge=False, expand=True,
              padding=(0, 1))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold", ratio=1)
    for label, value in fields:
        t.add_row(label, Text(value))
    return t


class RecordScreen(ModalScreen[None]):
    """A put or a client in full: the table's row cut the reason or the channels at 80
    columns, and the toast that showed them had no labels and would not close on Esc."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, fields: list[tuple[str, str]]) -> None:
        super().__init__()
        self.heading = title
        self.fields = fields

    def compose(self) -> ComposeResult:
        with Vertical(id="record"):
            yield Static(Text(self.heading, style="bold"), id="record-title")
            with VerticalScroll(id="record-body"):
                yield Static(field_table(self.fields), id="record-fields")
            yield Static(Text("Esc, Enter or q closes", style="dim"), id="record-hint")

    def action_close(self) -> None:
        self.dismiss(None)
