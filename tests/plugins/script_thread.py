"""A pcaspy script that runs its server in ServerThread and polls in its own main loop;
its module-level prefix is not the one its __main__ part serves (argparse default)."""
import argparse
import logging
import signal
import time

from pcaspy import Driver, SimpleServer
from pcaspy.tools import ServerThread

prefix = "UNUSED:"
pvdb = {"COUNT": {"type": "int"}, "SP": {"prec": 2, "value": 1.5}}


class PollDriver(Driver):
    pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG)
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", default="THR:")
    args = parser.parse_args()
    server = SimpleServer()
    server.createPV(args.prefix, pvdb)
    driver = PollDriver()
    server_thread = ServerThread(server)
    server_thread.start()
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    n = 0
    try:
        while not stop:
            n += 1
            driver.setParam("COUNT", n)
            driver.updatePVs()
            time.sleep(0.05)
    finally:
        server_thread.stop()
