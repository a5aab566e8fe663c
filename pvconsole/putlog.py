"""Every put from either protocol: who, what, old -> new, accepted or why not.

Kept in a bounded in-memory ring for the UIs and appended to a JSON-lines file in the
state directory as it happens (one ``write`` per line, flushed at once, so a ``kill -9``
loses nothing the kernel already has). The file rotates by size; a torn last line (power
cut) is skipped when the history is read back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from . import typemap

log = logging.getLogger(__name__)

#: Entries kept in memory for the console (older ones stay in the file).
MEMORY_ENTRIES = int(os.environ.get("PVCONSOLE_PUTLOG_MEMORY", "5000"))
#: Rotate the file past this size (bytes); one previous generation is kept.
ROTATE_BYTES = int(os.environ.get("PVCONSOLE_PUTLOG_ROTATE", str(10 * 1024 * 1024)))


class PutResult:
    """Outcomes of a put."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REFUSED_ACCESS = "refused: access"
    REFUSED_TYPE = "refused: type"
    REFUSED_DRIVER = "refused: driver"
    DRIVER_ERROR = "driver error"
    #: pvconsole stopped while the driver still worked on the put: its outcome is unknown
    INTERRUPTED = "interrupted"


class WriteRefused(ValueError):
    """Raised by a driver's ``write()`` to refuse a put for a reason the client is told:
    the put log and the log get one line, not a traceback (which a driver that raises
    anything else gets: that is a bug to chase). The console's control PVs use it."""


def fail_put(driver: Any, reason: str, why: str) -> None:
    """``callbackPV`` for an asynchronous write that failed (the device refused it): the
    put in progress fails, a PVA client told ``why`` and a CA client ECA_PUTFAIL. Under
    plain pcaspy (no pvconsole), a ``callbackPV``: pcaspy's CA side has no failure."""
    from pcaspy.driver import manager  # (the console's process never calls this)
    fail = getattr(manager.pvs[driver.port][reason], "fail_async", None)
    if fail is None:
        driver.callbackPV(reason)
    else:
        fail(why)


def write_failed(name: str, error: BaseException) -> tuple[str, str]:
    """Log a ``write()`` that raised; (its :class:`PutResult`, the reason). Call it in
    the ``except`` block, so that a traceback can be logged."""
    if isinstance(error, WriteRefused):
        log.warning("%s: put refused: %s", name, error)
        return PutResult.REFUSED_DRIVER, str(error)
    if isinstance(error, SystemExit):  # alone, the IOC would have exited here
        log.error("%s: driver write() asked to exit (SystemExit %s): the put fails, and "
                  "pvconsole serves on with every IOC it hosts (stop pvconsole to stop "
                  "them)", name, error.code)
        return PutResult.DRIVER_ERROR, "driver write() asked to exit: pvconsole serves on"
    log.exception("%s: driver write raised", name)
    return PutResult.DRIVER_ERROR, f"{type(error).__name__}: {error}"


def written(name: str, returned: Any) -> Any:
    """What a driver's ``write()`` returned, as pcaspy's checks of it (``is False``,
    ``not``) can take it: a value whose truth cannot be asked (a numpy array) is success,
    with a warning. pcaspy's ``not`` of one raised inside the CA server library's
    callback, and the process aborted."""
    if returned is True or returned is False or returned is None:
        return returned
    if getattr(returned, "shape", None) == () and hasattr(returned, "item"):
        returned = returned.item()  # a numpy bool: np.False_ is not False to pcaspy's check
        if returned is True or returned is False:
            return returned
    try:
        bool(returned)
    except Exception as e:
        log.warning("%s: driver write() returned %s, which is neither true nor false "
                    "(%s): taken as success", name, type(returned).__name__, e)
        return True
    return returned


@dataclass
class PutRecord:
    """One put.

    Attributes:
        time: UTC ISO-8601 time the put arrived.
        pv: Full PV name.
        protocol: 'ca' or 'pva'.
        client: CA ``user@host``; PVA ``account@peer``.
        old: Driver value before the put.
        requested: Value the client asked for (after type conversion, when it got that far).
        result: A :class:`PutResult` value.
        reason: Why it was refused, or the driver's error.
        duration_ms: Time spent in the driver (and waiting for ``callbackPV``).
        old_text, requested_text: ``old`` and ``requested`` as the console shows the PV's
            values (precision, units, enum choices), made when the put arrived (:meth:`describe`);
            '' in records of older versions.
    """

    time: str
    pv: str
    protocol: str
    client: str
    old: Any
    requested: Any
    result: str = PutResult.PENDING
    reason: str = ""
    duration_ms: float = 0.0
    old_text: str = ""
    requested_text: str = ""
    seq: int = 0
    _t0: float = field(default=0.0, repr=False, compare=False)

    @classmethod
    def start(cls, pv: str, protocol: str, client: str, old: Any, requested: Any) -> "PutRecord":
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        return cls(now, pv, protocol, client, plain(old), plain(requested), _t0=time.perf_counter())

    def describe(self, spec: Any, meta: Any, old: Any, requested: Any) -> None:
        """Set the texts of ``old`` and ``requested`` (the values as the driver had and got
        them, before :func:`plain`) for the PV's :class:`~pvconsole.typemap.PVSpec` and
        ``Meta``: a put to an enum read "1 → 2" where the table shows "On", "Fault"."""
        self.old_text, self.requested_text = shown(spec, meta, old), shown(spec, meta, requested)

    def finish(self, result: str, reason: str = "") -> None:
        self.result = result
        self.reason = reason
        self.duration_ms = round((time.perf_counter() - self._t0) * 1000, 3)

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("_t0")
        return json.dumps(d, default=repr)


