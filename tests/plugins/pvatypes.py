"""Numbers served over PVA as another scalar type than their pcaspy type's ('pva':
{'type': ...}), as QSRV serves the records of ``qsrv_oracle_ioc.py`` (test plugin)."""

from pcaspy import Driver

prefix = "T:"

pvdb = {
    "F32ARR": {"type": "float", "count": 4, "value": [1.5, 2.5], "pva": {"type": "float32"}},
    "I8ARR": {"type": "char", "count": 4, "value": [255, 2], "pva": {"type": "int8"}},
    "U16ARR": {"type": "int", "count": 4, "value": [65535, 2], "pva": {"type": "uint16"}},
    "U32ARR": {"type": "float", "count": 4, "value": [4e9, 2], "pva": {"type": "uint32"}},
    "I64ARR": {"type": "float", "count": 4, "value": [-2.0**40, 2], "pva": {"type": "int64"}},
    "U64ARR": {"type": "float", "count": 4, "value": [2.0**40, 2], "pva": {"type": "uint64"}},
    "I64": {"type": "float", "value": 7, "pva": {"type": "int64"}},
}


class PvaTypes(Driver):
    def __init__(self):
        super().__init__()
        for reason, info in pvdb.items():
            self.setParam(reason, info["value"])
        self.updatePVs()

    def write(self, reason, value):
        self.setParam(reason, value)
        return True
