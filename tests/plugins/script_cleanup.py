"""An unmodified pcaspy script that cleans up when it is stopped: its SIGTERM handler ends
its loop; Ctrl-C (KeyboardInterrupt) is caught around it. The clean-up sets a PV, calls
its driver's stop() (which pvconsole must not call too) and writes the file named by
CLEANUP_MARK."""
import os
import signal

from pcaspy import Driver, SimpleServer

prefix = "CLN:"
pvdb = {"STATE": {"type": "string", "value": "running"}}
running = True


def on_term(signum, frame):
    global running
    running = False


class CleanupDriver(Driver):
    def stop(self):  # its own clean-up (closes a device): called by the script, once
        with open(os.environ["CLEANUP_MARK"] + ".stop", "a") as f:
            f.write("stop\n")


signal.signal(signal.SIGTERM, on_term)
server = SimpleServer()
server.createPV(prefix, pvdb)
driver = CleanupDriver()
try:
    while running:
        server.process(0.1)
    how = "its SIGTERM handler"
except KeyboardInterrupt:
    how = "KeyboardInterrupt"
driver.setParam("STATE", "stopped by " + how)
driver.updatePVs()
driver.stop()
with open(os.environ["CLEANUP_MARK"], "w") as f:
    f.write(how)
