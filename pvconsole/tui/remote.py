"""The console's view of an engine running in a child process (:mod:`pvconsole.enginehost`).

:class:`RemoteSource` is a :class:`~pvconsole.tui.source.DataSource`: the app cannot tell
it from an in-process engine. A reader thread takes the engine's pushes off the pipe into
local buffers (newest state per PV, put records, counters; log lines straight into the
console's :class:`LogBuffer`), so the UI's timers read memory and never wait on the pipe.
Requests (snapshot, details, exposure, client report) are calls that wait for their
reply; several may be in flight from different threads.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import signal
import subprocess
import threading
from collections import deque
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any, Iterable, Iterator

from .. import childpipe
from ..config import Config
from ..enginehost import states_from_rows
from ..mirror import PVState
from ..putlog import MEMORY_ENTRIES, PutRecord
from .logbuffer import LogBuffer

log = logging.getLogger("pvconsole.tui")
child_log = logging.getLogger("pvconsole.host")

#: Seconds the engine may take to start (10,000 PVs take ~1.5 s).
START_TIMEOUT = 60.0
#: Seconds a request may take (a client report waits for the driver thread).
CALL_TIMEOUT = 10.0
#: Seconds the engine gets to stop before it is killed (headless stops in < 2 s).
STOP_TIMEOUT = 5.0


@contextlib.contextmanager
def _interrupt_held() -> Iterator[list[int]]:
    """SIGINT noted, not raised, inside the block (main thread only: where Python handles
    signals); the list it yields is not empty if one came."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    came: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        yield came
    finally:
        signal.signal(signal.SIGINT, previous)


class EngineGone(RuntimeError):
    """The engine process has exited; the message says how."""


