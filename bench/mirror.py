#!/usr/bin/env python
"""Benchmark: pvconsole (pcaspy + PVA mirror) side by side with pythonSoftIOC (CA + QSRV2).

Each run starts one server subprocess on loopback with free ports, one CA client
(pyepics) and one PVA client (p4p) that monitor every PV, then drives N float PVs from a
Python thread inside the server. Values are ``time.time()`` at the write, so clients
measure latency as receive time - value. Reported per run: driver-side write rate,
delivered updates/s per protocol (and the fraction of the writes in the window that
arrived), p50/p99 latency, server CPU (% of one core, /proc/<pid>/stat) and RSS.

Scenario groups (``--only``):
  rate    fixed total rate (default 2,000 updates/s) spread over the PVs
  flat    writer loops as fast as it can
  mirror  pvconsole flat out with PVA off for every PV vs on (CA client only), and on
          with a PVA client monitoring too
  scale   start-up time (process start -> first/last PV answers a CA and a PVA get)
          and idle RSS with --scale-pvs PVs (default 10,000)

Usage:
  python bench/mirror.py            # full run (~10 min; flat-out runs 3 times each)
  python bench/mirror.py --quick    # smoke run (200 PVs, 3 s)
  python bench/mirror.py --only flat --py-spy   # profile pvconsole flat out

Writes bench/results.json and bench/results.md (``--out-dir``). Not a pytest test.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter as _Counter
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import _servers  # noqa: E402

PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
LEAD = 0.3  # s between the control file and the first write
TAIL = 0.3  # s the writer keeps going after the window
DRAIN = 1.5  # must match _clients.DRAIN
PVCONSOLE_SRC = ""  # --pvconsole-src: directory holding the pvconsole package to run


class BenchError(Exception):
    """A run could not be carried out; the message says why."""


# --------------------------------------------------------------------------- processes

_procs: list[subprocess.Popen] = []


def spawn(cmd: list[str], **kw) -> subprocess.Popen:
    """Start a child in its own session (so its whole group can be stopped)."""
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    _procs.append(p)
    return p


def stop(p: subprocess.Popen, timeout: float = 5.0) -> None:
    if p.poll() is None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    else:  # reap helpers the child may have left in its group
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if p in _procs:
        _procs.remove(p)


def stop_all() -> None:
    for p in list(_procs):
        try:
            stop(p, timeout=2.0)
        except Exception:
            pass


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class LineReader:
    """Reads a child's stdout lines on a thread, hands out JSON objects with a timeout."""

    def __init__(self, p: subprocess.Popen, label: str, log: Path | None = None) -> None:
        self.p, self.label, self.log = p, label, log
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.p.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.q.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self.q.put(None)

    def get(self, timeout: float) -> dict:
        try:
            obj = self.q.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"{self.label}: no answer within {timeout:.0f} s") from None
        if obj is None:
            raise BenchError(f"{self.label}: exited (code {self.p.wait()}) without an answer:\n"
                             + (tail(self.log) if self.log else "(stderr above)"))
        return obj


# --------------------------------------------------------------------------- helpers


def free_ports(count: int) -> list[int]:
    """Ports free for both TCP and UDP on 127.0.0.1 (CA uses one number for both)."""
    ports: list[int] = []
    held = []
    while len(ports) < count:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            t.close()
            u.close()
            continue
        held += [t, u]
        ports.append(port)
    for s in held:
        s.close()
    return ports


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the console runs its engine in a child process)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return pids


