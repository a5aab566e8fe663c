"""The engine in a process of its own, serving a console over one pipe.

Why a process: the console draws in Python. In the servers' process every frame holds the
GIL that the CA loop, the PVA posts and the plugins' threads need, so a view switch (a
full-screen compositor pass, 50-150 ms with 10,000 PVs) stalled the servers and the
servers' load slowed the keys. Here the engine runs as ``--headless`` does, plus one
thread that pushes what a console shows (changed PVs, log lines, puts, counters) every
``PUSH_INTERVAL`` and answers its requests. A console that dies or is closed only costs
the engine its pipe: end of file on the pipe stops the engine as SIGTERM does.

Wire format (``multiprocessing.connection`` pickles, one duplex connection):

- console -> engine: the :class:`~pvconsole.config.Config` first, then
  ``("call", id, method, args)`` for a method in :data:`CALLS`, ``("focus", names)``
  (:class:`Focus`: ``None`` for every change, else the PVs on screen), or ``("stop",)``.
- engine -> console: ``("started", info)`` or ``("failed", message)`` once, then
  ``("push", state_rows, log_lines, put_records, stats)`` (:func:`state_rows`) and
  ``("reply", id, ok, result_or_message)``, and ``("stopped",)`` last.

Run as ``python -m pvconsole.enginehost FD VERBOSE`` by :mod:`pvconsole.tui.remote`;
the engine starts in this process only after the configuration arrives.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import asdict, is_dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

from . import exitguard
from .mirror import PVState
from .tui.logbuffer import LogBuffer
from .tui.source import EntryView, entry_extra, served_dict

log = logging.getLogger("pvconsole.host")

#: Seconds between pushes to the console (it redraws every 0.25 s). Changes of one PV
#: within it go as one; each state costs the servers' process ~5 us to send.
PUSH_INTERVAL = 0.2
#: States built between two GIL hand-overs (~0.2 ms of the servers' process).
PAUSE_EVERY = 32
#: States per push message (each pickled in one GIL hold of ~0.2 ms).
SEND_EVERY = 64
#: Seconds between engine counters in the pushes.
STATS_INTERVAL = 1.0
#: What a console may call (name -> what answers it, given the engine and the args).
CALLS: dict[str, Callable[..., Any]] = {
    "snapshot": lambda engine: state_rows(engine.snapshot()),
    "entry": lambda engine, name: entry_view(engine, name),
    "pva_structure": served_dict,  # a p4p Value does not pickle
    "set_exposure": lambda engine, pattern, mode: engine.set_exposure(pattern, mode),
    "set_exposure_many": lambda engine, names, mode: engine.set_exposure_many(names, mode),
    "clients": lambda engine: [asdict(c) if is_dataclass(c) else dict(c) for c in engine.clients()],
    "putlog_for_pv": lambda engine, name, n: engine.putlog.for_pv(name, n) if engine.putlog else [],
    "pva_client_conf": lambda engine: engine.pva_client_conf(),
}
#: Calls answered in order with the pushes (a snapshot must not be older than a push
#: the console applies after it).
ORDERED = {"snapshot"}


def state_rows(states: list[PVState]) -> list[tuple]:
    """PV states as plain tuples: pickled without a class reference each, paid by the
    servers' process for every change the console is sent."""
    return [tuple(s) for s in states]


def states_from_rows(rows: list[tuple]) -> list[PVState]:
    """The console's side of :func:`state_rows`."""
    return list(map(PVState._make, rows))


class Focus:
    """Which changes the console is sent: every one, or those of the PVs it shows plus,
    for the others, changes of what it counts and colours off screen (alarm, exposure,
    clients: ``Entry.flags``). A held PV goes, as it is then, when it comes on screen or
    the focus is lifted.

    Why: flat out, every PV changes every second or two. Building each change's state
    (6 us: the value is formatted) and pickling it here, then unpickling and applying it
    in the console, cost CPU the servers and clients need, for rows nobody sees.
    """

    def __init__(self) -> None:
        self.names: frozenset[str] | None = None  # None: everything (set by another thread)
        self._held: dict[str, Any] = {}           # entry per PV with a change not sent
        self._sent: dict[str, tuple] = {}         # the flags the console has of each PV

    def set(self, names: list[str] | None) -> None:
        self.names = None if names is None else frozenset(names)

    def select(self, entries: list[Any], pause_every: int = 0) -> list[PVState]:
        """States to send now for these changed entries (and for held ones now shown).

        ``pause_every``: give up the GIL after every so many states built.
        """
        names, held, sent = self.names, self._held, self._sent
        if names is None:
            if held:
                held.update((e.name, e) for e in entries)
                entries = list(held.values())
                held.clear()
            chosen = entries
        else:
            chosen = []
            for e in entries:
                name = e.name
                if name in names or sent.get(name) != e.flags():
                    chosen.append(e)
                    held.pop(name, None)
                else:
                    held[name] = e
            chosen += [held.pop(name) for name in names & held.keys()]
        out = []
        for i, e in enumerate(chosen, 1):
            s = e.state()
            sent[s.name] = s.flags  # the state's own: the entry may have moved on since
            out.append(s)
            if pause_every and i % pause_every == 0:
                time.sleep(0)
        return out


