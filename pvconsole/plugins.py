"""Find and load IOC plugins: what pcaspy already knows, a prefix, a pvdb and a Driver.

A plugin is any of:

* a Python file (``ioc_plugins/psu.py``) or an importable module (``mypkg.psu``) that
  defines ``prefix``, ``pvdb`` and one ``pcaspy.Driver`` subclass at module level (if it
  defines several, ``driver = TheClass`` picks one; if none, pcaspy's echo ``Driver``);
* ``module:attr`` where ``attr`` is an object or dict with those three names;
* an entry point in the group ``pvconsole.plugins`` (``pvconsole --plugin ep:NAME``);
* an unmodified pcaspy IOC script: its ``SimpleServer.createPV`` calls and its Driver are
  captured when it runs, and its server is pvconsole's: the first ``process()`` call hands
  it over, and the script's loop goes on on a thread of its own (whatever it does between
  ``process()`` calls still runs, in turns with the driver thread, see
  :mod:`pvconsole.turns`). A script that runs its server in ``pcaspy.tools.ServerThread``
  keeps running its own main loop (polling hardware, say) on a thread of its own too.

Plugin code runs on a loader thread: a script that neither finishes nor hands its server
over within :data:`HANDOVER_TIMEOUT` seconds is reported and skipped instead of hanging
the start-up.

Loading never starts servers: :class:`PluginDef` is only a description, the engine
registers it with CA and PVA.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import p4p
import pcaspy
import pcaspy.driver

from .pluginspec import is_file, split_args, with_args
from .exitguard import FORWARDED_SIGNALS, STOP_SIGNALS, real_signal
from .turns import turns

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pvconsole.plugins"

#: seconds a plugin's code may run before it must have finished or handed its server over
#: (a script that initialises slow hardware before ``createPV`` may need more)
HANDOVER_TIMEOUT = float(os.environ.get("PVCONSOLE_HANDOVER_TIMEOUT", "10"))


def handover_timeout() -> float:
    """:data:`HANDOVER_TIMEOUT`, or ``PVCONSOLE_HANDOVER_TIMEOUT`` as it is now: ``pvconsole
    gateway`` raises it by its connect time, whenever this module was imported."""
    return float(os.environ.get("PVCONSOLE_HANDOVER_TIMEOUT") or HANDOVER_TIMEOUT)

#: shortest wait of a script's ``server.process(delay)`` (s): ``process(0)`` in a loop must
#: not spin a core now that it serves nothing itself
MIN_PROCESS_WAIT = 0.001



def _signal_on_any_thread(signum: int, handler: Any) -> Any:
    """``signal.signal`` once plugins run: on the thread of a script (set up after it
    handed its server over, a ``ServerThread`` script's Ctrl-C handler) the script's
    handler is kept as during loading; it raised ValueError there and ended the script's
    loop. Elsewhere: Python's own."""
    thread = threading.current_thread()
    if thread is not threading.main_thread():
        capture = next((c for c in _captures if c.thread is thread), None)
        if capture is not None:
            return capture.keep_signal(signum, handler)
    return real_signal(signum, handler)



#: ``hook(plugin, filename, macros)``: a script's ``initAccessSecurityFile`` while it loads
#: (set by the engine that loads it; None: said and not applied)
ACF_HOOK: Callable[[str, str, dict[str, str]], None] | None = None

#: ``register(prefix, pvdb, port, late)``: the engine's way to serve a database (``late``:
#: a createPV once pvconsole serves); raises on clash.
Register = Callable[[str, dict, str, bool], None]


class PluginError(Exception):
    """A plugin that cannot be loaded; the message says which and why."""


class NotAPlugin(PluginError):
    """A module that defines no IOC at all (a helper beside the plugins, say)."""


@dataclass
class PluginDef:
    """A loaded plugin, ready to be served.

    Attributes:
        name: Short unique name (file stem or module name).
        source: Where it came from, for messages.
        databases: ``(prefix, pvdb)`` pairs; a script may call ``createPV`` several times.
        registered: True when a script's ``createPV`` already registered the databases.
        driver_cls: The Driver class the engine instantiates (None when ``driver`` is set).
        driver: A driver instance a script created itself (script plugins only).
        capture: A script's stand-in for pcaspy's server (script plugins only): tells when
            the script's own loop dies.
    """

    name: str
    source: str
    databases: list[tuple[str, dict]] = field(default_factory=list)
    registered: bool = False
    driver_cls: type | None = None
    driver: Any = None
    capture: Any = None


@dataclass
class LoadFailure:
    """A plugin that was reported and skipped."""

    source: str
    error: str


class _ScriptHandOver(BaseException):
    """Raised from the captured ``SimpleServer.process`` to leave a script's server loop.
    A BaseException so that a script's ``except Exception`` does not swallow it."""


class _Capture:
    """Stands in for ``pcaspy.SimpleServer`` (and ``pcaspy.tools.ServerThread``) while a
    plugin's code runs."""

    def __init__(self, name: str, register: Register, args: list[str] | None = None) -> None:
        self.name = name
        self.args = list(args or [])  # its command line after its name (sys.argv[1:])
        self.port = driver_port(name)
        self.register = register
        self.databases: list[tuple[str, dict]] = []
        self.handed_over = threading.Event()  # the script reached its server loop
        self.stopped = threading.Event()      # the plugin is no longer served
        self.thread: threading.Thread | None = None  # the one the script runs on
        self.drivers: list[Any] = []          # pcaspy Drivers its code made
        self.asyncio = False                  # its code names asyncio (see _captured_pcaspy)
        self.closed = False                   # loading is over: a createPV is a late one
        self.argv: list[str] = []             # sys.argv while its code runs
        self.script = False                   # it ran as a script (its __main__ part)
        self.create_called = False            # the script reached createPV (even if it failed)
        self.looping = False                  # the script's own server loop runs
        self.in_body = False                  # ... and is between two process() calls
        self.died: BaseException | None = None  # what ended the script's loop while served
        #: handlers its code gave ``signal.signal`` (not installed: pvconsole owns signals)
        self.signal_handlers: dict[int, Any] = {}
        self.stop_signal = signal.SIGINT      # what stopped pvconsole, told to the script
        self._told = False                    # the script's loop was told of the stop
        self.main_loops = False               # its loop runs on the thread it was run on
        self.loop_thread: threading.Thread | None = None  # the thread its loop runs on
        self.interrupted = False              # told of the stop by a KeyboardInterrupt raised
        # in its thread (:meth:`_interrupt`)
        self.joining = False                  # that thread waits in ServerThread.join()
        self._on_died: Callable[[BaseException], None] | None = None
        self._died_lock = threading.Lock()

    def when_loop_dies(self, fn: Callable[[BaseException], None]) -> None:
        """Call ``fn(error)`` (on the script's thread) when its loop dies while served; at
        once if it already has."""
        with self._died_lock:
            self._on_died, died = fn, self.died
        if died is not None:
            fn(died)

    def loop_died(self, error: BaseException) -> None:
        with self._died_lock:
            self.died, fn = error, self._on_died
        if fn is not None:
            fn(error)

    def server_loop(self, delay: float) -> None:
        """A script's ``server.process(delay)``: the first call hands its server over to
        pvconsole; every call waits ``delay`` while the driver thread serves CA, then lets
        the script's loop go on, in turns with the driver thread (:mod:`pvconsole.turns`).
        When pvconsole stops serving, it ends the script's loop."""
        wait = max(float(delay or 0), MIN_PROCESS_WAIT)
        turns.loop_wait(wait)
        if not self.looping:
            self.looping = True
            self.loop_thread = threading.current_thread()
            self.main_loops = self.loop_thread is self.thread
            turns.loop_started()
            self.handed_over.set()
        elif self.in_body:
            self.in_body = False
            turns.end_body(self)
        if self.stopped.is_set() and self._told:  # a script that goes on must not spin
            time.sleep(wait)
            self._leave()
        if self.stopped.wait(wait):
            if threading.current_thread() is not self.thread:  # a signal goes to the main thread
                self._leave()
            self._told = True
            self._tell_stop(sys._getframe(2))
            return  # the handler ended the loop, or the next call leaves it
        turns.begin_body(self.stopped, self)
        self.in_body = True

    def keep_signal(self, signum: int, handler: Any) -> Any:
        """The script's ``signal.signal``: the handler is kept, not installed."""
        signum = signal.Signals(signum)  # (an invalid one raises, as signal.signal does)
        if not callable(handler) and handler not in (signal.SIG_IGN, signal.SIG_DFL):
            raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object")
        # what it replaced as it would be alone: a handler that chains to it must not
        # reach pvconsole's own (a second signal: the stop would end at once)
        previous = self.signal_handlers.get(
            signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        self.signal_handlers[signum] = handler
        if signum in STOP_SIGNALS:
            when = "it runs when pvconsole stops"
        elif signum in FORWARDED_SIGNALS:
            when = ("pvconsole ignores it" if handler is signal.SIG_IGN else
                    "pvconsole stops on it" if handler is signal.SIG_DFL else
                    "it runs when pvconsole gets one")
        else:
            when = "pvconsole does not pass it on"
        log.info("plugin %s: its handler for %s is kept, not installed (pvconsole owns "
                 "signals): %s", self.name, signum.name, when)
        return previous

    def _stop_handler(self) -> tuple[int, Any] | None:
        """``(signum, handler)`` the script runs when pvconsole stops: its callable
        handler for the signal that stopped pvconsole; when it set none for that one, or
        ignored it, its handler for the other stop signal (either way pvconsole stops
        cleanly: a daemon-style script that ignores SIGINT and cleans up on SIGTERM
        still does), unless that means skipping Python's default for SIGINT (a
        ``KeyboardInterrupt``, which the script may catch); else None."""
        for signum in (self.stop_signal, *(s for s in STOP_SIGNALS if s != self.stop_signal)):
            handler = self.signal_handlers.get(signum)
            if callable(handler):
                return signum, handler
            if signum == signal.SIGINT and handler is None:
                return None  # Python's default: _tell_stop raises KeyboardInterrupt
        return None

    def _tell_stop(self, frame: Any) -> None:
        """pvconsole stops: the script's loop (on the thread that stands for its main
        thread) is told as it would be alone: its handler (:meth:`_stop_handler`) runs
        here, on the script's thread; without one, Python's default for SIGINT raises
        ``KeyboardInterrupt``, unless the script set SIGINT to be ignored or to the OS
        default (alone it would die unclean): then its loop ends quietly. Either way
        the script's own clean-up (``except KeyboardInterrupt``, code after its loop)
        runs while the servers still serve."""
        chosen = self._stop_handler()
        if chosen is not None:
            chosen[1](chosen[0], frame)
        elif self.signal_handlers.get(signal.SIGINT, signal.default_int_handler) is signal.default_int_handler:
            raise KeyboardInterrupt
        else:
            self._leave()

    def tell_stop_elsewhere(self) -> bool:
        """A script whose main part has no server loop (``ServerThread``, or threads of
        its own) has its handler for the stop run on a thread of its own: it may end what
        the script runs. Returns whether the script's code was told to end at all (its
        loop will be, a handler ran, or it waits in ``ServerThread.join()``)."""
        chosen = None if self.main_loops else self._stop_handler()
        if chosen is None:
            if self.main_loops or self.joining:
                return True
            return self._interrupt()

        def run() -> None:
            _run_handler(self.name, chosen[1], chosen[0])
            _wake(self.thread)
        threading.Thread(target=run, name=f"signal-{self.name}", daemon=True).start()
        return True

    def _interrupt(self) -> bool:
        """A script whose code goes on beside a ``ServerThread`` (``while True:
        time.sleep(1)`` under ``try``/``except KeyboardInterrupt``) with Python's default
        for SIGINT: alone, the signal raised ``KeyboardInterrupt`` wherever its main
        thread was; it is raised there, in the thread that stands for it, at its next
        bytecode (a thread blocked in a C call, ``time.sleep(5)`` or ``signal.pause()``
        say, gets it only when the call returns: if it is still running when its clean-up
        time is over, its driver's ``stop()`` is called, see :attr:`interrupted`). Not
        while the thread runs pvconsole's, pcaspy's or p4p's code (in a ``setParam``, say:
        their state must not be left half-changed): it is waited for out of it, up to
        ``INTERRUPT_WAIT``. Returns whether it was raised."""
        thread = self.thread
        if (thread is None or not thread.is_alive() or thread.ident is None
                or self.signal_handlers.get(signal.SIGINT, signal.default_int_handler)
                is not signal.default_int_handler):
            return False
        deadline = time.monotonic() + INTERRUPT_WAIT
        while not _in_script_code(sys._current_frames().get(thread.ident)):
            if time.monotonic() > deadline or not thread.is_alive():
                return False
            time.sleep(0.01)
        raised = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                            ctypes.py_object(KeyboardInterrupt))
        self.interrupted = raised == 1
        if self.interrupted:
            _wake(thread)  # (a signal.pause() returns, and the exception comes)
        return self.interrupted

    def _leave(self) -> NoReturn:
        """End the script's loop: on the thread pvconsole runs the script on, back to
        it; on a thread of the script's own, that thread ends, as quietly as threading
        ends one on ``SystemExit`` (any other exception is reported with a traceback)."""
        if threading.current_thread() is self.thread:
            raise _ScriptHandOver()
        self.loop_over()  # (the script's thread ends its turns when its code returns)
        raise SystemExit()

    def loop_over(self) -> None:
        """The plugin's code returned or raised: its loop takes no more turns."""
        if self.looping:
            self.looping = False
            turns.loop_ended(self.in_body, self)
            self.in_body = False

    def create_pv(self, prefix: str, pvdb: dict) -> None:
        # after start-up, or from a thread of the script's own while it loads (its
        # driver may not exist yet: not before pvconsole serves): served as it comes
        if self.closed or threading.current_thread() is not self.thread:
            if self.in_body and threading.current_thread() is self.loop_thread:
                try:  # (the driver thread waits for this body: it makes the PVs then)
                    turns.run_for_body(lambda: self.register(prefix, pvdb, self.port, True),
                                       BODY_CREATE_TIMEOUT)
                except TimeoutError:
                    raise PluginError(f"{self.name}: createPV({prefix!r}): the driver thread "
                                      f"did not take it within {BODY_CREATE_TIMEOUT:g} s (a "
                                      "plugin's call holds it): not served") from None
            else:
                self.register(prefix, pvdb, self.port, True)
            self.databases.append((prefix, pvdb))
            return
        self.create_called = True
        # registered at once: the script's Driver() reads pcaspy's PV table next
        self.register(prefix, pvdb, self.port, False)
        self.databases.append((prefix, pvdb))

    def server_class(self) -> type:
        capture = self

        class CapturedServer:
            """Records what a script asks of its server; its loop hands over to pvconsole."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                dynamic = [m for m in ("pvExistTest", "pvAttach")
                           if getattr(type(self), m, None) is not None]
                if dynamic:
                    log.warning("plugin %s: its server class defines %s (PVs made on demand); "
                                "pvconsole serves the PVs of its createPV calls only",
                                capture.name, "/".join(dynamic))

            @staticmethod
            def createPV(prefix: str, pvdb: dict) -> None:
                capture.create_pv(prefix, pvdb)

            @staticmethod
            def initAccessSecurityFile(filename: str, **subst: Any) -> None:
                if ACF_HOOK is not None and not capture.closed:
                    ACF_HOOK(capture.name, str(filename), {k: str(v) for k, v in subst.items()})
                    return
                macros = ", ".join(f"{k}={v}" for k, v in subst.items())
                log.warning("plugin %s: its access security file %s%s is not applied: pvconsole "
                            "loads one file for every plugin and both protocols (--acf FILE)",
                            capture.name, filename, f" ({macros})" if macros else "")

            @staticmethod
            def process(delay: float) -> None:
                capture.server_loop(delay)

            def setDebugLevel(self, level: int) -> None:
                pass

        return CapturedServer

    def server_thread_class(self) -> type:
        capture = self

        class CapturedServerThread(threading.Thread):
            """``pcaspy.tools.ServerThread``: starting it hands the server over to pvconsole;
            the script goes on with its own loop. ``join()`` returns when pvconsole stops."""

            def __init__(self, server: Any) -> None:
                super().__init__(name=f"{capture.name}-server", daemon=True)
                self.server = server
                self.running = True

            def run(self) -> None:
                capture.handed_over.set()
                capture.stopped.wait()

            def stop(self) -> None:
                self.running = False

            def join(self, timeout: float | None = None) -> None:
                if threading.current_thread() is capture.thread:
                    capture.joining = True  # the script goes on when pvconsole stops
                super().join(timeout)

        return CapturedServerThread


_load_lock = threading.Lock()


@contextlib.contextmanager
def _captured_pcaspy(capture: _Capture, argv0: str, uses_asyncio: bool = False) -> Iterator[None]:
    """Swap pcaspy's server for the capture while plugin code runs; give any Driver it
    creates its own pcaspy port, so that plugins never share a parameter database. Signal
    handlers a script installs are ignored: pvconsole owns SIGINT/SIGTERM."""
    import pcaspy.tools
    capture.asyncio = uses_asyncio
    saved = (pcaspy.SimpleServer, pcaspy.driver.SimpleServer, pcaspy.tools.ServerThread,
             pcaspy.Driver.port, sys.argv, signal.signal)
    pcaspy.SimpleServer = pcaspy.driver.SimpleServer = capture.server_class()  # type: ignore[misc]
    pcaspy.tools.ServerThread = capture.server_thread_class()  # type: ignore[misc]
    pcaspy.Driver.port = capture.port
    sys.argv = capture.argv = [argv0, *capture.args]

    keep_signal = capture.keep_signal

    driver_init = pcaspy.Driver.__init__

    def init_driver(driver: Any, *args: Any, **kwargs: Any) -> None:
        """A driver made now keeps this plugin's port once the capture is over (pcaspy
        reads ``self.port`` on every call), and is found where no module attribute names
        it (made in a function). pcaspy's metaclass wraps the ``__init__`` a class has when
        it is defined, so a class defined now (a base in a helper module) calls this for
        good: made later, its drivers get the ``__init__`` of that time instead."""
        if capture.closed:
            current = pcaspy.Driver.__init__
            (driver_init if current is init_driver else current)(driver, *args, **kwargs)
            return
        driver_init(driver, *args, **kwargs)
        driver.port = capture.port
        capture.drivers.append(driver)

    signal.signal = keep_signal  # type: ignore[assignment]
    saved = (*saved[:-1], _signal_on_any_thread)  # afterwards: scripts' threads still kept
    pcaspy.Driver.__init__ = init_driver  # type: ignore[method-assign]
    try:
        with _asyncio_signals_kept(keep_signal) if uses_asyncio else contextlib.nullcontext():
            yield
    finally:
        pcaspy.Driver.__init__ = driver_init  # type: ignore[method-assign]
        (pcaspy.SimpleServer, pcaspy.driver.SimpleServer, pcaspy.tools.ServerThread,
         pcaspy.Driver.port, sys.argv, signal.signal) = saved
        _keep_script_argv(capture)
        _route_class_process()
        capture.closed = True


def _route_class_process() -> None:
    """``SimpleServer.process`` is a staticmethod: a script may call it through the class
    (``pcaspy.SimpleServer.process(0.1)``), and once its code is loaded the class is
    pcaspy's again. Called so, pcaspy's ran the CA server on the script's thread beside
    pvconsole's loop, without the script's turns or its stop. pvconsole never calls it
    (its loop calls ``cas.process``): from now on it is the script's ``process()``."""
    real = pcaspy.driver.SimpleServer
    if getattr(real.process, "pvconsole", False):
        return

    def process(delay: float) -> None:
        capture = _capture_of(threading.current_thread())
        if capture is None:  # a thread no script's loop ran on: the wait alone
            time.sleep(max(float(delay or 0), MIN_PROCESS_WAIT))
            return
        capture.server_loop(delay)
    process.pvconsole = True  # type: ignore[attr-defined]
    real.process = staticmethod(process)  # type: ignore[method-assign, assignment]


def _capture_of(thread: threading.Thread) -> _Capture | None:
    """The script whose loop (or code) runs on ``thread``; else the only script, if its
    loop has not started (this thread is to run it)."""
    scripts = [c for c in _captures if c.script]
    for capture in scripts:
        if thread is capture.loop_thread or thread is capture.thread:
            return capture
    return scripts[0] if len(scripts) == 1 and not scripts[0].looping else None


def _keep_script_argv(capture: _Capture) -> None:
    """After a plugin's code ran: ``sys.argv`` is the first script's command line, for
    good. A script's threads and its driver read it after start-up too (PV names from
    ``sys.argv[1]`` in a polling thread), as in its own process; pvconsole parsed its own
    long before. One process has one ``sys.argv``: a second script with other arguments
    is told so."""
    first = next((c for c in _captures if c.script), None)
    if first is None:
        return
    sys.argv = list(first.argv)
    if capture.script and capture is not first and capture.argv[1:] != first.argv[1:]:
        log.warning("plugin %s: after start-up, sys.argv is plugin %s's command line (one "
                    "process has one sys.argv): code of %s that reads sys.argv later (its "
                    "threads, its driver) sees %s", capture.name, first.name, capture.name,
                    [Path(first.argv[0]).name, *first.argv[1:]])


