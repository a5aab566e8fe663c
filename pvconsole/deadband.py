"""pcaspy's monitor deadband test, with EPICS's handling of NaN and infinities.

pcaspy's ``PVInfo.checkValue`` posts a scalar number when ``abs(last - new) > mdel``,
False whenever either side is NaN: a driver's ``setParam(reason, float('nan'))`` (the
usual "sensor failed") reached no CA monitor, no PVA monitor and no PVA get of an open
channel, and the value after it was lost too when it equalled the one before. EPICS
records (``recGblCheckDeadband``) post any change into, out of or between NaNs and
infinities; so does this for NaN, for CA and PVA alike (pcaspy already posts a change
to or between infinities, and nothing for the same infinity again).
"""

from __future__ import annotations

import math

from pcaspy import cas
from pcaspy.driver import PVInfo as _PVInfo


def _nan(value: object) -> bool:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        return False
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


class PVInfo(_PVInfo):
    """pcaspy's PV description whose deadband test also posts changes into, out of and
    between NaNs. Everything else is pcaspy's own test, its errors included (a str for a
    number, an int beyond a float's precision, a huge int)."""

    def checkValue(self, newValue):  # noqa: N802 - pcaspy's name
        scalar_number = self.count <= 1 and self.type not in (cas.aitEnumString, cas.aitEnumFixedString)
        last_m, last_a = self.mlst, self.alst
        mask = super().checkValue(newValue)
        if scalar_number and (_nan(newValue) or _nan(last_m) or _nan(last_a)):
            if not mask & cas.DBE_VALUE and (_nan(newValue) or _nan(last_m)):
                mask |= cas.DBE_VALUE
                self.mlst = newValue
            if not mask & cas.DBE_LOG and (_nan(newValue) or _nan(last_a)):
                mask |= cas.DBE_LOG
                self.alst = newValue
        return mask
