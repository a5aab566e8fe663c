"""Four plugin threads counting one PV at once, each with setParam + updatePVs (pcaspy
is not thread-safe: a common pattern all the same). A put of 1 to ``RACE:RUN`` runs one
round: the threads count for ``ROUND`` s and are stopped together, as an acquisition
stops; ``RACE:DONE`` counts the rounds ended. PVs ``RACE:``."""
import threading
import time

from pcaspy import Driver

prefix = "RACE:"
ROUND = 0.3
THREADS = 4
pvdb = {"TOTAL": {"type": "int"}, "RUN": {"type": "int"}, "DONE": {"type": "int"},
        **{f"CH{i}": {"type": "int"} for i in range(THREADS)}}


class Racing(Driver):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.total = 0
        self.rounds = 0

    def write(self, reason, value):
        if reason == "RUN" and value == 1:
            threading.Thread(target=self.round, daemon=True).start()
        return True

    def round(self):
        stop = threading.Event()
        workers = [threading.Thread(target=self.count, args=(i, stop)) for i in range(THREADS)]
        for w in workers:
            w.start()
        time.sleep(ROUND)
        stop.set()
        for w in workers:
            w.join()
        self.rounds += 1
        self.setParam("DONE", self.rounds)
        self.updatePVs()

    def count(self, channel, stop):
        n = 0
        while not stop.is_set():
            n += 1
            self.setParam(f"CH{channel}", n)
            with self.lock:
                self.total += 1
                self.setParam("TOTAL", self.total)
            self.updatePVs()