def own_ticks(pid: int) -> int:
    """CPU time of one process, in clock ticks (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def cpu_ticks(pid: int) -> int:
    """CPU time of a process and its children, in clock ticks."""
    return sum(own_ticks(p) for p in process_tree(pid))


def process_role(pid: int) -> str:
    """What a process of a server's tree is: the console's engine child, or the server."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return "gone"
    return "engine" if b"pvconsole.enginehost" in cmd else "main"


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children."""
    total = 0.0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmRSS:")), 0.0)
        except OSError:
            continue
    return total


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EPICS_", "BENCH_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sleep_until(t: float) -> None:
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def wait_listening(port: int, proc: subprocess.Popen, what: str, timeout: float, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} before listening on "
                             f"port {port}:\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"{what} not listening on 127.0.0.1:{port} after {timeout:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    | " + s for s in text[-lines:]) or "    | (empty log)"


# --------------------------------------------------------------------------- servers


class Server:
    """One server subprocess (pvconsole or softioc) on free loopback ports."""

    def __init__(self, kind: str, n: int, tmp: Path, style: str = "", rate: float = 0.0,
                 expose: bool = True, record: str = "ai", load: bool = True) -> None:
        self.kind, self.n, self.tmp = kind, n, tmp
        self.ca_port, self.ca_beacon, self.pva_port, self.pva_bcast = free_ports(4)
        self.control = tmp / "control.json"
        self.stats = tmp / "writer.json"
        self.log = tmp / "server.log"
        env = clean_env()
        env.update(BENCH_PVS=str(n), BENCH_RATE=str(rate), BENCH_STYLE=style,
                   BENCH_EXPOSE="1" if expose else "0", BENCH_RECORD=record,
                   BENCH_STATS=str(self.stats))
        if load:
            env["BENCH_CONTROL"] = str(self.control)
        if kind == "pvconsole":
            if PVCONSOLE_SRC:
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [PVCONSOLE_SRC, env.get("PYTHONPATH")]))
            self.prefix = _servers.PREFIX_PVCONSOLE
            plugin = _servers.write_plugin(tmp, n)
            self.cmd = [PY, "-m", "pvconsole", "--headless", "--plugin", str(plugin),
                        "--state-dir", str(tmp / "state"), "--ca-intf", "127.0.0.1",
                        "--ca-port", str(self.ca_port), "--ca-beacon-addr", "127.0.0.1",
                        "--ca-beacon-port", str(self.ca_beacon), "--pva-intf", "127.0.0.1",
                        "--pva-port", str(self.pva_port),
                        "--pva-broadcast-port", str(self.pva_bcast)]
        else:
            self.prefix = _servers.PREFIX_SOFTIOC + ":"
            self.cmd = [PY, str(BENCH_DIR / "_servers.py"), "softioc"]
            env.update(EPICS_CAS_INTF_ADDR_LIST="127.0.0.1", EPICS_CAS_SERVER_PORT=str(self.ca_port),
                       EPICS_CAS_BEACON_ADDR_LIST="127.0.0.1", EPICS_CAS_AUTO_BEACON_ADDR_LIST="NO",
                       EPICS_CAS_BEACON_PORT=str(self.ca_beacon),
                       EPICS_PVAS_INTF_ADDR_LIST="127.0.0.1", EPICS_PVAS_SERVER_PORT=str(self.pva_port),
                       EPICS_PVAS_BROADCAST_PORT=str(self.pva_bcast),
                       EPICS_PVAS_BEACON_ADDR_LIST="127.0.0.1", EPICS_PVAS_AUTO_BEACON_ADDR_LIST="NO")
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.t_spawn = 0.0

    @property
    def pva_addr(self) -> str:
        return f"127.0.0.1:{self.pva_port}"

    def start(self) -> None:
        self.t_spawn = time.time()
        with open(self.log, "wb") as logf:
            self.proc = spawn(self.cmd, cwd=self.tmp, env=self.env, stdin=subprocess.DEVNULL,
                              stdout=logf, stderr=subprocess.STDOUT)

    def wait_up(self, timeout: float) -> None:
        assert self.proc is not None
        wait_listening(self.ca_port, self.proc, f"{self.kind} (CA)", timeout, self.log)
        wait_listening(self.pva_port, self.proc, f"{self.kind} (PVA)", timeout, self.log)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.kind} died (code {self.proc.returncode}):\n{tail(self.log)}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def extra_results(self) -> dict:
        """What a specialised server measured besides the common numbers."""
        return {}

    def client_env(self) -> dict[str, str]:
        env = clean_env()
        env.update(EPICS_CA_ADDR_LIST=f"127.0.0.1:{self.ca_port}", EPICS_CA_AUTO_ADDR_LIST="NO")
        return env


def start_client(server: Server, protocol: str, timeout: float) -> tuple[subprocess.Popen, LineReader]:
    cmd = [PY, str(BENCH_DIR / "_clients.py"), protocol, "--prefix", server.prefix,
           "--pvs", str(server.n), "--control", str(server.control), "--pva-addr", server.pva_addr,
           "--ca-port", str(server.ca_port), "--timeout", str(timeout)]
    log = server.tmp / f"{protocol}-client.log"
    with open(log, "wb") as logf:
        p = spawn(cmd, env=server.client_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=logf, text=True)
    return p, LineReader(p, f"{protocol} client ({server.kind})", log)


# --------------------------------------------------------------------------- one run


def run_load(label: str, kind: str, n: int, rate: float, seconds: float, warmup: float,
             style: str = "", record: str = "ai", expose: bool = True,
             protocols: tuple[str, ...] = ("ca", "pva"), profile: Path | None = None,
             native: bool = False, server_class: type[Server] | None = None,
             during: Callable[[Server, dict], None] | None = None) -> dict:
    """One server under load with monitoring clients; returns the measurements.

    ``server_class`` swaps the server process (bench/tui.py runs the console in a pty);
    ``during(server, control)`` runs in the measurement window (it must return by
    ``control['t_end']``); a server's ``extra_results()`` is merged into the result.
    """
    print(f"  {label} ...", end="", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="pvcbench-"))
    server = (server_class or Server)(kind, n, tmp, style=style, rate=rate, expose=expose, record=record)
    clients: dict[str, tuple[subprocess.Popen, LineReader]] = {}
    spy = None
    try:
        up_timeout = 30 + n / 200
        server.start()
        server.wait_up(up_timeout)
        for proto in protocols:
            clients[proto] = start_client(server, proto, up_timeout)
        for proto, (p, reader) in clients.items():
            ready = reader.get(up_timeout + 30)
            if not ready.get("ready") or ready.get("connected") != n:
                server.check_alive()
                raise BenchError(f"{kind}: {proto} client connected {ready.get('connected')} of "
                                 f"{n} PVs ({ready.get('initial')} initial values) within "
                                 f"{up_timeout:.0f} s:\n{tail(server.log)}")
        t_start = time.time() + LEAD
        ctl = {"t_start": t_start, "t_begin": t_start + warmup,
               "t_end": t_start + warmup + seconds, "t_stop": t_start + warmup + seconds + TAIL}
        tmpf = server.control.with_suffix(".tmp")
        tmpf.write_text(json.dumps(ctl))
        os.replace(tmpf, server.control)

        pids = {"server": server.proc.pid, **{f"{k}_client": v[0].pid for k, v in clients.items()}}
        sleep_until(ctl["t_begin"])
        server.check_alive()
        c0 = {k: cpu_ticks(pid) for k, pid in pids.items()}
        tree0 = {p: own_ticks(p) for p in process_tree(server.proc.pid)}
        w0 = time.time()
        if profile is not None:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.proc.pid),
                                    "--native" if native else "--nonblocking", "--threads", "--rate", "200", "--duration", str(max(1, int(seconds))),
                                    "--format", "raw", "-o", str(profile)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "PATH": f"{Path(PY).parent}:{os.environ['PATH']}"})
        if during is not None:
            during(server, ctl)
        sleep_until(ctl["t_end"])
        c1 = {k: cpu_ticks(pid) for k, pid in pids.items()}
        w1 = time.time()
        by_role = {process_role(p): (own_ticks(p) - t) / CLK_TCK / (w1 - w0) * 100.0
                   for p, t in tree0.items()}
        rss = rss_mb(server.proc.pid)
        cpu = {k: (c1[k] - c0[k]) / CLK_TCK / (w1 - w0) * 100.0 for k in pids}

        deadline = ctl["t_stop"] + 15 + n / 200  # flat out, the last sweep must end first
        while not server.stats.exists():
            server.check_alive()
            if time.time() > deadline:
                raise BenchError(f"{kind}: the writer wrote no statistics:\n{tail(server.log)}")
            time.sleep(0.05)
        writer = json.loads(server.stats.read_text())
        out = {"label": label, "server": kind, "style": style or f"softioc-{record}", "pvs": n,
               "rate": rate, "seconds": seconds, "expose": expose, "writer": writer,
               "server_cpu_pct": cpu["server"], "server_cpu_by_process": by_role,
               "server_rss_mb": rss,
               "client_cpu_pct": {k.split("_")[0]: v for k, v in cpu.items() if k != "server"}}
        for proto, (p, reader) in clients.items():
            res = reader.get(ctl["t_stop"] - time.time() + DRAIN + 30)
            out[proto] = summarize_client(res, writer)
        out.update(server.extra_results())
        if spy is not None:
            try:
                _, err = spy.communicate(timeout=seconds + 30)
                if spy.returncode:
                    print(f"\n    py-spy failed: {err.strip()[-300:]}", end="")
            except subprocess.TimeoutExpired:
                spy.kill()
        print(" " + one_line(out), flush=True)
        return out
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        for p, _ in clients.values():
            stop(p)
        server.stop()


def summarize_client(res: dict, writer: dict) -> dict:
    """Updates whose write time falls in the writer's window, and their latency."""
    t0, b, bins = res["t0"], res["bin"], res["bins"]
    i0 = math.floor((writer["w_begin"] - t0) / b + 1e-6)
    i1 = math.floor((writer["w_end"] - t0) / b + 1e-6)
    delivered = sum(bins[max(0, i0):max(0, i1)])
    span = writer["w_end"] - writer["w_begin"]
    out = {"delivered": delivered, "updates_per_s": delivered / span,
           "delivered_pct": 100.0 * delivered / writer["writes"] if writer["writes"] else float("nan"),
           "samples": res["samples"], "connected": res["connected"]}
    if "lat_ms" in res:
        out["lat_ms"] = res["lat_ms"]
    return out


