"""The mirror: every change a pcaspy driver makes reaches PVA, and PVA puts reach the driver.

pcaspy funnels every value, alarm and metadata change through ``SimplePV.updateValue``
(from ``updatePV(s)``, scan threads and ``callbackPV`` flows), but returns early there when
no CA client monitors the PV. :class:`MirroredPV` overrides it to write the change into
the PV's persistent p4p ``Value`` first, on the calling thread, under a per-PV lock (a few
microseconds: only the changed fields are rewritten). The post to pvxs is made by the
``pva-post`` thread (:class:`_PostThread`), which takes the pvxs loop's wake-ups off the
plugin's thread and posts back to back what queued while it was busy. Like
pcaspy's CA side, it posts only to a PV somebody sees: while no PVA channel is open the
change is only noted, and the first channel (pvxs calls ``onFirstConnect`` before any
operation on it) brings the PVA value up to date. The CA post itself is built by
:mod:`capost`.

PVA puts are validated on the pvxs worker (pure :mod:`typemap` checks), then queued to the
driver thread, which is the only thread that calls ``Driver.write``.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, NamedTuple

from p4p._p4p import SharedPV as _RawSharedPV
from p4p.server import StaticProvider
from p4p.server.raw import SharedPV
from pcaspy import cas
from pcaspy.alarm import Alarm, Severity
from pcaspy.driver import SimplePV

from . import asyncput, capost, paramlock, typemap
from .exitguard import PLUGIN_FAULTS
from .putlog import PutRecord, PutResult, WriteRefused, write_failed, written
from .paramlock import Change
from .typemap import Meta, PVSpec

log = logging.getLogger(__name__)
#: PVA posts a second above which changes are posted by the post thread (:class:`_PostThread`,
#: throughput first); below, at once on the changing thread (latency first: a wake-up of the
#: pvxs loop per post costs little at that rate). Measured over ``RATE_WINDOW`` seconds.
DEFER_RATE = float(os.environ.get("PVCONSOLE_PVA_BATCH_RATE", "3000"))
RATE_WINDOW = 0.05
#: Seconds after a ``callbackPV`` before the next put waiting for the PV starts.
NEXT_PUT_DELAY = float(os.environ.get("PVCONSOLE_ASYN_NEXT_DELAY", "0.02"))
#: CA event mask bit of a metadata change (setParamInfo, setParamEnums).
DBE_PROPERTY = cas.DBE_PROPERTY
DBE_ALARM = cas.DBE_ALARM
#: The changes a PVA monitor is sent, as QSRV's default monitors and CA's (a change
#: within ``mdel`` but beyond ``adel`` is DBE_LOG only: for archivers, not for monitors).
MONITORED = cas.DBE_VALUE | cas.DBE_ALARM | cas.DBE_PROPERTY
VALUE_OR_ALARM = cas.DBE_VALUE | cas.DBE_ALARM
#: What a CA put that failed ends with (a CA client sees ECA_PUTFAIL).
PUT_FAILED = cas.S_casApp_undefined
_STAMP = cas.epicsTimeStamp


class Exposure:
    """PVA exposure modes of a PV."""

    ON = "on"
    OFF = "off"
    READONLY = "ro"
    ALL = (ON, OFF, READONLY)
    #: Requests, not modes, resolved per PV from its pvdb: as the pvdb defines it (off
    #: for one it hides: the console's bulk toggle back from off); the same, but on for
    #: one it hides (the toggle of one PV); on, read-only where the pvdb says so (the
    #: console's toggle back from read-only).
    AS_DEFINED = "defined"
    SHOWN = "shown"
    WRITABLE = "writable"
    REQUESTS = (AS_DEFINED, SHOWN, WRITABLE)


class PVState(NamedTuple):
    """A consistent view of one PV for UIs (engine snapshot and change stream).

    A named tuple, not a dataclass: one is made for every change a console is sent, on
    both sides of the pipe, and a tuple is built six times faster (and pickles as one).

    Attributes:
        name: Full PV name.
        plugin: Plugin that serves it.
        ca_type: pcaspy type name.
        pva_type: PVA type, e.g. 'NTScalar double'.
        value: Driver value (as ``getParam`` returns it).
        text: ``value`` formatted with precision, units, enum choice.
        severity: CA/PVA alarm severity 0..3.
        condition: CA alarm condition code (pcaspy ``Alarm``).
        timestamp: POSIX seconds of the last update.
        exposure: 'on', 'off' or 'ro'.
        ca_monitored: A CA client monitors it.
        pva_clients: PVA channels open on it.
        updates: Updates posted since start.
        puts: Puts received since start (both protocols).
    """

    name: str
    plugin: str
    ca_type: str
    pva_type: str
    value: Any
    text: str
    severity: int
    condition: int
    timestamp: float
    exposure: str
    ca_monitored: bool
    pva_clients: int
    updates: int
    puts: int

    @property
    def flags(self) -> tuple:
        """What a console shows of a PV even off screen (see ``Entry.flags``)."""
        return (self.severity, self.condition, self.exposure, self.ca_monitored, self.pva_clients)


def take_meta(entry: Entry) -> bool:
    """The PV's metadata from its pcaspy info after a property change (caller holds
    entry.lock); True when the value must be written again (its array count changed).

    An array's ``count`` is followed: pcaspy's ``setParamInfo`` sets any field, and CA
    serves the new count at once; PVA cut values and refused puts at the old one. A
    count to or from 1 would change the PVA type, which stays as it was served."""
    info = entry.ca_pv.info
    entry.meta = typemap.meta_from_info(info)
    spec = entry.spec
    try:
        count = int(info.count)
    except (TypeError, ValueError):
        return False
    if count == spec.count:
        return False
    if count > 1 and spec.count > 1:
        entry.spec = spec = dataclasses.replace(spec, count=count)
        entry.update = typemap.updater(spec)
        entry.pva_type_name = typemap.pva_type_name(spec)
        return True
    if not getattr(info, "count_warned", False):
        info.count_warned = True
        log.warning("%s: setParamInfo changed count from %d to %d: PVA serves it as the %s "
                    "it was", spec.name, spec.count, count, entry.pva_type_name)
    return False


class Entry:
    """Everything the engine knows about one PV; shared by the CA and PVA sides."""

    __slots__ = ("spec", "plugin", "meta", "driver", "ca_pv", "pva_pv", "value", "lock",
                 "exposure", "update", "data", "updates", "puts", "pva_clients",
                 "ca_monitored", "last_post", "pva_type_name", "put_busy", "stale",
                 "on_connect", "unposted", "written_at", "refusal", "seq", "ca_update",
                 "ca_posted")

    def __init__(self, spec: PVSpec, plugin: str) -> None:
        self.spec = spec
        self.plugin = plugin
        self.meta: Meta = spec.meta
        self.driver: Any = None
        self.ca_pv: MirroredPV | None = None
        self.pva_pv: SharedPV | None = None
        self.value: Any = None  # the persistent PVA Value while exposed
        self.lock = threading.Lock()
        self.exposure = Exposure.ON
        self.update = typemap.updater(spec)
        #: newest (value, condition, severity, sec, nsec) from the driver
        self.data: tuple = (spec.initial, Alarm.UDF_ALARM, Severity.INVALID_ALARM, 0, 0)
        self.updates = 0
        self.puts = 0
        self.pva_clients = 0
        self.ca_monitored = False
        self.last_post = 0.0
        self.pva_type_name = typemap.pva_type_name(spec)
        self.put_busy = False
        #: driver data newer than the PVA value (held back while no PVA channel is open)
        self.stale = False
        #: called (pvxs worker) when the first PVA channel opens, before the value is
        #: brought up to date from the parameter database: returns a value to serve
        #: instead of the stored one (what the driver's read() returns), or None
        self.on_connect: Callable[[], Any] | None = None
        #: the Value holds a change the post thread has yet to post (the PV is queued)
        self.unposted = False
        self.written_at = 0.0  # time.perf_counter() of that change
        #: why every put is refused, on both protocols (its script's loop died), or None
        self.refusal: str | None = None
        #: number of the newest change published (:class:`paramlock.Change`)
        self.seq = 0
        #: the newest change with a CA event mask, and the last one posted to CA
        self.ca_update: Change | None = None
        self.ca_posted: Change | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def flags(self) -> tuple:
        """What a console counts and colours even off screen, as ``PVState.flags`` of
        :meth:`state` has it (cheap: no value formatting)."""
        _, condition, severity, _, _ = self.data
        return (int(severity), int(condition), self.exposure, self.ca_monitored, self.pva_clients)

    def state(self) -> PVState:
        value, condition, severity, sec, nsec = self.data
        return PVState(
            name=self.spec.name, plugin=self.plugin, ca_type=self.spec.ca_type,
            pva_type=self.pva_type_name, value=value,
            text=typemap.format_value(self.spec, self.meta, value),
            severity=int(severity), condition=int(condition),
            timestamp=(sec + typemap.POSIX_TIME_AT_EPICS_EPOCH + nsec * 1e-9) if sec else 0.0,
            exposure=self.exposure, ca_monitored=self.ca_monitored,
            pva_clients=self.pva_clients, updates=self.updates, puts=self.puts,
        )


class MirroredPV(SimplePV):
    """pcaspy's PV with the mirror hooked into the paths every change takes."""

    def __init__(self, name: str, info: Any, entry: Entry, mirror: "PvaMirror") -> None:
        self.entry = entry
        self.mirror = mirror
        self._ends_own_write = False  # pcaspy is about to end a refused asyn CA write
        self._failed = False  # the write being answered failed (driver raised, or refused)
        #: PVs of the same parameter made before this one (a script's ``createPV`` of one
        #: pvdb under two prefixes): pcaspy's table keeps the last, so its updates reach
        #: the others only through this one
        self.aliases: list[MirroredPV] = []
        entry.ca_pv = self
        super().__init__(name, info)
        if entry.data[0] is None:  # no pvdb 'value': pcaspy's default (0, '' or zeros)
            entry.data = (info.value, *entry.data[1:])

    def updateValue(self, dbValue: Any) -> None:
        self._post(dbValue)
        for alias in self.aliases:
            alias._post(dbValue)

    def _post(self, dbValue: Any) -> None:
        if self.mirror.publish(self.entry, dbValue) is not None:
            later = capost.batched()
            if later is None:
                self.post_ca()
            else:  # within an updatePVs(): after the PVA posts of its other PVs
                later.append(self)

    def post_ca(self) -> None:
        """Post the PV's newest change to its CA monitors (published already)."""
        entry = self.entry
        if not self.interest:  # nobody to post it to: not owed to the next post either
            entry.ca_posted = entry.ca_update
            return
        update = entry.ca_update  # the newest: an older one is not posted after it
        if update is entry.ca_posted:  # another thread's post of it is done
            return
        try:
            while True:
                capost.post(self, update)
                self.mirror.ca_posts += 1
                entry.ca_posted = update
                # a newer change may have been posted before this one (the CA post is
                # outside the lock: the CA server's thread may hold what it waits for):
                # the last CA post of a PV is its newest change, as on PVA
                newest = entry.ca_update
                if newest is update:
                    return
                update = newest
        except capost.NotServable as e:
            self.mirror.report_error(entry, "driver value not servable over CA", str(e))
        except Exception:
            self.mirror.report_error(entry, "CA post failed")

    def getValue(self, value: Any) -> Any:
        """A CA get. A driver ``read()`` that raises gets the parameter database's value
        served, its error logged once, as the PVA side does: pcaspy lets the exception
        cross the CA server library's C++, and the process dies with every plugin's PVs."""
        db = self.mirror.param(self.entry)  # (its timestamp made one CA can serve)
        value = capost.get_target(self.info, value)
        try:
            status = super().getValue(value)
        except capost.NotServable as e:
            self.mirror.report_error(self.entry, "driver value not servable over CA", str(e))
            return cas.S_casApp_undefined
        except PLUGIN_FAULTS:
            self.mirror.read_failed(self.entry, "driver read() raised on a CA get")
        else:
            # (a scanned PV's get calls no read(): its scan's reads say how it is)
            if self.info.scan <= 0 and self.mirror.read_ok(self.entry):
                db = self.entry.driver.getParamDB(self.info.reason)
                value.setStatSevr(db.alarm, db.severity)  # served with the alarm it has now
            return status
        if db is None:
            return cas.S_casApp_undefined
        try:
            value.put(db.value)
            value.setStatSevr(db.alarm, db.severity)
            value.setTimeStamp(db.time)
        except Exception:
            return cas.S_casApp_undefined
        return cas.S_casApp_success

    def scan(self) -> None:
        """pcaspy's scan loop (``'scan': s``: read, store, post if changed), going on past
        a ``read()`` that raises (:meth:`PvaMirror.read_failed`; uncaught, it ended the PV's
        scan thread) and ending when the engine stops (pcaspy's never ends)."""
        info, entry, mirror = self.info, self.entry, self.mirror
        while not mirror.stopped:
            driver = entry.driver
            if driver is not None:
                try:
                    value = driver.read(info.reason)
                except PLUGIN_FAULTS:
                    mirror.read_failed(entry, "driver read() raised in a scan")
                else:
                    mirror.read_ok(entry)
                    self._store(driver, value)
            time.sleep(info.scan)

    def _store(self, driver: Any, value: Any) -> None:
        """A scan's read: stored, and posted if it changed (pcaspy's own steps)."""
        try:
            driver.setParam(self.info.reason, value)
            self.post_changed(driver)
        except Exception:
            self.mirror.report_error(self.entry, "a scan's read() value could not be stored")

    def post_changed(self, driver: Any) -> None:
        """Post the parameter if it changed (``updatePV``'s steps; pcaspy's ``updatePV``
        leaves a scanned PV to its scan)."""
        if self.info.scan <= 0:
            driver.updatePV(self.info.reason)
            return
        change = paramlock.take(driver, self.info.reason)
        if change is not None:
            self.updateValue(change)

    def bestExternalType(self) -> int:
        """A string array is served to CA as fixed strings (DBR_STRING's own form): with
        pcaspy's variable strings, the CA server library's conversion of an incoming
        string-array put corrupts memory and the process dies (plain pcaspy too)."""
        info = self.info
        if info.type == cas.aitEnumString and info.count > 1:
            return cas.aitEnumFixedString
        return info.type

    def interestRegister(self) -> int:
        self.entry.ca_monitored = True
        self.mirror.touch(self.entry)
        return super().interestRegister()

    def interestDelete(self) -> None:
        self.entry.ca_monitored = False
        self.mirror.touch(self.entry)
        super().interestDelete()

    def writeValue(self, client: Any, gddValue: Any) -> Any:
        """A CA put: the driver call pcaspy makes, plus the put log and error containment.
        An asynchronous one (pcaspy started it before this call) is in progress from now
        until the ``callbackPV`` that ends it (:mod:`pvconsole.asyncput`)."""
        requested = gddValue.get()
        if self.info.type == cas.aitEnumString and self.info.count == 1:
            requested = typemap.ca_put_text(requested)  # (for the driver and the put log)
        host = getattr(client, "host", "") or ""
        user = getattr(client, "user", "") or ""
        entry, puts = self.entry, self.mirror.asyn
        record = self.mirror.begin_put(entry, "ca", f"{user}@{host}", requested)
        asyn = entry.spec.asyn and self.hasAsyncWrite()
        if asyn:
            puts.begin(entry, asyncput.CA)
        try:
            if entry.refusal:  # its IOC's loop died: refused as a driver refuses one
                raise WriteRefused(entry.refusal)
            if entry.spec.kind == "enum":  # (pcaspy's live table: a setParamEnums not yet posted)
                typemap.checked_enum_index(entry.spec, self.info.enums[:typemap.MAX_ENUM_STATES],
                                           int(requested))  # (CA serves the first 16)
            if entry.driver is None:
                raise WriteRefused(f"{entry.name}: plugin has no driver")
            ok = driver_write(entry, entry.driver, requested)
        except typemap.PutRejected as e:  # as the same put over PVA is
            log.debug("%s: CA put refused: %s", entry.name, e)  # (the put log has it, as for PVA)
            self.mirror.end_put(record, PutResult.REFUSED_TYPE, str(e))
            self._failed = True
            ok = False
        except PLUGIN_FAULTS as e:  # a plugin that raises must not take the server down
            self.mirror.end_put(record, *write_failed(entry.name, e))
            self._failed = True  # the client is told: see _status
            ok = False
        else:
            self.mirror.end_put(record, PutResult.REFUSED_DRIVER if ok is False else PutResult.ACCEPTED,
                                f"driver refused value {requested!r}" if ok is False else "")
        if asyn and not ok and puts.abandon(entry, asyncput.CA):
            self._ends_own_write = True  # pcaspy ends its write next: not the oldest's turn
            self.mirror.start_waiting(entry)
        return ok

    def write(self, context: Any, value: Any) -> Any:
        """A CA put without completion (pcaspy answers success whatever the driver did)."""
        return self._status(super().write(context, value))

    def writeNotify(self, context: Any, value: Any) -> Any:
        """A CA put with completion. To an ``asyn`` PV while a PVA put to it is in
        progress, it waits for that one (as CA's library makes a second CA put wait); a
        PVA put that was waiting already starts first (CA's library held this one back
        behind a CA put whose callbackPV just came: it must not overtake)."""
        if self.info.asyn and not self.hasAsyncWrite():
            puts = self.mirror.asyn
            puts.start_next(self.entry)
            if puts.busy(self.entry):
                put = asyncput.CaPut(host=getattr(context, "host", "") or "",
                                     user=getattr(context, "user", "") or "", value=value.get())
                self.startAsyncWrite(context.ctx)  # CA's completion waits with it
                if puts.admit(self.entry, put):  # the PVA put ended meanwhile
                    self.run_waiting(put)
                return cas.S_casApp_asyncCompletion
        return self._status(super().writeNotify(context, value))

    def _status(self, status: Any) -> Any:
        """The CA status of a put whose ``Driver.write`` raised, or that was refused before
        it (:attr:`Entry.refusal`): a failure (the client's ECA_PUTFAIL), not pcaspy's
        success. In plain pcaspy the exception reached the CA server library, which
        failed the put and then aborted the process."""
        if self._failed:
            self._failed = False
            if status == cas.S_casApp_success:
                return PUT_FAILED
        return status

    def run_waiting(self, put: asyncput.CaPut) -> None:
        """Driver thread: a CA put whose turn has come, as pcaspy's writeNotify runs it."""
        if not self.writeValue(put, put):
            self.endAsyncWrite(cas.S_cas_success)

    def endAsyncWrite(self, status: int) -> Any:
        """``Driver.callbackPV`` lands here (and pcaspy's own end of a refused write): it
        ends the oldest put in progress, CA's or PVA's."""
        if self._failed:  # pcaspy ends the write its driver raised in as a success
            self._failed, status = False, PUT_FAILED
        if self._ends_own_write:
            self._ends_own_write = False
            return super().endAsyncWrite(status)
        return self._end_oldest(status)

    def fail_async(self, why: str) -> Any:
        """:func:`pvconsole.putlog.fail_put`: the oldest put in progress failed (a PVA
        client is told ``why``, a CA client gets ECA_PUTFAIL)."""
        return self._end_oldest(PUT_FAILED, why)

    def _end_oldest(self, status: int, error: str = "") -> Any:
        ended = self.mirror.complete_async(self.entry, error)
        if ended == asyncput.CA or (ended is None and self.hasAsyncWrite()):
            return super().endAsyncWrite(status)
        return None


