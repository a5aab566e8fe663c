"""A pcaspy script that adds a PV from its own loop's body (a device found while
polling): the body waits for the driver thread, which makes the PV."""
import time

from pcaspy import Driver, SimpleServer

prefix = "LOOPADD:"
pvdb = {"TOOK": {"prec": 3}}

if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = Driver()
    n = 0
    while True:
        server.process(0.01)
        n += 1
        if n == 20:
            t0 = time.monotonic()
            server.createPV(prefix, {"FOUND": {"value": 7.0}})
            driver.setParam("TOOK", time.monotonic() - t0)
            driver.updatePVs()
