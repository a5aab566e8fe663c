"""The CA client side of the gateway (:mod:`pvconsole.cagateway`), in a process of its own.

pyepics (libca) in the process that runs pcaspy's CA server has hung for users, so the
gateway's CA client runs here and talks to the gateway over one pipe
(``multiprocessing.connection`` pickles):

- gateway -> here: ``("connect", names, timeout)`` once, then ``("put", name, value)``.
- here -> gateway: ``("connected", {name: info})`` (:func:`channel_infos`; names that did
  not connect within ``timeout`` are left out, and come in ``("late", {name: info})``
  when they connect), then ``("update", name, value, severity,
  status, posix_seconds, nanoseconds)`` (``"catch-up"`` for one read when the channel's
  monitor began: served only if no newer one came), ``("meta", name, ctrl)`` for a property change,
  ``("conn", name, connected)``, ``("access", name, writable)`` and ``("put_done", name,
  ok, message)``, ``("reshaped", name, (dbf, count), (dbf, count))`` when an IOC came
  back with another type or length.

The channels are found as any CA client finds them (``EPICS_CA_ADDR_LIST``,
``EPICS_CA_AUTO_ADDR_LIST``, ...). Run as ``python -m pvconsole.gwclient FD``.
"""

from __future__ import annotations

import sys
import threading
import time
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

#: DBR_CTRL fields a gateway PV's metadata is made of.
CTRL_FIELDS = ("precision", "units", "enum_strs", "upper_disp_limit", "lower_disp_limit",
               "upper_alarm_limit", "lower_alarm_limit", "upper_warning_limit",
               "lower_warning_limit", "upper_ctrl_limit", "lower_ctrl_limit")


#: Seconds, at most, spent asking the PVs' record fields (a pcaspy IOC has none).
FIELDS_WAIT = 1.0
#: Record types whose value is an array of their ``FTVL``'s type.
FTVL_RECORDS = frozenset({"waveform", "aai", "aao", "subArray"})
#: Record types whose string value CA cuts to 40 bytes under the record's name (DBF_STRING)
#: and carries whole as ``NAME.VAL$`` (a char array), which the gateway follows instead.
LONG_STRING_RECORDS = frozenset({"lsi", "lso"})
#: Seconds the PVs that connect after start are gathered for, to be served together.
LATE_BATCH = 0.5
#: Longest wait before a late PV that did not answer is asked again.
LATE_RETRY_MAX = 10.0


