"""A hosted plugin's ``os._exit`` ends the plugin's thread, not every IOC of the process;
its ``os.exec*`` (a restart of itself) is refused.

An unmodified pcaspy script may leave with ``os._exit`` (a watchdog, a fatal device
error). Alone, that ended its own IOC; hosted, it ended pvconsole and every other plugin,
without a word in the log. Once :func:`install` ran, ``os._exit`` called on any thread but
the main one (where pvconsole itself runs, and where a forked child continues) logs who
called it and raises ``SystemExit`` in that thread instead: a script's loop ends as if it
had died (its PVs turn INVALID/COMM), another plugin thread just ends.

After a stop, :func:`held_threads` and :func:`leave` are pvconsole's own way out when
something of a plugin would keep the interpreter from finishing.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from typing import NoReturn

log = logging.getLogger("pvconsole.plugins")

#: The real ``os._exit``, for pvconsole's own exits.
real_exit = os._exit

#: What a plugin's call (``write``, ``read``, a job on the driver thread) may raise that
#: must end neither the call's thread nor the process: ``sys.exit()`` in a write (a
#: "remote shutdown" PV), or :func:`_guarded_exit`'s ``SystemExit``. Uncaught on the
#: driver thread, it ended pvconsole's CA server loop, and every IOC's CA with it.
PLUGIN_FAULTS = (Exception, SystemExit)


#: The real ``os.execv``/``os.execve`` (every ``os.exec*`` ends in one of them).
real_exec = {"execv": os.execv, "execve": os.execve}


#: The real ``signal.signal`` (pvconsole keeps scripts' handlers in its place).
real_signal = signal.signal
#: The signals that stop pvconsole; a script's handlers for them run when it stops.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Signals whose handlers a script set run when pvconsole gets one (a configuration
#: reload on SIGHUP, a status dump on SIGUSR1); one no script handles or ignores stops
#: pvconsole cleanly (alone, the script died of it: see ``plugins.forward_signal``).
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_forks_guarded = False


def install() -> None:
    """Guard ``os._exit`` and the ``os.exec*`` family, and give forked children Python's
    own signal handling (idempotent)."""
    global _forks_guarded, _pid
    _pid = os.getpid()
    os._exit = _guarded_exit
    os.close = _guarded_close
    os.execv = _guarded_exec("execv")
    os.execve = _guarded_exec("execve")
    if not _forks_guarded:
        os.register_at_fork(after_in_child=_child_signals)
        _forks_guarded = True


_real_close = os.close
_pid = 0
_close_warned = False


def _guarded_close(fd: int) -> None:
    """``os.close`` that leaves fds 1 and 2 open in pvconsole's process: they are its
    captured stdout and stderr. A plugin that closed them (as a daemon does) let the
    next sockets take those numbers, and what the C libraries print went into a PVA
    client's connection (which then failed). A forked child closes what it likes."""
    global _close_warned
    if fd in (1, 2) and os.getpid() == _pid:
        if not _close_warned:
            _close_warned = True
            log.warning("a plugin's os.close(%d) ignored: fds 1 and 2 are pvconsole's log "
                        "(what the C libraries print)", fd)
        return
    _real_close(fd)


def _child_signals() -> None:
    """A plugin's forked child (a ``multiprocessing`` poller) gets Python's defaults for
    SIGINT, SIGTERM and the signals pvconsole forwards, as it would forked from the
    script alone: with pvconsole's
    handlers, the ``p.terminate()`` of the script's clean-up printed pvconsole's traceback
    from the child and the child went on."""
    try:
        for signum in (*STOP_SIGNALS, *FORWARDED_SIGNALS):
            real_signal(signum, signal.default_int_handler if signum == signal.SIGINT
                        else signal.SIG_DFL)
    except ValueError:  # forked from a thread Python does not take for the main one
        pass


