"""The console's own PVs: health in the spirit of iocStats, clients, put log, exposure.

Served under the control prefix (``--control-prefix``, default ``PVCONSOLE:<HOST>:``) by a
built-in pcaspy driver, so they reach CA and PVA through the same mirror as every plugin
PV: any PVA tool (Phoebus, pvget, an archiver) can watch many IOC hosts this way, and
``pvconsole ctl`` is their command-line client.

PVs (``P`` = prefix):

============== ========== ==================================================================
PV             type       meaning
============== ========== ==================================================================
P HEARTBEAT    int        +1 every second
P UPTIME       int        seconds since start
P CPU          float      process CPU, % of one core (last second)
P MEM          float      resident memory, MB
P THREADS      int        threads in the process (Python and C)
P PVS          int        PVs served over CA
P EXPOSED      int        PVs served over PVA
P CA_RATE      float      updates/s posted to CA monitors
P PVA_RATE     float      updates/s posted to PVA
P MIRROR_LAG   float      worst CA -> PVA lag in the last second (change -> PVA post), ms
P CLIENTS      char[]     JSON list of connected clients (every 2 s while watched, fresh on get)
P PUTLOG       char[]     JSON list of the last 50 puts
P EXPOSE       char[]     write ``"PATTERN on|off|ro"`` to change PVA exposure (ASG PVCONSOLE_CTL)
P EXPOSE:RESULT char[]    what the last EXPOSE did
P ACF:TEST     char[]     write ``"PV USER HOST"``; read back the JSON verdicts (ASG PVCONSOLE_CTL)
============== ========== ==================================================================
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from pcaspy import Driver

from .access import parse_acf, read_acf
from .putlog import WriteRefused

log = logging.getLogger(__name__)

#: ASG of the writable control PVs; by default only the local host may write them.
CTL_ASG = "PVCONSOLE_CTL"
#: ASG of the read-only status PVs.
RO_ASG = "PVCONSOLE_RO"
#: Longest JSON text in CLIENTS/PUTLOG (CA clients need EPICS_CA_MAX_ARRAY_BYTES above it).
TEXT_BYTES = 65536
PUTLOG_ENTRIES = 50
CLIENTS_EVERY = 2.0


def pvdb() -> dict[str, dict]:
    ro = {"asg": RO_ASG, "pva": {"readonly": True}}
    text = {"type": "char", "count": TEXT_BYTES, **ro}
    return {
        "HEARTBEAT": {"type": "int", **ro},
        "UPTIME": {"type": "int", "unit": "s", **ro},
        "CPU": {"type": "float", "prec": 1, "unit": "%", **ro},
        "MEM": {"type": "float", "prec": 1, "unit": "MB", **ro},
        "THREADS": {"type": "int", **ro},
        "PVS": {"type": "int", **ro},
        "EXPOSED": {"type": "int", **ro},
        "CA_RATE": {"type": "float", "prec": 1, "unit": "1/s", **ro},
        "PVA_RATE": {"type": "float", "prec": 1, "unit": "1/s", **ro},
        "MIRROR_LAG": {"type": "float", "prec": 3, "unit": "ms", **ro},
        "CLIENTS": dict(text),
        "PUTLOG": dict(text),
        "EXPOSE": {"type": "char", "count": 256, "asg": CTL_ASG},
        "EXPOSE:RESULT": {"type": "char", "count": 256, **ro},
        "ACF:TEST": {"type": "char", "count": 4096, "asg": CTL_ASG},
    }


_DEFAULT_ASG = re.compile(r"\bASG\s*\(\s*DEFAULT\s*\)")


def effective_acf(user_acf: Path | None, state_dir: Path, script: str = "") -> Path:
    """The ACF both servers load: the operator's file (checked first, so errors name its
    lines), plus pvconsole's own groups when it does not define them.

    ``script``: the plugin whose own ``initAccessSecurityFile`` gave the file. Without an
    ``ASG(DEFAULT)`` there, its PVs without an ``asg`` stay open to all, as pcaspy alone
    leaves them out of access security (pvconsole puts them in DEFAULT, which such a
    file left empty: nobody could read or write them, pcaspy's access_control example
    among them). In an operator's file (``--acf``) a missing DEFAULT grants nothing, as
    in an IOC: the log says so."""
    if user_acf is not None:
        text = read_acf(user_acf)
        parse_acf(text, user_acf)
        text = _neutralise_unknown_levels(text, user_acf)
        if not _DEFAULT_ASG.search(text):
            if script:
                log.info("plugin %s: its access security file has no ASG(DEFAULT): its PVs "
                         "without an asg are open to all, as pcaspy serves them", script)
                text += ("\n# added by pvconsole: PVs without an asg open to all, as pcaspy "
                         "alone serves them\nASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n")
            else:
                log.warning("access security file %s has no ASG(DEFAULT): PVs without an asg "
                            "are in DEFAULT, which grants nothing (as in an IOC)", user_acf)
    else:
        text = "ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n"
    if f"ASG({CTL_ASG})" not in text.replace(" ", ""):
        hosts = sorted({"localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()})
        members = ", ".join(f'"{h}"' for h in hosts)
        text += (f"\n# added by pvconsole: control PVs writable from this host only\n"
                 f"HAG(PVCONSOLE_LOCAL) {{ {members} }}\n"
                 f"ASG({CTL_ASG}) {{\n    RULE(1, READ)\n    RULE(1, WRITE) {{ HAG(PVCONSOLE_LOCAL) }}\n}}\n")
    if f"ASG({RO_ASG})" not in text.replace(" ", ""):
        text += f"ASG({RO_ASG}) {{\n    RULE(1, READ)\n}}\n"
    path = state_dir / "effective.acf"
    path.write_text(text)
    return path


_RULE = re.compile(r"(RULE\s*\(\s*\d+\s*,\s*)(\w+)")
_LEVELS = {"NONE", "READ", "WRITE"}


def _neutralise_unknown_levels(text: str, path: Path) -> str:
    """An access level neither library knows grants nothing: CA's asLib would reject the
    whole file, so such rules become ``NONE`` (with a warning naming the line)."""
    def fix(m: re.Match) -> str:
        if m.group(2).upper() in _LEVELS:
            return m.group(0)
        line = text.count("\n", 0, m.start()) + 1
        log.warning("%s line %d: unknown access level %r grants nothing", path, line, m.group(2))
        return m.group(1) + "NONE"
    return _RULE.sub(fix, text)


class ControlDriver(Driver):
    """Publishes the engine's health once a second; applies EXPOSE and ACF:TEST writes."""

    def __init__(self, engine: Any, prefix: str) -> None:
        super().__init__()
        self.engine = engine
        #: full name of the CLIENTS PV (its report is made only when somebody looks)
        self.clients_pv = prefix + "CLIENTS"
        self._stop = threading.Event()
        self._cpu = _cpu_seconds()
        self._posts = (0, 0)
        self._t = time.monotonic()
        self._clients_at = float("-inf")  # when CLIENTS was last refreshed (monotonic)
        self._putlog_seq = -1
        # the writable texts start empty, not undefined (pcaspy's never-written INVALID
        # would show the console's own PVs in alarm); CLIENTS's report is made when
        # somebody looks (a CA get, a monitor, the first PVA channel)
        for reason in ("EXPOSE", "EXPOSE:RESULT", "ACF:TEST", "CLIENTS"):
            self.setParam(reason, "")
        self.updatePVs()
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        beat = 0
        while not self._stop.wait(1.0):
            beat += 1
            try:
                self._publish(beat)
            except Exception:
                log.exception("control PVs: update failed")

    def _publish(self, beat: int) -> None:
        engine = self.engine
        if engine.pva_server is None:
            return
        now = time.monotonic()
        dt, self._t = max(now - self._t, 1e-6), now
        cpu = _cpu_seconds()
        stats = engine.stats()
        ca0, pva0 = self._posts
        self._posts = (stats.ca_posts, stats.pva_posts)
        self.setParam("HEARTBEAT", beat)
        self.setParam("UPTIME", int(stats.uptime))
        self.setParam("CPU", 100.0 * (cpu - self._cpu) / dt)
        self._cpu = cpu
        self.setParam("MEM", _status_field("VmRSS") / 1024.0)
        self.setParam("THREADS", int(_status_field("Threads")))
        self.setParam("PVS", stats.pvs)
        self.setParam("EXPOSED", stats.exposed)
        self.setParam("CA_RATE", (stats.ca_posts - ca0) / dt)
        self.setParam("PVA_RATE", (stats.pva_posts - pva0) / dt)
        self.setParam("MIRROR_LAG", stats.worst_post_ms)
        if engine.putlog is not None and engine.putlog.seq != self._putlog_seq:
            self._putlog_seq = engine.putlog.seq
            recs = [json.loads(r.to_json()) for r in engine.putlog.tail(PUTLOG_ENTRIES)]
            self.setParam("PUTLOG", _fit(recs))
        if now - self._clients_at >= CLIENTS_EVERY and self._clients_watched():
            self.refresh_clients()
        self.updatePVs()

    def _clients_watched(self) -> bool:
        entry = self.engine.entries.get(self.clients_pv)
        return entry is not None and (entry.ca_monitored or entry.pva_clients > 0)

    def refresh_clients(self) -> None:
        """Put a fresh client report in CLIENTS. A report costs 10-20 ms of the driver
        thread and the GIL with 1,000 channels: made only for somebody who looks (a
        monitor, every CLIENTS_EVERY; a CA get; the first PVA channel)."""
        self._clients_at = time.monotonic()
        self.setParam("CLIENTS", _fit([asdict(c) for c in self.engine.clients()]))
        self.updatePV("CLIENTS")

    def read(self, reason: str) -> Any:
        """A CA get (driver thread): CLIENTS is brought up to date first (the engine shares
        a report for ``CLIENTS_MAX_AGE``, so a burst of gets makes one)."""
        if reason == "CLIENTS":
            self.refresh_clients()
        return super().read(reason)

    def _expose(self, text: str) -> tuple[str, WriteRefused | None]:
        """Apply ``"PATTERN on|off|ro"``: (what EXPOSE:RESULT says, the refusal or None)."""
        try:
            parts = text.split()
            if len(parts) != 2:
                raise ValueError("expected 'PATTERN on|off|ro'")
            changed = self.engine.set_exposure(*parts)
            return f"{parts[1]}: {len(changed)} PV(s) changed", None
        except ValueError as e:
            return f"refused: {e}", WriteRefused(str(e))

    def write(self, reason: str, value: Any) -> bool:
        if reason == "EXPOSE":
            result, error = self._expose(str(value))
            self.setParam("EXPOSE", str(value))
            self.setParam("EXPOSE:RESULT", result[:255])
            self.updatePVs()
            if error is not None:  # PVA refuses the put with it; a CA put "succeeds"
                raise error        # whatever the driver says, so RESULT says it too
            return True
        if reason == "ACF:TEST":
            parts = str(value).split()
            if len(parts) != 3:
                raise WriteRefused("expected 'PV USER HOST'")
            name, user, host = parts
            entry = self.engine.entries.get(name)
            if entry is None:
                raise WriteRefused(f"no PV named {name}")
            verdicts = self.engine.access.explain(entry.spec.asg, user, host)
            answer = {"pv": name, "asg": entry.spec.asg or "DEFAULT", "user": user, "host": host,
                      "pva_exposure": entry.exposure,
                      "verdicts": [asdict(v) for v in verdicts]}
            if entry.exposure == "ro":
                answer["verdicts"][1]["write"] = False
                answer["verdicts"][1]["why"] += "; read-only over PVA"
            self.setParam("ACF:TEST", json.dumps(answer))
            self.updatePVs()
            return True
        return False


def _fit(items: list) -> str:
    """JSON that fits the PV, dropping the oldest items first."""
    while True:
        text = json.dumps(items, default=repr)
        if len(text.encode()) < TEXT_BYTES or not items:
            return text
        items = items[1:]


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _status_field(name: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def start(engine: Any, prefix: str) -> ControlDriver:
    """Serve the control PVs for ``engine`` under ``prefix``."""
    driver = engine.add_builtin("pvconsole", prefix, pvdb(), partial(ControlDriver, engine, prefix))
    engine.entry(driver.clients_pv).on_connect = driver.refresh_clients
    return driver
