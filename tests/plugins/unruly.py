"""A plugin whose driver does what hosted IOCs must survive: a "remote shutdown" PV
calling ``sys.exit`` or ``os._exit`` in ``write()``, a ``write()`` returning a numpy array
(truth neither true nor false), a count made by numpy, and a count of 0."""

import os
import sys

import numpy as np
from pcaspy import Driver

prefix = "UR:"
pvdb = {
    "SHUTDOWN": {"type": "int"},
    "OSEXIT": {"type": "int"},
    "ARRAY_OK": {"type": "int"},
    "ARRAY_OK_ASYN": {"type": "int", "asyn": True},
    "IMG": {"type": "int", "count": np.prod((4, 8))},
    "ZERO": {"type": "float", "count": 0, "value": 2.5},
    "OK": {"type": "float", "value": 1.0},
    "NP_REFUSES": {"type": "int"},
}


class UnrulyDriver(Driver):
    def write(self, reason, value):
        if reason == "SHUTDOWN":
            sys.exit(0)
        if reason == "OSEXIT":
            os._exit(3)
        if reason == "NP_REFUSES":
            return np.bool_(False)  # a refusal computed with numpy
        self.setParam(reason, value)
        if reason.startswith("ARRAY_OK"):
            if reason.endswith("ASYN"):
                self.callbackPV(reason)
            return np.array([True, True])
        return True
