"""A driver whose worker thread is not a daemon and has no ``stop()`` hook: it goes on
calling pcaspy after pvconsole stopped, as many IOC scripts' threads do. Setting ``quit``
ends it (tests); OWNER names the driver instance that wrote it."""
import threading

from pcaspy import Driver

prefix = "WORKER:"
pvdb = {"COUNT": {"type": "int"}, "OWNER": {"type": "string"}, "GO": {"asyn": True}}


class WorkerDriver(Driver):
    def __init__(self):
        super().__init__()
        self.quit = threading.Event()
        self.worker = threading.Thread(target=self._loop, name="worker-loop")
        self.worker.start()

    def _loop(self):
        n = 0
        while not self.quit.wait(0.01):
            n += 1
            self.setParam("COUNT", n)
            self.setParam("OWNER", f"{id(self):x}")
            self.setParamInfo("COUNT", {"hihi": n + 10})
            self.updatePVs()
            self.callbackPV("GO")