def entry_view(engine: Any, name: str) -> EntryView:
    """The parts of an engine entry the details screen reads, without its server objects."""
    entry = engine.entry(name)
    return EntryView(entry.spec, entry.meta, entry.plugin, entry_extra(entry))


class EngineHost:
    """Serves one console over ``conn`` until it asks to stop or goes away."""

    def __init__(self, engine: Any, conn: Connection, logs: LogBuffer) -> None:
        self.engine = engine
        self.conn = conn
        self.logs = logs
        self.stopping = threading.Event()
        self._send_lock = threading.Lock()
        self._ordered: queue.SimpleQueue[tuple[int, str, tuple]] = queue.SimpleQueue()
        self._changes = engine.subscribe()
        self.focus = Focus()
        self._put_seq = 0

    def send(self, message: tuple) -> bool:
        """Send one message; False once the console is gone."""
        try:
            with self._send_lock:
                self.conn.send(message)
            return True
        except (OSError, EOFError, BrokenPipeError):
            self.stopping.set()
            return False

    def run(self) -> None:
        """Push until stopped; requests are read by a thread of their own."""
        threading.Thread(target=self._receive, name="host-recv", daemon=True).start()
        next_stats = 0.0
        while not self.stopping.is_set():
            self._answer_ordered()
            now = time.monotonic()
            stats = None
            if now >= next_stats:
                stats, next_stats = self.engine.stats(), now + STATS_INTERVAL
            self.push(stats)
            self.stopping.wait(PUSH_INTERVAL)

    def push(self, stats: Any = None) -> None:
        """Send what changed since the last push (nothing when nothing did)."""
        states = self.focus.select(self._changes.drain_entries(), pause_every=PAUSE_EVERY)
        lines = self.logs.drain()
        puts = self.engine.putlog.since(self._put_seq) if self.engine.putlog is not None else []
        if puts:
            self._put_seq = puts[-1].seq
        if not (states or lines or puts or stats is not None):
            return
        # one message per SEND_EVERY states: pickling holds the GIL, and 400 states in one
        # go (2,000 updates/s) held the servers' threads for ~1.5 ms
        last = max(0, len(states) - 1) // SEND_EVERY * SEND_EVERY
        for i in range(0, last, SEND_EVERY):
            if not self.send(("push", state_rows(states[i:i + SEND_EVERY]), [], [], None)):
                return
            time.sleep(0)  # the servers' threads get the GIL between two messages
        self.send(("push", state_rows(states[last:]), lines, puts, stats))

    def _answer_ordered(self) -> None:
        while True:
            try:
                call_id, method, args = self._ordered.get_nowait()
            except queue.Empty:
                return
            self.push()  # everything older goes first
            self._answer(call_id, method, args)

    def _receive(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                log.info("console gone: stopping")
                break
            if message[0] == "stop":
                break
            if message[0] == "focus":
                self.focus.set(message[1])
                continue
            if message[0] != "call":
                log.warning("unknown message from the console: %r", message[0])
                continue
            _, call_id, method, args = message
            if method in ORDERED:
                self._ordered.put((call_id, method, args))
            else:  # a client report waits for the driver thread: never hold up the others
                threading.Thread(target=self._answer, args=(call_id, method, args),
                                 name=f"host-{method}", daemon=True).start()
        self.stopping.set()

    def _answer(self, call_id: int, method: str, args: tuple) -> None:
        fn = CALLS.get(method)
        try:
            if fn is None:
                raise ValueError(f"unknown call {method!r}")
            reply = ("reply", call_id, True, fn(self.engine, *args))
        except Exception as e:  # the console shows the message; the engine keeps serving
            log.debug("call %s failed", method, exc_info=True)
            reply = ("reply", call_id, False, f"{type(e).__name__}: {e}")
        self.send(reply)


def main(argv: list[str]) -> int:
    """Child entry point: configuration from the pipe, engine, serve, stop."""
    from . import logsetup
    from .engine import Engine, StartupError
    from .fdcapture import capture

    conn = Connection(int(argv[0]))
    verbose = int(argv[1]) if len(argv) > 1 else 0
    cfg = conn.recv()
    fds = capture(python_to_log=True)  # what C libraries and plugins print: the log screen
    logs = LogBuffer()
    logsetup.install(logs, verbose)
    engine = Engine(cfg)
    try:
        engine.start()
    except StartupError as e:
        conn.send(("failed", str(e)))
        fds.restore()
        return 2
    host = EngineHost(engine, conn, logs)
    # the console owns the terminal and stops this process; SIGTERM sent to it directly
    # (a service manager killing the process group) stops it the same way
    stopped_by = [signal.SIGINT]  # the console's quit: as an operator's ctrl+c

    def on_sigterm(signum: int, frame: Any) -> None:
        stopped_by[0] = signal.SIGTERM
        host.stopping.set()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .cli import forward_signals
    forward_signals(on_sigterm)
    host.send(("started", {"plugins": list(engine.plugins), "stats": engine.stats(), "pid": os.getpid()}))
    try:
        host.run()
    finally:
        engine.stop(stopped_by[0])
        held = exitguard.held_threads()
        log.info("stopped")
        host.push()
        host.send(("stopped",))
        fds.restore()
    if engine.left_running or held:  # finalizing would wait for them
        exitguard.leave(0, handlers=not engine.left_running)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
