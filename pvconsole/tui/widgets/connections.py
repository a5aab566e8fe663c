"""Connections: who is connected over each protocol, and per-PV client counts."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Iterable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ...mirror import PVState
from .. import fmt
from ..source import client_counts, clients_per_protocol
from ..screens.record import RecordScreen
from .steadytable import SteadyDataTable
from .pane import Pane

CLIENT_COLUMNS = (("protocol", "Proto"), ("peer", "Peer"), ("user", "User"), ("host", "Host"),
                  ("channels", "Channels"), ("monitors", "Monitors"), ("since", "First seen"),
                  ("traffic", "Traffic"))
PV_COLUMNS = (("name", "PV"), ("ca", "CA clients"), ("pva", "PVA clients"), ("exp", "Exp"))

#: Rows of the per-PV client table (the first ones by name).
PV_ROWS_MAX = 1000

NO_CLIENT_DETAILS = ("Per-client details (peer, account, channels) are not available from "
                     "this engine; per-PV counts below.")


#: Channels a client's Enter lists (a client of 10,000 channels would fill the screen).
CHANNELS_SHOWN = 40


def client_row(c: dict[str, Any], tz: tzinfo | None) -> tuple:
    """One client dict (engine ``clients()`` shape) -> table cells."""
    channels = list(c.get("channels") or [])
    traffic = traffic_text(c.get("tx_bps"), c.get("rx_bps"))
    return (
        str(c.get("protocol", "")).upper(), fmt.literal(str(c.get("peer", ""))),
        fmt.literal(str(c.get("user", ""))), fmt.literal(str(c.get("host", ""))),
        fmt.literal(f"{len(channels)}: {fmt.listing([str(c) for c in channels], 30)}") if channels else "0",
        "" if c.get("monitors") is None else str(c.get("monitors")),
        fmt.clock_time(float(c.get("since") or 0), tz), traffic,
    )


def traffic_text(tx: float | None, rx: float | None) -> str:
    """'↓1.2kB/s ↑80B/s' (to / from the client), '' when the protocol does not say."""
    if tx is None and rx is None:
        return ""
    return f"↓{fmt.bytes_rate(tx or 0)} ↑{fmt.bytes_rate(rx or 0)}"


class ConnectionsView(Pane):
    """Client table (when the engine can list clients) above the per-PV counts."""

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self._pv_rows: dict[str, tuple] = {}
        self._clients: list[tuple] | None = []
        self._shown_clients: list[dict[str, Any]] = []  # the table's rows, in order
        self._report: list[dict[str, Any]] | None = None  # the client report shown
        self._counts: Mapping[str, tuple[int, int]] | None = None  # per PV, from that report
        #: Per PV as last shown (and counted in the totals): CA monitored, PVA clients, exposure.
        self._shown: dict[str, tuple[bool, int, str]] = {}
        self._dirty: set[str] = set()  # PVs to look at on the next show
        self._totals = [0, 0, 0]  # over _shown: PVs monitored on CA, PVs and channels on PVA
        self._summary: Text | None = None
        self._table_rows: dict[str, tuple] = {}  # what the per-PV table shows

    def compose(self) -> ComposeResult:
        yield Static(id="conn-summary")
        yield Static("Clients", classes="section")
        yield Static(NO_CLIENT_DETAILS, id="conn-note")
        yield SteadyDataTable(id="clients", cursor_type="row")
        yield Static("PVs with clients", classes="section")
        yield SteadyDataTable(id="pv-clients", cursor_type="row")

    def on_mount(self) -> None:
        clients = self.query_one("#clients", DataTable)
        for key, label in CLIENT_COLUMNS:
            clients.add_column(label, key=key)
        pvs = self.query_one("#pv-clients", DataTable)
        for key, label in PV_COLUMNS:
            pvs.add_column(label, key=key)
        self.query_one("#conn-note").display = False

    def note(self, changed: Iterable[PVState]) -> None:
        """Remember the PVs whose client flags or exposure changed. Called on every poll,
        shown or not (a dict lookup per change), so that showing the view walks only
        those, not 10,000 PVs."""
        shown, dirty = self._shown, self._dirty
        for s in changed:
            if shown.get(s.name) != (s.ca_monitored, s.pva_clients, s.exposure):
                dirty.add(s.name)

    @property
    def pending(self) -> int:
        """PVs whose changes the next :meth:`show` walks."""
        return len(self._dirty)

    def show(self, states: Mapping[str, PVState], clients: list[dict[str, Any]] | None,
             counts: Mapping[str, tuple[int, int]] | None = None) -> None:
        """Bring both tables up to date, touching only PVs that changed.

        Args:
            states: Every PV's newest state, by name.
            clients: The client report (None: the engine cannot list clients).
            counts: Per-PV (CA, PVA) client counts of that report (:func:`client_counts`,
                computed off the UI thread); derived here when not given.
        """
        dirty = self._dirty
        if self._counts is None or clients is not self._report:
            self._show_clients(clients)
            if counts is None:
                counts = client_counts(clients) if clients is not None else {}
            old, self._counts, self._report = self._counts, counts, clients
            if old is None:  # first time: every PV
                dirty.update(states)
            else:  # a new report: the PVs whose counts differ
                new = self._counts
                dirty.update(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        rows = self._pv_rows
        membership = False
        shown, totals = self._shown, self._totals
        for name in dirty:
            s = states.get(name)
            if s is None:
                continue
            old = shown.get(name)
            if old is None or old[:2] != (s.ca_monitored, s.pva_clients):
                # running totals; inline: the first show walks every PV
                if old is not None:
                    totals[0] -= bool(old[0])
                    totals[1] -= bool(old[1])
                    totals[2] -= old[1]
                totals[0] += bool(s.ca_monitored)
                totals[1] += bool(s.pva_clients)
                totals[2] += s.pva_clients
            shown[name] = (s.ca_monitored, s.pva_clients, s.exposure)
            cells = self._row(s)
            if cells is None:
                membership |= rows.pop(name, None) is not None
            else:
                membership |= name not in rows
                rows[name] = cells
        dirty.clear()
        self._sync_table(resort=membership)
        self._show_summary(clients)

    def _sync_table(self, resort: bool) -> None:
        """Show the first ``PV_ROWS_MAX`` PVs with clients, by name: a bounded table keeps
        the switch to this view fast with 10,000 monitored PVs (the PV table's CA/PVA
        columns list them all)."""
        table = self.query_one("#pv-clients", SteadyDataTable)
        if resort:
            want = sorted(self._pv_rows)[:PV_ROWS_MAX]
            keep = set(want)
            for name in [n for n in self._table_rows if n not in keep]:
                table.remove_row(name)
                del self._table_rows[name]
            added = [name for name in want if name not in self._table_rows]
            for name in added:
                table.add_row(fmt.literal(name), *self._pv_rows[name], key=name)
                self._table_rows[name] = self._pv_rows[name]
            if added:
                table.sort_by_key(lambda name: name)
        changes = {}
        for name, old in self._table_rows.items():
            cells = self._pv_rows[name]
            if old is not cells and old != cells:
                changes[name] = {key: b for key, a, b in zip(("ca", "pva", "exp"), old, cells) if a != b}
            self._table_rows[name] = cells
        if changes:
            table.set_cells(changes)

    def _row(self, s: PVState) -> tuple | None:
        """Cells of a PV's row, None when nobody is connected to it."""
        ca, pva = self._counts.get(s.name, (0, 0)) if self._counts else (0, 0)
        if not (ca or pva or s.ca_monitored or s.pva_clients):
            return None
        return (str(ca) if ca else "mon" if s.ca_monitored else "",
                str(max(pva, s.pva_clients)) if (pva or s.pva_clients) else "", s.exposure)

    def _show_summary(self, clients: list[dict[str, Any]] | None) -> None:
        monitored, with_clients, channels = self._totals
        if self._counts:  # the engine knows a PV has PVA channels; a report, how many
            channels = max(channels, sum(pva for _, pva in self._counts.values()))
        by = clients_per_protocol(clients) if clients is not None else None
        summary = Text()
        summary.append("CA ", style="bold")
        if by is not None:
            summary.append(f"{by['ca']} client(s), ")
        summary.append(f"{monitored} PVs monitored")
        summary.append("   PVA ", style="bold")
        if by is not None:
            summary.append(f"{by['pva']} client(s), ")
        summary.append(f"{with_clients} PVs, {channels} channel(s)")
        if len(self._pv_rows) > PV_ROWS_MAX:
            summary.append(f"\nlisting the first {PV_ROWS_MAX:,} of {len(self._pv_rows):,} PVs with "
                           "clients: sort the PV table by CA or PVA clients (s) to see them all", style="dim")
        if summary != self._summary:
            self._summary = summary
            self.query_one("#conn-summary", Static).update(summary)

    def _show_clients(self, clients: list[dict[str, Any]] | None) -> None:
        self.query_one("#conn-note").display = clients is None
        table = self.query_one("#clients", DataTable)
        table.display = clients is not None
        rows = None if clients is None else [client_row(c, self.tz) for c in clients]
        if rows == self._clients:
            return
        self._clients = rows
        self._shown_clients = list(clients or [])
        table.clear()
        for i, row in enumerate(rows or []):
            table.add_row(*row, key=str(i))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a client: all of it, every channel included (the table shows 30
        characters of them). Enter on a PV: its details, with its clients."""
        if event.data_table.id == "pv-clients":
            event.stop()
            self.app.action_details(str(event.row_key.value))  # type: ignore[attr-defined]
            return
        if event.data_table.id != "clients":
            return
        event.stop()
        try:
            c = self._shown_clients[int(str(event.row_key.value))]
        except (IndexError, ValueError):
            return
        channels = [str(ch) for ch in c.get("channels") or []]
        shown = channels[:CHANNELS_SHOWN]
        more = f" … and {len(channels) - len(shown)} more" if len(channels) > len(shown) else ""
        self.app.push_screen(RecordScreen(
            f"{str(c.get('protocol', '')).upper()} client {c.get('user', '')}@{c.get('host', '')}",
            [("User", fmt.visible(str(c.get("user", "")))), ("Host", fmt.visible(str(c.get("host", "")))),
             ("Peer", fmt.visible(str(c.get("peer", "")))),
             ("Since", fmt.clock_time(float(c.get("since") or 0), self.tz)),
             (f"Channels ({len(channels)})", fmt.visible(", ".join(shown)) + more)]))

