"""A driver that computes values in read(), as pcaspy's tutorial does (every caget of
RAND is a new random number; the parameter database keeps its own value)."""
import collections
import random

from pcaspy import Driver

prefix = "RD:"
pvdb = {
    "RAND": {"prec": 3},
    "COUNT": {"type": "int"},                            # read() returns how often it ran
    "WAVE": {"count": 4},                                # a computed array
    "PLAIN": {"value": 5.0},                             # read() passes getParam through
    "BAD": {"value": 1.0},                               # read() raises
    "HEALS": {"value": 1.0},                             # read() raises twice, then returns 3.0
    "SBAD": {"scan": 0.1, "value": 1.0},                 # scanned; read() raises
    "ONCE": {"type": "int", "pva": {"read_poll": 0}},    # read for PVA on first connect only
    "SCANNED": {"type": "int", "scan": 0.2},             # the scan thread reads it
    "FLAKY": {"type": "int", "scan": 0.1},               # scanned; every other read() raises
    "NONE": {"value": 2.0},                              # read() forgets its return
}


class ReadDriver(Driver):
    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()
        self.setParam("HEALS", 1.0)  # (no UDF alarm: the one a READ alarm replaces)

    def read(self, reason):
        self.calls[reason] += 1
        n = self.calls[reason]
        if reason == "RAND":
            return random.random()
        if reason in ("COUNT", "ONCE", "SCANNED"):
            return n
        if reason == "WAVE":
            return [n, n + 1, n + 2, n + 3]
        if reason in ("BAD", "SBAD") or (reason == "FLAKY" and n % 2) or (reason == "HEALS" and n <= 2):
            raise RuntimeError("sensor unplugged")
        if reason == "HEALS":
            return 3.0
        if reason == "FLAKY":
            return n
        if reason == "NONE":
            return None
        return self.getParam(reason)
