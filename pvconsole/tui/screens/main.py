"""The main screen: status header, the four live views, footer."""

from __future__ import annotations

from datetime import tzinfo

from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Reactive, reactive
from textual.screen import Screen
from rich.text import Text
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Static

from ..widgets.connections import ConnectionsView
from ..widgets.header import StatusHeader
from ..widgets.keybar import KeyBar
from ..widgets.putlog import PutLogView
from ..widgets.pvview import PVView
from ..widgets.serverlog import ServerLog
from ..widgets.line import show_line

#: (view id, tab label); the number keys 1..4 select them in this order.
VIEWS = (("pvs", "1 PVs"), ("connections", "2 Connections"), ("puts", "3 Put log"),
         ("log", "4 Server log"))


def view_bar(current: str) -> Text:
    """One line naming the views and their keys, the current one highlighted (a plain
    line, not tabs: no animation to wait for, one row saved on 24-line terminals)."""
    bar = Text(" ")
    for view, label in VIEWS:
        bar.append(f" {label} ", style="bold reverse" if view == current else "dim")
        bar.append(" ")
    return bar


class Switcher(ContentSwitcher):
    """A content switcher that does not redraw itself on a switch: the views it shows
    and hides cover it, and their display change lays the screen out anyway."""

    current = reactive[str | None](None, init=False, repaint=False)


class MainScreen(Screen):
    """All live views stay mounted: switching is a display toggle, not a rebuild."""

    BINDINGS = [Binding(str(i + 1), f"app.view('{v}')", label, show=False)
                for i, (v, label) in enumerate(VIEWS)]
    #: ``-narrow`` below 120 columns: the header's sparklines shrink (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    #: A focus change restyles the widgets it concerns; redrawing the whole screen's
    #: background on it too (Textual's default) was ~1 ms of every view switch.
    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    def __init__(self, tz: tzinfo | None = None) -> None:
        super().__init__()
        self.tz = tz

    def compose(self) -> ComposeResult:
        yield StatusHeader()
        yield Static(view_bar("pvs"), id="views")
        with Switcher(initial="pvs", id="switcher"):
            yield PVView(tz=self.tz, id="pvs")
            yield ConnectionsView(tz=self.tz, id="connections")
            yield PutLogView(tz=self.tz, id="puts")
            yield ServerLog(tz=self.tz, id="log")
        yield KeyBar()

    def on_mount(self) -> None:
        self.app.start_model()  # type: ignore[attr-defined]

    def show_view(self, view: str) -> None:
        """Switch the visible view (a display toggle) and mark it in the view bar."""
        self.query_one(ContentSwitcher).current = view
        show_line(self.query_one("#views", Static), view_bar(view))
