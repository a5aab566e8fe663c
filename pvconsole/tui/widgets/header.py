"""The status header: servers, PV counts, live rates per protocol and mirror health."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from ..fmt import count, duration, rate
from ..status import StatusModel
from .line import show_line


class StatusHeader(Widget):
    """Two lines at the top of every screen: is it serving, how busy, how healthy."""

    def compose(self) -> ComposeResult:
        yield Static(id="servers")
        with Horizontal(id="rates"):
            yield Static("CA", classes="label")
            yield Sparkline([0.0], id="ca-spark")
            yield Static(id="ca-rate", classes="rate")
            yield Static("PVA", classes="label")
            yield Sparkline([0.0], id="pva-spark")
            yield Static(id="pva-rate", classes="rate")
            yield Static(id="health")

    def on_mount(self) -> None:
        status = getattr(self.app, "status", None)
        if status is not None:
            self.show(status)

    def show(self, status: StatusModel) -> None:
        """Render a status sample (called by the app after each stats read)."""
        if status.stats is None:
            return
        try:
            self._show(status)
        except NoMatches:  # its lines are gone: a screen closed while it opened (keys in a burst)
            pass

    def _show(self, status: StatusModel) -> None:
        s = status.stats
        line = Text()
        line.append(" pvconsole ", style="bold reverse")
        if status.failed_plugins:  # first: it must show at 80 columns for as long as it is so
            line.append(f" {status.failed_plugins} plugin(s) not loaded (4: log) ",
                        style="bold white on red")
        if status.gone:
            line.append(f"  NOT SERVING: {status.gone}", style="bold red")
        else:
            line.append(f"  CA {s.ca}", style="bold")
            line.append(f"  PVA {s.pva or 'down'}", style="bold" if s.pva else "bold red")
            line.append(f"  {s.pvs} PVs, {s.exposed} on PVA")
        line.append(f"  puts {s.puts}")
        line.append(f"  up {duration(s.uptime)}")
        show_line(self.query_one("#servers", Static), line)
        self.query_one("#ca-spark", Sparkline).data = list(status.ca_rates)
        self.query_one("#pva-spark", Sparkline).data = list(status.pva_rates)
        show_line(self.query_one("#ca-rate", Static), f"{rate(status.ca_rate)}/s")
        show_line(self.query_one("#pva-rate", Static), f"{rate(status.pva_rate)}/s")
        health = Text()
        health.append(f"lag ≤{status.worst_lag_ms:.2f}ms  posts CA {count(s.ca_posts)} "
                      f"PVA {count(s.pva_posts)}")
        if s.errors:
            health.append(f"  errors {s.errors}", style="bold red")
        show_line(self.query_one("#health", Static), health)
