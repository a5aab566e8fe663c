"""The engine: one process, CA and PVA faces of one parameter database.

Owns the servers' lifecycles and threads:

* ``cas`` thread: runs pcaspy's ``process()`` loop and is the *driver thread*: CA requests
  reach the drivers there, and PVA puts are queued to it, so plugins need no locks;
* pvxs workers (inside p4p): receive PVA requests, validate puts, queue them;
* plugin threads: call ``setParam``/``updatePVs`` as pcaspy IOCs always have; the mirror
  posts to PVA from those threads under a per-PV lock. A script's own server loop runs on
  its plugin thread, in turns with the driver thread (:mod:`pvconsole.turns`).

UIs read :meth:`Engine.snapshot` and drain a :class:`Subscription` at their own pace.
The engine imports no Textual.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from p4p.server import Server
from pcaspy import SimpleServer, cas
from pcaspy.alarm import Alarm, Severity
from pcaspy.driver import Data as PcaspyData
from pcaspy.driver import manager

from . import plugins as plugin_loader
from . import capost, deadband, exitguard, gcpolicy, paramlock, retired, typemap
from . import access as access_mod
from .access import AccessError, AccessRules
from .clients import ClientInfo, ClientTracker, capture_fd1, per_pv_counts, pva_report
from .config import Config, ConfigError, check_port_free, client_addresses, free_port
from .exitguard import PLUGIN_FAULTS
from .exposure import ExposureStore, match
from .mirror import Entry, Exposure, MirroredPV, PVState, PvaMirror
from .putlog import PutLog
from .readthrough import ReadThrough, overrides_read
from .turns import turns

log = logging.getLogger(__name__)

#: Longest wait of the CA loop (s) while idle: bounds the latency of PVA puts queued to
#: the driver thread. 5 ms costs ~200 wake-ups/s, a fraction of a percent of a core.
CAS_POLL = float(os.environ.get("PVCONSOLE_CAS_POLL", "0.005"))
#: The same while CA monitors were posted to in the last second (see :class:`LoopPace`).
CAS_POLL_BUSY = float(os.environ.get("PVCONSOLE_CAS_POLL_BUSY", "0.001"))
#: CA posts per second above which the loop waits ``CAS_POLL`` again (batching sends).
CAS_BATCH_RATE = float(os.environ.get("PVCONSOLE_CAS_BATCH_RATE", "3000"))
#: Seconds a client report is shared between callers (console, control PVs, ctl).
CLIENTS_MAX_AGE = float(os.environ.get("PVCONSOLE_CLIENTS_MAX_AGE", "1.0"))
#: A client report may cost the servers this share of their time at most: the CA report
#: (``caServer.show``, C code holding the GIL) takes ~50 ms with 10,000 channels, during
#: which neither server moves.
CLIENTS_DUTY = 0.02


def clients_max_age(report_seconds: float) -> float:
    """How long to share a client report that took ``report_seconds`` to make."""
    return max(CLIENTS_MAX_AGE, report_seconds / CLIENTS_DUTY)


class _CAServer(SimpleServer):
    """pcaspy's server without its ``__del__``: that calls ``asCaStop``, which hangs once
    access security was started in the process; asCa lives as long as the process."""

    def __del__(self) -> None:
        pass


class StartupError(Exception):
    """The engine could not start; the message is one line for the operator."""


@dataclass
class PluginStatus:
    """A plugin as the engine sees it.

    Attributes:
        name: Plugin name.
        source: File or module it came from.
        pvs: Number of PVs it serves (0 when it failed).
        error: Why it was skipped, or ''.
        driver: Driver class name.
    """

    name: str
    source: str
    pvs: int = 0
    error: str = ""
    driver: str = ""


@dataclass
class EngineStats:
    """Counters for status displays (rates are computed by the reader from deltas).

    Attributes:
        pvs: PVs served over CA.
        exposed: PVs served over PVA.
        updates: Driver updates seen by the mirror.
        ca_posts: Updates posted to CA monitors.
        pva_posts: Updates posted to PVA.
        worst_post_ms: Worst CA -> PVA lag since the last read: a change written into
            the PV's Value until its post to pvxs is made.
        errors: Mirror errors (bad driver values) since start.
        puts: Puts logged since start.
        ca: CA server ``host:port`` list.
        pva: PVA server addresses.
        uptime: Seconds since start.
    """

    pvs: int
    exposed: int
    updates: int
    ca_posts: int
    pva_posts: int
    worst_post_ms: float
    errors: int
    puts: int
    ca: str
    pva: str
    uptime: float


def _check_mode(mode: str) -> None:
    if mode not in Exposure.ALL and mode not in Exposure.REQUESTS:
        raise ValueError(f"exposure must be one of {', '.join(Exposure.ALL)}, not {mode!r}")


class Subscription:
    """A UI's view of the change stream: newest state per changed PV, drained on demand."""

    def __init__(self, engine: "Engine") -> None:
        self._engine = engine
        self._dirty = engine.mirror.subscribe()

    def drain_entries(self) -> list[Any]:
        """The entries of the PVs that changed since the last drain (their states are
        built by whoever needs them: :meth:`drain`, or the console's focus)."""
        return self._engine.mirror.drain(self._dirty)

    def drain(self) -> list[PVState]:
        """States of the PVs that changed since the last drain (newest wins)."""
        return [e.state() for e in self.drain_entries()]


