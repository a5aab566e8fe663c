"""An unmodified pcaspy script that cleans up when it is stopped: its SIGTERM handler ends
its loop; Ctrl-C (KeyboardInterrupt) is caught around it. The clean-up sets a PV and
writes the file named by CLEANUP_MARK."""
import os
import signal

from pcaspy import Driver, SimpleServer

prefix = "CLN:"
pvdb = {"STATE": {"type": "string", "value": "running"}}
running = True


def on_term(signum, frame):
    global running
    running = False


signal.signal(signal.SIGTERM, on_term)
server = SimpleServer()
server.createPV(prefix, pvdb)
driver = Driver()
try:
    while running:
        server.process(0.1)
    how = "its SIGTERM handler"
except KeyboardInterrupt:
    how = "KeyboardInterrupt"
driver.setParam("STATE", "stopped by " + how)
driver.updatePVs()
with open(os.environ["CLEANUP_MARK"], "w") as f:
    f.write(how)