@contextlib.contextmanager
def _asyncio_signals_kept(keep_signal: Callable[[int, Any], Any]) -> Iterator[None]:
    """asyncio's ``add_signal_handler`` goes where ``signal.signal`` goes (it would fail:
    the script is not on the main thread). Only for plugins that name asyncio: importing
    it costs the engine 4-5 MB."""
    import asyncio
    loop_class = asyncio.unix_events._UnixSelectorEventLoop
    saved = loop_class.add_signal_handler
    loop_class.add_signal_handler = (  # type: ignore[method-assign]
        lambda loop, signum, callback, *args: keep_signal(  # run in the loop, as asyncio does
            signum, lambda *_: loop.call_soon_threadsafe(callback, *args)))
    try:
        yield
    finally:
        loop_class.add_signal_handler = saved  # type: ignore[method-assign]


def _run_plugin_code(capture: _Capture, source: str, code: Callable[[], None]) -> None:
    """Run plugin code on a thread of its own until it returns or hands its server over.

    A script that hands over through ``ServerThread`` keeps running its own loop there.

    Raises:
        PluginError: the code neither finished nor handed over within ``HANDOVER_TIMEOUT``.
        Exception: whatever the plugin code raised.
    """
    done = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        capture.thread = threading.current_thread()
        if capture.asyncio:  # the event loop asyncio.get_event_loop() finds on the main thread
            import asyncio
            asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            code()
        except _ScriptHandOver:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised on the loading thread
            failure.append(e)
            if capture.handed_over.is_set() and not capture.stopped.is_set():  # nobody waits for it
                log.error("plugin %s: its own loop stopped: %s: %s", capture.name,
                          type(e).__name__, e, exc_info=e)
                capture.loop_died(e)
            elif capture.stopped.is_set() and not isinstance(e, (SystemExit, KeyboardInterrupt)):
                log.warning("plugin %s: its clean-up raised %s: %s", capture.name,
                            type(e).__name__, e, exc_info=e)  # (as Python alone prints it)
        finally:
            capture.loop_over()
            done.set()

    thread = threading.Thread(target=target, name=f"plugin-{capture.name}", daemon=True)
    thread.start()
    timeout = handover_timeout()
    deadline = time.monotonic() + timeout
    while not done.wait(0.02):
        if capture.handed_over.is_set():
            return
        if time.monotonic() > deadline:
            stuck = sys._current_frames().get(thread.ident)
            raise PluginError(f"{source}: still running after {timeout:g} s without handing its "
                              f"server over{where(stuck) if stuck is not None else ''} (pvconsole "
                              "takes over SimpleServer.process() loops and pcaspy.tools.ServerThread)")
    if failure:
        raise failure[0]


