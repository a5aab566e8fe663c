"""A driver that computes served values in getParam, not read (pcaspy's read() returns
self.getParam(reason), so CA gets serve it): stored in A, served in mA."""
from pcaspy import Driver

prefix = "GPO:"
pvdb = {"CURR_MA": {"prec": 1, "unit": "mA", "value": 0.25}}


class Scaled(Driver):
    def getParam(self, reason):
        value = super().getParam(reason)
        return value * 1000.0 if reason == "CURR_MA" else value
