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


#: (text, style, rank): what a status line shows; rank 0 always, higher ranks go first
#: when the line is too narrow for everything.
Part = tuple[str, str, int]


def fitted(parts: list[Part], width: int) -> Text:
    """The parts, in their order, less the highest-ranked ones that do not fit ``width``
    (0: unknown, everything): at 80 columns a failed plugin's warning must not push the
    PVA port off the line."""
    kept = list(parts)
    while width and sum(len(t) for t, _, _ in kept) > width and any(r for _, _, r in kept):
        worst = max(r for _, _, r in kept)
        drop = max(i for i, (_, _, r) in enumerate(kept) if r == worst)
        del kept[drop]
    line = Text()
    for text, style, _ in kept:
        line.append(text, style=style)
    return line


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
        parts: list[Part] = [(" pvconsole ", "bold reverse", 0)]
        if status.failed_plugins:  # it must show at 80 columns for as long as it is so
            parts.append((f" {status.failed_plugins} plugin(s) failed (4: log) ",
                          "bold white on red", 0))
        if status.gone:
            parts.append((f"  NOT SERVING: {status.gone}", "bold red", 0))
        else:
            parts += [(f"  CA {s.ca}", "bold", 1),
                      (f"  PVA {s.pva or 'down'}", "bold" if s.pva else "bold red", 1),
                      (f"  {s.pvs} PVs, {s.exposed} on PVA", "", 2)]
        parts += [(f"  puts {s.puts}", "", 4), (f"  up {duration(s.uptime)}", "", 3)]
        show_line(self.query_one("#servers", Static), fitted(parts, self.size.width))
        # from zero, not from the window's lowest rate: a steady 4/s drew as a spike, and
        # a rate halved looked like none
        self.query_one("#ca-spark", Sparkline).data = [0.0, *status.ca_rates]
        self.query_one("#pva-spark", Sparkline).data = [0.0, *status.pva_rates]
        show_line(self.query_one("#ca-rate", Static), f"{rate(status.ca_rate)}/s")
        show_line(self.query_one("#pva-rate", Static), f"{rate(status.pva_rate)}/s")
        health: list[Part] = [(f"errors {s.errors}  ", "bold red", 0)] if s.errors else []
        health += [(f"lag ≤{status.worst_lag_ms:.2f}ms", "", 1),
                   (f"  posts CA {count(s.ca_posts)} PVA {count(s.pva_posts)}", "", 2)]
        show_line(self.query_one("#health", Static),
                  fitted(health, self.query_one("#health", Static).size.width))
