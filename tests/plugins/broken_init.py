"""Its driver raises in __init__."""
from pcaspy import Driver

prefix = "BI:"
pvdb = {"A": {}}


class Broken(Driver):
    def __init__(self):
        super().__init__()
        raise RuntimeError("hardware not found")
