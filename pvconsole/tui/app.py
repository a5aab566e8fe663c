"""The console: a Textual app over the engine's snapshot and change stream.

The app never blocks the servers: it drains the engine's change stream on a timer (newest
state per PV) and touches only the rows that changed, inside ``batch_update``. Exposure
changes run in a worker thread because they write the state file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from datetime import tzinfo
from typing import Any, Callable, Iterator

from platformdirs import user_downloads_path
from textual import events, work
from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import ContentSwitcher, Input

from .. import exitguard, logsetup
from ..config import Config
from ..gcpolicy import QUIET, IdleCollector, loading, settle
from ..mirror import Exposure, PVState
from . import fmt
from .commands import ConsoleCommands
from .focus import focus_now
from .logbuffer import LogBuffer
from .priority import lower_priority
from .screens.confirm import ConfirmScreen
from .screens.details import DetailsScreen
from .screens.main import MainScreen
from .settings import (CATCH_UP_PENDING, CLIENTS_INTERVAL, GC_CHECK, GC_INTERVAL, REFRESH,
                       STATS_INTERVAL, UI_NICE, WARM_AFTER)
from .source import (DataSource, client_counts, clients, clients_per_protocol, putlog_since,
                     set_exposure_many)
from .status import StatusModel
from .widgets.connections import ConnectionsView
from .widgets.header import StatusHeader
from .widgets.putlog import PutLogView
from .widgets.pvview import PVView
from .widgets.serverlog import ServerLog

log = logging.getLogger("pvconsole.tui")

#: Event-loop turns a routed key may take to be handled (it bubbles from the focused
#: widget up through its parents' queues) before the next is routed anyway.
KEY_SETTLE_TURNS = 50
#: Names listed in the confirmation question before "and N more".
CONFIRM_NAMES = 5
#: Seconds an exposure change may take to show in the PV states before the next change is
#: let through anyway (the engine sends it with its next push, 5 times a second).
EXPOSURE_SETTLE = 2.0


@contextmanager
def _unless_shutting_down(what: str) -> Iterator[None]:
    """Every view is mounted for the app's lifetime: a widget (or the screen stack) can be
    missing only when a timer or a worker's result fires while the app tears its screens
    down on exit. That is not an error."""
    try:
        yield
    except (NoMatches, ScreenStackError):
        log.debug("%s during shutdown", what, exc_info=True)


class PvConsoleApp(App[int]):
    """The operator console for one engine (or any :class:`DataSource`)."""

    CSS_PATH = "app.tcss"
    TITLE = "pvconsole"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit_now", "Quit", show=False, priority=True),
        Binding("t", "toggle_dark", "Theme", show=False),
        Binding("question_mark,f1", "toggle_help", "Help", show=False),
    ]

    def __init__(self, source: DataSource, *, log_buffer: LogBuffer | None = None, live: bool = True,
                 clock: Callable[[], float] = time.monotonic, tz: tzinfo | None = None,
                 refresh: float = REFRESH, stats_interval: float = STATS_INTERVAL,
                 restarted: str = "") -> None:
        """
        Args:
            source: The engine, or a fixed source with the same interface.
            log_buffer: Where the server-log screen reads log records from.
            live: Poll on timers; False renders the first state only (snapshot tests call
                :meth:`poll` and :meth:`sample_stats` themselves).
            clock: Time base of the rate computations.
            tz: Zone for displayed times (None: local).
            refresh: Seconds between drains of the change stream.
            stats_interval: Seconds between status samples.
            restarted: Why this console was started again over a running engine (said
                once it is up).
        """
        esc_key_as_alt()
        super().__init__()
        self.source = source
        self.restarted = restarted
        self.log_buffer = log_buffer
        self.live = live
        self.clock = clock
        self.tz = tz
        self.refresh_interval = refresh
        self.stats_interval = stats_interval
        self.status = StatusModel()
        self.states: dict[str, PVState] = {}
        self.put_seq = 0
        self.main = MainScreen(tz)
        self._changes: Any = None
        #: True once the model is loaded (tests wait for it).
        self.loaded = False
        #: Newest client report (dicts), None when the engine cannot tell or not fetched yet.
        self.known_clients: list[dict[str, Any]] | None = None
        #: Per-PV (CA, PVA) counts of that report (made in the worker that fetched it).
        self.known_counts: dict[str, tuple[int, int]] | None = None
        self._clients_at = -1e9  # time.monotonic() when the newest report arrived
        self._gone_told = False
        self._focus: frozenset[str] | None = None  # PVs the engine sends every change of
        self._warming = False  # the next client report fills the hidden connections view
        self.gc = IdleCollector(GC_INTERVAL)
        #: PVs of the last exposure change whose new state is not in ``states`` yet (a new
        #: change would act on stale states), waited for until ``_exposure_deadline``
        self._exposure_waiting: set[str] = set()
        self._exposure_deadline = 0.0  # time.monotonic(); inf while the change is made

    # ------------------------------------------------------------------ lifecycle

    @property
    def changes(self) -> Any:
        """The change stream this console drains (None before it loads)."""
        return self._changes

    def notify(self, message: str, *, markup: bool = False, **kwargs: Any) -> None:
        """Notifications quote PV names, values and errors: not markup unless asked, and
        nothing in them a terminal would act on (their line breaks kept)."""
        if not markup:
            message = "\n".join(fmt.visible(line) for line in message.split("\n"))
        super().notify(message, markup=markup, **kwargs)

    def _handle_exception(self, error: Exception) -> None:
        """An error in the console itself: its traceback goes to the server log too (the
        console is started again over the same engine, see :func:`run_console`)."""
        log.error("the console failed: %s: %s", type(error).__name__, error, exc_info=error)
        super()._handle_exception(error)

    def get_default_screen(self) -> MainScreen:
        return self.main

    def start_model(self) -> None:
        """Load the model; called by the main screen once its widgets exist."""
        self._changes = self.source.subscribe()  # before the snapshot: no change is lost
        with loading():  # 10,000 rows: settled below
            self.states = {s.name: s for s in self.source.snapshot()}
            self.pv_view.table.dark = self.current_theme.dark
            self.pv_view.load(list(self.states.values()))
        self.sample_stats()
        self.poll()
        self.pv_view.table.focus()
        self.theme_changed_signal.subscribe(self, self._on_theme)
        for plugin in getattr(self.source, "plugins", []):
            if plugin.error:
                self.status.failed_plugins += 1
                self.notify(f"plugin {plugin.name} not loaded: {plugin.error}", severity="error",
                            timeout=30)
        if self.restarted:
            self.notify(self.restarted, severity="error", timeout=60)
        self.loaded = True
        settle()  # the table's 10,000 rows too
        if not self.live:
            self._clients_ready(*self._client_report())
        if self.live:
            self.set_interval(CLIENTS_INTERVAL, self.refresh_clients, name="clients")
            self.set_interval(self.refresh_interval, self.poll, name="poll")
            self.set_interval(self.stats_interval, self.sample_stats, name="stats")
            self.set_timer(WARM_AFTER, self._warm_connections)
            self.gc.defer()  # full collections when the operator is not typing
            self.set_interval(GC_CHECK, self.gc.poll, name="gc")

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self.gc.input_seen()
        routed = isinstance(event, events.Key) and not event.is_forwarded  # (forwarding marks it)
        if routed and event.key.startswith("alt+") and event.character and len(event.character) == 1:
            # Esc and the next key read together (typed fast over ssh): the terminal's
            # alt+key; no binding here uses alt, so it is taken for the two keys it was
            await self.on_event(events.Key("escape", "\x1b"))
            await self.on_event(events.Key(unalt(event.key), event.character))
            return
        if not (routed and await self._bound_at_once(event)):
            await super().on_event(event)
        if routed:
            await self._key_handled()

    async def _bound_at_once(self, key: events.Key) -> bool:
        """Run the key's binding now, if the focus chain has one, as Textual would once
        the key had bubbled back to the App: behind the keys read with it, which the App
        routes first (``/volt`` sent "volt" to the table, not to the filter box ``/``
        focuses). Printable keys in a text box are the box's."""
        if isinstance(self.focused, Input) and key.is_printable:
            return False
        if await self._check_bindings(key.key, priority=True):
            return True
        return await self._check_bindings(key.key)

    async def _key_handled(self) -> None:
        """Wait until the key just routed has left the focus chain's queues.

        The App routes each key to the focused widget's queue and goes on to the next;
        keys read together (typed over a laggy ssh link) were all routed before the
        widget handled the first, so ``/volt`` sent "volt" to the table (whose ``t``
        toggles the theme) instead of the filter box that ``/`` focuses. Actions that
        move focus do it at once (:func:`focus_now`), so the next key goes where it went.
        """
        quiet = 0
        for _ in range(KEY_SETTLE_TURNS):
            focused = self.focused
            chain = [] if focused is None else [focused, *focused.ancestors]
            if any(w is not self and w.message_queue_size for w in chain):
                quiet = 0
            else:
                quiet += 1
                if quiet >= 2:  # and a turn more: a handler may post as it returns
                    return
            await asyncio.sleep(0)

    def on_unmount(self) -> None:
        self.gc.restore()

    # ------------------------------------------------------------------ views

    @property
    def pv_view(self) -> PVView:
        return self.main.query_one(PVView)

    @property
    def current_view(self) -> str:
        return str(self.main.query_one(ContentSwitcher).current)

    def poll(self) -> None:
        """Drain the engine: changed PVs, new puts, new log lines; update what is shown."""
        if not self.loaded:
            return
        with _unless_shutting_down("poll"):
            self._poll()
            self._send_focus()

    def _poll(self) -> None:
        changed = self._changes.drain()
        for s in changed:
            self.states[s.name] = s
        if self._exposure_waiting:  # the last exposure change shows: the next may come
            self._exposure_waiting.difference_update(s.name for s in changed)
        records = putlog_since(self.source, self.put_seq)
        if records:
            self.put_seq = records[-1].seq
        lines = self.log_buffer.drain() if self.log_buffer is not None else []
        main_visible = self._main_shown()
        with self.batch_update():
            pv_view = self.pv_view
            pv_view.table.apply(changed)
            connections = self.main.query_one(ConnectionsView)
            connections.note(changed)
            if main_visible and self.current_view == "pvs":
                pv_view.table.flush()
                pv_view.update_info()
            if main_visible and self.current_view == "connections":
                self._show_connections()
            elif self._catch_up_hidden(connections.pending):
                self._show_connections()  # many clients came or went: not on the next key
            self.main.query_one(PutLogView).add(records)
            if lines:
                self.main.query_one(ServerLog).add(lines)
            screen = self.screen
            if isinstance(screen, DetailsScreen):
                name = screen.state.name
                if records or any(s.name == name for s in changed):
                    screen.show(self.states[name])

    def _send_focus(self) -> None:
        """Tell the engine which PVs are on screen: it sends every change of those and
        only alarm, exposure and client changes of the rest (``enginehost.Focus``)."""
        set_focus = getattr(self.source, "set_focus", None)
        if set_focus is None:  # an in-process engine: its change stream costs no pipe
            return
        table = self.pv_view.table
        table_shown = self._main_shown() and self.current_view == "pvs"
        names: frozenset[str] | None
        if table_shown and table.needs_every_change():
            names = None
        else:
            shown = table.window() if table_shown else []
            if isinstance(self.screen, DetailsScreen):
                shown.append(self.screen.state.name)
            names = frozenset(shown)
        if names != self._focus:
            self._focus = names
            set_focus(None if names is None else sorted(names))

    def sample_stats(self) -> None:
        """Read the engine's counters and redraw the visible header."""
        if not self.loaded and self._changes is None:
            return
        stats = self.source.stats()
        self.status.sample(stats, self.clock())
        with _unless_shutting_down("stats"):  # (a quit under load: CI saw it fail a test)
            puts = self.main.query_one(PutLogView)
            if not puts.started and getattr(stats, "uptime", 0):  # (earlier runs' puts: dimmed)
                puts.set_started(getattr(self.source, "now", time.time)() - stats.uptime)
        gone = getattr(self.source, "gone", "")
        if gone and not self._gone_told:  # the engine process died (a plugin crashed it)
            self._gone_told = True
            self.status.gone = gone  # the header says so, not the last addresses
            self.main.add_class("-gone")  # and every table looks as stale as it is
            log.error("%s: PVs are no longer served", gone)
            self.notify(f"{gone}: PVs are no longer served", severity="error", timeout=3600)
        with _unless_shutting_down("stats"):
            for header in self.screen.query(StatusHeader):
                header.show(self.status)

    def _show_connections(self) -> None:
        self.main.query_one(ConnectionsView).show(self.states, self.known_clients, self.known_counts)

    def refresh_clients(self, fresh: bool = False) -> None:
        """Ask for a client report when a screen that shows clients is visible.

        Args:
            fresh: Only when the newest report is older than ``CLIENTS_INTERVAL`` (a view
                switch shows the one it has: with 10,000 channels a CA report holds the
                CA server's thread for tens of milliseconds).
        """
        if not self.live or not self.loaded:
            return
        if fresh and time.monotonic() - self._clients_at < CLIENTS_INTERVAL:
            return
        shown = False
        with _unless_shutting_down("client refresh"):
            shown = self._connections_shown() or isinstance(self.screen, DetailsScreen)
        if shown:
            self._fetch_clients()

    def _catch_up_hidden(self, pending: int) -> bool:
        """Bring the hidden connections view up to date now? When many PVs' clients
        changed (its next show would walk them all on a key press), a client report is at
        hand and nobody typed for a while."""
        return pending >= CATCH_UP_PENDING and self.known_clients is not None and self.gc.quiet()

    def _warm_connections(self) -> None:
        """Fill the connections view once, hidden, while nobody types: its first show walks
        every PV and adds up to 1,000 rows (~300 ms with 10,000 PVs with clients), better
        spent before the operator asks for it. Later shows touch only what changed."""
        if not self.gc.quiet():
            self.set_timer(QUIET, self._warm_connections)
            return
        self._warming = True
        self._fetch_clients()

    def _main_shown(self) -> bool:
        """The main screen shows, alone or under a dialog (confirmation, command palette)."""
        stack = self.screen_stack
        if not stack:  # a timer that fires while the app takes its screens down on exit
            return False
        return stack[-1] is self.main or (
            len(stack) > 1 and stack[-1].is_modal and stack[-2] is self.main)

    def _connections_shown(self) -> bool:
        return self._main_shown() and self.current_view == "connections"

    @work(thread=True, exclusive=True, group="clients", name="clients")
    def _fetch_clients(self) -> None:
        """Worker thread: the engine's report waits for the driver thread."""
        report = self._client_report()
        if not self.is_running:  # quit while the report was being made
            return
        # call_from_thread: one report every CLIENTS_INTERVAL, not a hot path
        self.call_from_thread(self._clients_ready, *report)

    def _client_report(self) -> tuple[list[dict[str, Any]] | None, dict[str, tuple[int, int]] | None]:
        """The engine's client report and its per-PV counts (a walk over every channel of
        every client: done here, in the worker, not on the UI thread)."""
        known = clients(self.source)
        if known is not None and known == self.known_clients:  # the engine's shared report
            return self.known_clients, self.known_counts  # the same objects: nothing to redo
        return known, client_counts(known) if known is not None else None

    def _clients_ready(self, known: list[dict[str, Any]] | None,
                       counts: dict[str, tuple[int, int]] | None) -> None:
        self.known_clients, self.known_counts = known, counts
        self._clients_at = time.monotonic()
        with _unless_shutting_down("client report"):
            if self._connections_shown() or self._warming:
                self._warming = False
                self._show_connections()
            elif isinstance(self.screen, DetailsScreen):
                self.screen.show(self.states[self.screen.state.name])

    def _on_theme(self, theme: Any) -> None:
        table = self.pv_view.table
        if table.dark != theme.dark:
            table.dark = theme.dark
            table.rebuild()
        if isinstance(self.screen, DetailsScreen):  # its alarm colours are the theme's
            self.screen.show(self.screen.state)

    # ------------------------------------------------------------------ actions

    def action_view(self, view: str) -> None:
        """Switch the main screen to one of its views (from any screen)."""
        if self.screen is not self.main:
            self.switch_to_main()
        self.main.show_view(view)
        if view == "pvs":
            self.pv_view.table.flush()
            self.pv_view.update_info()
            focus_now(self.pv_view.table)
        elif view == "connections":
            self._show_connections()
            self.refresh_clients(fresh=True)
            focus_now(self.main.query_one("#pv-clients"))
        elif view == "puts":
            self.main.query_one(PutLogView).show_newest()
            focus_now(self.main.query_one("#put-table"))
        elif view == "log":
            focus_now(self.main.query_one(ServerLog))

    def switch_to_main(self) -> None:
        """Pop pushed screens (details, dialogs) back to the main screen."""
        while self.screen is not self.main and len(self.screen_stack) > 1:
            self.pop_screen()

    def action_details(self, name: str | None = None) -> None:
        """Open the details screen of a PV (default: the cursor row)."""
        name = name or self.pv_view.table.current_name()
        if name is None or name not in self.states:
            return
        if isinstance(self.screen, DetailsScreen):
            if self.screen.state.name == name:  # Enter again (keys in a burst): it is open
                return
            self.pop_screen()
        self.push_screen(DetailsScreen(self.source, self.states[name], self.tz))
        self.refresh_clients()

    def action_goto(self, name: str) -> None:
        """Show a PV's row in the table, clearing filters that hide it."""
        self.action_view("pvs")
        view = self.pv_view
        if name not in view.table.rows:
            view.set_plugin(None)
            view.set_filter("")
        view.table.jump(name)

    def action_filter(self) -> None:
        self.action_view("pvs")
        self.pv_view.action_filter()

    def action_set_filter(self, pattern: str) -> None:
        self.action_view("pvs")
        self.pv_view.set_filter(pattern)

    def action_plugin(self, plugin: str) -> None:
        self.action_view("pvs")
        self.pv_view.set_plugin(plugin or None)

    def action_clear_filters(self) -> None:
        """Every PV again: no text filter, every plugin."""
        self.action_plugin("")
        self.pv_view.set_filter("")

    def action_jump(self) -> None:
        self.action_view("pvs")
        self.pv_view.action_jump()

    def action_follow_puts(self) -> None:
        self.in_view("puts", "action_follow")

    def in_view(self, view: str, method: str, *args: Any) -> None:
        """Show a view and call a method of its main widget (the PV table, the put log, the
        server log) as its key would: the palette's way to every key of every view."""
        self.action_view(view)
        widget: Any = {"pvs": lambda: self.pv_view.table,
                       "puts": lambda: self.main.query_one(PutLogView),
                       "log": lambda: self.main.query_one(ServerLog)}[view]()
        getattr(widget, method)(*args)

    def action_toggle_help(self) -> None:
        """? or F1: the keys of the focused view, and what it is; again to hide them."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def action_quit(self) -> None:
        """q (and the palette's Quit): quitting stops every IOC this console hosts, so it
        asks first while clients are connected; ctrl+c quits at once."""
        if isinstance(self.screen, ConfirmScreen):  # q in a dialog is not an answer
            return
        if getattr(self.source, "gone", ""):
            self.exit()
            return
        # a fresh client report: a CA client that polls (channels, no monitor) counts too
        known = await asyncio.get_running_loop().run_in_executor(None, clients, self.source)
        if known is not None:
            per = clients_per_protocol(c for c in known if c.get("channels"))
            who = f"{per['ca']} CA and {per['pva']} PVA client(s) are connected"
            busy = per["ca"] + per["pva"]
        else:  # the engine cannot tell: the PVs' flags
            busy = sum(1 for s in self.states.values() if s.ca_monitored or s.pva_clients)
            who = f"{busy} PV(s) have connected clients"
        if not busy:
            self.exit()
            return
        question = (f"{who}. Quitting stops serving all {len(self.states)} PVs, on CA "
                    "and PVA. Quit?")
        self.push_screen(ConfirmScreen(question, yes="Quit"),
                         lambda yes: self.exit() if yes else None)

    def action_quit_now(self) -> None:
        self.exit()

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Textual saves into the user's Downloads folder, which an IOC host's service
        account seldom has: there the screenshot goes into the current directory."""
        if path is None and not user_downloads_path().is_dir():
            path = os.getcwd()
        return super().deliver_screenshot(filename, path, time_format)

    def on_delivery_complete(self, event: events.DeliveryComplete) -> None:
        """Textual's notice of a saved screenshot is markup; notifications here are not."""
        if event.name == "screenshot":
            event.prevent_default()
            self.notify(f"Saved screenshot to {event.path}" if event.path else "Saved screenshot",
                        title="Screenshot")

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_exposure_selected(self, mode: str) -> None:
        if self.screen is not self.main or self.current_view != "pvs":
            # (the palette, from another view: the cursor row is one nobody sees)
            self.action_view("pvs")
            self.notify("PV table shown: mark the rows (space) or put the cursor on one, "
                        "then press e (on/off) or w (read-only)")
            return
        table = self.pv_view.table
        targets, hidden = table.targets(), table.hidden_marks()
        if hidden and not targets:
            self.notify(f"the {hidden} marked PV(s) are hidden by the filter: nothing changed "
                        "(Esc clears the filter)", severity="warning")
            return
        if hidden:
            self.notify(f"{hidden} marked PV(s) hidden by the filter left as they are")
        self.request_exposure(targets, mode)

    def action_toggle_pv(self, name: str) -> None:
        self.request_exposure([name], "on/off")

    # ------------------------------------------------------------------ exposure

    def request_exposure(self, names: list[str], mode: str) -> None:
        """Change PVA exposure; ask first when it would cut off connected PVA clients.

        Args:
            names: PVs to change.
            mode: 'on', 'off', 'ro', or a toggle: 'on/off' (all off -> back on as each
                PV's pvdb defines it, read-only where it says so; else off), 'ro' from
                the keyboard means read-only unless all are read-only already.
        """
        states = [self.states[n] for n in names if n in self.states]
        if not states:
            self.notify("no PV selected", severity="warning")
            return
        if self._exposure_waiting and time.monotonic() < self._exposure_deadline:  # e y e, fast
            self.notify("the last PVA exposure change is still being applied: press again",
                        severity="warning", timeout=2)
            return
        own = self._own_pvs()
        if any(s.name in own for s in states) and not all(s.name in own for s in states):
            states = [s for s in states if s.name not in own]  # a bulk change of the IOCs'
            self.notify("the console's own PVs are left as they are (pvconsole ctl needs "
                        "them): change them on their own")
        if mode == "on/off":  # back on as the pvdb has it; one PV it hides: on, as asked
            back = Exposure.SHOWN if len(states) == 1 else Exposure.AS_DEFINED
            mode = back if all(s.exposure == "off" for s in states) else "off"
        elif mode == "ro" and all(s.exposure == "ro" for s in states):
            mode = Exposure.WRITABLE  # not those the pvdb makes read-only
        targets = [s.name for s in states if s.exposure != mode]
        if not targets:
            self.notify(f"already PVA {mode}")
            return
        busy = [s for s in states if s.name in targets and s.pva_clients
                and mode in (Exposure.OFF, Exposure.READONLY)]
        if not busy:
            self.apply_exposure(targets, mode)
            return
        shown = ", ".join(s.name for s in busy[:CONFIRM_NAMES])
        more = f" and {len(busy) - CONFIRM_NAMES} more" if len(busy) > CONFIRM_NAMES else ""
        what = "disconnects them" if mode == "off" else "refuses their puts"
        already = len(states) - len(targets)  # (of the rows marked: nothing to change)
        left = f" ({already} more marked: already PVA {mode})" if already else ""
        question = (f"{len(busy)} PV(s) have connected PVA clients: {shown}{more}.\n"
                    f"Setting PVA {mode} for {len(targets)} PV(s){left} {what}. Continue?")

        def answered(yes: bool | None) -> None:
            if yes:
                self.apply_exposure(targets, mode)

        self.push_screen(ConfirmScreen(question, yes=f"PVA {mode}"), answered)

    def _own_pvs(self) -> set[str]:
        """The console's control PVs (its built-in plugin's)."""
        builtin = {p.name for p in getattr(self.source, "plugins", []) if p.source == "builtin"}
        return {n for n, s in self.states.items() if s.plugin in builtin}

    def apply_exposure(self, names: list[str], mode: str) -> None:
        """Make the change; the next one waits until its result is in the PV states
        (the engine sends it with its next push)."""
        self._exposure_waiting = set(names)  # a poll may bring states before the answer
        self._exposure_deadline = float("inf")
        self._apply_exposure(names, mode)

    def _exposure_applied(self, message: str, severity: str, changed: list[str]) -> None:
        self._exposure_waiting &= set(changed)  # those not changed bring no new state
        self._exposure_deadline = time.monotonic() + EXPOSURE_SETTLE
        self.notify(message, severity=severity)  # type: ignore[arg-type]

    @work(thread=True, group="exposure", name="set-exposure")
    def _apply_exposure(self, names: list[str], mode: str) -> None:
        """Worker thread: the engine persists every change to its state file."""
        changed: list[str] = []
        try:
            changed = set_exposure_many(self.source, names, mode)
        except Exception as e:  # the operator must see why, the console must stay up
            log.exception("PVA exposure %s failed", mode)
            message, severity = f"PVA {mode} failed: {e}", "error"
        else:
            said = {Exposure.AS_DEFINED: "on (as the pvdb defines them)",
                    Exposure.SHOWN: "back on",
                    Exposure.WRITABLE: "writable"}.get(mode, mode)
            message, severity = f"PVA {said}: {len(changed)} PV(s)", "information"
            kept = len(set(names) - set(changed))
            if kept and mode in Exposure.REQUESTS:
                message += (f"; {kept} left as their pvdb defines them (pvconsole ctl expose "
                            "NAME on|ro overrides)")
        # call_from_thread: a rare, operator-triggered event; waiting for the UI is fine
        if self.is_running:
            self.call_from_thread(self._exposure_applied, message, severity, changed)


# ---------------------------------------------------------------------- entry point

def esc_key_as_alt() -> None:
    """Make Esc read together with a digit (``\x1b3``, typed fast over ssh) ``alt+3``, as
    with a letter, so :meth:`PvConsoleApp.on_event` takes it for the two keys: Textual
    reads it as WezTerm-on-macOS's Option key (``£``), which lost the view key or typed
    ``£`` into the filter. Its table is private: if it changes, nothing is done."""
    try:
        from textual._ansi_sequences import ANSI_SEQUENCES_KEYS as table
        for seq in [k for k, v in table.items()
                    if len(k) == 2 and k[0] == "\x1b" and isinstance(v, str) and len(v) == 1]:
            table.pop(seq)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a Textual upgrade: keys as Textual reads them
        pass


def unalt(key: str) -> str:
    """``alt+2`` -> ``2``, ``alt+shift+j`` -> ``J``, ``alt+slash`` -> ``slash``."""
    name = key.removeprefix("alt+")
    if name.startswith("shift+") and len(name) == 7:
        return name[-1].upper()
    return name


class Restarts:
    """At most ``MAX`` console restarts within ``WINDOW`` seconds: a console that fails
    at once every time ends, with the servers, as it did before it was restarted."""

    MAX = 3
    WINDOW = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._at: list[float] = []

    def allow(self) -> bool:
        now = self.clock()
        self._at = [t for t in self._at if now - t < self.WINDOW]
        if len(self._at) >= self.MAX:
            return False
        self._at.append(now)
        return True


def run_console(cfg: Config, verbose: int) -> int:
    """Run the engine with the console until the operator quits; 0 after a clean stop.

    The engine runs in a child process (:mod:`pvconsole.enginehost`): drawing the console
    takes the GIL for tens of milliseconds at a time, which the servers must not wait for.
    """
    from ..engine import StartupError
    from ..fdcapture import capture
    from .remote import RemoteSource

    fds = capture()  # anything a library prints in this process lands in the log too
    buffer = LogBuffer()
    logsetup.install(buffer, verbose)
    # the screen stays blank until the engine serves: say what is going on meanwhile
    os.write(fds.saved_err, b"pvconsole: starting the CA and PVA servers, loading plugins...\n")
    try:
        source = RemoteSource.start(cfg, verbose, buffer)
    except StartupError as e:
        fds.restore()
        print(f"pvconsole: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        fds.restore()
        print("pvconsole: interrupted while starting: nothing is served", file=sys.stderr)
        return 130
    started = time.monotonic()  # (serving since)
    lower_priority(UI_NICE)  # every thread of the console: the servers come first
    apps: list[PvConsoleApp] = []
    terminated = threading.Event()

    def on_sigterm(signum: int, frame: Any) -> None:
        # signal handlers run on the UI thread; exit from a helper thread via the app's loop
        terminated.set()
        app = apps[-1]
        threading.Thread(target=app.call_from_thread, args=(app.exit,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    forward_to_engine(source.proc.pid, on_sigterm)
    restarts = Restarts()
    why = ""
    try:
        while True:
            app = PvConsoleApp(source, log_buffer=buffer, restarted=why)
            apps.append(app)
            app.run()
            source.unsubscribe(app.changes)
            if not app.return_code or source.gone or terminated.is_set() or not restarts.allow():
                break
            # a bug of the console must not stop the IOCs it hosts: it starts again
            why = ("the console stopped on an error and was started again; the servers went "
                   "on serving (traceback in the server log, 4)")
            log.warning("console restarted after an error (%d in %g s at most)",
                        Restarts.MAX, Restarts.WINDOW)
    finally:
        code = source.stop()
        log.info("stopped")
        fds.restore()
    if code != 0:  # it died while the console ran, or had to be killed
        print(f"pvconsole: {source.gone or 'engine process did not stop: killed'}", file=sys.stderr)
        return 1
    if apps[-1].return_code:  # the console itself failed (its traceback is above): not a clean stop
        print("pvconsole: the console failed; the servers were stopped", file=sys.stderr)
        return 1
    print(f"pvconsole: {stopped_summary(source.stats(), cfg, time.monotonic() - started)}",
          file=sys.stderr)
    return 0


def forward_to_engine(pid: int, quit_console: Callable[[int, Any], None]) -> None:
    """SIGHUP, SIGUSR1 and SIGUSR2 sent to the console go to the engine's process, which
    runs the hosted scripts' handlers for them or stops on them (it is in a session of its
    own: a terminal's signals do not reach it). A SIGHUP whose terminal hung up also
    quits the console (and the engine with it); one an operator sent (``kill -HUP``, a
    script's configuration reload) leaves it running."""
    def forward(signum: int, frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass
        if signum == signal.SIGHUP and not _terminal_alive():
            quit_console(signum, frame)
    for signum in exitguard.FORWARDED_SIGNALS:
        signal.signal(signum, forward)


def _terminal_alive() -> bool:
    """Whether the console's terminal is still there (a hung-up one has no foreground
    process group)."""
    try:
        os.tcgetpgrp(sys.__stdin__.fileno())
        return True
    except (OSError, AttributeError, ValueError):
        return False


def stopped_summary(stats: Any, cfg: Config, seconds: float) -> str:
    """The line left on the terminal after the console quit (its screen is gone): what
    was served, for how long (``seconds``), and where the put log is."""
    if stats is None:
        return "stopped"
    return (f"stopped after {fmt.duration(seconds)}: served {stats.pvs} PVs (CA {stats.ca}, "
            f"PVA {stats.pva}); {stats.puts} put(s) this run, put log in {cfg.state_dir}")
