"""An EPICS record's deadband test for NaN and infinities: everything else exactly pcaspy's."""

from __future__ import annotations

import numpy as np
import pytest
from pcaspy.driver import PVInfo as PcaspyInfo

from pvconsole.deadband import PVInfo, exceeds

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
    ({"type": "float"}, ["1.5", 2.0]),  # a str for a number: pcaspy's TypeError
    ({"type": "int"}, ["7"]),
    ({"type": "float"}, [10 ** 400]),
    ({"type": "int", "value": 2 ** 60}, [2 ** 60 + 1]),  # beyond a float's precision
    ({"type": "char", "value": 0}, [65, 65]),
    ({"type": "float", "mdel": 0.5}, [0.2, 0.7, 1.3, INF, -INF, 1.0]),
    ({"type": "enum", "enums": ["a", "b"]}, [1, 1, 0]),
    ({"type": "string"}, ["x", "x", "y"]),
    ({"type": "float", "count": 3}, [[1.0, NAN, 2.0]] * 2),
])
def test_what_has_no_nan_nor_repeated_infinity_is_pcaspy_s(info, values):
    assert masks(PVInfo, info, values) == masks(PcaspyInfo, info, values)


def test_a_char_scalar_without_a_value_starts_at_zero_not_pcaspy_s_empty_text():
    """pcaspy's '' made every number fail (TypeError): both servers serve 0 for it."""
    assert masks(PcaspyInfo, {"type": "char"}, [65]) == ["TypeError"]
    assert masks(PVInfo, {"type": "char"}, [65, 65]) == [3, 0]
    assert PVInfo({"type": "char", "count": 8}).value == ""  # arrays: text, as pcaspy


@pytest.mark.parametrize("last, new, deadband, posted", [
    # recGblCheckDeadband: both NaN or the same infinity is a change of 0 ...
    (NAN, NAN, 0.0, False), (NAN, NAN, -1.0, True), (INF, INF, 0.0, False), (INF, INF, -1.0, True),
    (-INF, -INF, 0.0, False),
    # ... into, out of, or between NaN and infinities, an infinite one
    (NAN, 0.0, 1e300, True), (0.0, NAN, 1e300, True), (NAN, INF, 1e300, True), (INF, NAN, 0.0, True),
    (INF, -INF, 1e300, True), (INF, 1.0, 1e300, True), (1.0, -INF, 1e300, True),
    (np.float32("nan"), NAN, 0.0, False), (np.float32("nan"), 2, 0.0, True),
    # finite values: the plain difference (an overflow to infinity included)
    (1.0, 1.5, 0.5, False), (1.0, 1.6, 0.5, True), (1.0, 1.0, 0.0, False), (1.0, 1.0, -1.0, True),
    (1e308, -1e308, 1e300, True), (2 ** 60, 2 ** 60 + 1, 0, True),
])
def test_a_change_is_measured_as_recgbl_check_deadband_does(last, new, deadband, posted):
    assert exceeds(last, new, deadband) is posted


def test_changes_into_out_of_and_between_nans_are_posted():
    assert masks(PVInfo, {"type": "float"}, [NAN, NAN, 0.0, np.float32("nan"), 0.0]) == [3, 0, 3, 3, 3]
    assert masks(PcaspyInfo, {"type": "float"}, [NAN, NAN, 0.0]) == [0, 0, 0]  # (the value lost)
    every = {"type": "float", "mdel": -1, "adel": -1}  # "post every update", as an IOC does
    assert masks(PVInfo, every, [NAN, NAN, INF, INF]) == [3, 3, 3, 3]
    assert masks(PcaspyInfo, every, [INF, INF]) == [3, 0]


def test_monitor_and_archive_deadbands_are_apart():
    assert masks(PVInfo, {"type": "float", "mdel": -1, "adel": 0}, [NAN, NAN, 1.0]) == [3, 1, 3]
