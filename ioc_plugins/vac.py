"""A simulated vacuum section, written as a plain pcaspy IOC script.

It is what most pcaspy IOCs look like: a ``pvdb``, a Driver, and a ``__main__`` part that
makes the server and runs its loop, polling the "hardware" between ``server.process()``
calls. It runs alone (``python ioc_plugins/vac.py --prefix VAC:``, CA only) and, unchanged,
under pvconsole (CA and PVA), which runs its ``__main__`` part with the arguments given
after its name: ``pvconsole --plugin 'ioc_plugins/vac.py --prefix VAC2:'``.

PVs (prefix ``VAC:`` by default):

============ ======== ==============================================================
PV           type     what it is
============ ======== ==============================================================
P1           float    chamber pressure (mbar), alarm limits; INVALID while the gauge
                      is off
P1:HIST      float    the last 60 pressure readings, one a second
GAUGE:STAT   enum     OK / Degraded / Off (Degraded MINOR, Off INVALID)
GAUGE:CMD    enum     Off / On
VALVE1       enum     Closed / Open: the command; asynchronous, a move takes 1.5 s
VALVE1:POS   enum     Closed / Moving / Open / Fault: the readback
PUMP         enum     Off / On
PUMP:SPEED   int      turbo pump speed (Hz), ramps up and down
MSG          string   last event
============ ======== ==============================================================
"""

import argparse
import math
import random
import threading
import time

from pcaspy import Alarm, Driver, Severity, SimpleServer

pvdb = {
    "P1": {"type": "float", "prec": 2, "unit": "mbar", "lolim": 1e-9, "hilim": 1000,
           "high": 1e-5, "hihi": 1e-3, "value": 1000.0,
           "pva": {"description": "Chamber pressure"}},
    "P1:HIST": {"type": "float", "count": 60, "prec": 2, "unit": "mbar",
                "pva": {"readonly": True, "description": "Pressure, last 60 s"}},
    "GAUGE:STAT": {"type": "enum", "enums": ["OK", "Degraded", "Off"],
                   "states": [Severity.NO_ALARM, Severity.MINOR_ALARM, Severity.INVALID_ALARM]},
    "GAUGE:CMD": {"type": "enum", "enums": ["Off", "On"], "value": 1},
    "VALVE1": {"type": "enum", "enums": ["Closed", "Open"], "asyn": True,
               "pva": {"description": "Gate valve command"}},
    "VALVE1:POS": {"type": "enum", "enums": ["Closed", "Moving", "Open", "Fault"],
                   "states": [Severity.NO_ALARM, Severity.MINOR_ALARM, Severity.NO_ALARM,
                              Severity.MAJOR_ALARM]},
    "PUMP": {"type": "enum", "enums": ["Off", "On"], "value": 1},
    "PUMP:SPEED": {"type": "int", "unit": "Hz", "lolim": 0, "hilim": 1500, "low": 1000},
    "MSG": {"type": "string", "value": "pumping down"},
}

#: Seconds a valve takes to move.
VALVE_TRAVEL = 1.5
#: Pressure the pump reaches (mbar), and where the chamber goes when vented.
BASE_PRESSURE, ATMOSPHERE = 2e-8, 1000.0


class VacDriver(Driver):
    """Puts change the commands; ``poll()`` (called by the script's loop) moves the
    simulated hardware and publishes what it reads."""

    def __init__(self):
        super().__init__()
        self.pressure = ATMOSPHERE
        self.speed = 0.0
        self.history = [ATMOSPHERE] * pvdb["P1:HIST"]["count"]
        self._last_hist = time.monotonic()
        for reason in pvdb:  # a PV never set is INVALID (UDF), as a record never processed
            self.setParam(reason, self.getParam(reason))
        self.updatePVs()

    def write(self, reason, value):
        if reason == "VALVE1":
            if self.getParam("VALVE1:POS") == 1:
                self.setParam("MSG", "refused: the valve is moving")
                self.updatePVs()
                return False
            self.setParam("VALVE1", value)
            self.setParam("VALVE1:POS", 1)
            self.setParam("MSG", f"valve {'opening' if value else 'closing'}")
            self.updatePVs()
            threading.Thread(target=self._move_valve, args=(value,), daemon=True).start()
            return True
        if reason in ("PUMP", "GAUGE:CMD"):
            self.setParam(reason, value)
            self.setParam("MSG", f"{reason.lower().replace(':cmd', '')} "
                                 f"{pvdb[reason]['enums'][value].lower()}")
            self.updatePVs()
            return True
        return False  # readbacks

    def _move_valve(self, target):
        time.sleep(VALVE_TRAVEL)
        self.setParam("VALVE1:POS", 2 if target else 0)
        self.setParam("MSG", f"valve {'open' if target else 'closed'}")
        self.updatePVs()
        self.callbackPV("VALVE1")

    def poll(self):
        """One reading of the simulated section."""
        pumping = self.getParam("PUMP") == 1
        self.speed += ((1500 if pumping else 0) - self.speed) * 0.02
        self.setParam("PUMP:SPEED", int(self.speed))
        # the valve open to the vented line lets air in; the pump takes it out
        leak = ATMOSPHERE * 0.05 if self.getParam("VALVE1:POS") == 2 else 0.0
        target = BASE_PRESSURE if self.speed > 1000 else ATMOSPHERE * (1 - self.speed / 1500)
        self.pressure = max(BASE_PRESSURE, self.pressure + (target - self.pressure) * 0.15 + leak)
        gauge_on = self.getParam("GAUGE:CMD") == 1
        reading = self.pressure * math.exp(random.gauss(0, 0.02))
        if gauge_on:
            self.setParam("P1", reading)  # pcaspy derives the alarm from the limits
            self.setParam("GAUGE:STAT", 1 if reading > 100 else 0)
        else:
            self.setParam("GAUGE:STAT", 2)
            self.setParamStatus("P1", Alarm.COMM_ALARM, Severity.INVALID_ALARM)
        now = time.monotonic()
        if now - self._last_hist >= 1.0:
            self._last_hist = now
            self.history = self.history[1:] + [reading if gauge_on else float("nan")]
            self.setParam("P1:HIST", self.history)
        self.updatePVs()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="VAC:", help="PV name prefix (default VAC:)")
    args = parser.parse_args()
    server = SimpleServer()
    server.createPV(args.prefix, pvdb)
    driver = VacDriver()
    next_poll = 0.0
    while True:
        server.process(0.1)
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + 0.2
            driver.poll()


if __name__ == "__main__":
    main()
