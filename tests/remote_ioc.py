"""A plain pcaspy IOC in a process of its own: the CA IOC the gateway tests reach.

Serves on the port in ``EPICS_CAS_SERVER_PORT`` (loopback: ``EPICS_CAS_INTF_ADDR_LIST``),
prints ``ready``, then takes commands on stdin, one per line: ``meta`` (R:F's units and
precision change), ``alarm`` (R:I gets a COMM alarm the IOC sets itself), ``set NAME
VALUE`` (a float). ``REMOTE_ACF``: an access security file (ASG ``RO``: read only);
``REMOTE_PREFIX``: another prefix than ``R:``.
"""

import os
import sys
import threading

from pcaspy import Driver, SimpleServer, cas
from pcaspy.alarm import Alarm, Severity

PREFIX = os.environ.get("REMOTE_PREFIX", "R:")
PVDB = {
    "F": {"prec": 3, "unit": "V", "lolim": 0, "hilim": 100, "lolo": 1, "low": 2, "high": 80,
          "hihi": 90, "value": 95.0},
    "I": {"type": "int", "value": 7, "unit": "cts"},
    "S": {"type": "short", "value": -3},
    "E": {"type": "enum", "enums": ["Off", "On", "Fault"], "value": 1},
    "STR": {"type": "string", "value": "hello"},
    "W": {"count": 4, "prec": 2, "value": [1.0, 2.0, 3.0, 4.0]},
    "TXT": {"type": "char", "count": 64, "value": "some text"},
    "SP": {"prec": 2, "value": 1.5},
    "STAMP": {"value": 2.0},
    "RO": {"value": 3.0, "asg": "RO"},  # read-only for CA clients (REMOTE_ACF)
    "F.DESC": {"type": "string", "value": "Output voltage"},  # as an IOC's record field
}
#: R:STAMP's timestamp: 2024-01-02 03:04:05.000000678 UTC, in EPICS-epoch seconds
STAMP = (1704164645 - 631152000, 678)


class RemoteDriver(Driver):
    def __init__(self) -> None:
        super().__init__()
        for reason, info in PVDB.items():  # written, as an IOC's records are once processed
            self.setParam(reason, info["value"])
        t = cas.epicsTimeStamp()
        t.secPastEpoch, t.nsec = STAMP
        self.setParam("STAMP", 2.0, timestamp=t)
        self.updatePVs()

    def command(self, line: str) -> None:
        words = line.split()
        if words == ["meta"]:
            self.setParamInfo("F", {"unit": "mV", "prec": 1})
        elif words == ["alarm"]:
            self.setParamStatus("I", Alarm.COMM_ALARM, Severity.MAJOR_ALARM)
        elif words[:1] == ["set"]:
            self.setParam(words[1], float(words[2]))
        self.updatePVs()


def main() -> None:
    server = SimpleServer()
    if os.environ.get("REMOTE_ACF"):
        server.initAccessSecurityFile(os.environ["REMOTE_ACF"])
    server.createPV(PREFIX, PVDB)
    driver = RemoteDriver()

    def commands() -> None:
        for line in sys.stdin:
            driver.command(line)
    threading.Thread(target=commands, daemon=True).start()
    print("ready", flush=True)
    while True:
        server.process(0.05)


if __name__ == "__main__":
    main()
