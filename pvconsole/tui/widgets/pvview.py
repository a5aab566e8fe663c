"""The main view: filter bar, the PV table, and the type-to-jump box."""

from __future__ import annotations

from datetime import tzinfo

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from ...mirror import PVState
from ..focus import focus_now
from .pvtable import COLUMNS, JumpRequested, PVTable
from .line import show_line
from .pane import Pane

#: With fewer PVs a filter applies on every keystroke; with more, once the typing pauses
#: for ``FILTER_PAUSE`` s (or on Enter): rebuilding 10,000 rows takes ~0.35 s.
FILTER_AT_ONCE = 2000
FILTER_PAUSE = 0.25


class PVView(Pane):
    """PV table plus its filter/jump inputs; actions apply to marked rows or the cursor."""

    BINDINGS = [
        Binding("e", "exposure('on/off')", "PVA on/off"),
        Binding("w", "exposure('ro')", "PVA ro"),
        Binding("slash", "filter", "Filter"),
        Binding("p", "next_plugin", "Plugin"),
        Binding("j", "jump", "Jump"),
        Binding("escape", "clear", "Clear", show=False),
    ]

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self._filter_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="pv-bar"):
            yield Static("Filter", classes="label")
            yield Input(placeholder="text or glob, e.g. PSU:*  (/)", id="filter", compact=True)
            yield Static(id="pv-info")
        yield PVTable(tz=self.tz, id="pv-table")
        # not select_on_focus: the capital letter that opened it must not be typed over
        yield Input(placeholder="jump to PV…", id="jump", compact=True, select_on_focus=False)

    @property
    def table(self) -> PVTable:
        return self.query_one(PVTable)

    def on_mount(self) -> None:
        self.query_one("#jump").display = False

    def load(self, states: list[PVState]) -> None:
        """Initial model."""
        self.table.load(states)
        self.update_info()

    def apply(self, changed: list[PVState]) -> None:
        """Changed states from the engine (cheap when nothing is visible)."""
        self.table.apply(changed)

    def update_info(self) -> None:
        """The bar's right side: marks, counts, plugin filter, sort (what fits at 80
        columns first)."""
        t = self.table
        sort = dict((k, label) for k, label, _ in COLUMNS)[t.sort_key]
        parts = [f"{len(t.marked)} marked"] if t.marked else []  # first: e and w act on them
        if not t.row_count and t.states:
            parts.append("no match (Esc clears)")
        if t.plugin:  # a plugin chosen is what the operator looks at: before the counts
            parts.append(f"plugin {t.plugin}")
        parts.append(f"{t.row_count}/{len(t.states)} PVs")
        if not t.plugin:
            parts.append("plugin all")
        parts.append(f"sort {sort} {t.sort_arrow}")
        show_line(self.query_one("#pv-info", Static), Text("  ".join(parts)))  # (plugin names)

    # ------------------------------------------------------------------ filter & plugin

    def set_filter(self, pattern: str) -> None:
        """Show only PVs whose name matches ``pattern`` (text or glob)."""
        self.query_one("#filter", Input).value = pattern
        self._apply_filter(pattern)

    def _apply_filter(self, pattern: str) -> None:
        if pattern != self.table.pattern:
            self.table.pattern = pattern
            self.table.rebuild()
            self.update_info()

    def set_plugin(self, plugin: str | None) -> None:
        """Show only one plugin's PVs (None: all)."""
        self.table.plugin = plugin
        self.table.rebuild()
        self.update_info()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.id == "filter":
            if self._filter_timer is not None:
                self._filter_timer.stop()
                self._filter_timer = None
            if len(self.table.states) < FILTER_AT_ONCE:
                self._apply_filter(event.value)
            else:  # a rebuild of thousands of rows per keystroke: once the typing pauses
                self._filter_timer = self.set_timer(
                    FILTER_PAUSE, lambda value=event.value: self._apply_filter(value))
        elif event.input.id == "jump":
            ok = self.table.jump(event.value)
            hidden = None if ok else self.table.hidden_match(event.value)
            event.input.set_class(not ok and hidden is None and bool(event.value), "-nomatch")
            event.input.set_class(hidden is not None, "-hidden")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "filter":
            self._apply_filter(event.value)  # at once, not after the typing pause
        if event.input.id == "jump":
            event.input.display = False
            found = self.table.jump(event.value)
            hidden = None if found else self.table.hidden_match(event.value)
            if hidden is not None:  # only a filter hides it: clear the filters, go there
                self.app.action_goto(hidden)  # type: ignore[attr-defined]
                self.app.notify(f"filters cleared to show {hidden}", timeout=3)
            elif not found and event.value:
                self.app.notify(f"no PV name starts with or contains {event.value!r}",
                                severity="warning", timeout=3)
        focus_now(self.table)

    def on_jump_requested(self, event: JumpRequested) -> None:
        self.action_jump(event.text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.app.action_details(str(event.row_key.value))  # type: ignore[attr-defined]

    def action_filter(self) -> None:
        focus_now(self.query_one("#filter", Input))

    def action_jump(self, text: str = "") -> None:
        box = self.query_one("#jump", Input)
        box.display = True
        box.value = text
        box.cursor_position = len(text)
        focus_now(box)

    def action_clear(self) -> None:
        """Escape: close the jump box, else leave the filter input, else clear the filter."""
        box = self.query_one("#jump", Input)
        flt = self.query_one("#filter", Input)
        if box.display:
            box.display = False
        elif flt.has_focus:
            pass
        elif flt.value:
            self.set_filter("")
        elif self.table.marked:
            self.table.action_unmark_all()
        focus_now(self.table)
        self.update_info()

    def action_next_plugin(self) -> None:
        names = sorted({s.plugin for s in self.table.states.values()})
        order = [None, *names]
        i = order.index(self.table.plugin) if self.table.plugin in order else 0
        self.set_plugin(order[(i + 1) % len(order)])

    def action_exposure(self, mode: str) -> None:
        self.app.action_exposure_selected(mode)  # type: ignore[attr-defined]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