#: Arrays with more elements are logged as a summary (the first ones, the length and the
#: type), text longer than ``TEXT_CHARS`` cut: a put of a million-point waveform must not
#: hold the driver thread for seconds, fill memory, or rotate the audit history away.
ARRAY_ITEMS = 64
TEXT_CHARS = 1024
#: Elements a summary shows.
SUMMARY_ITEMS = 8


def plain(v: Any) -> Any:
    """A put's value as the log keeps it: JSON-able, bounded in size."""
    if isinstance(v, str):
        return v if len(v) <= TEXT_CHARS else f"{v[:TEXT_CHARS]}… ({len(v):,} chars)"
    if not (isinstance(v, (list, tuple)) or getattr(v, "ndim", 0) > 0):
        return v.tolist() if hasattr(v, "tolist") else v  # a numpy scalar: its Python value
    if len(v) <= ARRAY_ITEMS:
        return _listed(v)
    kind = str(getattr(v, "dtype", "")) or type(v).__name__
    return f"[{', '.join(map(repr, _listed(v[:SUMMARY_ITEMS])))}, … ({len(v):,} × {kind})]"


#: Characters a put record's value texts keep.
SHOWN_CHARS = 60


def shown(spec: Any, meta: Any, value: Any) -> str:
    """A put's value as the console shows the PV's; never raises (it is made on the CA
    server's thread, where an exception aborts the process)."""
    if value is None:
        return "—"
    try:
        if (isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0) \
                and len(value) > ARRAY_ITEMS:
            return str(plain(value))  # (bounded) formatting it whole would hold the thread
        text = typemap.format_value(spec, meta, value)
    except Exception:  # a 0-d array, an odd object: logged whatever it is
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def _listed(v: Any) -> list:
    return v.tolist() if hasattr(v, "tolist") else list(v)


class PutLog:
    """The put log: ring in memory, JSON lines on disk."""

    def __init__(self, path: Path | None, memory: int = MEMORY_ENTRIES,
                 rotate_bytes: int = ROTATE_BYTES) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.entries: deque[PutRecord] = deque(maxlen=memory)
        self.lock = threading.Lock()
        self.seq = 0
        #: entries of earlier runs, read back from the file (their seq come first)
        self.loaded = 0
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._load_tail(path, memory)
            self._file = open(path, "a", encoding="utf-8")

    def _load_tail(self, path: Path, memory: int) -> None:
        if not path.exists():
            return
        kept = 0
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = deque(f, maxlen=memory)
        for line in lines:
            try:
                d = json.loads(line)
                rec = PutRecord(**{k: d[k] for k in ("time", "pv", "protocol", "client", "old",
                                                      "requested", "result", "reason", "duration_ms")},
                                old_text=str(d.get("old_text", "")),
                                requested_text=str(d.get("requested_text", "")))
            except (ValueError, KeyError, TypeError):
                kept += 1
                continue
            self.seq += 1
            rec.seq = self.seq
            self.entries.append(rec)
        self.loaded = self.seq
        if kept:
            log.warning("put log %s: skipped %d unreadable line(s)", path, kept)

    @property
    def since_start(self) -> int:
        """Puts logged by this run (not those read back from earlier runs)."""
        return self.seq - self.loaded

    def append(self, record: PutRecord) -> None:
        with self.lock:
            self.seq += 1
            record.seq = self.seq
            self.entries.append(record)
            if self._file is not None:
                try:
                    self._file.write(record.to_json() + "\n")
                    self._file.flush()
                    if self._file.tell() > self.rotate_bytes:
                        self._rotate()
                except OSError:
                    log.exception("put log: write failed")

    def _rotate(self) -> None:
        assert self.path is not None and self._file is not None
        self._file.close()
        os.replace(self.path, self.path.with_suffix(self.path.suffix + ".1"))
        self._file = open(self.path, "a", encoding="utf-8")

    def since(self, seq: int) -> list[PutRecord]:
        """Entries newer than ``seq`` (for UIs that pull)."""
        with self.lock:
            return [r for r in self.entries if r.seq > seq]

    def tail(self, n: int) -> list[PutRecord]:
        with self.lock:
            return list(self.entries)[-n:] if n > 0 else []

    def for_pv(self, name: str, n: int = 20) -> list[PutRecord]:
        with self.lock:
            return [r for r in self.entries if r.pv == name][-n:]

    def close(self) -> None:
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_file(path: Path) -> Iterable[dict]:
    """Read a put-log file, skipping torn lines."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue
