"""A pcaspy script with ServerThread (pcaspy's own pattern): its main thread sleeps in a
loop, and Ctrl-C's KeyboardInterrupt stops the server thread and cleans up; its driver's
stop() ends its polling thread / closes its device."""
import os
import threading
import time

from pcaspy import Driver, SimpleServer
from pcaspy.tools import ServerThread

prefix = "STS:"
pvdb = {"X": {"value": 0.0}}


class StDriver(Driver):
    def stop(self):
        with open(os.environ["ST_MARK"], "a") as f:
            f.write("stop\n")


if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = StDriver()
    t = ServerThread(server)
    t.start()
    try:
        while True:  # (ST_SLEEP=30: blocked in the call when pvconsole stops)
            time.sleep(float(os.environ.get("ST_SLEEP", "0.1")))
    except KeyboardInterrupt:
        t.stop()
        t.join()
        driver.stop()
        with open(os.environ["ST_MARK"], "a") as f:
            f.write("clean-up ran\n")
