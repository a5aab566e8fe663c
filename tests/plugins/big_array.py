"""A waveform IOC that raises EPICS_CA_MAX_ARRAY_BYTES itself, at import (a common idiom:
alone, it starts its CA server after that line), and one too large for any limit set."""
import os

os.environ["EPICS_CA_MAX_ARRAY_BYTES"] = "2000000"

from pcaspy import Driver  # noqa: E402

prefix = "BIG:"
pvdb = {"WAVE": {"type": "float", "count": 100000, "prec": 2},
        "HUGE": {"type": "int", "count": 600000}}


class BigDriver(Driver):
    def __init__(self):
        super().__init__()
        self.setParam("WAVE", [float(i) for i in range(100000)])
        self.updatePVs()
