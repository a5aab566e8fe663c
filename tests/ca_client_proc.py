"""A pyepics CA client in its own process, driven by JSON lines on stdin.

pyepics keeps one CA context per process and reads EPICS_CA_* at import, so each test
server gets its own client process. Commands: {"op": "get"|"put"|"monitor"|"poll"|"events"|
"info", "pv": ..., ...}; each answers one JSON line.
"""

import ctypes
import json
import sys
import threading
import time

import epics
from epics import ca, dbr

monitors = {}
events = []
lock = threading.Lock()


def plain(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return v


put_status = {}


def _on_put(args):
    with lock:
        put_status[args.usr] = args.status


_PUT_DONE = dbr.make_callback(_on_put, dbr.event_handler_args)


def put_with_status(name, value, timeout=5.0):
    """A CA put with completion that reports the server's status (pyepics drops it)."""
    pv = epics.get_pv(name, form="native")
    if not pv.wait_for_connection(timeout=5):
        return {"error": "not connected"}
    data = (ctypes.c_double * 1)(float(value))
    key = id(data)
    status = ca.libca.ca_array_put_callback(dbr.DOUBLE, 1, pv.chid, data, _PUT_DONE, ctypes.py_object(key))
    if status != 1:
        return {"status": status, "message": ca.message(status)}
    ca.flush_io()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ca.poll()
        with lock:
            if key in put_status:
                status = put_status.pop(key)
                return {"status": status, "message": ca.message(status)}
        time.sleep(0.01)
    return {"error": "no completion"}


def on_change(pvname=None, value=None, severity=None, status=None, timestamp=None, **kw):
    with lock:
        events.append({"pv": pvname, "value": plain(value), "severity": severity,
                       "status": status, "timestamp": timestamp})


def handle(cmd):
    op = cmd["op"]
    name = cmd.get("pv")
    if op == "get":
        pv = epics.get_pv(name, form=cmd.get("form", "ctrl"))
        if not pv.wait_for_connection(timeout=cmd.get("timeout", 5)):
            return {"error": "not connected"}
        value = pv.get(timeout=5, as_string=cmd.get("as_string", False), use_monitor=False)
        info = pv.get_ctrlvars(timeout=5) or {}
        return {"value": plain(value), "severity": pv.severity, "status": pv.status,
                "timestamp": pv.timestamp, "count": pv.count, "type": pv.type,
                "units": info.get("units"), "precision": info.get("precision"),
                "enum_strs": list(info.get("enum_strs") or []),
                "upper_disp_limit": info.get("upper_disp_limit"),
                "lower_disp_limit": info.get("lower_disp_limit"),
                "upper_alarm_limit": info.get("upper_alarm_limit"),
                "lower_alarm_limit": info.get("lower_alarm_limit"),
                "upper_warning_limit": info.get("upper_warning_limit"),
                "lower_warning_limit": info.get("lower_warning_limit")}
    if op == "put":
        value = cmd["value"]
        if cmd.get("latin1"):  # the value's bytes in Latin-1, as a client of another locale
            value = value.encode("latin-1")
        ok = epics.caput(name, value, wait=cmd.get("wait", True), timeout=cmd.get("timeout", 5))
        return {"ok": ok is not None and ok != 0, "result": ok}
    if op == "put_status":
        return put_with_status(name, cmd["value"], cmd.get("timeout", 5.0))
    if op == "monitor":
        pv = epics.get_pv(name, form="time", callback=on_change, auto_monitor=True)
        if not pv.wait_for_connection(timeout=5):
            return {"error": "not connected"}
        monitors[name] = pv
        return {"ok": True}
    if op == "poll":  # a channel and a get, no monitor: a poller (kept open)
        pv = epics.PV(name, auto_monitor=False)
        if not pv.wait_for_connection(timeout=5):
            return {"error": "not connected"}
        monitors[name] = pv
        return {"value": plain(pv.get(timeout=5, use_monitor=False))}
    if op == "events":
        with lock:
            out = list(events)
            events.clear()
        return {"events": out}
    return {"error": f"unknown op {op}"}


def main():
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            reply = handle(json.loads(line))
        except Exception as e:  # report, keep serving
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply, default=repr), flush=True)


if __name__ == "__main__":
    main()