_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


def where(tb_or_frame: Any) -> str:
    """' (at ioc.py:12, in poll)': the innermost line of plugin code (not pvconsole's, not
    Python's) in a traceback or a running thread's frame; '' when there is none. A
    one-line error that says where saves the operator a second run with ``-v``."""
    if isinstance(tb_or_frame, types.TracebackType):
        frames = list(traceback.walk_tb(tb_or_frame))  # outermost first
    else:
        frames = list(traceback.walk_stack(tb_or_frame))[::-1]
    for frame, lineno in reversed(frames):
        path = frame.f_code.co_filename
        if path.startswith("<") or os.path.dirname(os.path.abspath(path)) == _OWN_DIR:
            continue
        if "/lib/python" in path and "site-packages" not in path:
            continue  # the standard library: its caller is what the operator wants
        return f" (at {os.path.basename(path)}:{lineno}, in {frame.f_code.co_name})"
    return ""


def driver_port(name: str) -> str:
    """pcaspy port name of a plugin: drivers are kept per port, so each plugin gets one."""
    return f"pvconsole:{name}"


def discover(specs: list[str], plugins_dir: Path | None) -> list[str]:
    """The plugin specs to load: explicit ``--plugin`` ones, else every ``*.py`` in the dir;
    files as absolute paths, fixed before any plugin runs: a script that changes the
    working directory (``os.chdir`` to find its config) must not make the next plugin's
    relative path point elsewhere."""
    if not specs and plugins_dir and plugins_dir.is_dir():
        specs = [str(p) for p in sorted(plugins_dir.glob("*.py")) if not p.name.startswith("_")]
    return [_absolute(spec) for spec in specs or []]


