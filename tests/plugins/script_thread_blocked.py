"""A ServerThread script whose main thread is blocked in a long C call when pvconsole
stops (time.sleep(30)): its KeyboardInterrupt comes too late, so its driver's stop()
is called, as for a script pvconsole could not tell."""
import os
import time

from pcaspy import Driver, SimpleServer
from pcaspy.tools import ServerThread

prefix = "STB:"
pvdb = {"X": {"value": 0.0}}


class BlockedDriver(Driver):
    def stop(self):
        with open(os.environ["ST_MARK"], "a") as f:
            f.write("stop\n")


if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = BlockedDriver()
    ServerThread(server).start()
    while True:
        time.sleep(30)