def pva_p99(r: dict) -> float:
    return r.get("pva", {}).get("lat_ms", {}).get("p99", math.nan)


def median_of(runs: list[dict | None], fixed_rate: bool = False) -> dict | None:
    """Of repeated runs of one configuration (None: one that failed), the median one.

    Flat out, the rate depends on how the shared cores are scheduled (±25 % between
    single runs here): the run with the median rate, every run's rate in ``repeats``.
    At a fixed rate every run writes the same, but the latency tail moves (PVA p99 of one
    configuration ranged 1.3-3.0 ms over five runs here): the run with the median PVA
    p99, every run's in ``p99_repeats``.
    """
    key = pva_p99 if fixed_rate else (lambda r: r["writer"]["write_rate"])
    runs = sorted((r for r in runs if r is not None), key=key)
    if not runs:
        return None
    chosen = runs[len(runs) // 2]
    chosen["repeats"] = [r["writer"]["write_rate"] for r in runs]
    if fixed_rate:
        chosen["repeats"].sort()
        chosen["p99_repeats"] = [pva_p99(r) for r in runs]
    return chosen


def one_line(r: dict) -> str:
    parts = [f"writes {r['writer']['write_rate']:,.0f}/s"]
    for proto in ("ca", "pva"):
        if proto in r:
            c = r[proto]
            lat = c.get("lat_ms", {})
            parts.append(f"{proto.upper()} {c['updates_per_s']:,.0f}/s ({c['delivered_pct']:.1f}%) "
                         f"p50 {lat.get('p50', float('nan')):.2f} p99 {lat.get('p99', float('nan')):.2f} ms")
    parts.append(f"CPU {r['server_cpu_pct']:.0f}%  RSS {r['server_rss_mb']:.0f} MB")
    return " | ".join(parts)


def run_startup(kind: str, n: int, record: str = "ai") -> dict:
    """Process start -> first (and last) PV answers a CA get and a PVA get; idle RSS."""
    print(f"  start-up {kind} {n} PVs ...", end="", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="pvcbench-"))
    server = Server(kind, n, tmp, record=record, load=False)
    log = tmp / "probe.log"
    with open(log, "wb") as logf:
        probe = spawn([PY, str(BENCH_DIR / "_clients.py"), "probe", "--prefix", server.prefix,
                       "--pvs", str(n), "--pva-addr", server.pva_addr, "--ca-port", str(server.ca_port),
                       "--timeout", "180"],
                      env=server.client_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=logf, text=True)
    reader = LineReader(probe, f"start-up probe ({kind})", log)
    try:
        reader.get(60)
        server.start()
        probe.stdin.write("go\n")
        probe.stdin.flush()
        res = reader.get(200)
        missing = [k for k in ("ca_first", "pva_first", "ca_last", "pva_last") if k not in res]
        if missing:
            server.check_alive()
            raise BenchError(f"{kind}: no answer for {', '.join(missing)} within 180 s:\n{tail(server.log)}")
        time.sleep(1.0)
        server.check_alive()
        out = {"server": kind, "pvs": n,
               **{k: res[k] - server.t_spawn for k in ("ca_first", "pva_first", "ca_last", "pva_last")},
               "rss_mb": rss_mb(server.proc.pid),
               "cpu_s": cpu_ticks(server.proc.pid) / CLK_TCK}
        print(f" CA {out['ca_first']:.2f} s, PVA {out['pva_first']:.2f} s (last PV: CA "
              f"{out['ca_last']:.2f} s, PVA {out['pva_last']:.2f} s), RSS {out['rss_mb']:.0f} MB",
              flush=True)
        return out
    finally:
        stop(probe)
        server.stop()