#: (alarm, severity) of a PV whose driver read() raised.
_READ_FAILED = (Alarm.READ_ALARM, Severity.INVALID_ALARM)


class _InlineSharedPV(SharedPV):
    """Handlers run on the pvxs worker that received the request: ours never block (puts
    are queued to the driver thread), so p4p's extra thread pool would only add latency."""

    def _exec(self, op: Any, M: Callable, *args: Any) -> None:
        try:
            M(*args)
        except Exception as e:
            if op is not None:
                op.done(error=str(e))
            log.exception("PVA handler failed")


class _Handler:
    """Per-PV PVA handler: puts and connection counting."""

    __slots__ = ("entry", "mirror")

    def __init__(self, entry: Entry, mirror: "PvaMirror") -> None:
        self.entry = entry
        self.mirror = mirror

    def put(self, pv: SharedPV, op: Any) -> None:
        self.mirror.on_put(self.entry, op)

    def onFirstConnect(self, pv: SharedPV) -> None:
        self.mirror.connected(self.entry, 1, pv)

    def onLastDisconnect(self, pv: SharedPV) -> None:
        self.mirror.connected(self.entry, 0, pv)


#: How long a PVA put to an ``asyn`` PV waits for ``callbackPV`` before failing (seconds).
ASYN_PUT_TIMEOUT = 10.0


