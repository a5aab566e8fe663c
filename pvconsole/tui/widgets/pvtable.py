"""The PV table: one row per PV, live, filtered, sorted, with marks for batch actions.

Only rows that changed are touched: each row's rendered cells are cached and
``update_cell`` is called for the cells whose text differs. Re-sorting costs O(n log n), so
it happens only when a cell of the sort column changed, at most every ``SORT_INTERVAL``.
"""

from __future__ import annotations

import fnmatch
import time
from datetime import tzinfo
from typing import Any, Callable, Iterable

from rich.text import Text
from textual.binding import Binding
from textual.events import Key
from textual.message import Message
from textual.widgets.data_table import CellDoesNotExist

from ...mirror import PVState
from .. import fmt
from ..settings import SORT_INTERVAL, VALUE_WIDTH
from .steadytable import SteadyDataTable, tie_by_name

#: (key, label, sort key). The order puts what an operator needs first, so 80 columns
#: show name, value, alarm, exposure, clients and time; the types scroll in on the right.
COLUMNS: tuple[tuple[str, str, Callable[[PVState], Any]], ...] = (
    ("mark", " ", lambda s: 0),
    ("name", "PV", lambda s: s.name),
    ("value", "Value", lambda s: (0, float(s.value), "") if isinstance(s.value, (int, float))
     else (1, 0.0, s.text)),
    ("sev", "Alarm", lambda s: -s.severity),
    ("exp", "Exp", lambda s: s.exposure),
    ("ca", "CA", lambda s: -int(s.ca_monitored)),
    ("pvac", "PVA", lambda s: -s.pva_clients),
    ("time", "Updated", lambda s: -s.timestamp),
    ("plugin", "Plugin", lambda s: s.plugin),
    ("catype", "CA type", lambda s: s.ca_type),
    ("pvatype", "PVA type", lambda s: s.pva_type),
)
COLUMN_KEYS = tuple(c[0] for c in COLUMNS)
SORTABLE = COLUMN_KEYS[1:]
SORT_KEYS = {k: f for k, _, f in COLUMNS}
MARK = "●"
#: Columns sorted most first (worst alarm, most clients, newest update) unless reversed.
MOST_FIRST = frozenset({"sev", "ca", "pvac", "time"})
#: Sort keys whose order changes with live updates (an off-screen change may move a row).
LIVE_SORT = frozenset({"value", "sev", "exp", "ca", "pvac", "time"})
#: Live columns whose changes the engine sends for every PV, on screen or not.
FLAG_SORT = frozenset({"sev", "exp", "ca", "pvac"})
#: Widest text of the fixed-width columns left of the types: mark, alarm (" INVALID "),
#: exposure, CA monitor ("mon"), PVA channel open ("open") and time ("12:34:56.789").
#: The table shows whether a CA client monitors and a PVA channel is open, not how many
#: (pcaspy and p4p tell that much per PV for free; counts come from a client report, which
#: holds the CA server's thread: the connections and details screens show them).
FIXED_WIDTHS = {"mark": 1, "sev": len(" INVALID "), "exp": 3, "ca": 3, "pvac": 4, "time": 12}
#: Cells the alarm column grows by, where the table has them to spare, to name the alarm
#: condition beside the severity (" INVALID WRITE ", " MAJOR HIHI ").
ALARM_WHY = 8
#: Narrowest value column (the types scroll in on the right anyway).
MIN_VALUE_WIDTH = 12
#: Narrowest name column: a longer name is shortened in its middle when the table is too
#: narrow for it and the value (80 columns, a long IOC prefix).
MIN_NAME_WIDTH = 16
#: Widest name column: an IOC's record names fit in 60 characters (PVNAME_STRINGSZ); a
#: longer name is shortened in its middle rather than squeezing every other column.
MAX_NAME_WIDTH = 60
#: Widest plugin and PVA-type columns (right of the time: they scroll in).
SIDE_WIDTH = 24


def column_widths(table_width: int, names: int, plugins: int, pva_types: int,
                  padding: int = 1, scrollbar: int = 2) -> dict[str, int]:
    """Every column's width, fixed: DataTable would otherwise measure every cell of every
    row it adds (0.5 s for 10,000 rows, on each filter keystroke) and never widen a column
    for a later, longer value (a time first drawn as "—"). The name gets the longest
    name's width, shortened so that the value keeps ``MIN_VALUE_WIDTH`` and every column up
    to the time fits; the value gets the rest, at most ``VALUE_WIDTH``.

    Args:
        table_width: The table's width in cells.
        names, plugins, pva_types: Widest PV name, plugin name and PVA type name.
    """
    fixed = sum(w + 2 * padding for w in FIXED_WIDTHS.values())
    room = table_width - scrollbar - fixed - 4 * padding  # name + value, without padding
    name = max(MIN_NAME_WIDTH, min(names, room - MIN_VALUE_WIDTH, MAX_NAME_WIDTH))
    value = max(MIN_VALUE_WIDTH, min(VALUE_WIDTH, room - name))
    # room to spare once name and value have theirs: the alarm says why (MAJOR HIHI)
    alarm = FIXED_WIDTHS["sev"] + (ALARM_WHY if room - name - value >= ALARM_WHY else 0)
    widths = {**FIXED_WIDTHS, "name": name, "value": value, "sev": alarm,
              "plugin": min(plugins, SIDE_WIDTH), "catype": len("string"),
              "pvatype": min(pva_types, SIDE_WIDTH)}
    return {key: max(widths[key], len(label)) for key, label, _ in COLUMNS}


