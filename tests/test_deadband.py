"""pcaspy's deadband test, NaN changes posted: everything else exactly pcaspy's."""

from __future__ import annotations

import numpy as np
import pytest
from pcaspy.driver import PVInfo as PcaspyInfo

from pvconsole.deadband import PVInfo

NAN, INF = float("nan"), float("inf")


def masks(cls, info, values):
    pv, out = cls(dict(info)), []
    for v in values:
        try:
            out.append(pv.checkValue(v))
        except Exception as e:  # noqa: BLE001 - pcaspy's errors are part of its behaviour
            out.append(type(e).__name__)
    return out


@pytest.mark.parametrize("info, values", [
    ({"type": "float", "mdel": -1, "adel": -1}, [INF, INF, INF]),
    ({"type": "float"}, ["1.5", 2.0]),  # a str for a number: pcaspy's TypeError
    ({"type": "int"}, ["7"]),
    ({"type": "float"}, [10 ** 400]),
    ({"type": "int", "value": 2 ** 60}, [2 ** 60 + 1]),  # beyond a float's precision
    ({"type": "char"}, [65]),
    ({"type": "float", "mdel": 0.5}, [0.2, 0.7, 1.3, INF, -INF, 1.0]),
    ({"type": "enum", "enums": ["a", "b"]}, [1, 1, 0]),
    ({"type": "string"}, ["x", "x", "y"]),
    ({"type": "float", "count": 3}, [[1.0, NAN, 2.0]] * 2),
])
def test_what_has_no_nan_is_pcaspy_s(info, values):
    assert masks(PVInfo, info, values) == masks(PcaspyInfo, info, values)


def test_changes_into_out_of_and_between_nans_are_posted():
    assert masks(PVInfo, {"type": "float"}, [NAN, NAN, 0.0, np.float32("nan"), 0.0]) == [3, 3, 3, 3, 3]
    assert masks(PcaspyInfo, {"type": "float"}, [NAN, NAN, 0.0]) == [0, 0, 0]  # (the value lost)
