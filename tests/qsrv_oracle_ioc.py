"""Serve, from pythonSoftIOC (EPICS IOC + QSRV2), the records equivalent to alltypes.py.

Run as a subprocess (an IOC initialises once per process): argv = CA port, PVA port,
PVA broadcast port. Prints 'ready' when serving; exits when stdin closes.
"""

import os
import sys

ca_port, pva_port, bcast = sys.argv[1:4]
os.environ.update(EPICS_CAS_INTF_ADDR_LIST="127.0.0.1", EPICS_CAS_SERVER_PORT=ca_port,
                  EPICS_CAS_BEACON_ADDR_LIST="127.0.0.1", EPICS_CAS_AUTO_BEACON_ADDR_LIST="NO",
                  EPICS_PVAS_INTF_ADDR_LIST="127.0.0.1", EPICS_PVAS_SERVER_PORT=pva_port,
                  EPICS_PVAS_BROADCAST_PORT=bcast)

from softioc import asyncio_dispatcher, builder, softioc  # noqa: E402

builder.SetDeviceName("Q")
builder.aOut("FLOAT", initial_value=12.5, DESC="a float", EGU="V", PREC=3, LOPR=0, HOPR=100, DRVL=0, DRVH=100,
             LOLO=1, LOW=2, HIGH=90, HIHI=95, LLSV="MAJOR", LSV="MINOR", HSV="MINOR", HHSV="MAJOR")
builder.longIn("INT", initial_value=7, EGU="cts")
builder.WaveformIn("SHORT", initial_value=[3], length=1, FTVL="SHORT")
builder.WaveformIn("CHAR", initial_value=[65], length=1, FTVL="UCHAR")
builder.stringIn("STRING", initial_value="hello")
builder.mbbOut("ENUM", "Off", "On", "Fault", initial_value=1)
builder.WaveformOut("FARR", [1.0, 2.0, 3.0], length=16, EGU="mm", PREC=2)
builder.WaveformIn("IARR", initial_value=[1, 2, 3, 4], length=4, FTVL="LONG")
builder.WaveformIn("SARR", initial_value=[0, 0, 0, 0], length=4, FTVL="SHORT")
builder.WaveformIn("SLIST", initial_value=["a", "b", "c"], length=3, FTVL="STRING")
builder.WaveformIn("BYTES", initial_value=[0] * 8, length=8, FTVL="UCHAR")
builder.longStringIn("LONG", initial_value="a long string status", length=256)
# pvatypes.py: records whose VAL CA carries in a wider type than QSRV serves
builder.WaveformIn("F32ARR", initial_value=[1.5, 2.5], length=4, FTVL="FLOAT")
builder.WaveformIn("I8ARR", initial_value=[-1, 2], length=4, FTVL="CHAR")
builder.WaveformIn("U16ARR", initial_value=[65535, 2], length=4, FTVL="USHORT")
builder.WaveformIn("U32ARR", initial_value=[4000000000, 2], length=4, FTVL="ULONG")
builder.int64In("I64", initial_value=7)
builder.LoadDatabase()
# (records softioc's builder does not make)
DB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "oracle_records.db")
softioc.dbLoadDatabase(DB)
softioc.iocInit(asyncio_dispatcher.AsyncioDispatcher())
print("ready", flush=True)
sys.stdin.read()
