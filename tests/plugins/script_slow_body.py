"""A pcaspy script whose loop body polls slow hardware for seconds between its
server.process() calls."""
import time

from pcaspy import Driver, SimpleServer

prefix = "SLOWBODY:"
pvdb = {"N": {"type": "int"}}

if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = Driver()
    n = 0
    while True:
        server.process(0.01)
        n += 1
        driver.setParam("N", n)
        driver.updatePVs()
        time.sleep(5)  # a slow instrument