class LoopPace:
    """How long the CA loop waits for network events before it looks at its job queue.

    A CA post from a plugin's thread is sent when this loop next runs (the CA server
    library has no wake-up for it), so the wait is the CA latency. While monitors are
    posted to (or driver jobs ran) in the last second, the wait is ``busy`` (1 ms: CA p50
    0.9 ms instead of 3.2 ms at 2,000 updates/s, ~1 % of a core more); above
    ``batch_rate`` posts/s it is ``idle`` again, so sends go out in batches: flat out on
    2 cores with 10,000 PVs, 1 ms waits cut the writer's rate from ~7,500/s to ~5,500/s
    (clients kept up, the server lost the CPU to them). Idle: ``idle`` (5 ms).
    """

    def __init__(self, idle: float = CAS_POLL, busy: float = CAS_POLL_BUSY,
                 batch_rate: float = CAS_BATCH_RATE, window: float = 1.0) -> None:
        self.idle, self.busy, self.batch_rate, self.window = idle, min(idle, busy), batch_rate, window
        self._posts = 0
        self._busy_until = 0.0
        self._rate_at = (0.0, 0)  # (time, posts) at the start of the rate window
        self._batching = False

    def next(self, now: float, posts: int, jobs_ran: bool) -> float:
        """The wait after a loop pass, given the time, the CA post counter and whether
        driver jobs ran in it."""
        if jobs_ran or posts != self._posts:
            self._posts, self._busy_until = posts, now + self.window
        since, posts0 = self._rate_at
        if now - since >= self.window:
            self._batching = (posts - posts0) / (now - since) > self.batch_rate
            self._rate_at = (now, posts)
        return self.busy if now < self._busy_until and not self._batching else self.idle


class DriverThread(threading.Thread):
    """pcaspy's server loop, plus the queue of work that must run where drivers run."""

    def __init__(self, mirror: PvaMirror, reads: ReadThrough, poll: float = CAS_POLL) -> None:
        super().__init__(name="cas", daemon=True)
        self.jobs: deque[Callable[[], None]] = deque()
        self.poll = poll
        self.mirror = mirror
        self.reads = reads
        self._running = True

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def run(self) -> None:
        jobs, mirror, reads = self.jobs, self.mirror, self.reads
        pace = LoopPace(idle=self.poll)
        poll = self.poll
        while self._running:
            turn = turns.begin_pass()  # no script's own loop body runs meanwhile
            try:
                try:
                    cas.process(poll)
                except PLUGIN_FAULTS:  # (what a driver's call raised through the CA server)
                    log.exception("CA server loop")
                ran = bool(jobs)
                while jobs:
                    job = jobs.popleft()
                    try:
                        job()
                    except PLUGIN_FAULTS:
                        log.exception("driver-thread job failed")
                now = time.monotonic()
                mirror.expire_async(now)
                reads.poll(now)
            finally:
                if turn:
                    turns.end_pass()
            poll = min(pace.next(now, mirror.ca_posts, ran), turns.shortest)

    def stop(self) -> None:
        self._running = False


