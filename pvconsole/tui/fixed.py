"""A frozen data source with the engine's interface: snapshot tests, demos, benchmarks.

Everything is fixed (values, alarms, timestamps, counters advance by fixed steps per read),
so a rendered frame depends only on what the test does.
"""

from __future__ import annotations

from ..engine import EngineStats

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .. import typemap
from ..exposure import match
from ..mirror import PVState
from ..putlog import PutLog, PutRecord
from ..typemap import PVSpec
from .source import EntryView

#: 2026-01-15 02:00:00 UTC: the frozen "now" of fixed sources.
FIXED_NOW = 1768442400.0

#: (plugin, prefix, pvdb) of the fixed PVs: the kinds an operator meets.
FIXED_DB: tuple[tuple[str, str, dict[str, dict[str, Any]]], ...] = (
    ("psu", "PSU:", {
        "VOLT": {"type": "float", "prec": 3, "unit": "V", "lolim": 0, "hilim": 100, "lolo": 1,
                 "low": 2, "high": 90, "hihi": 95, "scan": 0.5, "value": 12.5,
                 "pva": {"description": "Output voltage"}},
        "VOLT:SP": {"type": "float", "prec": 2, "unit": "V", "asyn": True, "value": 12.5},
        "CURR": {"type": "float", "prec": 4, "unit": "A", "high": 4, "hihi": 4.5, "value": 4.2},
        "MODE": {"type": "enum", "enums": ["Off", "On", "Fault"], "value": 2},
        "CNT": {"type": "int", "unit": "cts", "value": 1234},
        "MSG": {"type": "string", "value": "setpoint 12.50 V reached"},
        "WAVE": {"type": "float", "count": 16, "prec": 2, "unit": "mm"},
        "HIST": {"type": "int", "count": 8, "pva": {"readonly": True}},
        "SECRET": {"type": "float", "value": 42, "pva": {"expose": False}},
    }),
    ("vac", "VAC:", {
        "P1": {"type": "float", "prec": 2, "unit": "mbar", "value": 3.2e-7},
        "GAUGE:STAT": {"type": "enum", "enums": ["OK", "Degraded", "Off"], "value": 0},
        "VALVE1": {"type": "enum", "enums": ["Closed", "Open"], "value": 1},
    }),
)

#: name -> (value, severity, condition, exposure override, CA monitored, PVA clients)
FIXED_STATE: dict[str, tuple[Any, int, int, str | None, bool, int]] = {
    "PSU:VOLT": (12.503, 0, 0, None, True, 2),
    "PSU:VOLT:SP": (12.5, 0, 0, None, True, 1),
    "PSU:CURR": (4.2113, 1, 4, None, True, 0),
    "PSU:MODE": (2, 2, 7, None, False, 1),
    "PSU:CNT": (1234, 0, 0, None, False, 0),
    "PSU:MSG": ("setpoint 12.50 V reached", 0, 0, None, False, 0),
    "PSU:WAVE": ([round(0.1 * i, 2) for i in range(16)], 0, 0, None, False, 1),
    "PSU:HIST": ([8, 7, 6, 5, 4, 3, 2, 1], 0, 0, None, False, 0),
    "PSU:SECRET": (42.0, 3, 17, None, False, 0),
    "VAC:P1": (3.2e-7, 0, 0, None, True, 0),
    "VAC:GAUGE:STAT": (0, 3, 9, "ro", False, 0),
    "VAC:VALVE1": (1, 0, 0, "off", False, 0),
}

FIXED_PUTS: tuple[tuple[str, str, str, Any, Any, str, str], ...] = (
    ("PSU:VOLT:SP", "ca", "op@ctrl-01", 10.0, 12.5, "accepted", ""),
    ("PSU:MODE", "pva", "op@10.0.3.7:51234", 1, 2, "refused: driver", "PSU:MODE: driver refused value 2"),
    ("PSU:HIST", "pva", "anon@10.0.3.9:40112", None, [1, 2], "refused: access",
     "PSU:HIST: write access denied (read-only over PVA)"),
    ("PSU:MSG", "ca", "op@ctrl-01", "ready", "setpoint 12.50 V reached", "accepted", ""),
)

FIXED_CLIENTS: tuple[dict[str, Any], ...] = (
    {"protocol": "ca", "peer": "10.0.3.5:40001", "user": "op", "host": "ctrl-01",
     "channels": ["PSU:VOLT", "PSU:VOLT:SP", "PSU:CURR"], "monitors": 3, "since": FIXED_NOW - 3600},
    {"protocol": "pva", "peer": "10.0.3.7:51234", "user": "op", "host": "10.0.3.7",
     "channels": ["PSU:VOLT", "PSU:MODE", "PSU:WAVE"], "monitors": 2, "since": FIXED_NOW - 600},
    {"protocol": "pva", "peer": "10.0.3.9:40112", "user": "archiver", "host": "10.0.3.9",
     "channels": ["PSU:VOLT", "PSU:VOLT:SP"], "monitors": 2, "since": FIXED_NOW - 86400},
)


FixedStats = EngineStats  # the same fields, frozen values