def _absolute(spec: str) -> str:
    spec, args = split_args(spec)
    file, attr = _file_attr(spec)
    if file is None:
        return with_args(spec, args)
    return with_args(str(Path(file).absolute()) + (f":{attr}" if attr else ""), args)


def plugin_name(spec: str) -> str:
    """The short name a plugin goes by (file stem, attribute or module name, entry point)."""
    spec = split_args(spec)[0]
    if spec.startswith("ep:"):
        return spec[3:]
    file, attr = _file_attr(spec)
    if file is not None:
        return attr or Path(file).stem
    module, _, attr = spec.partition(":")
    return (attr or module).rsplit(".", 1)[-1]


def qualified_name(spec: str) -> str:
    """A longer name for a plugin whose short name another one has: the file's directory
    and stem (``dirB.plain``), or the module and attribute (``objs2.ioc``)."""
    spec = split_args(spec)[0]
    if spec.startswith("ep:"):
        return spec[3:]
    file, attr = _file_attr(spec)
    if file is not None:
        path = Path(file)
        return ".".join(filter(None, (path.resolve().parent.name, path.stem, attr)))
    module, _, attr = spec.partition(":")
    return ".".join(filter(None, (module.rsplit(".", 1)[-1] if attr else module, attr)))


def _file_attr(spec: str) -> tuple[str | None, str]:
    """``(file, attr)`` of a file spec (``ioc.py``, ``ioc.py:attr``), else ``(None, '')``."""
    if spec.startswith("ep:"):
        return None, ""
    base, sep, attr = spec.rpartition(":")
    if sep and base.endswith(".py") and attr.isidentifier():
        return base, attr
    if spec.endswith(".py") or os.path.sep in spec or is_file(spec):
        return spec, ""
    return None, ""


