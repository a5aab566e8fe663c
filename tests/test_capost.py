"""The fast CA post builds exactly the gdd pcaspy's own SimplePV.updateValue posts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pcaspy import cas
from pcaspy.driver import Data, PVInfo, SimplePV

from pvconsole import capost

#: children of the DBR_CTRL containers pcaspy posts, by CA type
CHILDREN = {cas.aitEnumFloat64: 11, cas.aitEnumEnum16: 2}
DEFAULT_CHILDREN = 10

FULL_FLOAT = {"type": "float", "prec": 3, "unit": "V", "lolim": -10, "hilim": 10.5,
              "lolo": -8, "low": -5, "high": 5, "hihi": 8}

CASES: list[tuple[str, dict, Any]] = [
    ("float", FULL_FLOAT, 1.25),
    ("float int value", FULL_FLOAT, 7),
    ("float bool value", {"type": "float"}, True),
    ("float numpy scalar", FULL_FLOAT, np.float32(2.5)),
    ("float numpy int", FULL_FLOAT, np.int64(3)),
    ("int", {"type": "int", "unit": "counts", "lolim": 0, "hilim": 100, "high": 90}, 42),
    ("short", {"type": "short", "lolim": -5, "hilim": 5}, -3),
    ("char scalar", {"type": "char"}, 65),
    ("char scalar empty", {"type": "char"}, ""),
    ("string", {"type": "string"}, "hello"),
    ("str synonym", {"type": "str"}, ""),
    ("enum", {"type": "enum", "enums": ["Off", "On", "Fault"]}, 2),
    ("float array list", {"type": "float", "count": 5, "prec": 2}, [1.0, 2.0, 3.0]),
    ("float array numpy", {"type": "float", "count": 4}, np.arange(4.0)),
    ("int array", {"type": "int", "count": 3, "unit": "mm"}, [1, 2, 3]),
    ("char array text", {"type": "char", "count": 32}, "a long string"),
    ("numpy limits", {"type": "float", "hilim": np.int64(7), "lolim": np.float64(-1)}, 0.5),
]


class StandIn:
    """Just enough of a pcaspy SimplePV for ``updateValue``: what it posts is kept."""

    interest = True

    def __init__(self, info: PVInfo) -> None:
        self.info = info
        self.posted: list[tuple[int, Any]] = []

    def postEvent(self, mask: int, gdd: Any) -> None:
        self.posted.append((mask, gdd))


def _pcaspy_gdd(info: PVInfo, data: Data) -> Any:
    """What pcaspy's own updateValue hands to postEvent."""
    stand_in = StandIn(info)
    SimplePV.updateValue(stand_in, data)
    return stand_in.posted[0]


def _describe(g: Any) -> dict:
    """Everything a CA client can get from one (non-container) gdd."""
    status, index, size = g.getBound(0) if g.dimension() else (0, 0, 0)
    ts = cas.epicsTimeStamp()
    g.getTimeStamp(ts)
    return {"app": g.applicationType(), "prim": g.primitiveType(), "dim": g.dimension(),
            "bound": (index, size), "stat_sevr": g.getStatSevr(),
            "time": (ts.secPastEpoch, ts.nsec), "value": g.get()}


def _proxy(g: Any) -> Any:
    """ctrl_gdd may return the bare SWIG pointer of a value gdd: give it its methods."""
    if isinstance(g, cas.gdd):
        return g
    proxy = object.__new__(cas.gdd)
    proxy.this = g
    return proxy


def _flatten(g: Any, children: int) -> list[dict]:
    g = _proxy(g)
    if not g.isContainer():
        return [_describe(g)]
    return [{"app": g.applicationType()}] + [_describe(g[i]) for i in range(1, children + 1)]


def _data(info: PVInfo, value: Any) -> Data:
    data = Data()
    data.value = value
    data.time = cas.epicsTimeStamp()
    data.time.secPastEpoch = 1_000_000_000
    data.time.nsec = 123_456_789
    data.alarm, data.severity = 3, 2  # HIHI / MAJOR
    data.mask = cas.DBE_VALUE | cas.DBE_LOG
    return data


#: cases SWIG cannot take directly: ctrl_gdd raises and post() uses pcaspy's own path
FALLBACK = {"numpy limits"}


@pytest.mark.parametrize("name,definition,value", CASES, ids=[c[0] for c in CASES])
def test_same_gdd_as_pcaspy(name: str, definition: dict, value: Any) -> None:
    info = PVInfo(definition)
    data = _data(info, value)
    children = CHILDREN.get(info.type, DEFAULT_CHILDREN)
    mask, expected = _pcaspy_gdd(info, data)
    assert mask == data.mask
    if name in FALLBACK:
        with pytest.raises(TypeError):
            capost.ctrl_gdd(info, data)
        return
    ours = capost.ctrl_gdd(info, data)
    assert _flatten(ours, children) == _flatten(expected, children)


def test_post_falls_back_to_pcaspy_for_odd_metadata() -> None:
    stand_in = StandIn(PVInfo({"type": "float", "hilim": np.int64(7)}))
    capost.post(stand_in, _data(stand_in.info, 1.0))  # pcaspy's own path posts it
    [(_, gdd)] = stand_in.posted
    assert gdd[7].get() == 7.0


def test_an_enum_without_states_is_posted_without_strings() -> None:
    """pcaspy's gdd.put([]) raised IndexError: every CA post of the PV failed."""
    info = PVInfo({"type": "enum", "enums": []})
    g = _proxy(capost.ctrl_gdd(info, _data(info, 3)))
    assert g[1].get() == 3
