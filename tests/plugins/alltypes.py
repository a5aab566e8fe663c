"""Every pcaspy type and field (test plugin). PVs under ``T:``."""

from pcaspy import Driver

prefix = "T:"

pvdb = {
    "FLOAT": {"type": "float", "prec": 3, "unit": "V", "lolim": 0, "hilim": 100,
              "lolo": 1, "low": 2, "high": 90, "hihi": 95, "value": 12.5,
              "pva": {"description": "a float"}},
    "PLAIN": {"type": "float"},
    "INT": {"type": "int", "unit": "cts", "value": 7},
    "SHORT": {"type": "short", "lolim": -10, "hilim": 10, "value": 3},
    "CHAR": {"type": "char", "value": 65},
    "STRING": {"type": "string", "value": "hello"},
    "STR": {"type": "str", "value": "synonym"},
    "ENUM": {"type": "enum", "enums": ["Off", "On", "Fault"], "states": [0, 0, 2], "value": 1},
    "FARR": {"type": "float", "count": 16, "prec": 2, "unit": "mm", "value": [1.0, 2.0, 3.0]},
    "IARR": {"type": "int", "count": 4, "value": [1, 2, 3, 4]},
    "SARR": {"type": "short", "count": 4},
    "SLIST": {"type": "string", "count": 3, "value": ["a", "b", "c"]},
    "BYTES": {"type": "char", "count": 8, "pva": {"longstring": False}},
    "LONG": {"type": "char", "count": 256, "value": "a long string status"},
    "DOT.PREC": {"type": "float", "prec": 4},
    "RO": {"type": "float", "pva": {"readonly": True}},
    "HIDDEN": {"type": "int", "pva": {"expose": False}},
    "ASYN": {"type": "float", "asyn": True},
    "NOCB": {"type": "float", "asyn": True},
}


class AllTypes(Driver):
    def __init__(self):
        super().__init__()
        for reason, info in pvdb.items():
            if "value" in info and reason != "LONG":
                self.setParam(reason, info["value"])
        self.setParam("LONG", pvdb["LONG"]["value"])
        self.updatePVs()
        self.writes = []

    def write(self, reason, value):
        self.writes.append((reason, value))
        if reason == "ASYN" and value == 666:
            raise RuntimeError("asyn driver exploded")
        if reason == "ASYN":
            import threading

            def done():
                self.setParam(reason, value)
                self.updatePVs()
                self.callbackPV(reason)
            threading.Timer(0.2, done).start()
            return True
        if reason == "NOCB":
            return True  # never calls back
        if reason == "INT" and value == 13:
            return False
        if reason == "INT" and value == 666:
            raise RuntimeError("driver exploded")
        self.setParam(reason, value)
        return True
