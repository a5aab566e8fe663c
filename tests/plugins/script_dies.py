"""An unmodified pcaspy script whose own loop dies (its device went away) while served."""
import time

from pcaspy import Driver, SimpleServer

prefix = "DIE:"
pvdb = {"T": {"prec": 1, "value": 20.0}}


class Thermometer(Driver):
    def poll(self):
        if time.monotonic() - started > 0.5:
            raise IOError("device not responding")
        self.setParam("T", 21.0)
        self.updatePVs()


server = SimpleServer()
server.createPV(prefix, pvdb)
driver = Thermometer()
started = time.monotonic()
while True:
    server.process(0.1)
    driver.poll()
