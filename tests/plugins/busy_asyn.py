"""pcaspy's pysh example's pattern: an asyn command refused while one runs, the worker
thread calling callbackPV and only then marking the driver idle."""

import threading
import time

from pcaspy import Driver

prefix = "BA:"
pvdb = {"CMD": {"type": "string", "asyn": True}, "DONE": {"type": "int"}}


class BusyDriver(Driver):
    def __init__(self):
        super().__init__()
        self.tid = None

    def write(self, reason, value):
        if reason != "CMD":
            self.setParam(reason, value)
            return True
        if self.tid is not None:
            return False  # busy: as pysh refuses a command while one runs
        self.setParam(reason, value)
        self.tid = threading.Thread(target=self.run)
        self.tid.start()
        return True

    def run(self):
        time.sleep(0.2)
        self.setParam("DONE", self.getParam("DONE") + 1)
        self.updatePVs()
        self.callbackPV("CMD")
        time.sleep(0.005)  # the script's tidy-up after its callbackPV
        self.tid = None