@dataclass
class FixedPlugin:
    """Same fields as the engine's ``PluginStatus``."""

    name: str
    source: str
    pvs: int = 0
    error: str = ""
    driver: str = ""


class FixedChanges:
    """Change stream of a fixed source: what :meth:`FixedSource.push` queued."""

    def __init__(self) -> None:
        self.pending: dict[str, PVState] = {}
        self.lock = threading.Lock()

    def drain(self) -> list[PVState]:
        with self.lock:
            out, self.pending = list(self.pending.values()), {}
        return out


class FixedSource:
    """The engine's console API over frozen data."""

    def __init__(self, extra: int = 0) -> None:
        """
        Args:
            extra: Synthetic PVs to add (``SIM:nnnnn``), for benchmarks.
        """
        self.entries: dict[str, EntryView] = {}
        self.states: dict[str, PVState] = {}
        self.plugins = []
        self._subs: list[FixedChanges] = []
        self._reads = 0
        for plugin, prefix, pvdb in FIXED_DB:
            for reason, info in pvdb.items():
                self._add(plugin, typemap.spec_from_pvdb(prefix, reason, info))
            self.plugins.append(FixedPlugin(plugin, f"ioc_plugins/{plugin}.py", len(pvdb),
                                            driver=f"{plugin.capitalize()}Driver"))
        for i in range(extra):
            self._add("sim", typemap.spec_from_pvdb("SIM:", f"{i:05d}", {"type": "float", "prec": 3}))
        if extra:
            self.plugins.append(FixedPlugin("sim", "synthetic", extra, driver="SimDriver"))
        self.putlog = PutLog(None)
        for i, (pv, proto, client, old, new, result, reason) in enumerate(FIXED_PUTS):
            rec = PutRecord(time=_iso(FIXED_NOW - 60 * (len(FIXED_PUTS) - i)), pv=pv, protocol=proto,
                            client=client, old=old, requested=new, result=result, reason=reason,
                            duration_ms=0.2)
            rec.describe(self.entries[pv].spec, self.entries[pv].meta, old, new)
            self.putlog.append(rec)

    def _add(self, plugin: str, spec: PVSpec) -> None:
        value, sev, cond, exposure, ca_mon, pva = FIXED_STATE.get(
            spec.name, (spec.initial if spec.initial is not None else 0.0, 0, 0, None, False, 0))
        if exposure is None:
            exposure = "off" if not spec.expose else "ro" if spec.readonly else "on"
        self.entries[spec.name] = EntryView(spec, spec.meta, plugin)
        self.states[spec.name] = PVState(
            name=spec.name, plugin=plugin, ca_type=spec.ca_type, pva_type=typemap.pva_type_name(spec),
            value=value, text=typemap.format_value(spec, spec.meta, value), severity=sev,
            condition=cond, timestamp=FIXED_NOW - 1.5, exposure=exposure, ca_monitored=ca_mon,
            pva_clients=pva if exposure != "off" else 0, updates=100, puts=0)

    # ------------------------------------------------------------------ engine API

    def snapshot(self) -> list[PVState]:
        return [self.states[n] for n in sorted(self.states)]

    def subscribe(self) -> FixedChanges:
        sub = FixedChanges()
        self._subs.append(sub)
        return sub

    def push(self, state: PVState) -> None:
        """Change a PV as a driver update would (tests)."""
        self.states[state.name] = state
        for sub in self._subs:
            with sub.lock:
                sub.pending[state.name] = state

    def now(self) -> float:
        """The frozen world's wall clock (its puts are of this run)."""
        return FIXED_NOW

    def stats(self) -> FixedStats:
        """Counters advance by fixed steps per read, so the rate sparklines are fixed too."""
        self._reads += 1
        n = self._reads
        return FixedStats(
            pvs=len(self.states), exposed=sum(1 for s in self.states.values() if s.exposure != "off"),
            updates=1200 * n, ca_posts=sum(400 + 40 * (k % 5) for k in range(n)),
            pva_posts=sum(800 + 60 * (k % 7) for k in range(n)), worst_post_ms=0.05 * (n % 4),
            errors=0, puts=self.putlog.since_start, ca="127.0.0.1:5064", pva="127.0.0.1:5075", uptime=3723.0)

    def entry(self, name: str) -> EntryView:
        return self.entries[name]

    def pva_structure(self, name: str) -> Any:
        s = self.states[name]
        if s.exposure == "off":
            return None
        e = self.entries[name]
        sec = int(s.timestamp) - typemap.POSIX_TIME_AT_EPICS_EPOCH
        return typemap.initial_value(e.spec, e.meta, s.value, s.condition, s.severity, sec, 0)

    def set_exposure(self, pattern: str, mode: str) -> list[str]:
        names = match(pattern, self.states)
        if not names:
            raise ValueError(f"no PV matches {pattern!r}")
        changed = [n for n in names if self.states[n].exposure != mode]
        for n in changed:
            s = self.states[n]
            self.push(s._replace(exposure=mode, pva_clients=0 if mode == "off" else s.pva_clients))
        return changed

    def clients(self) -> list[dict[str, Any]]:
        return [dict(c) for c in FIXED_CLIENTS]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