# --------------------------------------------------------------------------- profile


def summarize_profile(path: Path, top: int = 25) -> dict:
    """py-spy raw (collapsed) stacks -> inclusive/self percentages per function, per thread."""
    incl: _Counter = _Counter()
    self_: _Counter = _Counter()
    threads: _Counter = _Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        frames = stack.split(";")
        total += c
        threads[frames[0]] += c
        names = [_short_frame(f) for f in frames[1:]]
        for name in set(names):
            incl[name] += c
        if names:
            self_[names[-1]] += c
    pct = lambda x: round(100.0 * x / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total,
            "threads": {k: pct(v) for k, v in threads.most_common(10)},
            "inclusive": [(k, pct(v)) for k, v in incl.most_common(top)],
            "self": [(k, pct(v)) for k, v in self_.most_common(top)]}


def _short_frame(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)"
    name, _, loc = frame.partition(" (")
    loc = loc.rstrip(")")
    file = loc.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({file})" if file else name


# --------------------------------------------------------------------------- report


def fmt(x, spec=",.0f", nan="–"):
    try:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return nan
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def rate_cell(r: dict) -> str:
    """The driver rate, with the range of the repeated runs it is the median of."""
    reps = r.get("repeats") or []
    text = fmt(r["writer"]["write_rate"])
    return f"{text} ({fmt(reps[0])}–{fmt(reps[-1])})" if len(reps) > 1 else text


