"""The type-mapping view's rows: each pcaspy field beside the PVA field it is served as.

Pure functions over a :class:`~pvconsole.typemap.PVSpec`, its current
:class:`~pvconsole.typemap.Meta` and the served PVA value as a dict, so the table can be
checked without a server.
"""

from __future__ import annotations

from typing import Any

from .. import typemap
from ..typemap import Meta, PVSpec
from .fmt import cut

#: Longest value the mapping table shows (a 2,000-character text filled the screen twice).
SHOWN_MAX = 160

#: A row: (pcaspy field, its value, PVA field(s), value served over PVA).
Row = tuple[str, str, str, str]

_NUMERIC_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prec", ("display.precision",)),
    ("unit", ("display.units",)),
    ("lolim", ("display.limitLow", "control.limitLow")),
    ("hilim", ("display.limitHigh", "control.limitHigh")),
    ("lolo", ("valueAlarm.lowAlarmLimit",)),
    ("low", ("valueAlarm.lowWarningLimit",)),
    ("high", ("valueAlarm.highWarningLimit",)),
    ("hihi", ("valueAlarm.highAlarmLimit",)),
)


#: pvdb alarm limits, which pcaspy leaves unset at 0.
_ALARM_LIMITS = frozenset({"lolo", "low", "high", "hihi"})


def lookup(served: dict[str, Any] | None, path: str) -> Any:
    """``served['a']['b']`` for ``'a.b'``; KeyError when the structure has no such field."""
    node: Any = served
    for part in path.split("."):
        if not isinstance(node, dict):
            raise KeyError(path)
        node = node[part]
    return node


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = list(value.tolist() if hasattr(value, "tolist") else value)
        head = ", ".join(_show(v) for v in items[:6])
        return f"[{head}{', …' if len(items) > 6 else ''}]"
    if isinstance(value, str):
        return cut(repr(value), SHOWN_MAX)
    return str(value)


def _served(served: dict[str, Any] | None, paths: tuple[str, ...]) -> str:
    if served is None:
        return "(not served)"
    values = []
    for path in paths:
        try:
            values.append(_show(lookup(served, path)))
        except KeyError:
            values.append("—")
    leaves = {p.rsplit(".", 1)[-1] for p in paths}
    if len(leaves) == 1 and len(set(values)) == 1:  # display/control limits: say it once
        return values[0]
    return " / ".join(values)


def _field_names(paths: tuple[str, ...]) -> str:
    """'display.limitLow', 'control.limitLow' -> 'display|control.limitLow' (narrow)."""
    leaves = {p.rsplit(".", 1)[-1] for p in paths}
    if len(paths) > 1 and len(leaves) == 1:
        return "|".join(p.rsplit(".", 1)[0] for p in paths) + "." + leaves.pop()
    return " / ".join(paths)


def mapping_rows(spec: PVSpec, meta: Meta, value_text: str, served: dict[str, Any] | None,
                 extra: dict[str, Any] | None = None) -> list[Row]:
    """Rows of the type-mapping table for one PV.

    Args:
        spec: The PV's definition.
        meta: Its current metadata (drivers may change limits and enums at runtime).
        value_text: The current value as the console formats it.
        served: ``pva_structure(name).todict()``, or None when PVA is off.
        extra: pvdb fields the spec does not keep (``adel``, ``mdel``), if known.
    """
    kind = spec.kind
    nt = typemap.pva_type(spec).getID()
    rows: list[Row] = [
        ("type", spec.ca_type, nt.removeprefix("epics:nt/"), typemap.pva_type_name(spec)),
        ("count", str(spec.count), "value", "array" if kind == "array" else
         ("string (longstring)" if spec.longstring and spec.count > 1 else "scalar")),
    ]
    if kind == "enum":
        rows.append(("value", value_text, "value.index", _served(served, ("value.index",))))
        rows.append(("enums", _show(list(meta.enums)), "value.choices",
                     _served(served, ("value.choices",))))
        rows.append(("states", _show(list(meta.states)) if meta.states else "—",
                     "alarm.severity", "per state, via the driver's alarm"))
    else:
        rows.append(("value", cut(value_text, SHOWN_MAX), "value", _served(served, ("value",))))
    if kind in ("scalar", "array") and spec.ca_type != "string":
        for key, paths in _NUMERIC_FIELDS:
            shown = _show(getattr(meta, key))
            if key in _ALARM_LIMITS and not getattr(meta, key):
                shown += " (unset)"  # pcaspy's 0: no alarm at that limit (PVA: NaN)
            rows.append((key, shown, _field_names(paths), _served(served, paths)))
    elif kind == "string":
        rows.append(("unit", _show(meta.unit), "display.units", _served(served, ("display.units",))))
    for key in ("adel", "mdel"):
        if extra and key in extra:
            rows.append((key, _show(extra[key]), "—", "CA monitor deadband (no PVA field)"))
    rows += [
        ("alarm", "cond, sev", "alarm.severity/status/message",
         _served(served, ("alarm.severity", "alarm.status", "alarm.message"))),
        ("timestamp", "EPICS epoch", "timeStamp (POSIX epoch)",
         _served(served, ("timeStamp.secondsPastEpoch", "timeStamp.nanoseconds"))),
        ("scan", _show(spec.scan) if spec.scan else "0 (passive)", "—", "driver read() period"),
        ("asyn", str(spec.asyn), "—", "put completes on callbackPV" if spec.asyn else "put completes at once"),
        ("asg", spec.asg or "—", "—", "access security group, both protocols"),
        ("pva.description", _show(spec.description), "display.description",
         _served(served, ("display.description",))),
        ("pva.expose", str(spec.expose), "—", "exposure at start-up"),
        ("pva.readonly", str(spec.readonly), "—", "PVA puts refused" if spec.readonly else "PVA puts allowed"),
    ]
    return rows
