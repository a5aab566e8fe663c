"""A CA -> PVA gateway, written as a pcaspy IOC: PVs of CA IOCs pvconsole cannot host.

``pvconsole gateway PV ...`` runs this script as a plugin. Its CA client (in a process of
its own, :mod:`pvconsole.gwclient`) connects to each named PV wherever the CA network
has it, and its driver serves what the IOC serves: the native type and element count,
metadata (DBR_CTRL), value, alarm and the IOC's own timestamps, with metadata changes
followed. pvconsole's mirror serves the PVs over PVA as it serves any plugin's; a PVA
put becomes a CA put with completion to the IOC (``asyn``: the PVA put ends when the IOC
has processed it). While the IOC is disconnected a PV is INVALID with a LINK alarm, as a
record's disconnected CA link is, and puts are refused. A PV that does not connect at
start is served once it connects (its IOC came up later).

pvconsole's own CA server serves these names only on loopback, on a free port (``pvconsole
gateway`` sees to it): CA clients keep finding the IOC itself, not a second server.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pcaspy import Driver, SimpleServer, cas
from pcaspy.alarm import Alarm, Severity

# absolute: pvconsole runs this file as the script it is
from pvconsole import childpipe
from pvconsole.putlog import WriteRefused, fail_put
from pvconsole.typemap import POSIX_TIME_AT_EPICS_EPOCH

log = logging.getLogger("pvconsole.gateway")

#: CA native field type -> pcaspy type (CA side; the PVA side: :func:`pva_value_type`)
PCASPY_TYPES = {"double": "float", "float32": "float", "long": "int", "short": "short",
                "char": "char", "enum": "enum", "string": "string"}
#: (CA field type, the record's FTVL) -> the PVA type QSRV serves the record's value in,
#: where CA carries it in a wider (or unsigned) type.
FTVL_TYPES = {("char", "CHAR"): "int8", ("long", "USHORT"): "uint16", ("double", "ULONG"): "uint32",
              ("double", "INT64"): "int64", ("double", "UINT64"): "uint64"}
#: Record types whose scalar value CA carries as a double.
INT64_RECORDS = frozenset({"int64in", "int64out"})
#: Longest char array served as text (the plugin key ``longstring``'s limit).
LONGSTRING_MAX = 65536
#: Record types whose char arrays hold text (gwclient asks ``NAME.RTYP``).
TEXT_RECORDS = {"lsi", "lso", "printf", "stringin", "stringout"}


def pvdb_entry(info: dict[str, Any]) -> dict[str, Any]:
    """A connected channel (:func:`pvconsole.gwclient.channel_infos`) -> its pcaspy pvdb
    entry: what the IOC's DBR_CTRL says, in pcaspy's words (pure)."""
    ca_type = PCASPY_TYPES[info["dbf"]]
    count = max(1, int(info.get("count") or 1))
    ctrl = info.get("ctrl") or {}
    pva: dict[str, Any] = {}
    if ca_type == "enum" and count > 1:  # a waveform of FTVL=ENUM: pcaspy's enum alarm
        ca_type, pva["type"] = "int", "uint16"  # check fails on arrays; QSRV serves none
    entry: dict[str, Any] = {"type": ca_type, "count": count, "asyn": True}
    if ca_type == "enum":
        entry["enums"] = list(ctrl.get("enum_strs") or [])
    elif ca_type != "string":
        entry.update(numeric_meta(ctrl))
        if "control" in entry:
            pva["control"] = list(entry.pop("control"))
    value = info.get("value")
    text = ca_type == "char" and count > 1 and is_text(info)
    if text:
        value = text_of(value)
    elif ca_type == "char" and count > 1:
        pva["longstring"] = False
    chosen = None if text or ca_type == "enum" else pva_value_type(info)
    if chosen:
        pva["type"] = chosen
    if value is not None:
        entry["value"] = value
    if info.get("desc"):
        pva["description"] = info["desc"]
    if pva:
        entry["pva"] = pva
    return entry


def pva_value_type(info: dict[str, Any]) -> str | None:
    """The PVA type (a pvdb ``'pva': {'type': ...}``) QSRV serves a channel's value in,
    where it is not its CA type's (pure): DBF_FLOAT's float32, a waveform's FTVL (signed
    CHAR, USHORT, ULONG, INT64, UINT64), an int64 record's int64; None where CA's is it."""
    dbf = info["dbf"]
    if dbf == "float32":
        return "float32"
    if info.get("ftvl"):
        return FTVL_TYPES.get((dbf, info["ftvl"]))
    if dbf == "double" and info.get("count", 1) == 1 and info.get("rtyp") in INT64_RECORDS:
        return "int64"
    return None


def numeric_meta(ctrl: dict[str, Any]) -> dict[str, Any]:
    """DBR_CTRL metadata -> pcaspy's ``prec``, ``unit`` and limits (pure). pcaspy has one
    pair of display/control limits, the display ones: the control ones go as pvconsole's
    ``control`` (``'pva': {'control': ...}`` in a pvdb entry). An alarm limit the IOC leaves unset
    (NaN: its severity is NO_ALARM) stays NaN, which PVA serves as QSRV does; pcaspy's
    0 would be a limit of its own alarm rules, and served as one beside a set partner."""
    out: dict[str, Any] = {}
    if ctrl.get("precision") is not None:
        out["prec"] = int(ctrl["precision"])
    if ctrl.get("units") is not None:
        out["unit"] = str(ctrl["units"])
    for key, field in (("lolim", "lower_disp_limit"), ("hilim", "upper_disp_limit"),
                       ("lolo", "lower_alarm_limit"), ("hihi", "upper_alarm_limit"),
                       ("low", "lower_warning_limit"), ("high", "upper_warning_limit")):
        x = ctrl.get(field)
        if x is not None and (x == x or key in ("lolo", "hihi", "low", "high")):
            out[key] = x
    lo, hi = ctrl.get("lower_ctrl_limit"), ctrl.get("upper_ctrl_limit")
    if lo is not None and hi is not None and lo == lo and hi == hi:
        out["control"] = (lo, hi)  # (an ao's DRVL/DRVH; pvconsole's own key, served over PVA)
    return out


def is_text(info: dict[str, Any]) -> bool:
    """Whether a char array is served as a string (pure). By its record type where the
    IOC has one (an lso's text), and a waveform's (or aai's) if it holds text at start:
    QSRV serves one as a string when its ``info(Q:form, "String")`` says so, which CA does
    not carry, and an IOC's long-string waveforms are initialised with their text. Where
    there is no record type (a pcaspy IOC, whose char arrays are its long strings), as
    pvconsole serves a plugin's: text, unless what it holds at start is not."""
    if info.get("count", 1) > LONGSTRING_MAX:
        return False
    rtyp = info.get("rtyp")
    if rtyp in TEXT_RECORDS:
        return True
    head = _bytes(info.get("value")).split(b"\0", 1)[0]
    if not rtyp:
        return not any(b < 32 and b not in (9, 10, 13) for b in head)
    return bool(head) and _printable(head)


def _printable(raw: bytes) -> bool:
    """Whether a record's bytes read as text: printable UTF-8 (tabs and line ends too),
    not data that happens to hold no control byte (an image's pixels)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.replace("\t", "").replace("\n", "").replace("\r", "").isprintable()


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        return bytes(int(b) & 0xFF for b in values)
    except (TypeError, ValueError):
        return b""


def text_of(value: Any) -> str:
    """A char array's bytes as text up to its NUL: one character per byte, as pcaspy
    holds CA text (UTF-8 bytes stay the bytes they are)."""
    return _bytes(value).split(b"\0", 1)[0].decode("latin-1")


def takes_update(kind: str, stamp: tuple[int, int], served: tuple[int, int] | None) -> bool:
    """Whether a value the CA client sends is served (pure): a monitor's always; the
    one read when its monitor began (``catch-up``) only if newer than the one served (a
    monitor update may have overtaken it: it must not put an older value back)."""
    return kind == "update" or (kind == "catch-up" and (served is None or stamp > served))


def ca_put_value(value: Any, text: bool, count: int) -> Any:
    """What goes to the IOC for a value ``Driver.write`` got: a char array's bytes as
    numbers (pyepics would encode a str as UTF-8 again, with replacement characters), a
    text's with its NUL.

    Raises:
        WriteRefused: an empty array (pyepics puts a count of 0 as the native count:
            the IOC would be filled with zeros).
    """
    if count > 1 and isinstance(value, str):
        data = list(value.encode("latin-1", "replace"))
        value = data + [0] if text and len(data) < count else data
    if count > 1 and isinstance(value, (list, tuple)) and not len(value):
        raise WriteRefused("an empty array cannot be put to the IOC through this gateway")
    return value


def ca_time(posix_seconds: int, nanoseconds: int) -> Any:
    """A POSIX time -> pcaspy's EPICS-epoch timestamp."""
    t = cas.epicsTimeStamp()
    t.secPastEpoch = max(0, int(posix_seconds) - POSIX_TIME_AT_EPICS_EPOCH)
    t.nsec = int(nanoseconds)
    return t


class CAClient:
    """The CA client process and its pipe."""

    def __init__(self) -> None:
        self.proc, self.conn = childpipe.spawn("pvconsole.gwclient", [], stdin=subprocess.DEVNULL)
        self._send_lock = threading.Lock()
        self.closing = False

    def send(self, message: tuple) -> None:
        with self._send_lock:
            self.conn.send(message)

    def connect(self, names: list[str], timeout: float) -> dict[str, dict]:
        self.send(("connect", names, timeout))
        while True:
            try:
                message = self.conn.recv()
            except EOFError:
                raise RuntimeError(f"its CA client process ended while connecting (exit code "
                                   f"{self.proc.wait()}; its output is in the log)") from None
            if message[0] == "connected":
                return message[1]

    def close(self) -> None:
        self.closing = True
        try:
            self.send(("stop",))
        except OSError:
            pass
        self.conn.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class GatewayDriver(Driver):
    """Serves what the CA client reports; PVA puts go to the IOC."""

    def __init__(self, client: CAClient, server: Any, infos: dict[str, dict],
                 pvdb: dict[str, dict]) -> None:
        """``pvdb``: what :func:`pvdb_entry` made of ``infos`` (served as it says);
        ``server``: where PVs that connect later are created."""
        super().__init__()
        self.client = client
        self.server = server
        self.writable: dict[str, bool] = {}
        self.connected: dict[str, bool] = {}
        self.counts: dict[str, int] = {}
        self.text: dict[str, bool] = {}
        self.alarms: dict[str, tuple[int, int]] = {}  # (status, severity) the IOC gave last
        self.stamps: dict[str, tuple[int, int]] = {}  # the IOC's timestamp of the value served
        self._links = _LinkLog()
        self._take(infos, pvdb)
        self._reader = threading.Thread(target=self._read, name="gateway-ca", daemon=True)
        self._reader.start()

    def _take(self, infos: dict[str, dict], pvdb: dict[str, dict]) -> None:
        """Serve these channels (created as ``pvdb`` says) with what the IOC has now."""
        for name, entry in pvdb.items():
            self.counts[name] = entry["count"]
            self.text[name] = (entry["type"] == "char" and entry["count"] > 1
                               and isinstance(entry.get("value"), str))
        for name, info in infos.items():
            self.writable[name] = bool(info.get("write", True))
            self.connected[name] = True
            try:
                self._update(name, info["value"], info["severity"], info["status"],
                             info["posixseconds"], info["nanoseconds"])
            except Exception:  # one odd record must not keep the others from being served
                log.exception("gateway: %s: its value at start cannot be served", name)
        self.updatePVs()

    def _serve_late(self, infos: dict[str, dict]) -> None:
        """PVs that did not connect at start connected (their IOC came up): served now."""
        pvdb = {name: pvdb_entry(info) for name, info in infos.items()}
        shown = ", ".join(list(pvdb)[:5]) + (f" and {len(pvdb) - 5} more" if len(pvdb) > 5 else "")
        try:
            self.server.createPV("", pvdb)
        except Exception as e:  # noqa: BLE001 - said; the others are served on
            log.error("gateway: %d PV(s) connected after start but cannot be served (%s): %s",
                      len(pvdb), e, shown)
            return
        self._take(infos, pvdb)
        log.info("gateway: %d PV(s) connected after start, now served: %s", len(pvdb), shown)

    def _update(self, name: str, value: Any, severity: int, status: int, sec: int, nsec: int) -> None:
        if self.text.get(name):
            value = text_of(value)
        elif self.counts.get(name, 1) > 1 and not isinstance(value, (list, tuple)):
            value = [value]  # one element of an array: pyepics gives it as a scalar
        self.setParam(name, value, timestamp=ca_time(sec, nsec))
        self.stamps[name] = (sec, nsec)
        self._set_alarm(name, status, severity)

    def _set_alarm(self, name: str, status: int, severity: int) -> None:
        """The IOC's alarm, kept: pcaspy's own rules (its limits checked at each
        ``setParam`` and ``setParamInfo``) must not replace it."""
        self.alarms[name] = (status, severity)
        self.setParamStatus(name, status, severity)

    def _read(self) -> None:
        conn = self.client.conn
        while True:
            try:
                message = conn.recv() if conn.poll(1.0) else None
            except (EOFError, OSError, TypeError):  # (TypeError: closed by a stop meanwhile)
                self._client_gone()
                return
            if message is not None:
                try:
                    self._handle(message)
                except Exception:
                    log.exception("gateway: %s of %s failed", message[0], str(message[1])[:80])
            self._links.flush()

    def _client_gone(self) -> None:
        """The CA client process ended (killed, crashed; not at a stop): nothing follows
        the IOCs any more, and the PVs say so."""
        if self.client.closing:
            return
        log.error("gateway: its CA client process ended: %d PV(s) no longer follow their "
                  "IOCs (INVALID, LINK) until pvconsole restarts", len(self.connected))
        for name in self.connected:
            self.connected[name] = False
            self._set_alarm(name, Alarm.LINK_ALARM, Severity.INVALID_ALARM)
        self.updatePVs()

    def _handle(self, message: tuple) -> None:
        kind, name = message[0], message[1]
        if kind == "late":
            self._serve_late(message[1])
            return
        if takes_update(kind, tuple(message[5:7]), self.stamps.get(name)):
            self.connected[name] = True
            self._update(name, *message[2:])
        elif kind == "meta":
            ctrl = message[2]
            if "enum_strs" in ctrl:
                self.setParamEnums(name, list(ctrl["enum_strs"]))
            meta = numeric_meta(ctrl)
            if meta:
                self.setParamInfo(name, meta)  # (which sets pcaspy's alarm for its limits)
                self.setParamStatus(name, *self.alarms.get(name, (0, 0)))
        elif kind == "conn":
            self.connected[name] = message[2]
            self._links.note(name, message[2])
            if not message[2]:
                self._set_alarm(name, Alarm.LINK_ALARM, Severity.INVALID_ALARM)
        elif kind == "reshaped":
            log.warning("gateway: %s came back as %s[%d], not %s[%d]: it is served as before; "
                        "restart pvconsole to follow", name, *message[3], *message[2])
        elif kind == "access":
            self.writable[name] = message[2]
        elif kind == "put_done":
            ok, why = message[2], message[3]
            if ok:
                self.callbackPV(name)
            else:
                log.warning("gateway: put to %s failed: %s", name, why)
                fail_put(self, name, why)
        self.updatePV(name)

    def write(self, reason: str, value: Any) -> bool:
        if not self.connected.get(reason, False):
            raise WriteRefused("disconnected from its IOC")
        if not self.writable.get(reason, False):
            raise WriteRefused("the IOC grants no write access")
        value = ca_put_value(value, self.text.get(reason, False), self.counts.get(reason, 1))
        try:
            self.client.send(("put", reason, value))
        except OSError:
            raise WriteRefused("the gateway's CA client process is gone") from None
        return True


class _LinkLog:
    """Connection changes logged a line per second, not per PV (an IOC of 2,000 PVs that
    restarts made 4,000 lines)."""

    def __init__(self) -> None:
        self._pending: dict[bool, list[str]] = {True: [], False: []}
        self._last = 0.0

    def note(self, name: str, connected: bool) -> None:
        self._pending[connected].append(name)
        self.flush()

    def flush(self) -> None:
        now = time.monotonic()
        if now - self._last < 1.0:
            return
        self._last = now
        for connected, names in self._pending.items():
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                if connected:
                    log.info("gateway: %d PV(s) connected again: %s", len(names), shown)
                else:
                    log.warning("gateway: %d PV(s) disconnected from their IOC: %s", len(names), shown)
                names.clear()


def pv_names(names: list[str], lists: list[Path]) -> list[str]:
    """PV names from the command line and from files (one per line; blank lines and ``#``
    comments skipped), each once, in order."""
    out = list(names)
    for path in lists:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.extend(line.split())
    return list(dict.fromkeys(out))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The gateway's own arguments (``pvconsole gateway`` adds pvconsole's)."""
    p.add_argument("pvs", nargs="*", metavar="PV", help="PV names on the CA network")
    p.add_argument("--pv-list", type=Path, action="append", default=[], metavar="FILE",
                   help="file of PV names, one per line (repeatable)")
    p.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="how long to wait for the PVs to connect at start (default 5)")


def script_args(args: argparse.Namespace) -> list[str]:
    """The command line of this script for what ``pvconsole gateway`` was given."""
    out = [*args.pvs, "--connect-timeout", str(args.connect_timeout)]
    for path in args.pv_list:
        out += ["--pv-list", str(path.resolve())]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cagateway.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    names = pv_names(args.pvs, args.pv_list)
    if not names:
        raise SystemExit("gateway: no PV named (PV names, or --pv-list FILE)")
    client = CAClient()
    try:
        infos = client.connect(names, args.connect_timeout)
        missing = [n for n in names if n not in infos]
        if missing:
            log.warning("gateway: %d PV(s) did not connect within %g s: each is served when "
                        "it connects: %s%s", len(missing), args.connect_timeout,
                        ", ".join(missing[:10]), " …" if len(missing) > 10 else "")
        if not infos:
            raise SystemExit("gateway: none of the PVs connected (EPICS_CA_ADDR_LIST?)")
        pvdb = {name: pvdb_entry(info) for name, info in infos.items()}
        server = SimpleServer()
        server.createPV("", pvdb)
        GatewayDriver(client, server, infos, pvdb)
        log.info("gateway: serving %d PV(s) of CA IOCs", len(infos))
        while True:
            server.process(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()


if __name__ == "__main__":
    main()
