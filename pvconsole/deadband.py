"""pcaspy's monitor deadband test, with EPICS's handling of NaN and infinities.

pcaspy's ``PVInfo.checkValue`` posts a scalar number when ``abs(last - new) > mdel``,
False whenever either side is NaN: a driver's ``setParam(reason, float('nan'))`` (the
usual "sensor failed") reached no CA monitor, no PVA monitor and no PVA get of an open
channel, and the value after it was lost too when it equalled the one before. EPICS
records (``recGblCheckDeadband``) post any change into, out of or between NaNs and
infinities; so does this, for CA and PVA alike.
"""

from __future__ import annotations

import math

from pcaspy import cas
from pcaspy.driver import PVInfo as _PVInfo


def moved(last: float, new: float, deadband: float) -> bool:
    """Whether ``new`` leaves the deadband around ``last``: a finite change beyond it,
    or any change that involves a NaN (NaN to NaN too, as EPICS) or an infinity."""
    if math.isfinite(last) and math.isfinite(new):
        return abs(last - new) > deadband
    return not last == new  # NaN on either side, or an infinity that changed


class PVInfo(_PVInfo):
    """pcaspy's PV description with :func:`moved` as the deadband test of scalar numbers."""

    def checkValue(self, newValue):  # noqa: N802 - pcaspy's name
        if self.count > 1 or self.type in (cas.aitEnumString, cas.aitEnumFixedString):
            return super().checkValue(newValue)
        try:
            new = float(newValue)
        except (TypeError, ValueError):
            return super().checkValue(newValue)  # pcaspy's own error for what is no number
        mask = 0
        if moved(float(self.mlst), new, self.mdel):
            mask |= cas.DBE_VALUE
            self.mlst = newValue
        if moved(float(self.alst), new, self.adel):
            mask |= cas.DBE_LOG
            self.alst = newValue
        return mask