class Engine:
    """Hosts pcaspy plugins and serves them over CA and PVA."""

    _active: "Engine | None" = None  # pcaspy keeps one CA server per process

    def __init__(self, config: Config) -> None:
        self.config = config
        self.entries: dict[str, Entry] = {}
        self.plugins: list[PluginStatus] = []
        self.drivers: dict[str, Any] = {}
        self.putlog: PutLog | None = None
        self.exposure: ExposureStore | None = None
        self.mirror: PvaMirror = PvaMirror(self._submit, putlog=None, asyn_timeout=config.asyn_timeout)
        self.ca_server: SimpleServer | None = None
        self.pva_server: Server | None = None
        self.thread: DriverThread | None = None
        #: read() calls made for PVA; a new one each start (it knows the entries)
        self.reads: ReadThrough | None = None
        self.started = 0.0
        self._serving = threading.Event()  # start() is done: late databases may come
        self._stopping = False
        self._ports: set[str] = set()
        self._defaults: dict[str, str] = {}
        self.access = AccessRules(None)
        self._tracker = ClientTracker()
        self._clients_lock = threading.Lock()
        self._clients_cache: tuple[float, list[ClientInfo] | None] = (0.0, None)
        #: Seconds a client report is shared (grows with what one costs: see clients_max_age).
        self.clients_max_age = CLIENTS_MAX_AGE
        self.control: Any = None
        #: stopped while the driver thread was still in a plugin's call (see stop): the
        #: process should exit without tearing down what that thread uses
        self.left_running = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start both servers and load the plugins.

        Raises:
            StartupError: a port is taken, an address is unusable, the state dir is not
                writable. Plugin failures do not raise: see :attr:`plugins`.
        """
        if Engine._active is not None:
            raise StartupError("an engine is already running in this process (pcaspy allows one CA server)")
        paramlock.install()  # before any plugin's driver runs
        self.entries.clear()  # a stopped engine may be started again
        self._stopping = False
        self.mirror.stopped = False  # (its scan threads and waiting asyn puts go on again)
        self.plugins.clear()
        self.drivers.clear()
        self._defaults.clear()
        self._clients_cache = (0.0, None)
        cfg = self.config
        try:
            if cfg.ca_port == 0:  # the CA server itself would take 5064; 0 means "any free port"
                cfg.ca_port = free_port(cfg.ca_intf, udp=True)
                log.info("CA port 0: serving on free port %d", cfg.ca_port)
            check_port_free("CA", cfg.ca_intf, cfg.ca_port, udp=True)
            check_port_free("PVA", cfg.pva_intf, cfg.pva_port)
        except ConfigError as e:
            raise StartupError(str(e)) from None
        try:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
            self.putlog = PutLog(cfg.state_dir / "putlog.jsonl")
        except OSError as e:
            raise StartupError(f"state directory {cfg.state_dir}: {e.strerror or e}") from None
        self.mirror.putlog = self.putlog
        self.exposure = ExposureStore(cfg.state_dir / "exposure.json")
        from . import control
        try:
            # always loaded: the CA server's asLib is process-wide, so a previous engine's
            # rules must not outlive it
            self.access = AccessRules(control.effective_acf(cfg.acf, cfg.state_dir))
        except AccessError as e:
            raise StartupError(str(e)) from None
        self.mirror.access = self._pva_access
        os.environ.update(cfg.ca_env())
        exitguard.install()  # before any plugin runs
        Engine._active = self
        plugin_loader.ACF_HOOK = self._plugin_acf
        self._acf_from = ""  # the plugin whose initAccessSecurityFile governs, if one does
        with gcpolicy.loading():
            try:
                self.access.start_ca(client_addresses(cfg.ca_intf, cfg.ca_port))
                self.reads = ReadThrough(self.mirror, self.run_on_driver_thread, cfg.read_poll)
                self.thread = DriverThread(self.mirror, self.reads)
                array_bytes = _ArrayBytes()
                for spec in plugin_loader.discover(cfg.plugins, cfg.plugins_dir):
                    self._load_plugin(spec, named=bool(cfg.plugins))
                    array_bytes.keep_largest()
                if cfg.control_prefix:
                    self.control = control.start(self, cfg.control_prefix)
                # made once the plugins ran: the CA server library reads the environment
                # when it starts, and a waveform IOC raises EPICS_CA_MAX_ARRAY_BYTES at
                # import (alone, it starts its server after that); pvconsole's own
                # settings of the CA server win over a plugin's
                os.environ.update(cfg.ca_env())
                access_mod.start_inputs()  # (the rules are final now)
                array_bytes.warn_of(self.entries.values())
                try:  # checked again: the CA server library takes a random port if it is taken
                    check_port_free("CA", cfg.ca_intf, cfg.ca_port)
                except ConfigError as e:
                    raise StartupError(f"{e}: taken while the plugins loaded (one that runs a "
                                       "CA server of its own, a bare cas.caServer?)") from None
                self.ca_server = _CAServer()
                self.thread.start()  # CA serves while the PVA side is being built
                try:
                    self.pva_server = Server(providers=[self.mirror.provider], conf=cfg.pva_conf(), useenv=False)
                except Exception as e:
                    raise StartupError(f"PVA server on {cfg.pva_intf or '0.0.0.0'} (TCP port "
                                       f"{cfg.pva_port}, UDP broadcast port "
                                       f"{cfg.pva_broadcast_port}): {e}") from None
                self.access.connect_inputs(self._inputs_conf())
                self._expose_as_chosen(self.entries.values())
                self.started = time.time()
            except AccessError as e:
                self.stop()
                raise StartupError(str(e)) from None
            except BaseException:
                self.stop()
                raise
        self._serving.set()
        iocs = sum(1 for p in self.plugins if not p.error and p.source != "builtin")
        log.info("serving %d PVs from %d plugin(s): CA %s, PVA %s", len(self.entries), iocs,
                 self.ca_address(), self.pva_address())
        gcpolicy.settle()

    def stop(self, signum: int = signal.SIGINT) -> None:
        """Stop serving: PVA clients disconnect, CA server closed, files flushed.

        ``signum``: what stopped pvconsole (an operator's quit counts as SIGINT), told to
        scripts' loops as they would get it alone; their clean-up runs (for at most
        ``SCRIPT_STOP_TIMEOUT``) while the servers still serve what it sets."""
        self._serving.clear()
        self._stopping = True  # late createPV calls are refused from now on
        if self.control is not None:
            self.control.stop()
            self.control = None
        # scripts are told first: their clean-up runs beside the stop hooks, not after them
        scripts, told = plugin_loader.release_scripts(signum)
        scripts_by = time.monotonic() + SCRIPT_STOP_TIMEOUT
        for name, driver in list(self.drivers.items()):
            stop = getattr(driver, "stop", None)
            # the plugin contract's optional shutdown hook; not a script's that was told
            # of the stop as alone: it cleans up itself (its stop() may be that clean-up,
            # which it calls: called twice, a device handle closed twice raised)
            if callable(stop) and name not in told:
                _run_stop_hook(name, stop)
        _wait_for(scripts, scripts_by)
        for name in plugin_loader.still_interrupted():  # (blocked: not told after all)
            stop = getattr(self.drivers.get(name), "stop", None)
            if callable(stop):
                _run_stop_hook(name, stop)
        busy = False
        if self.thread is not None:
            self.thread.stop()
            self.mirror.stopped = True  # no put starts on the thread going away
            if self.thread.is_alive():
                self.thread.join(timeout=DRIVER_STOP_TIMEOUT)
            busy = self.thread.is_alive()
            self.thread = None
        if busy:  # a Driver.write/read that does not return (a device that does not answer)
            n = self.mirror.interrupt_puts("pvconsole stopped while the driver still worked "
                                           "on this put: outcome unknown")
            log.warning("the driver thread is still in a plugin's call after %g s: stopping "
                        "without it%s", DRIVER_STOP_TIMEOUT,
                        f" ({n} put(s) logged as interrupted)" if n else "")
        self.mirror.close_all(list(self.entries.values()))
        self.access.close()
        if self.pva_server is not None:
            self.pva_server.stop()
            self.pva_server = None
        drivers = {plugin_loader.driver_port(n): d for n, d in self.drivers.items()}
        for port in list(self._ports):
            if port in drivers:  # its threads may go on calling it (see retired): moved
                retired.retire(drivers[port], manager.pvs.get(port, {}))  # before the table goes
            self._unregister_port(port)
        if busy:  # pcaspy's server, collected, would wait for that call: keep it
            _left_running.append(self.ca_server)
            self.left_running = True
        self.ca_server = None  # pcaspy's server is torn down when collected
        if self.putlog is not None:
            self.putlog.close()
        if Engine._active is self:
            Engine._active = None
            plugin_loader.ACF_HOOK = None
        gc.unfreeze()  # what start() froze may be garbage now (an engine can be restarted)

    def __enter__(self) -> "Engine":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ plugins

    def _load_plugin(self, spec: str, named: bool = True) -> None:
        """Load one plugin; ``named``: the operator asked for it (not found in a
        plugins directory, where a module that defines no IOC is a helper, not an error)."""
        name = self._unique_name(spec)
        try:
            plugin = plugin_loader.load(spec, self._register_for_plugin, name)
            if not plugin.registered:
                for prefix, pvdb in plugin.databases:
                    self._register(prefix, pvdb, plugin_loader.driver_port(plugin.name))
            try:
                driver = plugin_loader.instantiate(plugin)
            except Exception as e:
                log.info("driver init", exc_info=True)
                raise plugin_loader.PluginError(
                    f"{spec}: driver {plugin.driver_cls.__name__}() raised {type(e).__name__}: "
                    f"{e}{plugin_loader.where(e.__traceback__)}") from None
        except (plugin_loader.PluginError, typemap.MappingError) as e:
            self._unregister_port(plugin_loader.driver_port(name))
            if self._acf_from == name:  # its access rules go with it
                self._acf_from = ""
                self._apply_rules(self.config.acf)
                log.warning("plugin %s failed: its access security file no longer governs", name)
            if not named and isinstance(e, plugin_loader.NotAPlugin):
                log.info("%s is not an IOC plugin (a helper module?): not served; name "
                         "helpers _like_this.py", spec)
                return
            log.error("plugin skipped: %s", e)
            self.plugins.append(PluginStatus(name=name, source=spec, error=str(e)))
            return
        self._attach(plugin.name, plugin.source, driver)
        if plugin.capture is not None:
            plugin.capture.when_loop_dies(lambda e, name=plugin.name: self._script_died(name, e))

    def _expose_as_chosen(self, entries: Any) -> None:
        """PVA exposure as the operator chose it (the state file) or else as the pvdb
        says; a PV off is shown so (a late PV turned off earlier showed its default)."""
        assert self.exposure is not None
        self._hide_unreadable(entries)
        for entry in entries:
            mode = self.exposure.get(entry.name, self._defaults[entry.name])
            if mode != Exposure.OFF:
                self.mirror.expose(entry, mode)
            else:
                entry.exposure = mode
                self.mirror.touch(entry)

    def _hide_unreadable(self, entries: Any) -> None:
        """PVs whose ASG refuses READ to some clients are off PVA by default: every PVA
        client could read them (p4p's server gives gets and monitors no check), where CA
        refuses them. An operator may still turn one on (that choice is kept)."""
        hidden: dict[str, int] = {}
        for entry in entries:
            asg = entry.spec.asg or "DEFAULT"
            if self._defaults[entry.name] != Exposure.OFF and self.access.read_restricted(asg):
                self._defaults[entry.name] = Exposure.OFF
                hidden[asg] = hidden.get(asg, 0) + 1
        for asg, n in sorted(hidden.items()):
            log.warning("ASG %s refuses READ to some clients: its %d PV(s) are not served on "
                        "PVA, which cannot refuse a get or monitor per client (turn one on to "
                        "serve it to every PVA client)", asg, n)

    def _register_for_plugin(self, prefix: str, pvdb: dict, port: str, late: bool = False) -> None:
        """A plugin's ``createPV``: while it loads, or (``late``) once pvconsole serves."""
        if late:
            self.add_database(port.split(":", 1)[1], prefix, pvdb)
        else:
            self._register(prefix, pvdb, port)

    def _plugin_acf(self, plugin: str, filename: str, macros: dict[str, str]) -> None:
        """A script's ``initAccessSecurityFile`` while it loads. Without ``--acf`` its file
        governs, on both protocols, as it did alone (ignored, the PVs it protects were
        writable by anybody); one file governs every plugin (pcaspy's asLib is one per
        process), so ``--acf`` or an earlier script's file wins, and the log says so."""
        shown = filename + (f" ({', '.join(f'{k}={v}' for k, v in macros.items())})" if macros else "")
        if self.config.acf is not None or self._acf_from:
            by = f"--acf {self.config.acf}" if self.config.acf is not None else f"plugin {self._acf_from}'s"
            log.warning("plugin %s: its access security file %s is not applied: %s governs "
                        "every plugin (one file for both protocols)", plugin, shown, by)
            return
        path = Path(filename)
        if not path.is_absolute() and not path.exists() and sys.argv and sys.argv[0]:
            path = Path(sys.argv[0]).parent / path  # (the script's, while it loads: alone,
            # it may have been run from its own directory)
        try:
            own = self.config.state_dir / "plugin.acf"
            own.write_text(access_mod.expand_macros(access_mod.read_acf(path), macros))
            self._apply_rules(own, script=plugin)
        except (AccessError, OSError) as e:
            log.error("plugin %s: its access security file %s is not applied: %s; its PVs are "
                      "served without access security (--acf FILE gives them one)", plugin, shown, e)
            return
        self._acf_from = plugin
        others = [p.name for p in self.plugins if not p.error and p.source != "builtin"]
        log.warning("plugin %s: its access security file %s governs both protocols%s", plugin,
                    shown, f", for plugins {', '.join(others)} too (one file for all; --acf FILE "
                    "overrides)" if others else " (--acf FILE overrides)")

    def _apply_rules(self, user_acf: Path | None, script: str = "") -> None:
        """Both servers' access rules from now on: ``user_acf`` (a ``script``'s own, when
        named) and pvconsole's own groups."""
        from . import control
        rules = AccessRules(control.effective_acf(user_acf, self.config.state_dir, script))
        rules.start_ca(client_addresses(self.config.ca_intf, self.config.ca_port))
        self.access.close()
        self.access = rules

    def add_database(self, plugin: str, prefix: str, pvdb: dict) -> list[str]:
        """Serve PVs a running plugin adds (a script's ``createPV`` after start-up: the
        gateway's PVs whose IOC came up later), on CA and PVA as its others; the driver's
        parameter database gets them too (alone, pcaspy leaves that to the script).
        Waits until the engine serves; runs on the driver thread. Returns their names.

        Raises:
            PluginError: a name clash, a bad pvdb, the engine not serving in time.
        """
        if self._stopping or not self._serving.wait(LATE_CREATE_TIMEOUT) or self._stopping:
            raise plugin_loader.PluginError(f"{plugin}: createPV({prefix!r}): pvconsole is not serving")
        try:
            return self.run_on_driver_thread(lambda: self._add_database(plugin, prefix, pvdb),
                                             LATE_CREATE_TIMEOUT, or_not_at_all=True)
        except TimeoutError:
            raise plugin_loader.PluginError(
                f"{plugin}: createPV({prefix!r}): the driver thread did not take it within "
                f"{LATE_CREATE_TIMEOUT:g} s (a plugin's call holds it): not served") from None
        except typemap.MappingError as e:
            raise plugin_loader.PluginError(f"{plugin}: createPV({prefix!r}): {e}") from None

    def _add_database(self, plugin: str, prefix: str, pvdb: dict) -> list[str]:
        driver = self.drivers.get(plugin)
        if driver is None or self.exposure is None:
            raise plugin_loader.PluginError(f"{plugin}: createPV({prefix!r}): not served any more")
        added = self._register(prefix, pvdb, plugin_loader.driver_port(plugin))
        _give_parameters(driver, added)
        for status in self.plugins:
            if status.name == plugin:
                status.pvs += len(added)
        if self.reads is not None and overrides_read(driver):
            self.reads.add(added)
        self._expose_as_chosen(added)
        names = [e.name for e in added]
        log.info("plugin %s: %d PV(s) added while serving: %s", plugin, len(names), _names(names))
        return names

    def _script_died(self, name: str, error: BaseException) -> None:
        """A script's own loop died while its PVs are served. Run alone, the script's
        process would have ended and its clients seen a disconnect; here its PVs stay,
        so they say so: INVALID with a COMM alarm, on both protocols, until a restart
        (or until a thread of the plugin sets them again). Puts are refused: the script
        would have serviced them in the loop that died, and one that went through set
        the PV healthy again."""
        why = f"plugin {name}'s loop stopped ({type(error).__name__}: {error}): restart pvconsole"

        def mark() -> None:
            driver = self.drivers.get(name)
            mine = self._entries_of(name)
            if driver is None or not mine:
                return
            for entry in mine:
                entry.refusal = why
                driver.setParamStatus(entry.spec.reason, Alarm.COMM_ALARM, Severity.INVALID_ALARM)
            driver.updatePVs()
            log.error("plugin %s: its %d PVs are INVALID (COMM) now that its loop stopped "
                      "(%s: %s)", name, len(mine), type(error).__name__, error)
        self._submit(mark)

    def _entries_of(self, plugin: str) -> list[Entry]:
        return [e for e in self.entries.values() if e.plugin == plugin]

    def _unique_name(self, spec: str) -> str:
        """The plugin's short name, or (another plugin has it: ``a/ioc.py`` and
        ``b/ioc.py``, ``pkg.x:ioc`` and ``pkg.y:ioc``) a qualified one."""
        taken = {p.name for p in self.plugins}
        name = plugin_loader.plugin_name(spec)
        if name not in taken:
            return name
        base = name = plugin_loader.qualified_name(spec)
        n = 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        return name

    def _attach(self, name: str, source: str, driver: Any) -> None:
        """Make ``driver`` the one pcaspy and the mirror call for plugin ``name``'s PVs."""
        manager.driver[plugin_loader.driver_port(name)] = driver
        self.drivers[name] = driver
        capost.install_fast_update_pvs(driver)
        mine = self._entries_of(name)
        _give_parameters(driver, mine)  # (a script's createPV after its Driver() too)
        self.plugins.append(PluginStatus(name=name, source=source, pvs=len(mine),
                                         driver=type(driver).__name__))
        log.info("plugin %s: %d PVs, driver %s", name, len(mine), type(driver).__name__)
        if self.reads is not None and source != "builtin" and overrides_read(driver):
            n = self.reads.add(mine)  # (the control PVs refresh themselves)
            if n:
                log.info("plugin %s: %s.read() serves CA gets of %d passive PVs: PVA reads "
                         "them too, on connect and every %g s while watched (--read-poll)",
                         name, type(driver).__name__, n, self.config.read_poll)

    def add_builtin(self, name: str, prefix: str, pvdb: dict, factory: Callable[[], Any]) -> Any:
        """Serve a database of pvconsole's own (the control PVs) like a plugin."""
        self._register(prefix, pvdb, plugin_loader.driver_port(name))
        driver = plugin_loader.instantiate(plugin_loader.PluginDef(name=name, source="builtin",
                                                                   driver_cls=factory))
        self._attach(name, "builtin", driver)
        return driver

    def _register(self, prefix: str, pvdb: dict, port: str) -> list[Entry]:
        """Serve one pcaspy database on CA (and prepare its PVA side); returns its entries."""
        plugin = port.split(":", 1)[1]
        if not isinstance(prefix, str) or not isinstance(pvdb, dict):
            raise plugin_loader.PluginError(f"{plugin}: prefix must be a str and pvdb a dict")
        own_port = next(((r, i["port"]) for r, i in pvdb.items()
                         if isinstance(i, dict) and i.get("port") not in (None, "default")), None)
        if own_port is not None:  # pcaspy's several drivers in one server
            reason, asked = own_port
            raise plugin_loader.PluginError(
                f"{plugin}: PV {prefix}{reason} asks for pcaspy port {asked!r}: pvconsole gives "
                "each plugin one Driver on a port of its own; drop the 'port' keys and the "
                "Driver's port attribute, or make one plugin per driver")
        specs = [typemap.spec_from_pvdb(prefix, reason, info) for reason, info in pvdb.items()]
        clashes = [s.name for s in specs if s.name in self.entries or s.name in manager.pvf]
        if clashes:
            owners = {self.entries[n].plugin for n in clashes if n in self.entries}
            raise plugin_loader.PluginError(
                f"{plugin}: PV name clash: {', '.join(clashes[:5])}"
                f"{' …' if len(clashes) > 5 else ''} already served"
                f"{' by plugin ' + ', '.join(sorted(owners)) if owners else ''}")
        self._ports.add(port)
        table = manager.pvs.setdefault(port, {})
        added: dict[str, Entry] = {}
        defaults: dict[str, str] = {}
        for spec in specs:
            info = {k: v.item() if isinstance(v, np.generic) else v  # (SWIG takes no numpy
                    for k, v in pvdb[spec.reason].items()}  # int: np.prod(shape) as count)
            info.pop("pva", None)
            if info.get("count") == 0:  # a scalar (pcaspy's own count 0 served one too)
                info["count"] = 1
            info["port"] = port
            if self.access.active and not info.get("asg"):
                info["asg"] = "DEFAULT"  # as in an IOC: no ASG means DEFAULT
            if info.get("type") == "str":
                info["type"] = "string"
            try:
                pvinfo = deadband.PVInfo(info)
            except (TypeError, ValueError, OverflowError, MemoryError) as e:  # pcaspy's own checks
                raise typemap.MappingError(f"{spec.name}: pcaspy refuses its pvdb entry "
                                           f"({type(e).__name__}: {e})") from None
            pvinfo.reason = spec.reason
            pvinfo.name = spec.name
            pvinfo.control = spec.meta.control  # (pvconsole's: setParamInfo may change it)
            entry = Entry(spec, plugin)
            pv = MirroredPV(spec.name, pvinfo, entry, self.mirror)
            manager.pvf[spec.name] = pv
            earlier = table.get(spec.reason)
            if earlier is not None:  # one parameter, several names: all get its updates
                pv.aliases = [*earlier.aliases, earlier]
            table[spec.reason] = pv
            added[spec.name] = entry
            defaults[spec.name] = entry.exposure = (
                Exposure.OFF if not spec.expose else
                Exposure.READONLY if spec.readonly else Exposure.ON)
        # new dicts, not changed ones: UI and control threads walk these while a late
        # createPV adds to them
        self.entries = {**self.entries, **added}
        self._defaults = {**self._defaults, **defaults}
        return list(added.values())

    def _unregister_port(self, port: str) -> None:
        """Forget the PVs of ``port`` (and their aliases)."""
        table = manager.pvs.pop(port, {})
        for pv in [p for last in table.values() for p in (last, *last.aliases)]:
            manager.pvf.pop(pv.name, None)
            entry = self.entries.pop(pv.name, None)
            if entry is not None:
                self._defaults.pop(entry.name, None)
        manager.driver.pop(port, None)
        self._ports.discard(port)

    def _pva_access(self, entry: Entry, account: str, host: str) -> str | None:
        asg = entry.spec.asg or "DEFAULT"
        if self.access.can_write(asg, account, host):
            return None
        return f"ASG {asg} denies {account}@{host}"

    def run_on_driver_thread(self, fn: Callable[[], Any], timeout: float = 2.0,
                             or_not_at_all: bool = False) -> Any:
        """Run ``fn`` where the drivers run and wait for its result (not from that thread).

        Raises:
            TimeoutError: no result within ``timeout`` (``fn`` may still run later; with
                ``or_not_at_all``, a ``fn`` not begun by then never runs, and one begun
                is waited for: nothing half-done is left behind its caller's back).
        """
        if self.thread is None or threading.current_thread() is self.thread:
            return fn()
        done, gate, box = threading.Event(), threading.Lock(), {}

        def job() -> None:
            with gate:
                if box.get("cancelled"):
                    return
                box["begun"] = True
            try:
                box["result"] = fn()
            except Exception as e:  # handed back to the caller
                box["error"] = e
            finally:
                done.set()
        self.thread.submit(job)
        if not done.wait(timeout):
            if not or_not_at_all:
                raise TimeoutError("driver thread busy")
            with gate:
                if not box.get("begun"):
                    box["cancelled"] = True
                    raise TimeoutError("driver thread busy")
            done.wait()  # begun just now
        if "error" in box:
            raise box["error"]
        return box["result"]

    def clients(self) -> list[ClientInfo]:
        """Connected clients on both protocols (see :mod:`pvconsole.clients`).

        A report younger than :attr:`clients_max_age` is shared: the console and the
        control PVs both ask every few seconds, and with 10,000 channels one report holds
        the GIL for ~50 ms (CA) plus ~20 ms (PVA). That age is ``CLIENTS_MAX_AGE``, or
        longer when a report costs more than ``CLIENTS_DUTY`` of it.
        """
        with self._clients_lock:
            at, known = self._clients_cache
            now = time.monotonic()
            if known is not None and now - at < self.clients_max_age:
                return known
            cost: list[float] = []
            known = self._clients_report(cost)
            self.clients_max_age = clients_max_age(sum(cost))
            self._clients_cache = (time.monotonic(), known)
            return known

    def _clients_report(self, cost: list[float]) -> list[ClientInfo]:
        """Both protocols' reports; appends to ``cost`` the seconds each took to make, not
        counting the wait for the driver thread (a 3 s ``write()`` there made the report
        look 3 s dear, and a gone client was shown for 150 s)."""
        def timed(make: Callable[..., Any], *args: Any) -> Any:
            started = time.monotonic()
            try:
                return make(*args)
            finally:
                cost.append(time.monotonic() - started)

        ca_text = None
        if self.ca_server is not None:
            server = self.ca_server
            try:
                ca_text = self.run_on_driver_thread(lambda: timed(capture_fd1, lambda: server.show(3)))
            except TimeoutError:
                log.warning("CA client report timed out")
        rows = timed(pva_report, self.pva_server, self._tracker.pva_interval()) if self.pva_server else []
        return self._tracker.build(ca_text, rows, self.config.ca_port)

    def client_counts(self, clients: list[ClientInfo] | None = None) -> dict[str, tuple[int, int]]:
        """PV name -> (CA clients, PVA clients)."""
        return per_pv_counts(self.clients() if clients is None else clients)

    def _submit(self, job: Callable[[], None]) -> None:
        if self.thread is None:
            raise RuntimeError("engine not running")
        self.thread.submit(job)

    # ------------------------------------------------------------------ API for UIs

    def snapshot(self) -> list[PVState]:
        """The state of every PV, sorted by name."""
        return [self.entries[n].state() for n in sorted(self.entries)]

    def subscribe(self) -> Subscription:
        """A new change stream (each consumer gets its own)."""
        return Subscription(self)

    def set_exposure(self, pattern: str, mode: str) -> list[str]:
        """Turn PVA on/off/read-only for one PV or a glob pattern; persisted.

        Returns:
            Names of the PVs whose mode changed.

        Raises:
            ValueError: unknown mode or no PV matches.
        """
        _check_mode(mode)
        names = match(pattern, self.entries)
        if not names:
            raise ValueError(f"no PV matches {pattern!r}")
        return self.set_exposure_many(names, mode)

    def set_exposure_many(self, names: list[str], mode: str) -> list[str]:
        """Like :meth:`set_exposure` for explicit names; the state file is written once."""
        _check_mode(mode)
        unknown = [n for n in names if n not in self.entries]
        if unknown:
            raise ValueError(f"no such PV: {', '.join(unknown[:5])}")
        modes = {n: self._resolve(n, mode) for n in names}
        changed = [n for n in names if self.entries[n].exposure != modes[n]]
        for name in changed:
            self.mirror.expose(self.entries[name], modes[name])
        if self.exposure is not None and changed:
            self.exposure.set({n: modes[n] for n in changed}, self._defaults)
        for m in Exposure.ALL:
            these = [n for n in changed if modes[n] == m]
            if these:
                log.info("PVA exposure %s: %s", m, _names(these))
        return changed

    def _resolve(self, name: str, mode: str) -> str:
        """The mode a request (:attr:`Exposure.REQUESTS`) means for one PV, from its pvdb."""
        default = self._defaults.get(name, Exposure.ON)
        if mode == Exposure.AS_DEFINED:
            return default
        if mode == Exposure.SHOWN:
            return Exposure.ON if default == Exposure.OFF else default
        if mode == Exposure.WRITABLE:
            return Exposure.READONLY if default == Exposure.READONLY else Exposure.ON
        return mode

    def entry(self, name: str) -> Entry:
        return self.entries[name]

    def pva_structure(self, name: str) -> Any:
        """The PVA value served for ``name`` (a fresh copy), or None if off: what its PVA
        clients see, or (nobody connected) what the next one would be served."""
        entry = self.entries[name]
        with entry.lock:
            if not entry.pva_clients:  # a post now reaches no monitor
                self.mirror.sync(entry)
            pv = entry.pva_pv
        return pv.current() if pv is not None else None

    def stats(self) -> EngineStats:
        m = self.mirror
        worst, m.worst_post = m.worst_post, 0.0
        return EngineStats(
            pvs=len(self.entries),
            exposed=sum(1 for e in self.entries.values() if e.pva_pv is not None),
            updates=m.updates,
            ca_posts=m.ca_posts, pva_posts=m.pva_posts, worst_post_ms=worst * 1000,
            errors=m.errors, puts=self.putlog.since_start if self.putlog else 0,
            ca=self.ca_address(), pva=self.pva_address(),
            uptime=time.time() - self.started if self.started else 0.0,
        )

    def ca_address(self) -> str:
        return " ".join(f"{a}:{self.config.ca_port}" for a in (self.config.ca_intf.split() or ["0.0.0.0"]))

    def pva_address(self) -> str:
        if self.pva_server is None:
            return ""
        conf = self.pva_server.conf()
        port = conf.get("EPICS_PVAS_SERVER_PORT", "")
        addrs = conf.get("EPICS_PVAS_INTF_ADDR_LIST", "0.0.0.0").split()
        return " ".join(a if ":" in a else f"{a}:{port}" for a in addrs)

    def pva_client_conf(self) -> dict[str, str]:
        """A p4p client configuration that reaches this engine's PVA server directly."""
        assert self.pva_server is not None
        port = int(self.pva_server.conf()["EPICS_PVAS_SERVER_PORT"])
        return {"EPICS_PVA_NAME_SERVERS": client_addresses(self.config.pva_intf, port)[0],
                "EPICS_PVA_ADDR_LIST": "", "EPICS_PVA_AUTO_ADDR_LIST": "NO"}

    def _inputs_conf(self) -> dict[str, str]:
        """Where access rules' INP PVs are looked for: this engine's PVA server first,
        then whatever the EPICS_PVA_* environment reaches (other IOCs)."""
        ours = self.pva_client_conf()["EPICS_PVA_NAME_SERVERS"]
        others = os.environ.get("EPICS_PVA_NAME_SERVERS", "")
        return {"EPICS_PVA_NAME_SERVERS": f"{ours} {others}".strip()}


#: Seconds a stop waits for the driver thread to leave a plugin's call before it goes on.
DRIVER_STOP_TIMEOUT = float(os.environ.get("PVCONSOLE_DRIVER_STOP_TIMEOUT", "1"))
#: CA servers of engines stopped while their driver thread was still in a plugin's call:
#: tearing one down waits for that call (the process exits without it).
_left_running: list[Any] = []

#: Seconds a plugin's ``createPV`` after start-up waits for the engine to take it.
LATE_CREATE_TIMEOUT = float(os.environ.get("PVCONSOLE_LATE_CREATE_TIMEOUT", "10"))
#: Seconds pvconsole waits for a plugin's ``Driver.stop()`` before it stops without it.
STOP_HOOK_TIMEOUT = float(os.environ.get("PVCONSOLE_STOP_HOOK_TIMEOUT", "2"))


#: Seconds pvconsole waits, in all, for scripts' own clean-up when it stops.
SCRIPT_STOP_TIMEOUT = float(os.environ.get("PVCONSOLE_SCRIPT_STOP_TIMEOUT", "1"))


class _ArrayBytes:
    """``EPICS_CA_MAX_ARRAY_BYTES`` as the plugins set it: the largest any one asked for
    (a plugin loaded later does not lower another's), and a warning naming PVs larger."""

    VAR = "EPICS_CA_MAX_ARRAY_BYTES"
    DEFAULT = 16384  # EPICS base's
    #: bytes per element as CA sends them (DBR types; a string is 40)
    SIZES = {"float": 8, "int": 4, "short": 2, "char": 1, "enum": 2, "string": 40, "str": 40}

    def __init__(self) -> None:
        self.largest = self._value(os.environ.get(self.VAR))

    @staticmethod
    def _value(text: str | None) -> int:
        try:
            return int(text) if text is not None else 0
        except ValueError:
            return 0

    def keep_largest(self) -> None:
        now = self._value(os.environ.get(self.VAR))
        if now < self.largest:
            os.environ[self.VAR] = str(self.largest)
        self.largest = max(self.largest, now)

    def warn_of(self, entries: Any) -> None:
        """(Not char arrays: pcaspy sends a text's length, not the count.)"""
        limit = self.largest or self.DEFAULT
        sizes = ((e.spec.count * self.SIZES.get(e.spec.ca_type, 8), e.name) for e in entries
                 if e.spec.ca_type != "char")
        big = sorted((size, name) for size, name in sizes if size > limit)[::-1]
        if big:
            log.warning("%d PV(s) larger than %s (%d bytes): CA clients get ECA_TOLARGE for "
                        "them, PVA serves them (largest: %s, %d bytes); set it above that for "
                        "pvconsole and the CA clients", len(big), self.VAR, limit, big[0][1], big[0][0])


def _give_parameters(driver: Any, entries: list[Entry]) -> None:
    """Make ``driver`` the one of ``entries``, with a parameter for each PV its database
    lacks: one created after the Driver (pcaspy's ``Driver()`` makes the parameters of
    the PVs that exist then; alone, a later PV's ``setParam`` raises KeyError)."""
    slots = {}
    for entry in entries:
        entry.driver = driver
        if entry.spec.reason not in driver.pvDB:  # (one pvdb under a second prefix has it)
            slots[entry.spec.reason] = data = PcaspyData()
            data.value = entry.ca_pv.info.value
    if slots:
        driver.pvDB = {**driver.pvDB, **slots}  # a plugin thread may be walking the old one


def _wait_for(threads: list[threading.Thread], deadline: float) -> None:
    """Join ``threads`` until ``deadline`` (``time.monotonic()``); say which go on (a
    script whose threads never end: the process exits without them)."""
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in threads if t.is_alive()]
    if left:
        log.info("stopping without waiting longer for %s (PVCONSOLE_SCRIPT_STOP_TIMEOUT)", ", ".join(left))


def _run_stop_hook(name: str, hook: Callable[[], Any]) -> None:
    """Call a plugin's ``stop()``; one that hangs (a device that does not answer) must not
    keep the servers from stopping."""
    def run() -> None:
        try:
            hook()
        except Exception:
            log.exception("plugin %s: stop() raised", name)
    thread = threading.Thread(target=run, name=f"stop-{name}", daemon=True)
    thread.start()
    thread.join(STOP_HOOK_TIMEOUT)
    if thread.is_alive():
        log.warning("plugin %s: stop() still running after %g s; stopping without it "
                    "(PVCONSOLE_STOP_HOOK_TIMEOUT)", name, STOP_HOOK_TIMEOUT)


def _names(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