def load_table(runs: list[dict]) -> list[str]:
    rows = ["| scenario | server | style | PVs | driver writes/s | CA upd/s | CA delivered | CA p50 / p99 ms "
            "| PVA upd/s | PVA delivered | PVA p50 / p99 ms | server CPU % | RSS MB | client CPU % (CA/PVA) |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        cells = [r["scenario"], r["server"], r["style"] + ("" if r["expose"] else " (PVA off)"),
                 str(r["pvs"]), rate_cell(r)]
        for proto in ("ca", "pva"):
            c = r.get(proto)
            if c is None:
                cells += ["–", "–", "–"]
                continue
            lat = c.get("lat_ms", {})
            p99 = fmt(lat.get('p99'), '.2f')
            reps = r.get("p99_repeats") or []
            if proto == "pva" and len(reps) > 1:
                p99 += f" ({fmt(reps[0], '.2f')}–{fmt(reps[-1], '.2f')})"
            cells += [fmt(c["updates_per_s"]), fmt(c["delivered_pct"], ".1f") + " %",
                      f"{fmt(lat.get('p50'), '.2f')} / {p99}"]
        cc = r["client_cpu_pct"]
        cells += [fmt(r["server_cpu_pct"], ".0f"), fmt(r["server_rss_mb"], ".0f"),
                  f"{fmt(cc.get('ca'), '.0f')} / {fmt(cc.get('pva'), '.0f')}"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def mirror_table(runs: list[dict]) -> list[str]:
    rows = ["| style | mirror | driver writes/s | CA upd/s | CA p99 ms | server CPU % | CA rate cost of the mirror |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for style in ("per-pv", "batch"):
        off, on, watched = mirror_runs(runs, style)
        for r, name in ((off, "off"), (on, "on"), (watched, "on, PVA client monitoring all")):
            if r is None:
                continue
            cost = ""
            if name != "off" and off is not None:
                cost = fmt(mirror_cost(off, r), ".1f") + " %"
            rows.append(f"| {style} | {name} | {rate_cell(r)} | "
                        f"{fmt(r['ca']['updates_per_s'])} | {fmt(r['ca'].get('lat_ms', {}).get('p99'), '.2f')} | "
                        f"{fmt(r['server_cpu_pct'], '.0f')} | {cost} |")
    return rows


def mirror_runs(runs: list[dict], style: str) -> tuple:
    """(PVA off, PVA on, PVA on with a PVA client monitoring every PV) runs of one style."""
    def pick(expose: bool, pva_client: bool) -> dict | None:
        return next((r for r in runs if r["style"] == style and r["expose"] == expose
                     and r.get("pva_client", False) == pva_client), None)
    return pick(False, False), pick(True, False), pick(True, True)


def mirror_cost(off: dict, on: dict) -> float:
    return 100.0 * (1.0 - on["writer"]["write_rate"] / off["writer"]["write_rate"])


def scale_table(rows_in: list[dict]) -> list[str]:
    rows = ["| server | PVs | first PV: CA get s | first PV: PVA get s | last PV: CA / PVA s | RSS MB | CPU s to ready |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows_in:
        rows.append(f"| {r['server']} | {r['pvs']:,} | {r['ca_first']:.2f} | {r['pva_first']:.2f} | "
                    f"{r['ca_last']:.2f} / {r['pva_last']:.2f} | {r['rss_mb']:.0f} | {r['cpu_s']:.2f} |")
    return rows


def targets(results: dict) -> list[str]:
    """The issue's targets, checked against this run."""
    lines = []
    runs = results["runs"]
    pick = lambda sc, srv, style=None: [r for r in runs if r["scenario"] == sc and r["server"] == srv  # noqa: E731
                                        and r["expose"] and (style is None or r["style"] == style)]
    flat_sio = pick("flat", "softioc")
    if flat_sio:
        best = max(flat_sio, key=lambda r: r["writer"]["write_rate"])
        for r in pick("flat", "pvconsole"):
            ok = r["writer"]["write_rate"] >= best["writer"]["write_rate"]
            lines.append(f"- {'PASS' if ok else 'FAIL'} flat-out driver rate, pvconsole {r['style']}: "
                         f"{fmt(r['writer']['write_rate'])}/s vs softioc ({best['style']}) "
                         f"{fmt(best['writer']['write_rate'])}/s")
    rate_sio = pick("rate", "softioc")
    for r in pick("rate", "pvconsole"):
        full = all(r[p]["delivered_pct"] >= 99.999 for p in ("ca", "pva") if p in r)
        lines.append(f"- {'PASS' if full else 'FAIL'} every update delivered at {fmt(r['rate'])}/s, pvconsole "
                     f"{r['style']}: CA {r['ca']['delivered_pct']:.3f} %, PVA {r['pva']['delivered_pct']:.3f} %")
        for s in rate_sio:
            p99, sp99 = r["pva"]["lat_ms"]["p99"], s["pva"]["lat_ms"]["p99"]
            lines.append(f"- {'PASS' if p99 <= sp99 else 'FAIL'} PVA p99 at {fmt(r['rate'])}/s, pvconsole "
                         f"{r['style']} {p99:.2f} ms vs {s['style']} {sp99:.2f} ms")
            lines.append(f"- {'PASS' if r['server_cpu_pct'] <= s['server_cpu_pct'] else 'FAIL'} server CPU at "
                         f"{fmt(r['rate'])}/s, pvconsole {r['style']} {r['server_cpu_pct']:.1f} % vs "
                         f"{s['style']} {s['server_cpu_pct']:.1f} %")
    for s in rate_sio:
        full = all(s[p]["delivered_pct"] >= 99.999 for p in ("ca", "pva"))
        lines.append(f"- (info) softioc {s['style']} delivered at {fmt(s['rate'])}/s: CA "
                     f"{s['ca']['delivered_pct']:.3f} %, PVA {s['pva']['delivered_pct']:.3f} %"
                     + ("" if full else " (softioc itself drops)"))
    mir = [r for r in runs if r["scenario"] == "mirror"]
    for style in ("per-pv", "batch"):
        off, on, watched = mirror_runs(mir, style)
        if off and on:
            cost = mirror_cost(off, on)
            lines.append(f"- {'PASS' if cost < 20 else 'FAIL'} mirror cost on the CA side, {style}: "
                         f"{cost:.1f} % of the flat-out rate ({fmt(off['writer']['write_rate'])}/s off, "
                         f"{fmt(on['writer']['write_rate'])}/s on)")
        if off and watched:
            lines.append(f"- (info) mirror cost with a PVA client monitoring every PV, {style}: "
                         f"{mirror_cost(off, watched):.1f} % ({fmt(watched['writer']['write_rate'])}/s; "
                         "includes the PVA client's own CPU on these shared cores)")
    return lines


def machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in ("pcaspy", "softioc", "epics", "p4p", "pvxslibs", "epicscorelibs"):
        try:
            from importlib.metadata import version
            versions[mod] = version({"epics": "pyepics"}.get(mod, mod))
        except Exception:
            versions[mod] = "?"
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "kernel": platform.release(), "versions": versions}


def render(results: dict) -> str:
    m, a = results["machine"], results["args"]
    out = ["# pvconsole mirror benchmark", "",
           f"Run {results['date']} — `{results['command']}`", "",
           f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, kernel {m['kernel']}; "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
           "",
           f"**Note:** servers and clients share these {m['cpus']} cores: the CA client (pyepics) and "
           "the PVA client (p4p) run in their own processes next to the server, so flat-out numbers "
           "are bounded by the whole machine, not the server alone. CPU % is of one core "
           "(utime+stime over the window, all threads).",
           "",
           f"{a['pvs']} float PVs, {a['seconds']:g} s window after {a['warmup']:g} s warm-up. "
           "Latency = client callback time − write time embedded in the value. *Delivered* = updates "
           "received whose write time is in the window ÷ writes the driver made in it (CA and PVA "
           "both squash queued updates of a PV when a client falls behind, so flat out it is < 100 %). "
           f"Each configuration ran {a.get('repeat', 1)} times, the configurations taking turns. "
           "Flat-out rows (and the mirror-cost table) show the run with the median rate, the range "
           "of all rates in brackets; fixed-rate rows the run with the median PVA p99, the range "
           "of all PVA p99s in brackets.",
           "", "## Load", ""]
    out += load_table([r for r in results["runs"] if r["scenario"] != "mirror"])
    mir = [r for r in results["runs"] if r["scenario"] == "mirror"]
    if mir:
        out += ["", "## Mirror cost (pvconsole flat out, CA client only)", "",
                "Same plugin, PVA off for every PV (`'pva': {'expose': False}`) vs on, with a CA "
                "client monitoring every PV; no PVA client in the first two runs, so the difference "
                "is the server-side mirror work. The third run adds a PVA client monitoring every "
                "PV: its cost includes that client's CPU on the cores the server shares.", ""]
        out += mirror_table(mir)
    if results["scale"]:
        out += ["", f"## Scale: start-up with {results['scale'][0]['pvs']:,} PVs", "",
                "Process start → the first (and last) PV answers a CA get and a PVA get; "
                "RSS 1 s later, idle.", ""]
        out += scale_table(results["scale"])
    if results.get("targets"):
        out += ["", "## Targets (from the issue)", ""] + results["targets"]
    for p in results.get("profiles", {}).values():
        out += ["", f"## Profile: {p['label']} (py-spy, {p['samples']} samples, all threads)", "",
                "Threads: " + ", ".join(f"{k} {v} %" for k, v in p["threads"].items()), "",
                "| inclusive % | function | | self % | function |", "|---:|---|---|---:|---|"]
        for (fi, pi), (fs, ps) in zip(p["inclusive"], p["self"]):
            out.append(f"| {pi} | {fi} | | {ps} | {fs} |")
    if results.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {e}" for e in results["warnings"]]
    if results.get("errors"):
        out += ["", "## Errors", ""] + [f"- {e}" for e in results["errors"]]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main


def load_parser(doc: str, pvs: int, seconds: float, warmup: float) -> argparse.ArgumentParser:
    """The options every load benchmark has (bench/mirror.py, bench/tui.py)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pvs", type=int, default=pvs, help=f"PVs served (default {pvs:,})")
    p.add_argument("--seconds", type=float, default=seconds, help="measurement window per run (s)")
    p.add_argument("--warmup", type=float, default=warmup, help="warm-up excluded from the window (s)")
    p.add_argument("--rate", type=float, default=2000.0, help="total updates/s of the fixed-rate load")
    return p


def write_results(results: dict, out_dir: Path, stem: str, md: str) -> int:
    """Write <stem>.json and <stem>.md, print the report; exit code 1 if a run failed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    (out_dir / f"{stem}.md").write_text(md)
    print()
    print(md)
    print(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.md')}")
    return 1 if results["errors"] else 0


def run_header(args: argparse.Namespace) -> dict:
    """When, how and on what a benchmark ran (no machine paths: results are committed)."""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python", *sys.argv]),
            "machine": machine(),
            "args": {k: (os.path.relpath(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}


def main(argv: list[str] | None = None) -> int:
    p = load_parser(__doc__, pvs=1000, seconds=10.0, warmup=2.0)
    p.add_argument("--scale-pvs", type=int, default=10000, help="PVs of the start-up scenario")
    p.add_argument("--softioc-records", default="ai,aout",
                   help="softioc record types to run: ai (rec.set -> I/O Intr scan), aout "
                        "(rec.set -> synchronous dbPutField+process); comma list")
    p.add_argument("--pvconsole-styles", default="per-pv,batch",
                   help="pcaspy update styles to run in the rate/flat groups (comma list)")
    p.add_argument("--only", default="rate,flat,mirror,scale", help="scenario groups to run (comma list)")
    p.add_argument("--quick", action="store_true", help="smoke run: 200 PVs, 3 s, 1 s warm-up, 2,000 PVs scale")
    p.add_argument("--py-spy", action="store_true",
                   help="profile pvconsole flat-out per-pv with py-spy (needs py-spy on PATH or in the venv)")
    p.add_argument("--pvconsole-src", metavar="DIR", default="",
                   help="run the pvconsole package found in DIR (prepended to PYTHONPATH), e.g. a "
                        "`git archive HEAD pvconsole` export, instead of the installed one")
    p.add_argument("--py-spy-native", action="store_true", help="with --py-spy: sample native (C/C++) frames too")
    p.add_argument("--out-dir", type=Path, default=BENCH_DIR, help="where results.json/.md go")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per configuration, taking turns; reported: flat out the median-rate run, at the fixed rate the median-PVA-p99 run")
    args = p.parse_args(argv)
    if args.quick:
        args.pvs, args.seconds, args.warmup, args.scale_pvs, args.repeat = 200, 3.0, 1.0, 2000, 1
    global PVCONSOLE_SRC
    PVCONSOLE_SRC = str(Path(args.pvconsole_src).resolve()) if args.pvconsole_src else ""
    groups = {g.strip() for g in args.only.split(",") if g.strip()}
    records = [r.strip() for r in args.softioc_records.split(",") if r.strip() and r.strip() != "none"]

    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(stop_all)

    results: dict = {**run_header(args), "runs": [], "scale": [], "errors": [], "warnings": [],
                     "profiles": {}}
    print(f"pvconsole mirror benchmark: {args.pvs} PVs, {args.seconds:g} s + {args.warmup:g} s warm-up; "
          f"{os.cpu_count()} CPUs shared by servers and clients")
    styles = [x.strip() for x in args.pvconsole_styles.split(",") if x.strip()]
    servers = [("pvconsole", st, "ai") for st in styles] + \
              [("softioc", "", r) for r in records]

    def attempt(fn, *a, **kw):
        """Run once; on failure report it and retry once (a run killed from outside, a
        port grabbed between choosing and binding it, must not void the whole report)."""
        for n in (1, 2):
            try:
                return fn(*a, **kw)
            except BenchError as e:
                print(f"\n  ERROR: {e}", flush=True)
                first = str(e).splitlines()[0]
                if n == 1:
                    results["warnings"].append(f"retried after: {first}")
                    print("  retrying once ...", flush=True)
                else:
                    results["errors"].append(first)
        return None

    def median_run(label: str, *a, **kw) -> dict | None:
        return median_of([attempt(run_load, label, *a, **kw) for _ in range(args.repeat)])

    try:
        for group, rate in (("rate", args.rate), ("flat", 0.0)):
            if group not in groups:
                continue
            print(f"{group}: {'flat out' if not rate else f'{rate:,.0f} updates/s total'}")
            repeated: dict[str, list] = {}
            for round_ in range(args.repeat):  # interleaved: drift of the machine hits all alike
                for kind, style, record in servers:
                    label = f"{kind} {style or record}"
                    prof = None
                    if args.py_spy and kind == "pvconsole" and style == "per-pv":
                        prof = args.out_dir / f"profile-{group}-per-pv.txt"
                        if round_:
                            continue  # profiled once: py-spy's own load is not a repeat
                    r = attempt(run_load, label, kind, args.pvs, rate, args.seconds, args.warmup,
                                style=style, record=record, profile=prof, native=args.py_spy_native)
                    repeated.setdefault(label, []).append(r)
                    if prof is not None and prof.exists():
                        what = "flat out" if not rate else f"{rate:,.0f} updates/s"
                        results["profiles"][group] = {
                            "label": f"pvconsole {what} per-pv, {args.pvs} PVs"
                                     + (" (native frames)" if args.py_spy_native else ""),
                            "file": str(prof), **summarize_profile(prof)}
            for label, runs in repeated.items():
                r = median_of(runs, fixed_rate=bool(rate))
                if r is not None:
                    r["scenario"] = group
                    results["runs"].append(r)
        if "mirror" in groups:
            print("mirror: pvconsole flat out, CA client only, PVA off vs on")
            variants = ((False, ("ca",)), (True, ("ca",)), (True, ("ca", "pva")))
            for style in ("per-pv", "batch"):
                for expose, protocols in variants:
                    label = (f"pvconsole {style} PVA {'on' if expose else 'off'}"
                             + (", PVA client" if "pva" in protocols else ""))
                    r = median_run(label, "pvconsole", args.pvs, 0.0, args.seconds,
                                   args.warmup, style=style, expose=expose, protocols=protocols)
                    if r is not None:
                        r["scenario"] = "mirror"
                        r["pva_client"] = "pva" in protocols
                        results["runs"].append(r)
        if "scale" in groups:
            print(f"scale: start-up with {args.scale_pvs:,} PVs")
            for kind in ("pvconsole", "softioc"):
                r = attempt(run_startup, kind, args.scale_pvs)
                if r is not None:
                    results["scale"].append(r)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every child process", file=sys.stderr)
        stop_all()
        return 130
    finally:
        stop_all()

    results["targets"] = targets(results)
    return write_results(results, args.out_dir, "results", render(results))


if __name__ == "__main__":
    sys.exit(main())