def load(spec: str, register: Register, name: str | None = None) -> PluginDef:
    """Load one plugin spec (path, ``path:attr``, module, ``module:attr``, ``ep:name``)
    under ``name`` (default :func:`plugin_name`; the engine makes names unique).

    Module-level code runs under the pcaspy capture; a script's ``createPV`` calls go to
    ``register`` as they happen (contract plugins are registered by the caller).

    Raises:
        PluginError: with a one-line reason (the traceback goes to the debug log).
    """
    with _load_lock:
        target, args = split_args(spec)
        try:
            return _load(target, register, name or plugin_name(spec), args)
        except PluginError:
            raise
        except SystemExit as e:
            hint = "" if args else (": a script that needs command-line arguments takes them "
                                    "after its name (--plugin 'ioc.py -P PREFIX:')")
            raise PluginError(f"{spec}: exited during import (SystemExit {e.code}){hint}") from None
        except Exception as e:
            log.info("plugin %s failed:\n%s", spec, traceback.format_exc())
            raise PluginError(f"{spec}: {type(e).__name__}: {e}{where(e.__traceback__)}") from None


def _load(spec: str, register: Register, name: str, args: list[str]) -> PluginDef:
    if spec.startswith("ep:"):
        return _load_entry_point(spec[3:], register, name, args)
    file, attr = _file_attr(spec)
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise PluginError(f"{file}: no such file")
        return _load_file(path, register, name, args, attr, spec)
    module_name, _, attr = spec.partition(":")
    capture = _new_capture(name, register, args)
    module = sys.modules.get(module_name)
    if module is None:
        found = importlib.util.find_spec(module_name)
        if found is None:
            raise PluginError(f"{spec}: no module named {module_name!r}")
        with _captured_pcaspy(capture, module_name, _names_asyncio(found.origin)):
            module = _exec_module(capture, spec, found)
    return _from_namespace(name, spec, _pick(vars(module), attr, spec), capture)


def _pick(namespace: dict, attr: str, spec: str) -> dict:
    """The plugin's namespace: the module's, or that of its attribute ``attr``."""
    if not attr:
        return namespace
    if attr not in namespace:
        raise PluginError(f"{spec}: no attribute {attr!r}")
    return _as_namespace(namespace[attr])


def _load_entry_point(ep_name: str, register: Register, name: str, args: list[str]) -> PluginDef:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == ep_name:
            return _load(ep.value, register, name, args)
    raise PluginError(f"ep:{ep_name}: no entry point of that name in group {ENTRY_POINT_GROUP}")


#: Directories plugin files were loaded from (their sibling modules are theirs).
_plugin_dirs: set[Path] = set()


def _load_file(path: Path, register: Register, name: str, args: list[str], attr: str = "",
               source: str = "") -> PluginDef:
    module_name = f"pvconsole_plugin_{name}"
    capture = _new_capture(name, register, args)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not a Python module")
    directory = path.parent.resolve()
    _forget_other_helpers(directory)
    _plugin_dirs.add(directory)
    sys.path.insert(0, str(directory))
    try:
        text = path.read_text(errors="replace")
        with _captured_pcaspy(capture, str(path), "asyncio" in text):
            if _has_main_guard(text):
                namespace = _run_as_script(capture, path)
            else:
                namespace = vars(_exec_module(capture, str(path), spec))
        return _from_namespace(name, source or str(path), _pick(namespace, attr, source),
                               capture)
    finally:
        # first place only while it loads (its modules win over others of the name); kept
        # last so that modules it imports later, in its driver's calls, are found
        with contextlib.suppress(ValueError):
            sys.path.remove(str(directory))
        if str(directory) not in sys.path:
            sys.path.append(str(directory))


def _forget_other_helpers(directory: Path) -> None:
    """Each IOC script had a process of its own: a sibling module (``_common.py``) that
    another plugin's directory already imported must not stand in for this directory's
    module of the same name. The other plugin keeps the module object it imported."""
    for mod_name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or "." in mod_name:
            continue
        origin = Path(file).resolve().parent
        if origin.name == "__pycache__" or origin == directory:
            continue
        package = origin.parent if Path(file).name == "__init__.py" else origin
        if package in _plugin_dirs and package != directory and (
                (directory / f"{mod_name}.py").exists() or (directory / mod_name / "__init__.py").exists()):
            del sys.modules[mod_name]