class RemoteChanges:
    """A change stream fed by the reader thread: newest state per changed PV."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, PVState] = {}

    def add(self, states: Iterable[PVState]) -> None:
        with self._lock:
            for s in states:
                self._states[s.name] = s

    def drain(self) -> list[PVState]:
        with self._lock:
            states, self._states = self._states, {}
        return list(states.values())


class RemotePutLog:
    """The put records the engine pushed (its in-memory tail), read like a ``PutLog``."""

    def __init__(self, source: "RemoteSource") -> None:
        self._source = source
        self._lock = threading.Lock()
        self._records: deque[PutRecord] = deque(maxlen=MEMORY_ENTRIES)

    def add(self, records: list[PutRecord]) -> None:
        with self._lock:
            self._records.extend(records)

    def since(self, seq: int) -> list[PutRecord]:
        with self._lock:
            return [r for r in self._records if r.seq > seq]

    def for_pv(self, name: str, n: int = 20) -> list[PutRecord]:
        return self._source.call("putlog_for_pv", name, n)


class RemoteSource:
    """An engine in a child process, seen through its pushes and calls."""

    def __init__(self, proc: subprocess.Popen, conn: Connection, logs: LogBuffer) -> None:
        self.proc = proc
        self.conn = conn
        self.logs = logs
        self.putlog = RemotePutLog(self)
        self.plugins: list = []
        self.gone: str = ""  # why the engine process is gone, once it is
        self._stats: Any = None
        self._subs: list[RemoteChanges] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()  # _pending, _subs, sending
        self._started: Future = Future()
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, cfg: Config, verbose: int, logs: LogBuffer) -> "RemoteSource":
        """Spawn the engine process and wait until its servers run.

        Raises:
            StartupError: the engine could not start (the message is its one line).
        """
        from ..engine import StartupError

        with _interrupt_held() as interrupted:  # a ^C inside Popen would leave the child running
            proc, conn = childpipe.spawn(
                "pvconsole.enginehost", [str(verbose)], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True)  # the terminal's ^C is the console's
        source = None
        try:  # from here on, whatever happens (^C while the plugins load too), the engine goes
            if interrupted:
                raise KeyboardInterrupt
            source = cls(proc, conn, logs)
            threading.Thread(target=source._pump_output, name="engine-output", daemon=True).start()
            conn.send(cfg)
            threading.Thread(target=source._read, name="engine-reader", daemon=True).start()
            info = source._started.result(START_TIMEOUT)
        except BaseException as e:
            if proc.poll() is None:  # still starting: nothing reads the pipe yet
                proc.terminate()
            if source is not None:
                source.stop()
            else:
                proc.wait()
            if isinstance(e, Exception):
                raise StartupError(str(e)) from None
            raise
        source.plugins = list(info.get("plugins", []))
        source._stats = info.get("stats")
        return source

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop the engine as SIGTERM stops a headless one; its exit code (None if killed)."""
        try:
            with self._lock:
                self.conn.send(("stop",))
        except (OSError, ValueError):
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("engine did not stop within %.0f s: killed", timeout)
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self._stopped.wait(1.0)
            self.conn.close()

    # ------------------------------------------------------------------ DataSource

    def snapshot(self) -> list[PVState]:
        return states_from_rows(self.call("snapshot"))

    def subscribe(self) -> RemoteChanges:
        """A change stream from now on (take it before the snapshot, as with the engine)."""
        changes = RemoteChanges()
        with self._lock:
            self._subs.append(changes)
        return changes

    def unsubscribe(self, changes: RemoteChanges | None) -> None:
        """End a change stream (a console that stopped)."""
        with self._lock:
            if changes in self._subs:
                self._subs.remove(changes)

    def stats(self) -> Any:
        return self._stats

    def entry(self, name: str) -> Any:
        return self.call("entry", name)

    def pva_structure(self, name: str) -> dict[str, Any] | None:
        return self.call("pva_structure", name)

    def set_exposure(self, pattern: str, mode: str) -> list[str]:
        return self.call("set_exposure", pattern, mode)

    def set_exposure_many(self, names: list[str], mode: str) -> list[str]:
        return self.call("set_exposure_many", list(names), mode)

    def clients(self) -> list[dict[str, Any]]:
        return self.call("clients")

    def pva_client_conf(self) -> dict[str, str]:
        return self.call("pva_client_conf")

    def set_focus(self, names: list[str] | None) -> None:
        """Ask for every change of ``names`` and only the alarm, exposure and client
        changes of the other PVs (``None``: every change of every PV). Not waited for."""
        if self.gone:
            return
        with self._lock:
            try:
                self.conn.send(("focus", names))
            except (OSError, ValueError):
                pass  # the reader notices the engine is gone

    # ------------------------------------------------------------------ the pipe

    def call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT) -> Any:
        """Ask the engine; its exception comes back as ``RuntimeError(message)``
        (``ValueError`` for the engine's own refusals: unknown PV, bad mode)."""
        if self.gone:
            raise EngineGone(self.gone)
        future: Future = Future()
        call_id = next(self._ids)
        with self._lock:
            self._pending[call_id] = future
            try:
                self.conn.send(("call", call_id, method, args))
            except (OSError, ValueError) as e:
                del self._pending[call_id]
                raise EngineGone(f"engine pipe closed: {e}") from None
        try:
            return future.result(timeout)
        finally:
            with self._lock:
                self._pending.pop(call_id, None)

    def _read(self) -> None:
        """Reader thread: pushes into the buffers, replies to their callers."""
        try:
            while True:
                message = self.conn.recv()
                kind = message[0]
                if kind == "push":
                    self._on_push(*message[1:])
                elif kind == "reply":
                    _, call_id, ok, result = message
                    with self._lock:
                        future = self._pending.get(call_id)
                    if future is not None and not future.done():
                        if ok:
                            future.set_result(result)
                        else:
                            future.set_exception(_error(result))
                elif kind == "started":
                    self._started.set_result(message[1])
                elif kind == "failed":
                    self._started.set_exception(RuntimeError(message[1]))
                elif kind == "stopped":
                    break
        except (EOFError, OSError, TypeError):  # TypeError: closed under a blocked recv
            pass
        self._on_gone()

    def _on_push(self, rows: list[tuple], lines: list, puts: list[PutRecord], stats: Any) -> None:
        if rows:
            states = states_from_rows(rows)
            with self._lock:
                subs = list(self._subs)
            for sub in subs:
                sub.add(states)
        if lines:
            self.logs.extend(lines)
        if puts:
            self.putlog.add(puts)
        if stats is not None:
            self._stats = stats

    def _on_gone(self) -> None:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                code = None
        self.gone = f"engine process exited (code {code})" if code is not None else "engine pipe closed"
        if not self._started.done():
            self._started.set_exception(RuntimeError(self.gone))
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            if not future.done():
                future.set_exception(EngineGone(self.gone))
        self._stopped.set()

    def _pump_output(self) -> None:
        """What the engine process wrote before its own capture started (a crash
        traceback, an import error) goes to the log, never onto the terminal."""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                child_log.warning("%s", line)


def _error(message: str) -> Exception:
    """The engine's refusals (``ValueError: no PV matches ...``) keep their type."""
    kind, _, text = message.partition(": ")
    return ValueError(text) if kind == "ValueError" else RuntimeError(message)
