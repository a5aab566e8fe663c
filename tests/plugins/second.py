"""A second plugin beside alltypes: its own driver, its own database. PVs ``S:``."""

from pcaspy import Driver

prefix = "S:"
pvdb = {"X": {"type": "float", "value": 1.5}, "N": {"type": "int"}}


class Second(Driver):
    def write(self, reason, value):
        self.setParam(reason, value * 2 if reason == "X" else value)
        return True
