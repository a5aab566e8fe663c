"""PV details: definition beside PVA structure, state, put history, clients."""

from __future__ import annotations

import logging
from datetime import tzinfo
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from ...mirror import PVState
from .. import fmt
from ..mapping import mapping_rows
from ..source import DataSource, clients_per_protocol, entry_extra, putlog_for_pv, served_dict
from ..settings import DETAIL_PUTS
from ..widgets.header import StatusHeader
from ..widgets.keybar import KeyBar
from ..widgets.putlog import PUT_COLUMNS, put_cells

log = logging.getLogger("pvconsole.tui")

MAP_COLUMNS = ("pcaspy field", "definition", "PVA field", "served")


def fitted_table(columns: tuple[str, ...], rows: list[tuple], nowrap: tuple[int, ...] = (0,)) -> Table:
    """A table as wide as the screen whose long cells wrap: at 80 columns every column
    stays readable (a DataTable there cut the last one to 5 characters, and its sideways
    scroll needed a mouse). The ``nowrap`` columns keep their width (field names: one
    folded mid-word reads as two)."""
    t = Table(box=box.SIMPLE_HEAD, expand=True, show_edge=False, pad_edge=False,
              header_style="bold", padding=(0, 1))
    for i, label in enumerate(columns):
        if i in nowrap:
            t.add_column(label, no_wrap=True)
        else:
            t.add_column(label, overflow="fold", ratio=1)
    for row in rows:
        t.add_row(*(Text(c) if isinstance(c, str) else c for c in row))  # not markup
    return t


class DetailsScreen(Screen):
    """Everything about one PV; refreshed when the PV changes."""

    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        # q here is back, as in a pager: it stopped every IOC, without asking when no
        # client was connected (ctrl+c still quits from anywhere)
        Binding("q", "app.pop_screen", "Back", show=False),
        Binding("e", "exposure('on/off')", "PVA on/off"),
        Binding("w", "exposure('ro')", "PVA ro"),
        # the views' own keys work here too (back to the main screen, that view)
        Binding("1", "app.view('pvs')", "PVs", show=False),
        Binding("2", "app.view('connections')", "Connections", show=False),
        Binding("3", "app.view('puts')", "Put log", show=False),
        Binding("4", "app.view('log')", "Server log", show=False),
    ]

    def __init__(self, source: DataSource, state: PVState, tz: tzinfo | None = None) -> None:
        super().__init__()
        self.source = source
        self.state = state
        self.tz = tz
        self._put_seq = -1
        self._mounted = False
        #: the type-mapping rows shown (tests read them)
        self.mapping: list[tuple[str, str, str, str]] = []

    def compose(self) -> ComposeResult:
        yield StatusHeader()
        yield Static(id="pv-title")
        with VerticalScroll(id="details"):
            yield Static(id="pv-state")
            yield Static("Type mapping: pcaspy definition → PVA structure", classes="section")
            yield Static(id="mapping")
            yield Static("Clients", classes="section")
            yield Static(id="pv-conns")
            yield Static("Recent puts", classes="section")
            yield Static(id="pv-puts")
        yield KeyBar()

    def on_mount(self) -> None:
        self._mounted = True
        self.show(self.state)
        self.query_one("#details").focus()

    def show(self, state: PVState) -> None:
        """Render the PV's current state (called on every change of this PV)."""
        self.state = state
        if not self._mounted:  # a change that arrived between push and mount
            return
        dark = self.app.current_theme.dark
        title = Text()
        title.append(f" {state.name} ", style="bold reverse")
        title.append(f"  plugin {state.plugin}   {state.ca_type} → {state.pva_type}")
        self.query_one("#pv-title", Static).update(title)
        self.query_one("#pv-state", Static).update(self._state_table(state, dark))
        self._show_clients(state)
        try:
            self._show_mapping(state)
            self._show_puts()
        except RuntimeError as e:  # the engine process is gone: keep what is shown
            log.warning("details of %s: %s", state.name, e)

    def _state_table(self, s: PVState, dark: bool) -> Table:
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("Value", fmt.value_text(s.text, s.severity, dark, 200))
        t.add_row("Alarm", Text(fmt.alarm_description(s.severity, s.condition),
                                style=fmt.severity_style(s.severity, dark)))
        t.add_row("Updated", fmt.full_time(s.timestamp, self.tz))
        t.add_row("PVA exposure", fmt.exposure_text(s.exposure, dark))
        t.add_row("Counts", f"{fmt.counted(s.updates, 'update')}, {fmt.counted(s.puts, 'put')} since start")
        return t

    def _show_mapping(self, s: PVState) -> None:
        entry = self.source.entry(s.name)
        rows = mapping_rows(entry.spec, entry.meta, s.text, served_dict(self.source, s.name),
                            entry_extra(entry))
        if rows != self.mapping:
            self.mapping = rows
            self.query_one("#mapping", Static).update(fitted_table(MAP_COLUMNS, rows, nowrap=(0, 2)))

    def _show_clients(self, s: PVState) -> None:
        """Channels per protocol from the newest client report (the engine itself only
        knows whether a PV is monitored on CA and has PVA channels), then the clients."""
        known: list[dict[str, Any]] | None = getattr(self.app, "known_clients", None)
        mine = [c for c in known or [] if s.name in (c.get("channels") or [])]
        per = clients_per_protocol(mine)
        text = Text()
        text.append("CA   ", style="bold")
        ca = f"{per['ca']} channel(s), " if known is not None else ""
        text.append(ca + ("monitored" if s.ca_monitored else "no monitor"))
        text.append("\nPVA  ", style="bold")
        if s.exposure == "off":
            text.append("not served")
        elif known is not None:
            text.append(f"{max(per['pva'], s.pva_clients)} channel(s)")
        else:
            text.append("connected" if s.pva_clients else "no channel")
        for c in mine:
            text.append(f"\n  {str(c.get('protocol', '')).upper():<4} {c.get('peer', '')}"
                        f"  {fmt.visible(str(c.get('user', '')))}  first seen {fmt.clock_time(float(c.get('since') or 0), self.tz)}")
        self.query_one("#pv-conns", Static).update(text)

    def _show_puts(self) -> None:
        records = putlog_for_pv(self.source, self.state.name, DETAIL_PUTS)
        last = records[-1].seq if records else 0
        if last == self._put_seq:
            return
        self._put_seq = last
        rows = [put_cells(r, self.tz) for r in records] or [("", "no puts since start")]
        self.query_one("#pv-puts", Static).update(
            fitted_table(tuple(label for _, label in PUT_COLUMNS), rows, nowrap=(0, 1, 2, 4)))

    def action_exposure(self, mode: str) -> None:
        self.app.request_exposure([self.state.name], mode)  # type: ignore[attr-defined]
