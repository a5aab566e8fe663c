"""A pcaspy script whose own thread calls createPV while the script still loads (before
its Driver exists); its driver adds a PV from write() too."""
import threading
import time

from pcaspy import Driver, SimpleServer

prefix = "EARLY:"
pvdb = {"ADD": {"type": "int"}}
server = None


class EarlyDriver(Driver):
    def write(self, reason, value):
        if reason == "ADD":  # (on pvconsole's driver thread)
            server.createPV(prefix, {f"NEW{value}": {"value": float(value)}})
            self.setParam(f"NEW{value}", float(value) + 0.5)
            self.updatePVs()
        return super().write(reason, value)


def from_thread():
    server.createPV(prefix, {"THREAD": {"value": 1.0}})
    while driver is None:
        time.sleep(0.01)
    driver.setParam("THREAD", 2.0)
    driver.updatePVs()


if __name__ == "__main__":
    driver = None
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    threading.Thread(target=from_thread, daemon=True).start()
    time.sleep(0.3)  # slow hardware set-up: the thread's createPV comes first
    driver = EarlyDriver()
    while True:
        server.process(0.1)
