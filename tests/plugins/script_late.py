"""A pcaspy script that adds PVs while it serves: ``createPV`` from its own thread after
start-up (a device found later, an IOC that connects late), then a clash."""
import threading

from pcaspy import Driver, SimpleServer

prefix = "LATE:"
pvdb = {"FIRST": {"type": "int", "value": 1}, "ERR": {"type": "string"}}
added = {"ADDED": {"type": "float", "prec": 2, "unit": "mm", "value": 1.5},
         "TEXT": {"type": "char", "count": 64, "value": "hello"}}


class LateDriver(Driver):
    def write(self, reason, value):
        self.setParam(reason, value * 2 if reason == "ADDED" else value)
        return True


def add_later(server, driver, go):
    go.wait()
    server.createPV(prefix, added)
    driver.setParam("ADDED", 2.5)
    driver.updatePVs()
    try:
        server.createPV(prefix, {"FIRST": {"type": "int"}})
    except Exception as e:  # noqa: BLE001 - shown in a PV for the test
        driver.setParam("ERR", str(e)[:39])
        driver.updatePVs()


if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = LateDriver()
    go = threading.Event()
    threading.Thread(target=add_later, args=(server, driver, go), daemon=True).start()
    while True:
        server.process(0.1)
        go.set()  # serving: the thread adds its PVs
