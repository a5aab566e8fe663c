"""What the console needs from the engine, as one small interface.

The app talks only to a :class:`DataSource`: the real :class:`~pvconsole.engine.Engine`
satisfies it, and so does :class:`~pvconsole.tui.fixed.FixedSource`, a frozen one for
snapshot tests and benchmarks. The helpers below adapt to engine features that may be
missing in an older engine (per-client details, batch exposure changes).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Iterable, Protocol

from ..mirror import PVState
from ..typemap import Meta, PVSpec


@dataclass
class EntryView:
    """What the console reads of one PV's engine entry (``DataSource.entry``).

    Attributes:
        spec: The pcaspy definition as parsed.
        meta: Its current metadata (limits, units, enums).
        plugin: Plugin that serves it.
        extra: CA server fields the definition does not hold (``adel``, ``mdel``).
    """

    spec: PVSpec
    meta: Meta
    plugin: str
    extra: dict[str, Any] = field(default_factory=dict)


class Changes(Protocol):
    """A change stream: newest state per changed PV since the last drain."""

    def drain(self) -> list[PVState]: ...


class DataSource(Protocol):
    """The engine API the console uses (see ``Engine`` for the semantics)."""

    putlog: Any
    plugins: list

    def snapshot(self) -> list[PVState]: ...

    def subscribe(self) -> Changes: ...

    def stats(self) -> Any: ...

    def entry(self, name: str) -> Any: ...

    def pva_structure(self, name: str) -> Any: ...  # a p4p Value or its todict()

    def set_exposure(self, pattern: str, mode: str) -> list[str]: ...


def clients(source: DataSource) -> list[dict[str, Any]] | None:
    """Connected clients as dicts (``protocol, peer, user, host, channels, monitors, since,
    tx_bps, rx_bps``), or None when the engine cannot tell (no ``clients()``).

    May take a while (the CA report runs on the driver thread): call it from a worker.
    """
    fn = getattr(source, "clients", None)
    if fn is None:
        return None
    try:
        return [c if isinstance(c, dict) else asdict(c) if is_dataclass(c) else vars(c)
                for c in fn()]
    except Exception:  # a UI must not die on a diagnostic; the screen says "unavailable"
        logging.getLogger(__name__).debug("clients() failed", exc_info=True)
        return None


def clients_per_protocol(known: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many of these clients each protocol has (``{"ca": n, "pva": m}``)."""
    per = {"ca": 0, "pva": 0}
    for c in known:
        per["ca" if str(c.get("protocol", "")).lower() == "ca" else "pva"] += 1
    return per


def client_counts(known: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """PV name -> (CA clients, PVA clients) with the channel open."""
    counts: dict[str, list[int]] = {}
    for c in known:
        idx = 0 if str(c.get("protocol", "")).lower() == "ca" else 1
        for name in set(c.get("channels") or ()):
            counts.setdefault(name, [0, 0])[idx] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def set_exposure_many(source: DataSource, names: Iterable[str], mode: str) -> list[str]:
    """Apply one exposure mode to many PVs; uses the engine's batch call when it has one
    (one state-file write instead of one per PV)."""
    names = list(names)
    batch = getattr(source, "set_exposure_many", None)
    if batch is not None:
        return list(batch(names, mode))
    changed: list[str] = []
    for name in names:
        changed += source.set_exposure(name, mode)
    return changed


def putlog_since(source: DataSource, seq: int) -> list[Any]:
    """Put records newer than ``seq`` ([] before the engine has a put log)."""
    log = getattr(source, "putlog", None)
    return log.since(seq) if log is not None else []


def putlog_for_pv(source: DataSource, name: str, n: int) -> list[Any]:
    """The last ``n`` puts to one PV."""
    log = getattr(source, "putlog", None)
    return log.for_pv(name, n) if log is not None else []


def entry_extra(entry: Any) -> dict[str, Any]:
    """``adel``/``mdel`` of an entry: an :class:`EntryView`'s, or read from the engine's
    CA server object."""
    if isinstance(entry, EntryView):
        return entry.extra
    info = getattr(getattr(entry, "ca_pv", None), "info", None)
    return {k: getattr(info, k) for k in ("adel", "mdel") if hasattr(info, k)}


def served_dict(source: DataSource, name: str) -> dict[str, Any] | None:
    """The PVA structure served for ``name`` as a dict, None when PVA is off for it."""
    served = source.pva_structure(name)
    return served.todict() if hasattr(served, "todict") else served