def _exec_module(capture: _Capture, source: str, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
    """Import a plugin module under the capture; it stays imported when it hands over."""
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        _run_plugin_code(capture, source, lambda: spec.loader.exec_module(module))
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return module


def _run_as_script(capture: _Capture, path: Path) -> dict:
    """Run a file with a ``__main__`` part as the IOC script it is (its own argument
    defaults, prefixes and start-up); when that part stops before any ``createPV`` and the
    module defines ``prefix`` and ``pvdb``, those are served instead."""
    namespace = _main_namespace(path)
    capture.script = True
    try:
        _run_plugin_code(capture, str(path), lambda: _exec_as_main(path, namespace))
    except (Exception, SystemExit) as e:
        if capture.create_called or not _has_contract(namespace):
            raise  # its own createPV failed (a name clash, a bad pvdb): that is the error
        log.info("plugin %s: its __main__ part stopped before createPV (%s: %s); serving its "
                 "module-level prefix and pvdb", capture.name, type(e).__name__, e)
    return namespace


def _main_namespace(path: Path) -> dict:
    """Globals of a script run as ``__main__`` (not installed in ``sys.modules``: the
    script may keep running after it hands over, pvconsole's own ``__main__`` stays;
    what it defines is found there by name, :func:`_main_attr`)."""
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    namespace = vars(module)
    _script_namespaces.append(namespace)
    main = sys.modules.get("__main__")
    if main is not None and vars(main).get("__getattr__") is not _main_attr:
        global _main_getattr
        _main_getattr = vars(main).get("__getattr__")
        vars(main)["__getattr__"] = _main_attr
    return namespace


_script_namespaces: list[dict] = []
#: The ``__getattr__`` pvconsole's ``__main__`` had before :func:`_main_attr` (if any).
_main_getattr: Callable[[str], Any] | None = None


def _main_attr(name: str) -> Any:
    """pvconsole's ``__main__``'s attribute lookup (PEP 562) for names it lacks: the
    scripts' (the newest first). ``pickle`` finds what a script defines as
    ``__main__.Name`` there, and ``multiprocessing`` (fork) sends its functions: both
    failed, the names not being pvconsole's."""
    for namespace in reversed(_script_namespaces):
        if name in namespace:
            return namespace[name]
    if _main_getattr is not None:
        return _main_getattr(name)
    raise AttributeError(f"module '__main__' has no attribute {name!r}")


def _exec_as_main(path: Path, namespace: dict) -> None:
    exec(compile(path.read_bytes(), str(path), "exec"), namespace)  # noqa: S102 - it is the plugin


_captures: list[_Capture] = []


def _new_capture(name: str, register: Register, args: list[str]) -> _Capture:
    capture = _Capture(name, register, args)
    _captures.append(capture)
    return capture


def forward_signal(signum: int) -> bool:
    """pvconsole got one of :data:`FORWARDED_SIGNALS` (in its signal handler: nothing
    here logs, takes a lock or starts a thread): the scripts' handlers for it run on
    :func:`start_forwarding`'s thread (alone, on the script's main thread between two
    bytecodes). Returns whether any script handles or ignores it; if none does,
    pvconsole stops on it, cleanly (alone, the script died of it, and a terminal's hangup
    killed every hosted IOC without a stop)."""
    handled = False
    for capture in list(_captures):
        handler = capture.signal_handlers.get(signum)
        if handler is signal.SIG_IGN:
            handled = True
        elif callable(handler):
            handled = True
            _forwarded.put((capture.name, handler, signum))  # (SimpleQueue: reentrant)
    return handled


#: Scripts' handlers :func:`forward_signal` hands on, run by :func:`start_forwarding`'s thread.
_forwarded: queue.SimpleQueue = queue.SimpleQueue()


def start_forwarding() -> None:
    """Start the thread that runs the scripts' handlers for forwarded signals, and (on
    the main thread) catch :data:`WAKE_SIGNAL` for :func:`_wake`."""
    global _wakes
    def run() -> None:
        while True:
            _run_handler(*_forwarded.get())
    threading.Thread(target=run, name="signal-handlers", daemon=True).start()
    real_signal(WAKE_SIGNAL, lambda signum, frame: None)
    _wakes = True


#: Sent to a script's thread after its handler for the stop ran: a thread in
#: ``signal.pause()`` (woken, alone, by the signal itself) returns, and its code after
#: the pause (its clean-up) runs. Caught and ignored (its default is ignored too: a
#: signal nobody catches does not end a pause).
WAKE_SIGNAL = signal.SIGURG
_wakes = False


def _wake(thread: threading.Thread | None) -> None:
    if _wakes and thread is not None and thread.is_alive() and thread.ident is not None:
        try:
            signal.pthread_kill(thread.ident, WAKE_SIGNAL)
        except (OSError, ValueError):
            pass  # ended meanwhile


def _run_handler(name: str, handler: Callable[[int, Any], Any], signum: int) -> None:
    try:
        handler(signum, None)
    except (SystemExit, KeyboardInterrupt):
        pass
    except Exception:
        log.exception("plugin %s: its handler for signal %s raised", name, signal.Signals(signum).name)


#: Seconds a createPV from a script's loop body waits for the driver thread to take it.
BODY_CREATE_TIMEOUT = 10.0
#: Seconds a script's thread is waited for to leave pvconsole's, pcaspy's or p4p's code
#: before its KeyboardInterrupt (see :meth:`_Capture._interrupt`).
INTERRUPT_WAIT = 0.2
_LIBRARY_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) for m in (pcaspy, p4p))


def _in_script_code(frame: Any) -> bool:
    """Whether a thread's innermost Python frame is not pvconsole's, pcaspy's or p4p's."""
    if frame is None:
        return False
    path = os.path.abspath(frame.f_code.co_filename)
    return not path.startswith((_OWN_DIR, *_LIBRARY_DIRS))