class _CleanupThread:
    """Where work that waits for the pvxs event loop is done: a thread nothing waits for.

    Freeing p4p's last reference to a server operation calls into the pvxs event loop and
    waits for it (``ServerOperation`` dealloc -> ``onCancel`` -> a synchronous loop call);
    so does closing a SharedPV with channels (``ChannelControl::close``). The loop may
    itself be waiting for the driver thread (a first PVA connect whose value the driver's
    ``read()`` makes): done on the driver thread, either held both until the read timed
    out. Answered operations are held here a moment past every other reference and their
    last one goes on this thread; PVs leave the provider (their channels closed) here.
    """

    def __init__(self, delay: float = 0.5) -> None:
        self.delay = delay
        self._items: list[tuple[float, int, Callable[[], Any]]] = []  # a heap: due first
        self._seq = 0
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def keep(self, op: Any) -> None:
        """Drop ``op`` here, ``delay`` s from now."""
        self.later(lambda _op=op: None, self.delay)

    def later(self, fn: Callable[[], Any], delay: float = 0.0) -> None:
        """Call ``fn`` on this thread (errors are logged)."""
        with self._cv:
            self._seq += 1
            heapq.heappush(self._items, (time.monotonic() + delay, self._seq, fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pva-cleanup",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._items:
                    self._cv.wait()
                wait = self._items[0][0] - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                fn = heapq.heappop(self._items)[2]
            try:
                fn()
            except Exception:
                log.exception("PVA clean-up failed")
            del fn  # the last reference (an operation kept): freed here, outside the lock


_cleanup = _CleanupThread()


class _PostThread:
    """Posts the PVs' changed Values to pvxs, off the threads that change them.

    Each pvxs post to a monitored PV wakes the pvxs event loop: an eventfd write and, on
    a virtual machine, an interrupt to the core the loop sleeps on. Flat out, made on the
    plugin's thread, that was a quarter of its time (py-spy, native frames), and the
    plugin's loop is what sets the flat-out rate. Here the changing thread writes the
    change into the Value and queues the PV (one C call); this thread posts. While it
    posts, further changes queue and are then posted back to back, and the pvxs loop
    takes them in one wake-up. Flat out, pvconsole's rate went from 0.98x softioc's to
    1.1x (bench/mirror.py, 1,000 PVs per PV). The hand-off costs latency (a thread wake-up,
    the GIL): below ``DEFER_RATE`` posts a second changes are posted at once instead.
    """

    def __init__(self, mirror: "PvaMirror") -> None:
        self._mirror = mirror
        self._queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pva-post", daemon=True)
        self._thread.start()

    def put(self, entry: Entry) -> None:
        self._queue.put(entry)

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        get, mirror = self._queue.get, self._mirror
        while (entry := get()) is not None:
            with entry.lock:
                if entry.unposted:
                    mirror.post_unposted(entry)


class PvaMirror:
    """Owns the PVA side: one ``SharedPV`` per exposed PV in one ``StaticProvider``."""

    def __init__(self, submit: Callable[[Callable[[], None]], None],
                 access: Callable[[Entry, str, str], str | None] | None = None,
                 putlog: Any = None, asyn_timeout: float = ASYN_PUT_TIMEOUT) -> None:
        """
        Args:
            submit: Queues a callable to the driver thread.
            access: ``access(entry, account, host)`` -> refusal message or None.
            putlog: Receives :class:`PutRecord` s.
            asyn_timeout: Seconds a PVA put to an asyn PV waits for ``callbackPV``.
        """
        self.provider = StaticProvider("pvconsole")
        self.submit = submit
        self.access = access
        self.putlog = putlog
        self.asyn_timeout = asyn_timeout
        self.subscribers: list[set] = []
        self.sub_lock = threading.Lock()
        self.stopped = False  # set when the engine stops: scan threads end
        self._provide_lock = threading.Lock()
        self._queued: dict[str, int] = {}  # provider changes waiting on the clean-up thread
        self.updates = 0  # every driver update, all PVs (stats without a walk over them)
        self.pva_posts = 0
        self.ca_posts = 0
        self.errors = 0
        self.worst_post = 0.0
        self._error_once: set[str] = set()
        self._read_failed: dict[str, tuple[int, int]] = {}  # PV -> the alarm READ replaced
        self._read_lock = threading.Lock()  # (the driver thread and scan threads)
        #: puts begun and not yet answered, both protocols (by id of their record)
        self._open_puts: dict[int, PutRecord] = {}
        #: asynchronous puts of both protocols, ended in the order they began
        self.asyn = asyncput.AsyncPuts(start=self._start_waiting_put)
        #: (when, PV): a waiting put to start once a callbackPV's thread is done (any thread)
        self._starts: deque[tuple[float, Entry]] = deque()
        self._poster = _PostThread(self)
        self._window = [time.perf_counter(), 0]  # start, deferrable posts since (any thread)
        self._busy = False  # more than DEFER_RATE posts/s in the last window

    # ------------------------------------------------------------------ publishing

    def publish(self, entry: Entry, data: Any, ca: bool = True) -> Change | None:
        """Called from whichever thread made the change (driver, plugin or scan thread);
        returns the change for CA to post (None: none; not ``ca``: a value for PVA
        only, a ``read()`` pcaspy does not post).

        Numbered changes (:mod:`paramlock`'s hand-over) are taken in their order: one
        that another thread's newer change overtook is not posted after it (its
        metadata is), so that both protocols end on the newest change."""
        update = None
        try:
            entry.updates += 1
            self.updates += 1
            with entry.lock:  # checked under the lock: exposure and clients change concurrently
                seq = getattr(data, "seq", 0)
                if seq:
                    if seq < entry.seq:
                        return self._overtaken(entry, data.mask)
                    entry.seq = seq
                t = data.time
                if type(t) is not _STAMP:
                    self.fix_stamp(entry, data)
                    t = data.time
                mask, value, alarm, severity = data.mask, data.value, data.alarm, data.severity
                snap = (value, alarm, severity, t.secPastEpoch, t.nsec)
                before, entry.data = entry.data, snap
                if mask and ca:
                    pending = entry.ca_update
                    if pending is not None and pending is not entry.ca_posted:
                        mask |= pending.mask  # not posted yet: its events go with this one
                    update = data if type(data) is Change and mask == data.mask else (
                        Change(value, alarm, severity, t, mask, seq))
                    entry.ca_update = update
                posted = entry.value is not None and entry.pva_clients and data.mask & MONITORED
                if posted and data.mask & MONITORED == DBE_ALARM and not (
                        typemap.alarm_shown_changed(before[1:3], snap[1:3])):
                    posted = False  # an alarm change PVA does not show: nothing to post
                elif posted:
                    mask = data.mask
                    self._post(entry, snap, mask & DBE_PROPERTY,
                               bool(mask & VALUE_OR_ALARM) or not mask & DBE_PROPERTY,
                               defer=True)
                else:  # nobody sees it (or it is for archivers only): the next first
                    entry.stale = True  # channel brings the PVA value up to date
                    if data.mask & DBE_PROPERTY:
                        take_meta(entry)
            if posted:
                self.pva_posts += 1
        except Exception:
            self.report_error(entry, "PVA post failed")
        if self.subscribers:  # headless: not even a call on the hot path
            self.touch(entry)
        return update

    def _overtaken(self, entry: Entry, mask: int) -> Change | None:
        """A change published after a newer one (caller holds entry.lock): its value is
        not posted, its metadata is (read from the PV's info, which is newer still), on
        PVA and with the newest change on CA."""
        if not mask & DBE_PROPERTY:
            return None
        if entry.value is not None and entry.pva_clients:
            self._post(entry, entry.data, True, value=False)
        else:
            entry.stale = True
            take_meta(entry)
        newest = entry.ca_update
        if newest is None:
            return None
        entry.ca_update = update = Change(newest.value, newest.alarm, newest.severity,
                                          newest.time, newest.mask | DBE_PROPERTY, newest.seq)
        return update

    def touch(self, entry: Entry) -> None:
        """Mark a PV changed for every subscriber (UI, control PVs)."""
        if not self.subscribers:  # headless: no lock on the hot path
            return
        with self.sub_lock:
            for dirty in self.subscribers:
                dirty.add(entry)

    def subscribe(self) -> set:
        dirty: set = set()
        with self.sub_lock:
            self.subscribers.append(dirty)
        return dirty

    def drain(self, dirty: set) -> list[Entry]:
        with self.sub_lock:
            items = list(dirty)
            dirty.clear()
        return items

    def connected(self, entry: Entry, clients: int, pv: SharedPV) -> None:
        """First PVA channel of ``pv`` opened (``clients`` 1) or last one closed (0), on a
        pvxs worker before any operation of that channel. A PV turned off meanwhile (its
        channels are being closed) or replaced (off, then on) does not count.

        The first channel is served the parameter database as it is now, as a CA get
        serves it (the value, alarm and timestamp a driver set without ``updatePVs``, or
        within a deadband, and metadata ``setParamInfo`` changed): a ``pvget`` sees what
        ``caget`` sees. Monitors then get what CA monitors get.
        """
        if clients:
            value = None
            if entry.on_connect is not None:
                try:
                    value = entry.on_connect()  # e.g. what the driver's read() returns now
                except Exception:
                    log.exception("%s: refresh on first PVA connect failed", entry.name)
            self._refresh_from_db(entry, value)
            with entry.lock:
                if entry.pva_pv is not pv:
                    return
                entry.pva_clients = clients
                self.sync(entry)
        elif entry.pva_pv is pv:  # lock-free: a close may be waiting for this callback
            entry.pva_clients = 0
        self.touch(entry)

    def _refresh_from_db(self, entry: Entry, value: Any = None) -> None:
        """Take the PV's state from its driver's parameter database (``value`` instead of
        the stored one when given); :meth:`sync` then posts it."""
        current = self._current(entry)
        entry.data = current if value is None else (value, *current[1:])
        entry.stale = True

    def sync(self, entry: Entry) -> None:
        """Post the newest driver data if a change was held back (caller holds entry.lock)."""
        if entry.value is None or not entry.stale:
            return
        entry.stale = False
        try:
            self._post(entry, entry.data, True)  # metadata too: it may have changed meanwhile
        except Exception:
            self.report_error(entry, "PVA post failed")

    def _post(self, entry: Entry, snap: tuple, meta: bool, value: bool = True,
              defer: bool = False) -> None:
        """Write ``snap`` (when ``value``) and the metadata (when ``meta``) into the PV's
        persistent Value and post the changed fields: now, or (``defer``, above
        ``DEFER_RATE`` posts a second) from the post thread (caller holds entry.lock, the PV
        is exposed). A change still waiting for its post is posted first: PVA monitors get
        every update, none merged away."""
        V = entry.value
        queued = entry.unposted
        if queued:
            self.post_unposted(entry)
        try:
            if meta:
                if take_meta(entry):
                    value = True  # cut (or not) at the new count
                typemap.apply_meta(V, entry.spec, entry.meta, opening=False)
            if value:  # a property change alone: QSRV's carries no value, alarm or time
                try:
                    entry.update(V, *snap)
                except Exception:  # not servable: the last good value, flagged INVALID
                    self.report_error(entry, "driver value not servable over PVA",
                                      f"value {snap[0]!r}", trace=False)
                    typemap.mark_unservable(V, snap[0])
                    entry.update.reset()  # the next good value rewrites the alarm
        except Exception:
            V.unmark()
            raise
        now = time.perf_counter()
        entry.unposted, entry.written_at = True, now
        if defer:
            window = self._window
            window[1] += 1
            if now - window[0] >= RATE_WINDOW:  # races between threads only blur the rate
                self._busy = window[1] > DEFER_RATE * (now - window[0])
                window[0], window[1] = now, 0
        if not defer or not self._busy:
            self.post_unposted(entry)  # (a queued PV's queue item then finds nothing to post)
        elif not queued:
            self._poster.put(entry)

    def post_unposted(self, entry: Entry) -> None:
        """Post the change written into the PV's Value (caller holds entry.lock); the
        time since it was written is the mirror's CA -> PVA lag."""
        entry.unposted = False
        V = entry.value
        if V is None:  # turned off meanwhile
            return
        try:
            _RawSharedPV.post(entry.pva_pv, V)
        except Exception:
            self.report_error(entry, "PVA post failed")
        finally:
            V.unmark()
        lag = time.perf_counter() - entry.written_at
        if lag > self.worst_post:
            self.worst_post = lag

    def read_failed(self, entry: Entry, what: str) -> None:
        """A driver's ``read()`` raised (on the thread that called it: the driver thread
        or the PV's scan): logged once, and the PV is INVALID with a READ alarm on both
        protocols, as a record whose device read fails, until a read succeeds (its value
        is the last one read, which an operator must not take for a current one)."""
        self.report_error(entry, what)
        driver, reason = entry.driver, entry.spec.reason
        if driver is None:
            return
        try:
            with self._read_lock:
                db = driver.getParamDB(reason)
                now = (db.alarm, db.severity)
                if now == _READ_FAILED:
                    return
                # the alarm it replaces (after a setParam, which ended the READ alarm:
                # the one pcaspy gave that value)
                self._read_failed[entry.name] = now
                driver.setParamStatus(reason, *_READ_FAILED)
            entry.ca_pv.post_changed(driver)
        except Exception:
            log.exception("%s: its READ alarm could not be set", entry.name)

    def read_ok(self, entry: Entry) -> bool:
        """A driver's ``read()`` returned: a READ alarm of an earlier one that raised ends
        (the alarm it replaced is back, unless the driver set another since). Returns
        whether it ended one."""
        if not self._read_failed or entry.name not in self._read_failed:
            return False
        driver, reason = entry.driver, entry.spec.reason
        try:
            with self._read_lock:
                saved = self._read_failed.pop(entry.name, None)
                db = driver.getParamDB(reason)
                if saved is None or (db.alarm, db.severity) != _READ_FAILED:
                    return False
                driver.setParamStatus(reason, *saved)
            entry.ca_pv.post_changed(driver)
        except Exception:
            log.exception("%s: its READ alarm could not be ended", entry.name)
            return False
        return True

    def report_error(self, entry: Entry, what: str, detail: str = "", trace: bool = True) -> None:
        """Log a failure once per PV and kind ``what`` (a bad driver value would flood
        the log), with ``detail`` and the traceback being handled if any (without
        ``trace``: its last line only, the traceback at debug level)."""
        self.errors += 1
        key = f"{entry.name}:{what}"
        if key in self._error_once:
            return
        self._error_once.add(key)
        error = sys.exc_info()[1]
        detail = detail or f"value {entry.data[0]!r}"
        if error is not None and not trace:
            detail = f"{detail}: {type(error).__name__}: {error}"
            log.debug("%s: %s", entry.name, what, exc_info=True)
        log.error("%s: %s (%s); further errors of this kind are counted, not logged",
                  entry.name, what, detail, exc_info=trace and error is not None)

    # ------------------------------------------------------------------ exposure

    def expose(self, entry: Entry, mode: str) -> None:
        """Apply an exposure mode: off removes the PV from PVA (clients disconnect)."""
        change: tuple[str, SharedPV | None] | None = None
        with entry.lock:
            was_on = entry.pva_pv is not None
            entry.exposure = mode
            if mode == Exposure.OFF:
                if was_on:
                    entry.pva_pv, entry.value, entry.pva_clients = None, None, 0
                    entry.unposted = False
                    change = (entry.name, None)
                self._fail_pending(entry, "PV removed from PVA")
            elif not was_on:
                if entry.ca_pv is not None:
                    take_meta(entry)
                V = self._initial(entry)
                entry.update.reset()
                pv = _InlineSharedPV(handler=_Handler(entry, self))
                SharedPV.open(pv, V)
                V.unmark()
                entry.value = V
                entry.stale = False
                entry.pva_pv = pv
                change = (entry.name, pv)
        if change is not None:
            self._provide(*change)
        self.touch(entry)

    def _provide(self, name: str, pv: SharedPV | None) -> None:
        """Add ``pv`` to the PVA provider as ``name``, or (None) remove ``name``, in call order.

        Removing closes the PV's channels, and closing waits for the pvxs loop; the loop may
        be waiting for the driver thread (a first connect's ``read()``) or for an
        ``entry.lock`` (a first connect): a CA put to EXPOSE, or a toggle during a first
        connect, held both until the read timed out, or for good. So a removal is made on
        the clean-up thread, and so is anything asked for the same name before it is done.
        """
        with self._provide_lock:
            if pv is not None and not self._queued.get(name):
                self.provider.add(name, pv)  # no loop call: at once
                return
            self._queued[name] = self._queued.get(name, 0) + 1

        def apply() -> None:
            try:
                if pv is None:
                    self.provider.remove(name)
                else:
                    self.provider.add(name, pv)
            finally:
                with self._provide_lock:
                    self._queued[name] -= 1
                    if not self._queued[name]:
                        del self._queued[name]
        _cleanup.later(apply)

    def _initial(self, entry: Entry) -> Any:
        """The PVA value a newly exposed PV opens with (a driver value that cannot be
        served must not keep the PV, nor the engine's start-up, from going on)."""
        current = self._current(entry)
        try:
            return typemap.initial_value(entry.spec, entry.meta, *current)
        except Exception:
            self.report_error(entry, "driver value not servable over PVA",
                              f"value {current[0]!r}", trace=False)
            value, _, _, sec, nsec = current
            return typemap.unservable_value(entry.spec, entry.meta, value, sec, nsec)

    def _current(self, entry: Entry) -> tuple:
        d = self.param(entry)  # the parameter database is the truth
        if d is None:
            return entry.data
        return d.value, d.alarm, d.severity, d.time.secPastEpoch, d.time.nsec

    def param(self, entry: Entry) -> Any:
        """The PV's pcaspy ``Data`` in its driver's parameter database (None without
        one), its timestamp made an ``epicsTimeStamp`` (:meth:`fix_stamp`)."""
        driver = entry.driver
        d = driver.pvDB.get(entry.spec.reason) if driver is not None else None
        if d is not None and type(d.time) is not _STAMP:
            self.fix_stamp(entry, d)
        return d

    def fix_stamp(self, entry: Entry, data: Any) -> None:
        """Make the timestamp of ``data`` (a PV's pcaspy ``Data``) an ``epicsTimeStamp``
        in place, where the driver set something else: a number as POSIX seconds, other
        things as never processed. pcaspy's CA server fails every get of such a PV, and
        the mirror's start-up read of it ended the whole process."""
        given = data.time
        try:
            sec, nsec = typemap.stamp_parts(given)
        except TypeError:
            sec = nsec = 0
        stamp = _STAMP()
        stamp.secPastEpoch, stamp.nsec = sec, nsec
        data.time = stamp
        self.report_error(entry, "driver timestamp is not a pcaspy epicsTimeStamp",
                          f"{given!r}: served as " + ("POSIX seconds" if sec else "never processed"))

    def close_all(self, entries: list[Entry]) -> None:
        """Stopping: every PV off PVA, here and now (outside entry.lock: closing waits for
        the pvxs loop, which may be waiting for the lock)."""
        self.stopped = True
        for entry in entries:
            self._fail_pending(entry, "server shutting down")  # answered before the close
            with entry.lock:
                was_on, entry.pva_pv, entry.value, entry.pva_clients = (
                    entry.pva_pv is not None, None, None, 0)
            if was_on:
                self.provider.remove(entry.name)
        self._poster.stop()

    # ------------------------------------------------------------------ puts

    def begin_put(self, entry: Entry, protocol: str, client: str, requested: Any) -> PutRecord:
        entry.puts += 1
        driver = entry.driver
        old = None
        if driver is not None:
            try:
                old = driver.getParam(entry.spec.reason)
            except Exception:
                old = None
        record = PutRecord.start(entry.name, protocol, client, old, requested)
        record.describe(entry.spec, entry.meta, old, requested)
        self._open_puts[id(record)] = record
        return record

    def end_put(self, record: PutRecord, result: str, reason: str = "") -> None:
        if self._open_puts.pop(id(record), None) is None and record.result != PutResult.PENDING:
            return  # logged as interrupted when pvconsole stopped (interrupt_puts)
        record.finish(result, reason)
        if self.putlog is not None:
            self.putlog.append(record)

    def interrupt_puts(self, why: str) -> int:
        """Stopping while the driver still works on puts: log each as interrupted now,
        while the put log is open (the driver's answer, if it comes, is not logged)."""
        records = list(self._open_puts.values())
        self._open_puts.clear()
        for record in records:
            record.finish(PutResult.INTERRUPTED, why)
            if self.putlog is not None:
                self.putlog.append(record)
        return len(records)

    def on_put(self, entry: Entry, op: Any) -> None:
        """A PVA put (pvxs worker thread): check it, then queue it to the driver thread."""
        account, peer = op.account(), op.peer()
        host = peer.rsplit(":", 1)[0]
        client = f"{account}@{peer}"
        try:
            raw = op.value()
        except Exception as e:
            op.done(error=f"{entry.name}: unreadable put: {e}")
            return
        if entry.refusal:
            self._refuse(entry, op, client, _describe(raw), PutResult.REFUSED_DRIVER,
                         f"{entry.name}: {entry.refusal}")
            return
        if entry.exposure == Exposure.READONLY:
            self._refuse(entry, op, client, _describe(raw), PutResult.REFUSED_ACCESS,
                         f"{entry.name}: write access denied (read-only over PVA)")
            return
        if self.access is not None:
            why = self.access(entry, account, host)
            if why:
                self._refuse(entry, op, client, _describe(raw), PutResult.REFUSED_ACCESS,
                             f"{entry.name}: write access denied ({why})")
                return
        try:
            value = typemap.put_to_driver(entry.spec, entry.meta, raw)
        except (typemap.PutRejected, TypeError, ValueError, OverflowError) as e:
            self._refuse(entry, op, client, _describe(raw), PutResult.REFUSED_TYPE, str(e))
            return
        put = asyncput.PvaPut(op=op, client=client, value=value,
                              deadline=time.monotonic() + self.asyn_timeout,
                              early=entry.spec.asyn and not waits_for_completion(op))
        self.submit(lambda: self._write(entry, put))

    def _refuse(self, entry: Entry, op: Any, client: str, requested: Any, result: str,
                message: str) -> None:
        record = self.begin_put(entry, "pva", client, requested)
        self.end_put(record, result, message)
        op.done(error=message)

    def _write(self, entry: Entry, put: asyncput.PvaPut) -> None:
        """Driver thread: a PVA put to an ``asyn`` PV waits while another put to it is in
        progress (as CA's server library postpones a CA one); others go straight on."""
        if entry.spec.asyn and not self.asyn.admit(entry, put):
            return
        self._run_write(entry, put)

    def _start_waiting_put(self, entry: Entry, put: Any) -> None:
        """Driver thread: a put that waited for another one to the PV starts."""
        if isinstance(put, asyncput.CaPut):
            entry.ca_pv.run_waiting(put)
        else:
            self._run_write(entry, put)

    def _run_write(self, entry: Entry, put: asyncput.PvaPut) -> None:
        """Driver thread: the same call sequence pcaspy makes for a CA put."""
        value = put.value
        put.record = self.begin_put(entry, "pva", put.client, value)
        driver = entry.driver
        if driver is None:
            self._answer(entry, put, PutResult.DRIVER_ERROR,
                         f"{entry.name}: plugin has no driver")
            return
        asyn = entry.spec.asyn
        if asyn:  # before write(): a callbackPV from write() itself ends it
            self.asyn.begin(entry, put)
        try:
            ok = driver_write(entry, driver, value)
        except PLUGIN_FAULTS as e:
            result, reason = write_failed(entry.name, e)
            self._settle(entry, put, result, f"{entry.name}: {result}: {reason}")
            return
        if ok is False:
            self._settle(entry, put, PutResult.REFUSED_DRIVER,
                         f"{entry.name}: driver refused value {value!r}")
        elif not asyn or not ok:  # no truth from an asyn write: done now, as pcaspy's CA side
            self._settle(entry, put, PutResult.ACCEPTED)
        elif put.early and put.op is not None:  # in progress; its client does not wait
            op, put.op = put.op, None
            op.done()
            _cleanup.keep(op)
        # else: in progress until the driver's callbackPV (or ended by one already)

    def _settle(self, entry: Entry, put: asyncput.PvaPut, result: str, error: str = "") -> None:
        """Answer a put whose write is over; an asyn one only if no callbackPV (from inside
        ``write``) ended it already, and the next waiting put may then start."""
        if entry.spec.asyn:
            if not self.asyn.abandon(entry, put):
                return
            self.start_waiting(entry)
        self._answer(entry, put, result, error)

    def _answer(self, entry: Entry, put: asyncput.PvaPut, result: str, error: str = "",
                settled: bool = True) -> None:
        """Answer the client (a put that never reached the driver gets its put-log record
        here); the operation is then freed where no thread waits on it.

        ``settled``: what the put did is posted first (False: the caller holds the PV's
        lock). Above ``DEFER_RATE`` the post thread posts changes; a get made as soon as
        the put completed served the value from before it (158 of 300 under load), where
        an IOC's record is processed before its put completes."""
        if put.record is None:
            put.record = self.begin_put(entry, "pva", put.client, put.value)
        self.end_put(put.record, result, error)
        op, put.op = put.op, None
        if op is None:  # answered when the driver took it (``PvaPut.early``)
            return
        if settled:  # (under the lock: the post thread may be posting it right now)
            with entry.lock:
                if entry.unposted:
                    self.post_unposted(entry)
        if error:
            op.done(error=error)
        else:
            op.done()
        _cleanup.keep(op)

    def start_waiting(self, entry: Entry, after: float = 0.0) -> None:
        """A put to ``entry`` ended (any thread): the next waiting put may start, on the
        driver thread (none once stopped: the driver thread is gone), ``after`` seconds
        from now at the earliest."""
        if self.stopped or not self.asyn.next_ready(entry):
            return
        if after:
            self._starts.append((time.monotonic() + after, entry))
        else:
            self.submit(lambda: self.asyn.start_next(entry))

    def complete_async(self, entry: Entry, error: str = "") -> Any:
        """A ``callbackPV`` (any thread): end the oldest put in progress, as failed with
        ``error`` when given. Returns what it ended (:data:`asyncput.CA`, a PVA put, or
        None)."""
        item = self.asyn.complete(entry)
        if isinstance(item, asyncput.PvaPut):
            if error:
                self._answer(entry, item, PutResult.DRIVER_ERROR, f"{entry.name}: {error}")
            else:
                self._answer(entry, item, PutResult.ACCEPTED)
        elif isinstance(item, asyncput.TimedOut):
            log.warning("%s: callbackPV came for a PVA put that had timed out (%r)",
                        entry.name, item.put.value)
        # a driver that marks itself idle after its callbackPV (pcaspy's pysh example:
        # callbackPV, then self.tid = None) refused the next put, started at once on the
        # driver thread; alone, pcaspy retries it at its server loop's next turn
        self.start_waiting(entry, after=NEXT_PUT_DELAY)
        return item

    def expire_async(self, now: float) -> None:
        """Driver thread, each loop: start the waiting puts whose time has come; fail asyn
        PVA puts whose callback never came (or that waited that long for one in progress)."""
        starts = self._starts
        while starts and starts[0][0] <= now:
            self.asyn.start_next(starts.popleft()[1])
        for entry, put in self.asyn.expire(now):
            waited = put.record is None
            msg = (f"{entry.name}: asynchronous put timed out after {self.asyn_timeout:g} s "
                   f"{'waiting for the put in progress ' if waited else ''}"
                   "(the driver did not call callbackPV)")
            self._answer(entry, put, PutResult.DRIVER_ERROR, msg)
            self.start_waiting(entry)  # one that waited for it: not one still in progress

    def _fail_pending(self, entry: Entry, why: str) -> None:
        for put in self.asyn.drop(entry):  # (under the PV's lock: see expose)
            self._answer(entry, put, PutResult.DRIVER_ERROR, f"{entry.name}: {why}", settled=False)
        self.start_waiting(entry)  # a CA put that waited for them goes on


def driver_write(entry: Entry, driver: Any, value: Any) -> Any:
    """A put's driver call, as pcaspy's ``SimplePV.writeValue`` makes it, for both
    protocols: ``write()``, a refusal (False, numpy's too: :func:`written`) flagged
    WRITE/INVALID, then ``updatePV``. Returns what the write returned; what ``write()``
    raises propagates (pcaspy's own ``writeValue`` took numpy's False for success)."""
    reason = entry.spec.reason
    ok = written(entry.name, driver.write(reason, value))
    try:
        if ok is False:
            driver.setParamStatus(reason, Alarm.WRITE_ALARM, Severity.INVALID_ALARM)
        driver.updatePV(reason)
    except Exception:
        log.exception("%s: update after put failed", entry.name)
    return ok


def waits_for_completion(op: Any) -> bool:
    """False when the put's pvRequest says ``record[block=false]`` (p4p's
    ``put(..., wait=False)``, pvput without -w)."""
    try:
        options = op.pvRequest().todict().get("record", {}).get("_options", {})
    except Exception:
        return True
    return str(options.get("block", True)).lower() not in ("false", "0")


def _describe(raw: Any) -> Any:
    """What a PVA put asked for, for the put log: its ``value`` (of an NTEnum, the index
    or the choice it gave, as a CA put of it logs: not the whole structure)."""
    try:
        value = raw.todict().get("value")
        if isinstance(value, dict) and "index" in value:
            choices = value.get("choices") or []
            return choices[0] if choices and raw.changed("value.choices") else value["index"]
        return value
    except Exception:
        return None