def name_matches(name: str, pattern: str) -> bool:
    """Filter test: a glob (``*?[``) matches the whole name, plain text any part of it;
    both ignore case so that typing at 2 a.m. needs no shift key."""
    if not pattern:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name.upper(), pattern.upper())
    return pattern.upper() in name.upper()


def _first_match(names: list[str], text: str) -> str | None:
    """The first name starting with ``text`` (else containing it), ignoring case."""
    if not text:
        return None
    needle = text.upper()
    return next((n for n in names if n.upper().startswith(needle)), None) or \
        next((n for n in names if needle in n.upper()), None)


class PVTable(SteadyDataTable):
    """The live PV table (row key = PV name)."""

    BINDINGS = [
        Binding("space", "mark", "Mark", show=False),
        Binding("plus", "mark_all", "Mark all", show=False),
        Binding("minus", "unmark_all", "Unmark", show=False),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reverse_sort", "Reverse", show=False),
        Binding("home", "first_row", "First", show=False),
        Binding("end", "last_row", "Last", show=False),
    ]

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", fixed_columns=2, zebra_stripes=False)
        self.tz = tz
        self.dark = True
        self.states: dict[str, PVState] = {}
        self.marked: set[str] = set()
        self.pattern = ""
        self.plugin: str | None = None
        self.sort_key = "name"
        self.sort_reverse = False
        self._cells: dict[str, tuple] = {}
        self._pending: set[str] = set()
        self._order: list[str] | None = None  # row names in table order, while valid
        self._sort_due = False
        self._last_sort = 0.0
        self.widths: dict[str, int] = {}
        #: widest PV name, plugin and PVA type of ``states``: kept as PVs come, so a resize
        #: (every switch back to the table) does not measure 10,000 PVs again
        self._longest = (0, 0, 0)

    # ------------------------------------------------------------------ data in

    def on_resize(self) -> None:
        if self._fit_columns():
            self.rebuild()

    @property
    def value_width(self) -> int:
        return self.widths.get("value", VALUE_WIDTH)

    def _fit_columns(self) -> bool:
        """Size the columns to the table's width and the PVs (:func:`column_widths`);
        True when a width changed."""
        if not self.size.width:
            return False
        widths = column_widths(self.size.width, *self._longest, self.cell_padding)
        changed, self.widths = widths != self.widths, widths
        for key, column in self.columns.items():
            column.width, column.auto_width = widths[str(key.value)], False
        return changed

    def on_mount(self) -> None:
        for key, label, _ in COLUMNS:
            self.add_column(label, key=key)
        self._label_sort()

    def load(self, states: Iterable[PVState]) -> None:
        """Replace the whole model (start-up, theme change)."""
        self.states = {s.name: s for s in states}
        self._longest = (0, 0, 0)
        self._measure(self.states.values())
        self.rebuild()

    def apply(self, changed: list[PVState]) -> None:
        """Take changed states; touch only their cells (deferred while hidden)."""
        cells = self._cells
        states = self.states
        self._measure([s for s in changed if s.name not in states])
        for s in changed:
            states[s.name] = s
            if s.name in cells:
                self._pending.add(s.name)
            elif self._visible(s):  # a PV the table has not seen yet
                self._add(s)
                self._sort_due = True
        if self.display and self.screen.is_current:
            self.flush()

    def _measure(self, new: Iterable[PVState]) -> None:
        """Widen :attr:`_longest` for PVs the table has not had yet."""
        name, plugin, pva_type = self._longest
        for s in new:
            name, plugin, pva_type = (max(name, len(s.name)), max(plugin, len(s.plugin)),
                                      max(pva_type, len(s.pva_type)))
        self._longest = (name, plugin, pva_type)

    def flush(self) -> None:
        """Update the on-screen rows of the PVs changed since the last flush, then sort if
        due. Rows off screen keep their change pending until they scroll into view:
        DataTable re-renders every visible line after any ``update_cell``, so touching
        the 9,950 rows nobody sees would cost the servers CPU for nothing."""
        self._flush_window()
        if self._maybe_sort():
            self._flush_window()

    def window(self) -> list[str]:
        """The PVs on screen, with a page of margin each way (scrolling shows them fresh)."""
        if self._order is None:  # row order changes only on rebuild, sort and add
            self._order = self.visible_names()
        top = int(self.scroll_y)
        page = max(1, self.size.height)
        return self._order[max(0, top - page):top + 2 * page]

    def needs_every_change(self) -> bool:
        """Sorted by a column that any change moves (value, time): the table must see
        every PV's changes, not only those of the rows on screen."""
        return self.sort_key in LIVE_SORT - FLAG_SORT

    def _flush_window(self) -> None:
        if not self._pending:
            return
        window = self.window()
        pending = self._pending
        changes: dict[str, dict[str, Any]] = {}
        for name in window:
            if name not in pending:
                continue
            pending.discard(name)
            old = self._cells[name]
            new = self._render(self.states[name])
            diff = {COLUMN_KEYS[i]: b for i, (a, b) in enumerate(zip(old, new)) if cell_changed(a, b)}
            if diff:
                changes[name] = diff
                if self.sort_key in diff:
                    self._sort_due = True
            self._cells[name] = new
        if changes:
            self.set_cells(changes)
        if pending and self.sort_key in LIVE_SORT:
            self._sort_due = True  # an off-screen change may move its row into view

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._pending and round(old_value) != round(new_value):
            self.call_later(self._flush_window)

    def on_shown_again(self) -> None:
        if self._pending:
            self.call_later(self._flush_window)

    def rebuild(self) -> None:
        """Re-create the rows for the current filter and sort (keeps the cursor's PV)."""
        current = self.current_name()
        self._fit_columns()
        self.clear()
        self._order = None
        self._cells.clear()
        self._pending.clear()
        rows = self._ordered([s for s in self.states.values() if self._visible(s)])
        for s in rows:
            self._add(s)
        self._last_sort = time.monotonic()
        self._sort_due = False
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    def _add(self, s: PVState) -> None:
        self._order = None
        cells = self._render(s)
        self._cells[s.name] = cells
        self.add_row(*cells, key=s.name)

    def _visible(self, s: PVState) -> bool:
        return (self.plugin is None or s.plugin == self.plugin) and name_matches(s.name, self.pattern)

    def _render(self, s: PVState) -> tuple:
        dark = self.dark
        alarm_width = self.widths.get("sev", 0)
        why = alarm_width > FIXED_WIDTHS["sev"]
        return (
            MARK if s.name in self.marked else " ",
            fmt.literal(fmt.middle_cut(s.name, self.widths.get("name", len(s.name)))),
            fmt.value_text(s.text, s.severity, dark, self.value_width),
            fmt.severity_text(s.severity, dark, s.condition if why else None, alarm_width),
            fmt.exposure_text(s.exposure, dark),
            "mon" if s.ca_monitored else "",
            "open" if s.pva_clients else "",
            fmt.clock_time(s.timestamp, self.tz),
            fmt.literal(s.plugin),
            s.ca_type,
            s.pva_type,
        )

    # ------------------------------------------------------------------ sorting

    def _ordered(self, states: list[PVState]) -> list[PVState]:
        """``states`` in the table's order; PVs that tie by name, whichever the direction."""
        return tie_by_name(states, lambda s: s.name, SORT_KEYS[self.sort_key], self.sort_reverse)

    def _maybe_sort(self, force: bool = False) -> bool:
        """Sort when due (or ``force``); True when it did."""
        if not force:
            if not self._sort_due or time.monotonic() - self._last_sort < SORT_INTERVAL:
                return False
        states = self.states
        getter = SORT_KEYS[self.sort_key]
        current = self.current_name()
        self.sort_by_key(lambda n: getter(states[n]), reverse=self.sort_reverse)
        self._order = None
        self._last_sort = time.monotonic()
        self._sort_due = False
        if current is not None:
            self.move_cursor(row=self.get_row_index(current), animate=False)
        return True

    def set_sort(self, key: str, reverse: bool | None = None) -> None:
        """Sort by a column key (``reverse`` None keeps the direction)."""
        self.sort_key = key
        if reverse is not None:
            self.sort_reverse = reverse
        self._label_sort()
        self._maybe_sort(force=True)
        self._flush_window()

    @property
    def sort_arrow(self) -> str:
        """▲ ascending, ▼ descending: the order the rows are in (an alarm sort that is not
        reversed lists the worst first: ▼)."""
        return "▼" if self.sort_reverse != (self.sort_key in MOST_FIRST) else "▲"

    def _label_sort(self) -> None:
        for key, label, _ in COLUMNS:
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is None:
                continue
            arrow = f" {self.sort_arrow}" if key == self.sort_key else ""
            column.label = Text(label + arrow)
        self._require_update_dimensions = True
        self.refresh()

    # ------------------------------------------------------------------ selection

    def current_name(self) -> str | None:
        """PV under the cursor (None in an empty table)."""
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except CellDoesNotExist:
            return None

    def targets(self) -> list[str]:
        """PVs an action applies to: the marked ones the table shows (a filter hides the
        others from the operator, so they are left alone; none if it hides them all: the
        cursor row is not what was marked), else the one under the cursor."""
        if self.marked:
            return sorted(n for n in self.marked if n in self._cells)
        name = self.current_name()
        return [name] if name else []

    def hidden_marks(self) -> int:
        """Marked PVs the filter hides (an action leaves them alone)."""
        return sum(1 for n in self.marked if n not in self._cells)

    def set_marks(self, names: Iterable[str], on: bool) -> None:
        """Mark or unmark PVs and redraw their mark cells."""
        for name in names:
            (self.marked.add if on else self.marked.discard)(name)
            if name in self._cells:
                cells = self._cells[name]
                self._cells[name] = (MARK if on else " ",) + cells[1:]
                self.update_cell(name, "mark", self._cells[name][0])

    def visible_names(self) -> list[str]:
        """PV names in table order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def jump(self, text: str) -> bool:
        """Move the cursor to the first PV starting with ``text`` (else containing it)."""
        hit = _first_match(self.visible_names(), text)
        if hit is None:
            return False
        row = self.get_row_index(hit)
        self.move_cursor(row=row, animate=False, scroll=False)
        self.scroll_to(y=max(0, row - self.size.height // 2), animate=False)  # in the middle
        return True

    def hidden_match(self, text: str) -> str | None:
        """A PV the filter hides that a jump to ``text`` would find."""
        return _first_match(sorted(n for n, s in self.states.items() if not self._visible(s)), text)

    def action_mark(self) -> None:
        name = self.current_name()
        if name is not None:
            self.set_marks([name], name not in self.marked)
            self.action_cursor_down()

    def action_mark_all(self) -> None:
        self.set_marks(self.visible_names(), True)

    def action_unmark_all(self) -> None:
        self.set_marks(list(self.marked), False)

    def action_next_sort(self) -> None:
        """The next column, in its own first direction (worst alarm, most clients, newest
        first; names A to Z), from the top: a reversal is not carried over (sorting by
        alarm after an ``r`` listed the PVs without alarm first, off the cursor's row)."""
        i = SORTABLE.index(self.sort_key) if self.sort_key in SORTABLE else -1
        self.set_sort(SORTABLE[(i + 1) % len(SORTABLE)], reverse=False)
        self.action_first_row()
        self.show_column(self.sort_key)

    def show_column(self, key: str) -> None:
        """Scroll sideways until column ``key`` is in view (at 80 cells, the plugin and
        the types scroll in on the right: sorting by one showed no column sorted by)."""
        fixed = sum(self.widths.get(k, 0) + 2 * self.cell_padding for k in COLUMN_KEYS[:2])
        x = 0
        for k in COLUMN_KEYS:
            width = self.widths.get(k, 0) + 2 * self.cell_padding
            if k == key:
                break
            x += width
        view = self.scrollable_content_region.width
        if x + width > self.scroll_x + view:
            self.scroll_to(x=x + width - view, animate=False)
        elif x < self.scroll_x + fixed and key not in COLUMN_KEYS[:2]:
            self.scroll_to(x=x - fixed, animate=False)

    def action_first_row(self) -> None:
        """Home: the first row (DataTable's scrolls sideways only)."""
        if self.row_count:
            self.move_cursor(row=0, animate=False)
            self.scroll_to(x=0, y=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def action_reverse_sort(self) -> None:
        self.set_sort(self.sort_key, not self.sort_reverse)

    def on_key(self, event: Key) -> None:
        """Typing an upper-case letter starts a jump (PV names are upper case; lower-case
        letters are commands)."""
        ch = event.character
        if ch and len(ch) == 1 and ch.isupper():
            event.stop()
            event.prevent_default()
            self.post_message(JumpRequested(ch))


def cell_changed(old: Any, new: Any) -> bool:
    """Whether a cell must be redrawn. Rich's ``Text`` compares its characters only: a
    value whose alarm colour changed but not its text kept the old colour (a PV back to
    NO_ALARM stayed magenta beside an empty alarm cell)."""
    if type(old) is not type(new) or old != new:
        return True
    return isinstance(new, Text) and (old.style != new.style or old.spans != new.spans)


class JumpRequested(Message):
    """The user started typing a PV name in the table."""

    def __init__(self, text: str) -> None:
        super().__init__()
        #: What was typed so far.
        self.text = text
