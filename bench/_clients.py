"""Client processes of the benchmark (one per protocol) and the start-up probe.

``python _clients.py ca|pva --prefix P --pvs N --control FILE [--pva-addr H:P]``
    Monitor every PV. Print ``{"ready": ...}`` once every PV delivered its initial value,
    then wait for the control file, count updates until ``t_stop`` plus a drain period
    and print one JSON result line. Updates are binned by their *write* time (the value)
    in 1 ms bins from ``t_start``, so the orchestrator can count exactly the updates
    written inside the writer's measurement window.

``python _clients.py probe --prefix P --pvs N --ca-port P --pva-addr H:P``
    Start-up probe: print ``{"ready": true}``, then poll until the first and the last PV
    answer a CA get and a PVA get; print the POSIX times at which they did.

CA settings come from the environment (EPICS_CA_ADDR_LIST etc., set by the orchestrator).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

BIN = 0.001  # histogram bin of write times (s)
DRAIN = 1.5  # s after t_stop during which late updates still count


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def names_of(prefix: str, n: int) -> list[str]:
    return [f"{prefix}V{i:05d}" for i in range(n)]


def pva_conf(addr: str) -> dict:
    return {"EPICS_PVA_NAME_SERVERS": addr, "EPICS_PVA_ADDR_LIST": "",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO"}


class Counter:
    """Counts updates; thread-safe (CA and PVA libraries may call back on several threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.initial = 0
        self.total = 0
        self.t0 = self.tb = self.te = float("inf")
        self.bins: list[int] = []
        self.lat: list[float] = []
        self.live = False

    def arm(self, ctl: dict) -> None:
        with self.lock:
            self.bins = [0] * int((ctl["t_stop"] - ctl["t_start"] + 1.0) / BIN)
            self.t0, self.tb, self.te = ctl["t_start"], ctl["t_begin"], ctl["t_end"]
            self.live = True

    def on_value(self, v: float) -> None:
        t = time.time()
        with self.lock:
            if not self.live:
                self.initial += 1
                return
            self.total += 1
            k = int((v - self.t0) / BIN)
            if 0 <= k < len(self.bins):
                self.bins[k] += 1
            if self.tb <= v < self.te:
                self.lat.append(t - v)

    def result(self, protocol: str, connected: int) -> dict:
        import numpy as np
        with self.lock:
            lat = np.array(self.lat) * 1000.0
            out = {"protocol": protocol, "connected": connected, "updates_total": self.total,
                   "t0": self.t0, "bin": BIN, "bins": self.bins, "samples": int(lat.size)}
        if lat.size:
            p = np.percentile(lat, [50, 90, 99, 99.9])
            out["lat_ms"] = {"p50": p[0], "p90": p[1], "p99": p[2], "p999": p[3],
                             "max": float(lat.max()), "mean": float(lat.mean())}
        return out


def wait_control(path: str) -> dict:
    while True:
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.02)


def wait_initial(counter: Counter, n: int, timeout: float) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with counter.lock:
            if counter.initial >= n:
                return counter.initial
        time.sleep(0.02)
    return counter.initial


def pva_monitors(ctx, names: list[str], counter: Counter, timeout: float) -> tuple[dict, set]:
    """One monitor per PV, re-made for PVs that gave no initial value.

    p4p 4.3's ``Context.monitor`` stores its subscription handle only after pvxs returns
    it; a first event that comes earlier is dropped ("Lost Subscription update", an
    assertion on a p4p worker) and that monitor never delivers. Seen about once per
    thousands of monitors on a busy host; a client-side race, not the server's.
    """
    seen: set[str] = set()
    on_value = counter.on_value

    def make(nm: str):
        def cb(V):
            seen.add(nm)
            on_value(V.value)
        return ctx.monitor(nm, cb)

    subs = {nm: make(nm) for nm in names}
    deadline = time.time() + timeout
    last, stalled_since = -1, time.time()
    while time.time() < deadline and len(seen) < len(names):
        time.sleep(0.1)
        if len(seen) != last:  # still arriving: not stuck
            last, stalled_since = len(seen), time.time()
        elif time.time() - stalled_since > 3.0:
            for nm in [nm for nm in names if nm not in seen]:
                subs[nm].close()
                subs[nm] = make(nm)
            stalled_since = time.time()
    return subs, seen


