"""A simulated power supply: every pcaspy type and field in one small IOC.

PVs (prefix ``PSU:``):

========== ======== ===============================================================
PV         type     what it is
========== ======== ===============================================================
VOLT       float    output voltage readback, alarm limits, 0.5 s scan of ``read``
VOLT:SP    float    voltage setpoint (asynchronous: completes after a ramp)
CURR       float    output current, monitor/archive deadbands
MODE       enum     Off / On / Fault, Fault is a MAJOR state
CNT        int      readback counter, updated from a thread with ``updatePVs``
TEMP:RAW   short    raw ADC counts
STATUS     char     status byte
MSG        string   last message
LOG        char     long text log line (256 chars, served as a string over PVA)
WAVE       float    16-point waveform
HIST       int      8-point integer history (read-only over PVA)
RAND.PREC  float    a name with a dot, set from a thread
SECRET     float    not exposed over PVA by default
========== ======== ===============================================================
"""

import math
import random
import threading
import time

from pcaspy import Alarm, Driver, Severity

prefix = "PSU:"

pvdb = {
    "VOLT": {"type": "float", "prec": 3, "unit": "V", "lolim": 0, "hilim": 100,
             "lolo": 1, "low": 2, "high": 90, "hihi": 95, "scan": 0.5, "value": 12.5,
             "pva": {"description": "Output voltage"}},
    "VOLT:SP": {"type": "float", "prec": 2, "unit": "V", "lolim": 0, "hilim": 100,
                "asyn": True, "value": 12.5, "pva": {"description": "Voltage setpoint"}},
    "CURR": {"type": "float", "prec": 4, "unit": "A", "lolim": 0, "hilim": 5,
             "adel": 0.01, "mdel": 0.001, "high": 4, "hihi": 4.5},
    "MODE": {"type": "enum", "enums": ["Off", "On", "Fault"],
             "states": [Severity.NO_ALARM, Severity.NO_ALARM, Severity.MAJOR_ALARM], "value": 1},
    "CNT": {"type": "int", "unit": "cts", "lolim": 0, "hilim": 1000000},
    "TEMP:RAW": {"type": "short", "unit": "adc", "lolim": -2048, "hilim": 2047, "value": 512},
    "STATUS": {"type": "char", "value": 0},
    "MSG": {"type": "string", "value": "ready"},
    "LOG": {"type": "char", "count": 256, "value": "power supply simulator started"},
    "WAVE": {"type": "float", "count": 16, "prec": 2, "unit": "mm"},
    "HIST": {"type": "int", "count": 8, "pva": {"readonly": True}},
    "RAND.PREC": {"type": "float", "prec": 5},
    "SECRET": {"type": "float", "value": 42, "pva": {"expose": False}},
}


class PsuDriver(Driver):
    """Ramps the output towards the setpoint; counts; makes noise."""

    def __init__(self):
        super().__init__()
        self.setParam("MODE", 1)
        self.setParam("VOLT:SP", pvdb["VOLT:SP"]["value"])
        self.setParam("STATUS", 0)
        self.setParam("MSG", "ready")
        self.setParam("LOG", pvdb["LOG"]["value"])
        self.setParam("WAVE", [math.sin(i / 2.5) for i in range(16)])
        self.setParam("SECRET", pvdb["SECRET"]["value"])
        self.updatePVs()
        self._stop = threading.Event()
        self._ramp = None
        threading.Thread(target=self._tick, name="psu-tick", daemon=True).start()

    def stop(self):
        """Called by pvconsole when it stops serving (optional plugin hook)."""
        self._stop.set()

    def read(self, reason):
        if reason == "VOLT":  # scanned: a noisy readback around the setpoint
            return self.getParam("VOLT:SP") + random.gauss(0, 0.01)
        return self.getParam(reason)

    def write(self, reason, value):
        if reason == "MODE" and value == 2:
            self.setParam("MSG", "refused: Fault is a state, not a command")
            self.updatePVs()
            return False
        if reason == "VOLT:SP":
            if not 0 <= value <= 100:
                return False
            self._ramp = threading.Thread(target=self._ramp_to, args=(value,), daemon=True)
            self._ramp.start()
            return True
        if reason == "STATUS" and isinstance(value, str):  # a CA put of a char scalar is a
            value = ord(value[0]) if value else 0  # 1-char str (pcaspy); PVA's is an int
        self.setParam(reason, value)
        if reason in ("MSG", "LOG"):
            self.setParam("STATUS", ord("W"))
        return True

    def _ramp_to(self, value):
        time.sleep(0.2)
        self.setParam("VOLT:SP", value)
        self.setParam("MSG", f"setpoint {value:.2f} V reached")
        self.updatePVs()
        self.callbackPV("VOLT:SP")

    def _tick(self):
        n = 0
        while not self._stop.wait(0.5):
            n += 1
            self.setParam("CNT", n)
            self.setParam("CURR", abs(self.getParam("VOLT:SP")) / 25 + random.gauss(0, 0.002))
            self.setParam("TEMP:RAW", 512 + int(20 * math.sin(n / 10)))
            self.setParam("RAND.PREC", random.random())
            self.setParam("HIST", [n - i for i in range(8)])
            self.setParam("WAVE", [math.sin(i / 2.5 + n / 5) for i in range(16)])
            self.updatePVs()
