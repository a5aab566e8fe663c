"""Asynchronous PVs as drivers write them: a move that takes a while and ends with
callbackPV, and a command whose write() calls callbackPV at once (pcaspy's simscope)."""
import threading
import time

from pcaspy import Driver

prefix = "AM:"
pvdb = {
    "MOVE": {"asyn": True},
    "RUN": {"type": "enum", "enums": ["STOP", "RUN"], "asyn": True},
    "HOLD": {"asyn": True},  # a device that never answers: no callbackPV
}
MOVE_TIME = 0.4


class Moves(Driver):
    def __init__(self):
        super().__init__()
        self.log = []  # ("start" | "end", value, time.monotonic())
        self.busy = False
        self.overlaps = 0

    def write(self, reason, value):
        if reason == "HOLD":
            self.setParam(reason, value)
            self.log.append(("start", value, time.monotonic()))
            return True
        if reason == "RUN":
            self.setParam(reason, value)
            self.callbackPV(reason)
            return True
        if self.busy:
            self.overlaps += 1
        self.busy = True
        self.log.append(("start", value, time.monotonic()))

        def done():
            time.sleep(MOVE_TIME)
            self.setParam(reason, value)
            self.updatePVs()
            self.log.append(("end", value, time.monotonic()))
            self.busy = False
            self.callbackPV(reason)
        threading.Thread(target=done, daemon=True).start()
        return True