def plain(value: Any) -> Any:
    """A pyepics value as plain Python (lists, not numpy or ctypes arrays): pickles, and
    is what pcaspy's ``setParam`` compares without numpy's element-wise ``!=``."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if hasattr(value, "_length_") and hasattr(value, "_type_"):  # a ctypes array
        return list(value)
    return value


def ctrl_of(kw: dict[str, Any]) -> dict[str, Any]:
    """The metadata part of a pyepics callback's or ``get_ctrlvars()``'s keywords."""
    out = {}
    for key in CTRL_FIELDS:
        if kw.get(key) is not None:
            value = plain(kw[key])
            out[key] = list(value) if key == "enum_strs" else value
    return out


class Client:
    """The channels of one gateway, and the pipe they report to."""

    def __init__(self, conn: Connection) -> None:
        import epics  # only here: this process's CA context
        self.epics = epics
        _keep_put_status(epics)
        self.conn = conn
        self.lock = threading.Lock()
        self.pvs: dict[str, Any] = {}
        self.meta_pvs: dict[str, Any] = {}  # each PV's metadata subscription (kept alive)
        self._last_meta: dict[str, dict] = {}
        self.shapes: dict[str, tuple] = {}  # (dbf, count) of each PV when it was first served
        self._late: list[str] = []  # connected after start, not yet told to the gateway
        self._names: dict[str, str] = {}  # a channel followed in a PV's place -> the PV

    def send(self, message: tuple) -> None:
        with self.lock:
            try:
                self.conn.send(message)
            except (OSError, EOFError):
                pass  # the gateway is gone: this process ends with its pipe
            except Exception as e:  # a value that does not pickle: said, not lost silently
                print(f"gateway CA client: {message[0]} of {message[1]} not sent: "
                      f"{type(e).__name__}: {e}", file=sys.stderr, flush=True)

    def connect(self, names: list[str], timeout: float) -> None:
        dbr = self.epics.dbr
        for name in names:
            self.pvs[name] = self.epics.PV(name, form="time", auto_monitor=dbr.DBE_VALUE | dbr.DBE_ALARM,
                                           connection_timeout=timeout)
        deadline = time.monotonic() + timeout
        connected = [name for name, pv in self.pvs.items()
                     if pv.wait_for_connection(timeout=max(0.0, deadline - time.monotonic()))]
        infos = self._describe(connected)
        self._follow(infos, ("connected", infos))
        for name in names:  # the others are served when they connect, whenever that is
            if name not in infos:
                pv = self.pvs[name]
                pv.connection_callbacks.append(self._late_connection)
                if pv.connected:  # (it connected while this was being set up)
                    self._late_connection(name, True)

    def _describe(self, names: list[str]) -> dict[str, dict]:
        """What the gateway serves connected channels as (:func:`channel_infos`, with the
        records' DESC and char arrays' RTYP)."""
        self.epics.ca.use_initial_context()  # (a thread of its own: ca calls need the context)
        infos = channel_infos(self.epics, {name: self.pvs[name] for name in names})
        asked = [(n, "DESC") for n in infos] + [(n, "RTYP") for n, i in infos.items() if asks_rtyp(i)]
        for (name, field), text in self._record_fields(asked).items():
            infos[name][field.lower()] = text
        asked = [(n, "FTVL") for n, i in infos.items() if i.get("rtyp") in FTVL_RECORDS]
        for (name, field), text in (self._record_fields(asked) if asked else {}).items():
            infos[name][field.lower()] = text
        longs = [n for n, i in infos.items() if i["dbf"] == "string" and i.get("rtyp") in LONG_STRING_RECORDS]
        if longs:
            infos.update(self._long_strings(longs, infos))
        return infos

    def _long_strings(self, names: list[str], infos: dict[str, dict]) -> dict[str, dict]:
        """lsi/lso records: followed through ``NAME.VAL$``, the whole string (under its
        own name CA cuts it to 40 bytes), served under ``NAME`` as QSRV serves it. One
        whose ``VAL$`` does not connect stays the 40-byte string it is."""
        dbr = self.epics.dbr
        pvs = {name: self.epics.PV(f"{name}.VAL$", form="time", connection_timeout=FIELDS_WAIT,
                                   auto_monitor=dbr.DBE_VALUE | dbr.DBE_ALARM) for name in names}
        deadline = time.monotonic() + FIELDS_WAIT
        connected = {name: pv for name, pv in pvs.items()
                     if pv.wait_for_connection(timeout=max(0.0, deadline - time.monotonic()))}
        found = channel_infos(self.epics, connected)
        for name, pv in pvs.items():
            if name not in found:
                pv.disconnect()
                continue
            found[name].update(rtyp=infos[name]["rtyp"], desc=infos[name].get("desc"))
            self._names[pv.pvname] = name
            self.pvs[name].disconnect()
            self.pvs[name] = pv
        return found

    def _follow(self, infos: dict[str, dict], announce: tuple) -> None:
        """Tell the gateway of these channels (``announce``), then follow their changes
        (an update before the gateway has the PV would be lost)."""
        ca, dbr = self.epics.ca, self.epics.dbr
        self.shapes.update({name: (i["dbf"], i["count"]) for name, i in infos.items()})
        self.send(announce)
        for name, info in infos.items():
            pv = self.pvs[name]
            pv.add_callback(self._update, with_ctrlvars=False)  # (True: a get per PV)
            pv.connection_callbacks.append(self._connection)
            pv.access_callbacks.append(partial(self._access, name))
            self._last_meta[name] = info["ctrl"]
            try:
                # metadata changes: a subscription on the same channel (a second PV object
                # each cost 1 ms); count 1: the ctrl fields, not the array again; the
                # type given: without, pyepics waits for a channel gone meanwhile, and raises
                self.meta_pvs[name] = ca.create_subscription(
                    pv.chid, ftype=ca.promote_fieldtype(DBF_NUMBERS[info["dbf"]], use_ctrl=True),
                    mask=dbr.DBE_PROPERTY, count=1, callback=self._meta)
            except Exception as e:  # noqa: BLE001 - one PV's, not the others'
                print(f"gateway CA client: {name}: no metadata monitor ({type(e).__name__}: {e})",
                      file=sys.stderr, flush=True)
            if not pv.connected:  # gone before its connection callback was there
                self.send(("conn", name, False))
        for name, info in infos.items():
            pv = self.pvs[name]
            stamp = (info["posixseconds"], info["nanoseconds"], info["severity"], info["status"])
            if pv.connected and (pv.posixseconds, pv.nanoseconds, pv.severity, pv.status) != stamp:
                # what changed while the gateway built its database (not all 10,000 again);
                # the monitor may have sent a newer one meanwhile: served only if not
                self._update(pvname=name, value=pv.value, severity=pv.severity,
                             status=pv.status, posixseconds=pv.posixseconds,
                             nanoseconds=pv.nanoseconds, kind="catch-up")

    def _late_connection(self, pvname: str, conn: bool, **_: Any) -> None:
        """A channel that was not connected at start connects (a CA callback: the work
        is done on a thread of its own, for all that connect within ``LATE_BATCH``)."""
        if not conn:
            return
        with self.lock:
            if pvname in self.shapes or pvname in self._late:
                return
            self._late.append(pvname)
            if len(self._late) > 1:
                return  # a thread is on its way
        threading.Thread(target=self._serve_late, name="gateway-late", daemon=True).start()

    def _serve_late(self, wait: float = LATE_BATCH) -> None:
        time.sleep(wait)  # an IOC that comes up connects its PVs within LATE_BATCH
        with self.lock:
            names, self._late = self._late, []
        infos = self._describe([n for n in names if self.pvs[n].connected])
        if infos:
            self._follow(infos, ("late", infos))
        # connected, but no answer in time (an IOC of 10,000 PVs restarting): again
        # later (one not connected now is taken when it connects)
        again = [n for n in names if n not in infos and self.pvs[n].connected]
        if again:
            with self.lock:
                self._late.extend(n for n in again if n not in self._late)
                first = len(self._late) == len(again)
            if first:
                self._serve_late(min(LATE_RETRY_MAX, 2 * wait))

    def _put_done(self, name: str, pv: Any, status: int | None) -> None:
        """A put completed (on a thread of its own: no CA call inside a CA callback). The
        IOC's value after it goes first, read afresh: its monitor update may come after
        the completion, and a PVA client's get after its put must see the new value, as
        from the IOC's own QSRV. ``status``: the completion's CA status, when known."""
        if not pv.connected:
            self.send(("put_done", name, False, "the IOC disconnected before it completed the put"))
            return
        if status is not None and not status & 1:  # CA's success codes are odd
            self.send(("put_done", name, False,
                       f"the IOC failed the put: {self.epics.ca.message(status)}"))
            return
        ca = self.epics.ca
        ca.use_initial_context()  # (a thread of its own: ca calls need the context)
        try:  # (not pv.get_with_metadata: it asks for as many elements as the last monitor
            # update had, and the IOC fills the rest of an array a put shortened with zeros)
            got = ca.get_with_metadata(pv.chid, ftype=ca.promote_type(pv.chid, use_time=True),
                                       timeout=2.0)
        except Exception:  # noqa: BLE001 - the monitor brings the value anyway
            got = None
        if got:
            self._update(pvname=name, **{k: got.get(k) for k in (
                "value", "severity", "status", "posixseconds", "nanoseconds")})
        self.send(("put_done", name, True, ""))

    def _record_fields(self, asked: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Record fields an IOC has beside a PV's value: ``DESC`` (the description QSRV
        serves), ``RTYP`` and ``FTVL`` (:func:`asks_rtyp`). All asked at once, waited for
        ``FIELDS_WAIT`` at most: a pcaspy IOC has none."""
        ca = self.epics.ca
        # plain channels, not PV objects: 2,000 of those took 6 s to make and drop
        chids = {(n, f): ca.create_channel(f"{n}.{f}", auto_cb=False)
                 for n, f in asked if "." not in n}
        ca.flush_io()
        deadline = time.monotonic() + FIELDS_WAIT
        waiting = dict(chids)
        found = {}
        while waiting and time.monotonic() < deadline:
            for key, chid in list(waiting.items()):
                if ca.isConnected(chid):
                    found[key] = waiting.pop(key)
            if waiting:
                ca.pend_event(0.01)
        for key, chid in list(found.items()):  # all asked, then all waited for
            try:
                ca.get(chid, wait=False)
            except Exception:  # noqa: BLE001 - gone again: none
                del found[key]
        ca.flush_io()
        deadline = time.monotonic() + FIELDS_WAIT
        out = {}
        for key, chid in found.items():
            try:
                text = ca.get_complete(chid, as_string=True,
                                       timeout=max(0.01, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - as above
                text = None
            if text:
                out[key] = str(text)
        for chid in chids.values():
            ca.clear_channel(chid)
        return out

    def _update(self, pvname: str, value: Any = None, severity: Any = 0, status: Any = 0,
                posixseconds: Any = 0, nanoseconds: Any = 0, kind: str = "update",
                **_: Any) -> None:
        if value is None:
            return
        self.send((kind, self._names.get(pvname, pvname), plain(value), int(severity or 0), int(status or 0),
                   int(posixseconds or 0), int(nanoseconds or 0)))

    def _meta(self, pvname: str, **kw: Any) -> None:
        pvname = self._names.get(pvname, pvname)
        ctrl = ctrl_of(kw)
        if ctrl and not same_ctrl(ctrl, self._last_meta.get(pvname)):
            self._last_meta[pvname] = ctrl
            self.send(("meta", pvname, ctrl))

    def _access(self, name: str, read: bool, write: bool, **_: Any) -> None:
        self.send(("access", name, bool(write)))

    def _connection(self, pvname: str, conn: bool, pv: Any = None, **_: Any) -> None:
        pvname = self._names.get(pvname, pvname)
        self.send(("conn", pvname, bool(conn)))
        if conn and pv is not None:  # an IOC restarted with another record there
            ca = self.epics.ca
            shape = (DBF_NAMES.get(ca.field_type(pv.chid)), int(ca.element_count(pv.chid)))
            if shape != self.shapes.get(pvname):
                self.send(("reshaped", pvname, self.shapes.get(pvname), shape))

    def put(self, name: str, value: Any) -> None:
        pv = self.pvs.get(name)
        if pv is None or not pv.connected:
            self.send(("put_done", name, False, "not connected to the IOC"))
            return

        def done(**_: Any) -> None:  # (pyepics ends a put cut off by a disconnect here too)
            status = getattr(_put_status, "value", None)
            threading.Thread(target=self._put_done, args=(name, pv, status), daemon=True).start()
        try:
            pv.put(value, wait=False, use_complete=True, callback=done)
        except Exception as e:
            self.send(("put_done", name, False, f"{type(e).__name__}: {e}"))


#: CA native field types by number (DBF_*).
DBF_NAMES = {0: "string", 1: "short", 2: "float32", 3: "enum", 4: "char", 5: "long", 6: "double"}
DBF_NUMBERS = {name: number for number, name in DBF_NAMES.items()}


def same_ctrl(a: dict[str, Any], b: dict[str, Any] | None) -> bool:
    """Whether two metadata are the same, an unset (NaN) limit equal to another (pure):
    NaN != NaN made every PV with one look changed at its first property update."""
    if b is None or a.keys() != b.keys():
        return False
    return all(x == y or (x != x and y != y) for x, y in ((a[k], b[k]) for k in a))


def asks_rtyp(info: dict[str, Any]) -> bool:
    """Whether the type CA carries a channel in may hide the record's own (pure): an
    lso's text and a waveform's bytes are alike over CA, a waveform's FTVL may be CHAR
    (signed), USHORT (carried as long), ULONG or 64-bit (as double), an int64 record
    is a double without precision, and an lsi's string is cut to 40 bytes."""
    dbf, count = info["dbf"], info.get("count", 1)
    if count > 1:
        return dbf in ("char", "long", "double")
    return dbf == "string" or (dbf == "double" and not (info.get("ctrl") or {}).get("precision"))


def channel_infos(epics: Any, pvs: dict[str, Any], timeout: float = 2.0) -> dict[str, dict]:
    """What the gateway needs of connected channels to serve them as the IOC does: native
    field type (``DBF_*`` name), element count, write access, metadata (DBR_CTRL) and
    value with alarm and timestamp (DBR_TIME). Every channel's two gets are sent before
    any answer is waited for: one after the other (two round trips per PV), 10,000 PVs
    took 20 s. A channel that does not answer within ``timeout`` is left out."""
    ca = epics.ca
    asked = {}
    for name, pv in pvs.items():
        dbf = DBF_NAMES.get(ca.field_type(pv.chid))
        if dbf is None:
            continue
        types = (ca.promote_type(pv.chid, use_ctrl=True), ca.promote_type(pv.chid, use_time=True))
        if types[0] == types[1]:  # a string's: pyepics asks DBR_TIME for DBR_CTRL, and the
            types = (None, types[1])  # count=1 answer would be the value's
        try:
            if types[0] is not None:
                ca.get_with_metadata(pv.chid, ftype=types[0], count=1, wait=False)
            ca.get_with_metadata(pv.chid, ftype=types[1], wait=False)
        except Exception:  # noqa: BLE001 - disconnected meanwhile: served when it connects
            continue
        asked[name] = (pv, dbf, types)
    ca.flush_io()
    deadline = time.monotonic() + timeout
    out = {}
    for name, (pv, dbf, (ctrl_type, time_type)) in asked.items():
        try:
            ctrl = {} if ctrl_type is None else ca.get_complete_with_metadata(
                pv.chid, ftype=ctrl_type, count=1, timeout=max(0.01, deadline - time.monotonic()))
            got = ca.get_complete_with_metadata(pv.chid, ftype=time_type,
                                                timeout=max(0.01, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - as above
            continue
        if ctrl is None or got is None:
            continue
        out[name] = {"dbf": dbf, "count": int(ca.element_count(pv.chid)),
                     "write": bool(pv.write_access), "ctrl": ctrl_of(ctrl),
                     "value": plain(got["value"]), "severity": int(got.get("severity") or 0),
                     "status": int(got.get("status") or 0),
                     "posixseconds": int(got.get("posixseconds") or 0),
                     "nanoseconds": int(got.get("nanoseconds") or 0)}
    return out


#: The CA status of the put completion being handled, on the thread that handles it.
_put_status = threading.local()


def _keep_put_status(epics: Any) -> None:
    """pyepics calls a put's completion callback without the completion's status (an
    IOC's ECA_PUTFAIL looked like success): its completion handler is replaced by one that
    notes the status for the callback it then calls, on the same thread. Without the
    pyepics internals this needs, statuses stay unknown (puts end as done)."""
    ca, dbr = epics.ca, epics.dbr
    if not (hasattr(ca, "_CB_PUTWAIT") and hasattr(dbr, "make_callback")
            and hasattr(dbr, "event_handler_args")):
        return

    def on_put(args: Any) -> None:
        _put_status.value = args.status
        try:
            if callable(args.usr):
                args.usr()
        finally:
            _put_status.value = None
    ca._CB_PUTWAIT = dbr.make_callback(on_put, dbr.event_handler_args)


def _die_with_parent() -> None:
    """Linux: this process ends when the gateway's does (a stop during start-up left it
    waiting out its connect timeout, re-parented)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    _die_with_parent()
    conn = Connection(int(argv[0]))
    client = Client(conn)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return 0
        if message[0] == "connect":
            client.connect(message[1], message[2])
        elif message[0] == "put":
            client.put(message[1], message[2])
        elif message[0] == "stop":
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