def run_monitor(protocol: str, args: argparse.Namespace) -> None:
    names = names_of(args.prefix, args.pvs)
    counter = Counter()
    keep = []
    if protocol == "ca":
        import epics.ca as ca
        ca.initialize_libca()
        chids = [ca.create_channel(nm, connect=False, auto_cb=False) for nm in names]
        deadline = time.time() + args.timeout
        for chid in chids:
            ca.connect_channel(chid, timeout=max(0.05, deadline - time.time()))
        connected = sum(1 for c in chids if ca.isConnected(c))
        on_value = counter.on_value

        def cb(value=None, **kw):
            on_value(value)

        for chid in chids:
            if ca.isConnected(chid):
                keep.append(ca.create_subscription(chid, use_time=False, use_ctrl=False, callback=cb))
    else:
        from p4p.client.thread import Context
        ctx = Context("pva", conf=pva_conf(args.pva_addr), useenv=False, nt=False)
        keep, seen = pva_monitors(ctx, names, counter, args.timeout)
        connected = len(seen)
    got = wait_initial(counter, len(names), args.timeout)
    emit({"ready": got >= len(names), "connected": connected, "initial": got})
    ctl = wait_control(args.control)
    counter.arm(ctl)
    time.sleep(max(0.0, ctl["t_stop"] + DRAIN - time.time()))
    emit(counter.result(protocol, connected))
    os._exit(0)  # skip library teardown of thousands of channels


# --------------------------------------------------------------------------- probe


def ca_search(port: int, name: str, deadline: float) -> bool:
    """Raw CA UDP search until the server answers for ``name`` (a libca channel created
    before the server is up would back off its searches and skew the start-up time)."""
    payload = name.encode() + b"\0"
    payload += b"\0" * (-len(payload) % 8)
    msg = (struct.pack(">HHHHII", 0, 0, 0, 13, 0, 0)
           + struct.pack(">HHHHII", 6, len(payload), 5, 13, 1, 1) + payload)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.01)
    try:
        while time.time() < deadline:
            try:
                s.sendto(msg, ("127.0.0.1", port))
                data = s.recv(4096)
            except OSError:  # timeout or ICMP port unreachable
                continue
            off = 0
            while off + 16 <= len(data):
                cmd, size = struct.unpack_from(">HH", data, off)
                if cmd == 6:
                    return True
                off += 16 + size
        return False
    finally:
        s.close()


def tcp_open(port: int, deadline: float) -> bool:
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return True
        except OSError:
            time.sleep(0.005)
    return False


def run_probe(args: argparse.Namespace) -> None:
    import epics
    import epics.ca as ca
    from p4p.client.thread import Context, TimeoutError as PvaTimeout

    ca.initialize_libca()
    first, last = names_of(args.prefix, args.pvs)[0], names_of(args.prefix, args.pvs)[-1]
    result: dict = {}
    emit({"ready": True})
    sys.stdin.readline()  # the orchestrator starts the server, then says go
    deadline = time.time() + args.timeout

    def ca_side():
        ca.use_initial_context()
        for key, name in (("ca_first", first), ("ca_last", last)):
            if not ca_search(args.ca_port, name, deadline):
                return
            while time.time() < deadline:
                if epics.caget(name, timeout=1.0) is not None:
                    result[key] = time.time()
                    break

    def pva_side():
        port = int(args.pva_addr.rsplit(":", 1)[1])
        if not tcp_open(port, deadline):
            return
        for key, name in (("pva_first", first), ("pva_last", last)):
            while time.time() < deadline:
                ctx = Context("pva", conf=pva_conf(args.pva_addr), useenv=False)
                try:
                    ctx.get(name, timeout=0.5)
                    result[key] = time.time()
                    break
                except (PvaTimeout, Exception):
                    time.sleep(0.005)
                finally:
                    ctx.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (ca_side, pva_side)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.time()) + 1)
    emit(result)
    os._exit(0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ca", "pva", "probe"])
    p.add_argument("--prefix", required=True)
    p.add_argument("--pvs", type=int, required=True)
    p.add_argument("--control")
    p.add_argument("--pva-addr")
    p.add_argument("--ca-port", type=int)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    if args.mode == "probe":
        run_probe(args)
    else:
        run_monitor(args.mode, args)


if __name__ == "__main__":
    main()
