"""A plugin whose file name another plugin shares, with a helper module of its own."""
from pcaspy import Driver

from _common import PREFIX

prefix = PREFIX
pvdb = {"X": {"value": 1.0}}


class IocDriver(Driver):
    def write(self, reason, value):
        import _lazy  # a sibling module imported on first use (only same_a has one)
        self.setParam(reason, _lazy.double(value))
        return True
