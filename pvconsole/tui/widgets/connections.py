"""Connections: who is connected over each protocol, and per-PV client counts."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ...mirror import PVState
from .. import fmt
from ..source import client_counts

CLIENT_COLUMNS = (("protocol", "Proto"), ("peer", "Peer"), ("user", "User"), ("host", "Host"),
                  ("channels", "Channels"), ("monitors", "Monitors"), ("since", "Since"),
                  ("traffic", "Traffic"))
PV_COLUMNS = (("name", "PV"), ("ca", "CA clients"), ("pva", "PVA clients"), ("exp", "PVA"))

NO_CLIENT_DETAILS = ("Per-client details (peer, account, channels) are not available from "
                     "this engine; per-PV counts below.")


def client_row(c: dict[str, Any], tz: tzinfo | None) -> tuple:
    """One client dict (engine ``clients()`` shape) -> table cells."""
    channels = list(c.get("channels") or [])
    traffic = traffic_text(c.get("tx_bps"), c.get("rx_bps"))
    return (
        str(c.get("protocol", "")).upper(), str(c.get("peer", "")), str(c.get("user", "")),
        str(c.get("host", "")), f"{len(channels)} ({fmt.short(list(channels), 30)})" if channels else "0",
        "" if c.get("monitors") is None else str(c.get("monitors")),
        fmt.clock_time(float(c.get("since") or 0), tz), traffic,
    )


def traffic_text(tx: float | None, rx: float | None) -> str:
    """'↓1.2kB/s ↑80B/s' (to / from the client), '' when the protocol does not say."""
    if tx is None and rx is None:
        return ""
    return f"↓{fmt.bytes_rate(tx or 0)} ↑{fmt.bytes_rate(rx or 0)}"


class ConnectionsView(Vertical):
    """Client table (when the engine can list clients) above the per-PV counts."""

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self._pv_rows: dict[str, tuple] = {}
        self._clients: list[tuple] | None = []

    def compose(self) -> ComposeResult:
        yield Static(id="conn-summary")
        yield Static("Clients", classes="section")
        yield Static(NO_CLIENT_DETAILS, id="conn-note")
        yield DataTable(id="clients", cursor_type="row")
        yield Static("PVs with clients", classes="section")
        yield DataTable(id="pv-clients", cursor_type="row")

    def on_mount(self) -> None:
        clients = self.query_one("#clients", DataTable)
        for key, label in CLIENT_COLUMNS:
            clients.add_column(label, key=key)
        pvs = self.query_one("#pv-clients", DataTable)
        for key, label in PV_COLUMNS:
            pvs.add_column(label, key=key)
        self.query_one("#conn-note").display = False

    def show(self, states: Iterable[PVState], clients: list[dict[str, Any]] | None) -> None:
        """Bring both tables up to date (diffed by row key)."""
        states = list(states)
        self._show_clients(clients)
        table = self.query_one("#pv-clients", DataTable)
        counts = client_counts(clients) if clients is not None else {}
        rows = {}
        for s in states:
            ca, pva = counts.get(s.name, (0, 0))
            if ca or pva or s.ca_monitored or s.pva_clients:
                rows[s.name] = (str(ca) if ca else "mon" if s.ca_monitored else "",
                                str(max(pva, s.pva_clients)) if (pva or s.pva_clients) else "",
                                s.exposure)
        for name in [n for n in self._pv_rows if n not in rows]:
            table.remove_row(name)
            del self._pv_rows[name]
        for name in sorted(rows):
            cells = rows[name]
            old = self._pv_rows.get(name)
            if old is None:
                table.add_row(name, *cells, key=name)
            elif old != cells:
                for key, a, b in zip(("ca", "pva", "exp"), old, cells):
                    if a != b:
                        table.update_cell(name, key, b)
            self._pv_rows[name] = cells
        ca = sum(1 for s in states if s.ca_monitored)
        pva = sum(1 for s in states if s.pva_clients)
        channels = sum(s.pva_clients for s in states)
        summary = Text()
        summary.append("CA ", style="bold")
        summary.append(f"{ca} PVs monitored")
        summary.append("   PVA ", style="bold")
        summary.append(f"{pva} PVs with clients, {channels} channel(s)")
        if clients is not None:
            by = {p: sum(1 for c in clients if str(c.get('protocol')).lower() == p) for p in ("ca", "pva")}
            summary.append(f"   clients: CA {by['ca']}, PVA {by['pva']}")
        self.query_one("#conn-summary", Static).update(summary)

    def _show_clients(self, clients: list[dict[str, Any]] | None) -> None:
        self.query_one("#conn-note").display = clients is None
        table = self.query_one("#clients", DataTable)
        table.display = clients is not None
        rows = None if clients is None else [client_row(c, self.tz) for c in clients]
        if rows == self._clients:
            return
        self._clients = rows
        table.clear()
        for row in rows or []:
            table.add_row(*row)
