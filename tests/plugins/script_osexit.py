"""An unmodified pcaspy script (ServerThread style) whose watchdog leaves with os._exit
once its device stops answering."""
import os
import time

from pcaspy import Driver, SimpleServer
from pcaspy.tools import ServerThread

prefix = "OSX:"
pvdb = {"T": {"prec": 1, "value": 20.0}}


class Thermometer(Driver):
    pass


if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = Thermometer()
    thread = ServerThread(server)
    thread.start()
    started = time.monotonic()
    while True:
        time.sleep(0.05)
        if time.monotonic() - started > 0.5:
            os._exit(3)  # the device is gone: nothing left to do
