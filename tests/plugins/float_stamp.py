"""A driver that passes POSIX seconds as setParam's timestamp (pcaspy wants a
cas.epicsTimeStamp), at start-up and later; and a string, which is no time at all."""
from pcaspy import Driver

prefix = "FTS:"
pvdb = {"X": {"prec": 2}, "Y": {}}


class FloatStampDriver(Driver):
    def __init__(self):
        super().__init__()
        self.setParam("X", 1.5, timestamp=1700000000.5)
        self.setParam("Y", 2.0, timestamp="yesterday")

    def write(self, reason, value):
        self.setParam(reason, value, timestamp=1700000100.25)
        self.updatePVs()
        return True
