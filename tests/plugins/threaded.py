"""The common pattern: a plugin thread calling setParam/updatePVs. PVs ``TH:``."""
import threading
import time

from pcaspy import Driver

prefix = "TH:"
pvdb = {f"V{i}": {"type": "float"} for i in range(20)}
pvdb["COUNT"] = {"type": "int"}


class Threaded(Driver):
    def __init__(self):
        super().__init__()
        self.n = 0
        self.running = True
        threading.Thread(target=self.run, daemon=True).start()

    def stop(self):
        self.running = False

    def run(self):
        while self.running:
            self.n += 1
            for i in range(20):
                self.setParam(f"V{i}", float(self.n))
            self.setParam("COUNT", self.n)
            self.updatePVs()
            time.sleep(0.001)
