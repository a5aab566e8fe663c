"""An IOC script that keeps its settings with pickle (a class and a function it defines):
run as __main__, pickle looks them up as __main__.Settings and __main__.scaled."""

import pickle
from dataclasses import dataclass

from pcaspy import Driver, SimpleServer

pvdb = {"SP": {"prec": 2}, "SAVE": {"type": "int"}, "RES": {"prec": 2},
        "ERR": {"type": "char", "count": 200, "value": ""}}


@dataclass
class Settings:
    sp: float


def scaled(x):
    return 2 * x


class PickleDriver(Driver):
    def write(self, reason, value):
        self.setParam(reason, value)
        if reason == "SAVE":
            try:
                settings, fn = pickle.loads(pickle.dumps((Settings(self.getParam("SP")), scaled)))
                self.setParam("RES", fn(settings.sp))
                self.setParam("ERR", "ok")
            except Exception as e:  # noqa: BLE001 - what the test reads
                self.setParam("ERR", f"{type(e).__name__}: {e}")
        self.updatePVs()
        return True


if __name__ == "__main__":
    server = SimpleServer()
    server.createPV("PK:", pvdb)
    driver = PickleDriver()
    while True:
        server.process(0.1)
