"""A pcaspy script that does its own work between server.process() calls (a common
pattern) and checks that its driver's write never runs in the middle of that work, as it
never did when the script served CA itself; on its 20th pass it finds a device and adds
its PV (a createPV from the loop's body), timing the call."""
import os
import time

from pcaspy import Driver, SimpleServer

prefix = "WORK:"
pvdb = {"N": {"type": "int"}, "SP": {"value": 0.0}, "OVERLAP": {"type": "int"},
        "TOOK": {"prec": 3}}

busy = [False]
#: how long the loop talks to the hardware (a slow instrument: seconds)
BODY_SECONDS = float(os.environ.get("WORK_BODY_SECONDS", "0.003"))


class WorkDriver(Driver):
    def write(self, reason, value):
        if busy[0]:
            self.setParam("OVERLAP", self.getParam("OVERLAP") + 1)
        self.setParam(reason, value)
        return True


if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = WorkDriver()
    n = 0
    while True:
        server.process(0.01)
        busy[0] = True
        n += 1
        driver.setParam("N", n)
        time.sleep(BODY_SECONDS)  # talking to the hardware
        if n == 20:  # a device found
            t0 = time.monotonic()
            server.createPV(prefix, {"FOUND": {"value": 7.0}})
            driver.setParam("TOOK", time.monotonic() - t0)
        driver.updatePVs()
        busy[0] = False
