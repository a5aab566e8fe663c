"""pcaspy's monitor deadband test, with an EPICS record's handling of NaN and infinities.

pcaspy's ``PVInfo.checkValue`` posts a scalar number when ``abs(last - new) > mdel``,
which is False whenever either side is NaN: a driver's ``setParam(reason, float('nan'))``
(the usual "sensor failed") reached no CA monitor, no PVA monitor and no PVA get of an
open channel, and the value after it was lost too when it equalled the one before.
EPICS records (``recGblCheckDeadband`` in base's ``recGbl.c``) take the change between
two NaNs, or the same infinity twice, as 0, and a change into or out of NaN or infinity
as infinite; this does the same, for CA and PVA alike. So a NaN after a NaN is posted
only with a negative deadband (``mdel: -1``, "post every update"), as by an IOC.
"""

from __future__ import annotations

from typing import Any

from pcaspy import cas
from pcaspy.driver import PVInfo as _PVInfo

_TEXT = (cas.aitEnumString, cas.aitEnumFixedString)
_INF = float("inf")


def exceeds(last: Any, new: Any, deadband: float) -> bool:
    """Whether ``new`` differs from ``last`` by more than ``deadband``, as
    ``recGblCheckDeadband`` sees it. The subtraction is pcaspy's (its errors too: a str
    for a number, an int too large for a float)."""
    delta = abs(last - new)
    if delta != delta:  # NaN: a NaN on either side, or the same infinity twice
        delta = 0.0 if (last != last) == (new != new) else _INF
    return delta > deadband


class PVInfo(_PVInfo):
    """pcaspy's PV description whose deadband test for scalar numbers is an EPICS
    record's (:func:`exceeds`); arrays and strings are pcaspy's own test.

    A ``char`` scalar without a pvdb ``value`` starts at 0, not pcaspy's ``''`` (which it
    gives char arrays): both servers serve 0 for it, and with ``''`` every later number
    (a driver's ``setParam``, a PVA put) failed the deadband test (``'' - 66``)."""

    def __init__(self, info: dict) -> None:
        super().__init__(info)
        if self.type == cas.aitEnumUint8 and self.count <= 1 and self.value == "":
            self.value = self.mlst = self.alst = 0

    def checkValue(self, newValue: Any) -> int:  # noqa: N802 - pcaspy's name
        if self.count > 1 or self.type in _TEXT:
            return super().checkValue(newValue)
        mask = 0
        if exceeds(self.mlst, newValue, self.mdel):
            mask = cas.DBE_VALUE
            self.mlst = newValue
        if exceeds(self.alst, newValue, self.adel):
            mask |= cas.DBE_LOG
            self.alst = newValue
        return mask
