"""A pcaspy script that runs its server loop on a thread of its own (not pcaspy's
ServerThread) while its main thread polls and posts."""
import threading
import time

from pcaspy import Driver, SimpleServer

prefix = "OWN:"
pvdb = {"COUNT": {"type": "int"}}

if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = Driver()

    def serve():
        while True:
            server.process(0.1)

    threading.Thread(target=serve, daemon=True).start()
    n = 0
    while True:
        n += 1
        driver.setParam("COUNT", n)
        driver.updatePVs()
        time.sleep(0.05)
