"""A driver with a thread pool (idle workers are threads that are not daemons) and an
atexit handler that closes its "hardware" (writes ./closed); with POOL_FOREVER set, also
a worker thread that never ends."""
import atexit
import os
import pathlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from pcaspy import Driver

prefix = "POOL:"
pvdb = {"X": {}}


class PoolDriver(Driver):
    def __init__(self):
        super().__init__()
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.pool.submit(time.sleep, 0.01)
        atexit.register(lambda: pathlib.Path("closed").write_text("ok"))
        if os.environ.get("POOL_FOREVER"):
            threading.Thread(target=lambda: threading.Event().wait(), name="forever").start()