def release_scripts(signum: int = signal.SIGINT) -> tuple[list[threading.Thread], set[str]]:
    """pvconsole stops serving (on ``signum``): scripts' loops are told as they would be
    alone (:meth:`_Capture._tell_stop`), scripts waiting on their ``ServerThread`` go on.
    Returns the threads the scripts' code still runs on after being told (their clean-up)
    and the names of the plugins told. (A script's thread that was not, its own ``while
    True:`` beside a ``ServerThread``, goes on until the process exits, as it did before
    the signal killed it alone.) A script told by a ``KeyboardInterrupt`` in its thread
    that still runs after its clean-up time is in :func:`still_interrupted`."""
    threads, names = [], set()
    _interrupted.clear()
    while _captures:
        capture = _captures.pop()
        capture.stop_signal = signum
        capture.stopped.set()
        if capture.tell_stop_elsewhere():
            names.add(capture.name)
            if capture.interrupted:
                _interrupted.append(capture)
            if capture.thread is not None and capture.thread.is_alive():
                threads.append(capture.thread)
    return threads, names


_interrupted: list[_Capture] = []


def still_interrupted() -> set[str]:
    """Scripts told of the stop by a ``KeyboardInterrupt`` in their thread whose thread
    still runs (blocked in a C call: it has not seen it): their drivers' ``stop()`` hooks
    are called, as for a script that was not told."""
    return {c.name for c in _interrupted if c.thread is not None and c.thread.is_alive()}


def _has_contract(ns: dict) -> bool:
    return isinstance(ns.get("pvdb"), dict) and isinstance(ns.get("prefix"), str)


def _has_main_guard(text: str) -> bool:
    """Whether a top-level statement of the source is ``if __name__ == "__main__":``
    (either way round, or within an ``and``/``or``). The two names anywhere (a comment,
    ``type(e).__name__``) made a module plugin run as a script."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):  # (its import reports it)
        return "__name__" in text and "__main__" in text
    return any(isinstance(node, ast.If) and _tests_main(node.test) for node in tree.body)


def _tests_main(test: ast.expr) -> bool:
    if isinstance(test, ast.BoolOp):
        return any(_tests_main(v) for v in test.values)
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    sides = [test.left, *test.comparators]
    names = {n.id for n in sides if isinstance(n, ast.Name)}
    texts = {n.value for n in sides if isinstance(n, ast.Constant)}
    return names == {"__name__"} and texts == {"__main__"}


def _names_asyncio(origin: str | None) -> bool:
    """Whether a module's source file names asyncio."""
    if not origin or not origin.endswith(".py"):
        return False
    try:
        return "asyncio" in Path(origin).read_text(errors="replace")
    except OSError:
        return False


def _as_namespace(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    return {k: getattr(obj, k) for k in ("prefix", "pvdb", "driver") if hasattr(obj, k)}


def _from_namespace(name: str, source: str, ns: dict, capture: _Capture) -> PluginDef:
    port = driver_port(name)
    created = pcaspy.driver.manager.driver.get(port)
    if created is None and isinstance(ns.get("driver"), pcaspy.Driver):
        created = ns["driver"]  # pcaspy registers instances of subclasses only, not Driver()
    if capture.databases:
        # a script: it made its own server calls and (usually) its own driver instance
        if created is None and capture.drivers:
            created = capture.drivers[-1]  # a Driver() kept in a function's variable
        plugin = PluginDef(name=name, source=source, databases=list(capture.databases),
                           registered=True, capture=capture)
        if created is not None:
            created.port = port
            plugin.driver = created
        else:
            plugin.driver_cls = _pick_driver(name, ns)
        return plugin
    if not _has_contract(ns):
        raise NotAPlugin(f"{source}: defines no module-level 'prefix' (str) and 'pvdb' (dict), "
                         "and calls no SimpleServer.createPV")
    if created is not None:
        # the module instantiated a driver at import time without a server: not supported
        pcaspy.driver.manager.driver.pop(port, None)
    return PluginDef(name=name, source=source, databases=[(ns["prefix"], ns["pvdb"])],
                     driver_cls=_pick_driver(name, ns))


def _pick_driver(name: str, ns: dict) -> type:
    chosen = ns.get("driver")
    if isinstance(chosen, type) and issubclass(chosen, pcaspy.Driver):
        return chosen
    if chosen is not None and not isinstance(chosen, type):
        raise PluginError(f"{name}: 'driver' must be a pcaspy.Driver subclass, not {chosen!r}")
    module_name = ns.get("__name__")
    candidates = [v for v in ns.values()
                  if isinstance(v, type) and issubclass(v, pcaspy.Driver) and v is not pcaspy.Driver
                  and (module_name is None or v.__module__ == module_name)]
    if not candidates:  # imported classes count when the module defines none itself
        candidates = [v for v in ns.values()
                      if isinstance(v, type) and issubclass(v, pcaspy.Driver) and v is not pcaspy.Driver]
    if len(candidates) > 1:
        names = ", ".join(sorted(c.__name__ for c in candidates))
        raise PluginError(f"{name}: several Driver subclasses ({names}); set `driver = TheClass`")
    return candidates[0] if candidates else pcaspy.Driver


def instantiate(plugin: PluginDef) -> Any:
    """Create the plugin's driver on its own pcaspy port (the PVs must be registered)."""
    if plugin.driver is not None:
        return plugin.driver
    port = driver_port(plugin.name)
    with _load_lock:
        saved = pcaspy.Driver.port
        pcaspy.Driver.port = port
        try:
            driver = plugin.driver_cls()
        finally:
            pcaspy.Driver.port = saved
    driver.port = port
    return driver
