"""A driver whose write() does not return for a long time (a device that does not
answer): it says so in ./writing, in the working directory, when it starts."""
import pathlib
import time

from pcaspy import Driver

prefix = "STUCK:"
pvdb = {"POS": {"prec": 2}}


class StuckDriver(Driver):
    def write(self, reason, value):
        pathlib.Path("writing").write_text(f"{reason} {value}")
        time.sleep(30)
        self.setParam(reason, value)
        return True
