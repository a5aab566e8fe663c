"""Command palette: every console action, plus per-PV jump/details/exposure commands."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterator

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .widgets.pvtable import COLUMNS, SORTABLE

#: Per-PV commands are offered once the query has this many characters (10,000 PVs times
#: three commands is too many to score on every keystroke of a short query).
MIN_PV_QUERY = 2
#: At most this many per-PV hits per query.
MAX_PV_HITS = 60


class ConsoleCommands(Provider):
    """Actions of the console as palette commands."""

    def _actions(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        app: Any = self.app
        yield "Help: keys of this view", "Show or hide the keys and what the view is (? or F1)", app.action_toggle_help
        yield "Show PV table", "Main view: every PV, live (1)", partial(app.action_view, "pvs")
        yield "Show connections", "Clients per protocol and per PV (2)", partial(app.action_view, "connections")
        yield "Show put log", "Every put over CA and PVA (3)", partial(app.action_view, "puts")
        yield "Show server log", "Engine and EPICS library messages (4)", partial(app.action_view, "log")
        yield ("Toggle PVA exposure of marked PVs", "On ↔ off for the marked rows or the cursor row (e)",
               partial(app.action_exposure_selected, "on/off"))
        yield ("Toggle PVA read-only of marked PVs", "Read-only ↔ on for the marked rows or the cursor row (w)",
               partial(app.action_exposure_selected, "ro"))
        yield "Filter PVs", "Type text or a glob in the filter box (/)", app.action_filter
        yield "Clear PV filters", "Show every PV again: no text filter, every plugin", app.action_clear_filters
        yield "Jump to PV…", "Type a name; the cursor follows (j)", app.action_jump
        yield "Details of the cursor PV", "Definition, PVA mapping, puts, clients (Enter)", app.action_details
        yield "Mark or unmark the cursor PV", "For a change of many PVs at once (space)", partial(app.in_view, "pvs", "action_mark")
        yield "Mark every shown PV", "Every row the filters show (+)", partial(app.in_view, "pvs", "action_mark_all")
        yield "Unmark every PV", "Clear the marks (-)", partial(app.in_view, "pvs", "action_unmark_all")
        for key, label, _ in COLUMNS:
            if key in SORTABLE:
                yield (f"Sort PVs by {label}", "s steps through the columns",
                       partial(app.in_view, "pvs", "set_sort", key))
        yield "Reverse the PV sort order", "Ascending ↔ descending (r)", partial(app.in_view, "pvs", "action_reverse_sort")
        yield "Toggle following the put log", "Follow the newest put, or stop following (f)", app.action_follow_puts
        yield "Filter the put log", "PV, client, result or reason (/ in the put log)", partial(app.in_view, "puts", "action_filter")
        yield "Toggle following the server log", "Follow the newest line, or stop following (f in the log)", partial(app.in_view, "log", "action_follow")
        yield "Toggle dark/light", "Switch between the dark and light themes", app.action_toggle_dark
        for plugin in sorted({p.name for p in getattr(app.source, "plugins", [])}):
            yield f"Filter by plugin: {plugin}", "Show only this plugin's PVs", partial(app.action_plugin, plugin)
        yield "Filter by plugin: all", "Show every plugin's PVs", partial(app.action_plugin, "")

    async def discover(self) -> Hits:
        for name, help_text, callback in self._actions():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._actions():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
        if len(query) < MIN_PV_QUERY:
            return
        app: Any = self.app
        wanted = set(query.upper().replace(" ", ""))
        hits = 0
        for pv in app.states:
            if not wanted <= set(pv) | set("JUMPTODETAILSOGGLEXPOSURE"):
                continue
            for verb, action in (("Jump to", app.action_goto), ("Details of", app.action_details),
                                 ("Toggle PVA exposure of", app.action_toggle_pv)):
                text = f"{verb} {pv}"
                score = matcher.match(text)
                if score > 0:
                    hits += 1
                    yield Hit(score, matcher.highlight(text), partial(action, pv))
            if hits >= MAX_PV_HITS:
                return