def _guarded_exec(name: str):
    """``os.<name>`` that refuses, off the main thread, to replace the process: a script
    that restarts itself (an IOC's REBOOT PV: ``os.execv(sys.executable, [...])``) would
    replace pvconsole and every other IOC with itself alone, with its output going
    nowhere. The caller gets ``PermissionError`` (a put that asked for it fails)."""
    real = real_exec[name]

    def guarded(path, args, *env):
        if threading.current_thread() is threading.main_thread():
            return real(path, args, *env)
        caller = sys._getframe(1)
        while caller.f_back is not None and caller.f_globals is vars(os):
            caller = caller.f_back  # os.execl/execvp/...: the plugin's own call
        log.error("os.%s(%r, ...) called on thread %r (%s:%d): refused, a hosted IOC does "
                  "not replace the process that serves every IOC (restart pvconsole to "
                  "restart it)", name, path, threading.current_thread().name,
                  caller.f_code.co_filename, caller.f_lineno)
        raise PermissionError(f"os.{name} refused: pvconsole hosts this IOC beside others; "
                              "restart pvconsole to restart it")
    return guarded


def _guarded_exit(code: int) -> NoReturn:
    thread = threading.current_thread()
    if thread is threading.main_thread():
        real_exit(code)
    caller = sys._getframe(1)
    log.error("os._exit(%s) called on thread %r (%s:%d): SystemExit raised there instead "
              "(a plugin's own thread ends, a driver call such as write() fails), the "
              "other IOCs go on", code, thread.name, caller.f_code.co_filename, caller.f_lineno)
    raise SystemExit(code)


#: Seconds, after a stop, that plugin threads which are not daemons get to end by
#: themselves before the process leaves without them.
HELD_GRACE = 0.5


def held_threads() -> list[str]:
    """After the engine stopped: the plugin threads that are not daemons and still run
    after :data:`HELD_GRACE` (logged). Python waits for each at exit, forever for a device
    loop (alone, such a script never ended on Ctrl+C either): with any, the process must
    leave through :func:`leave`."""
    _end_pools()
    _end_child_processes()
    main = threading.main_thread()
    held = [t for t in threading.enumerate() if t is not main and not t.daemon]
    deadline = time.monotonic() + HELD_GRACE
    for thread in held:
        thread.join(max(0.0, deadline - time.monotonic()))
    names = [t.name for t in held if t.is_alive()]
    if names:
        log.warning("plugin thread(s) still running after the stop: %s; exiting without "
                    "waiting for them", ", ".join(names))
    return names


#: Seconds a plugin's child process gets to end on SIGTERM before it is killed.
CHILD_GRACE = 0.5


def _end_child_processes() -> None:
    """The plugins' ``multiprocessing`` children still running after the stop (a device
    poller the script's clean-up leaves running) are terminated, then killed: at exit,
    Python waits for each that is not a daemon, forever (alone, the script's process died
    on the signal and left it running)."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return
    children = [p for p in mp.active_children() if p.is_alive()]
    for child in children:
        log.warning("plugin process %r (pid %s) still running after the stop: terminated",
                    child.name, child.pid)
        child.terminate()
    deadline = time.monotonic() + CHILD_GRACE
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(CHILD_GRACE)


def _end_pools() -> None:
    """What Python's shutdown does before it waits for threads: the callbacks threading
    keeps for it (``concurrent.futures`` ends its idle pool workers there, threads that
    are not daemons and would otherwise count as held)."""
    for fn in reversed(list(getattr(threading, "_threading_atexits", []))):
        try:
            fn()
        except Exception:
            log.debug("threading exit callback failed", exc_info=True)


#: Seconds the plugins' ``atexit`` handlers get when the process leaves without finalizing.
ATEXIT_GRACE = 1.0


def leave(code: int = 0, handlers: bool = True) -> NoReturn:
    """Exit now, without finalizing, once Python's own streams are flushed and (with
    ``handlers``) the ``atexit`` handlers ran: plugins close their hardware there (at
    most :data:`ATEXIT_GRACE`, on a thread: one may be what hangs). Not while a plugin's
    call still runs on the driver thread: what it holds may be what they wait for."""
    if handlers:
        runner = threading.Thread(target=atexit._run_exitfuncs, name="atexit", daemon=True)
        runner.start()
        runner.join(ATEXIT_GRACE)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    real_exit(code)
