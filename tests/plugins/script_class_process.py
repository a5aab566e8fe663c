"""An unmodified pcaspy script whose loop calls ``process`` through the class (a
staticmethod in pcaspy: ``pcaspy.SimpleServer.process(0.1)``), counting its passes in
``CLP:LOOPS``; Ctrl-C is caught around the loop and writes the file CLEANUP_MARK names."""
import os

import pcaspy
from pcaspy import Driver

pvdb = {"LOOPS": {"type": "int"}}

if __name__ == "__main__":
    server = pcaspy.SimpleServer()
    server.createPV("CLP:", pvdb)
    driver = Driver()
    n = 0
    try:
        while True:
            pcaspy.SimpleServer.process(0.1)
            n += 1
            driver.setParam("LOOPS", n)
            driver.updatePVs()
    except KeyboardInterrupt:
        with open(os.environ["CLEANUP_MARK"], "w") as f:
            f.write("KeyboardInterrupt")
