"""The CA -> PVA mapping, as pure functions.

pcaspy describes a PV with a ``pvdb`` entry (type, count, enums, limits, ...) and holds
its state in a ``Data`` (value, alarm, severity, EPICS-epoch timestamp). This module turns
both into what an EPICS IOC with QSRV2 would serve for the equivalent record, and turns a
PVA put back into the Python value a pcaspy ``Driver.write`` receives from a CA client.
It imports neither pcaspy nor Textual: everything here is testable without a server.
See ``docs/type-mapping.md`` for the table.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from p4p import Type, Value

#: Seconds between the POSIX epoch (1970) and the EPICS epoch (1990).
POSIX_TIME_AT_EPICS_EPOCH = 631152000

#: CA's fixed string size (MAX_STRING_SIZE) includes the terminating NUL.
MAX_STRING_SIZE = 40
#: CA's enum limits (MAX_ENUM_STATES, MAX_ENUM_STRING_SIZE incl. NUL).
MAX_ENUM_STATES = 16
MAX_ENUM_STRING_SIZE = 26

#: pcaspy's alarm condition names (alarmString.h), indexed by pcaspy's ``Alarm`` codes.
ALARM_CONDITIONS: tuple[str, ...] = (
    "NO_ALARM", "READ", "WRITE", "HIHI", "HIGH", "LOLO", "LOW", "STATE", "COS", "COMM",
    "TIMEOUT", "HWLIMIT", "CALC", "SCAN", "LINK", "SOFT", "BAD_SUB", "UDF", "DISABLE",
    "SIMM", "READ_ACCESS", "WRITE_ACCESS",
)
SEVERITY_NAMES: tuple[str, ...] = ("NO_ALARM", "MINOR", "MAJOR", "INVALID")

# PVA alarm_t.status codes (normative types): NONE, DEVICE, DRIVER, RECORD, DB, CONF,
# UNDEFINED, CLIENT. QSRV sorts the CA conditions into these classes.
_PVA_STATUS_BY_CONDITION: dict[int, int] = {
    0: 0,                                       # NO_ALARM
    1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 11: 1,  # READ..COS, HWLIMIT: device
    9: 2, 10: 2, 17: 2,                         # COMM, TIMEOUT, UDF: driver (QSRV puts UDF here)
    12: 3, 13: 3, 14: 3, 15: 3, 16: 3,          # CALC, SCAN, LINK, SOFT, BAD_SUB: record
    18: 4, 19: 4, 20: 4, 21: 4,                 # DISABLE, SIMM, *_ACCESS: database
}

FORM_CHOICES = ["Default", "String", "Binary", "Decimal", "Hex", "Exponential", "Engineering"]

ALARM_T = ("S", "alarm_t", [("severity", "i"), ("status", "i"), ("message", "s")])
TIME_T = ("S", "time_t", [("secondsPastEpoch", "l"), ("nanoseconds", "i"), ("userTag", "i")])
ENUM_T = ("S", "enum_t", [("index", "i"), ("choices", "as")])

NTSCALAR = "epics:nt/NTScalar:1.0"
NTSCALARARRAY = "epics:nt/NTScalarArray:1.0"
NTENUM = "epics:nt/NTEnum:1.0"

#: pcaspy type name -> (PVA scalar code, human name). 'str' is pcaspy's synonym of 'string'.
CA_TYPES: dict[str, tuple[str, str]] = {
    "float": ("d", "double"),
    "int": ("i", "int32"),
    "short": ("h", "int16"),
    "char": ("B", "ubyte"),
    "string": ("s", "string"),
    "str": ("s", "string"),
    "enum": ("i", "enum"),
}
_INT_RANGE = {"i": (-(2**31), 2**31 - 1), "h": (-(2**15), 2**15 - 1), "B": (0, 255),
              "b": (-128, 127), "H": (0, 2**16 - 1), "I": (0, 2**32 - 1),
              "l": (-(2**63), 2**63 - 1), "L": (0, 2**64 - 1)}

#: The ``'pva': {'type': ...}`` names (a numeric value served as another scalar type than
#: its pcaspy type's, as QSRV serves a float32, int8, unsigned or int64 record field that
#: CA carries in a wider type) -> PVA scalar type code.
PVA_VALUE_TYPES: dict[str, str] = {
    "int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "l", "uint64": "L", "float32": "f", "float64": "d",
}
_CODE_NAMES = {**{code: name for name, code in PVA_VALUE_TYPES.items()},
               **{CA_TYPES[t][0]: CA_TYPES[t][1] for t in ("float", "int", "short", "char", "string")}}
_NUMPY_TYPES = {"b": np.int8, "B": np.uint8, "h": np.int16, "H": np.uint16, "i": np.int32,
                "I": np.uint32, "l": np.int64, "L": np.uint64, "f": np.float32, "d": np.float64}

#: The pvdb keys pcaspy knows; anything else is a pvconsole extension or a typo.
PCASPY_KEYS = frozenset({
    "type", "count", "enums", "states", "prec", "unit", "lolim", "hilim", "low", "high",
    "lolo", "hihi", "adel", "mdel", "scan", "asyn", "asg", "value", "port",
})
#: Keys of the optional ``'pva'`` dict in a pvdb entry (pcaspy ignores it).
PVA_KEYS = frozenset({"expose", "readonly", "description", "longstring", "read_poll", "type",
                      "control"})


class MappingError(ValueError):
    """A pvdb entry pvconsole cannot serve; the message names the PV and the field."""


class PutRejected(ValueError):
    """A PVA put refused before it reaches the driver; the message goes to the client."""


@dataclass(frozen=True)
class Meta:
    """The metadata of one PV, as pcaspy's ``PVInfo`` holds it (it may change at runtime
    through ``setParamInfo``/``setParamEnums``)."""

    prec: int = 0
    unit: str = ""
    lolim: float = 0.0
    hilim: float = 0.0
    low: float = 0.0
    high: float = 0.0
    lolo: float = 0.0
    hihi: float = 0.0
    enums: tuple[str, ...] = ()
    states: tuple[int, ...] = ()
    #: ``control.limitLow/High`` where they are not lolim/hilim (pcaspy has one pair):
    #: ``'pva': {'control': [lo, hi]}``, ``setParamInfo(reason, {'control': (lo, hi)})``
    control: tuple[float, float] | None = None


@dataclass(frozen=True)
class PVSpec:
    """What a PV is: its pcaspy definition plus pvconsole's PVA options.

    Attributes:
        name: Full PV name (prefix + reason).
        reason: pcaspy's base name, the key the driver sees.
        ca_type: pcaspy type name, normalised ('str' becomes 'string').
        count: Element count; > 1 means an array.
        scan: pcaspy scan period (0 = passive).
        asyn: Whether puts complete only when the driver calls ``callbackPV``.
        asg: Access security group name.
        description: ``display.description`` over PVA.
        expose: Served over PVA at start-up unless the operator changed it.
        readonly: PVA puts refused (CA unaffected).
        longstring: A ``char`` array served over PVA as a string.
        read_poll: Seconds between ``Driver.read`` calls for PVA while watched (None: the
            engine's default; 0: only when the first PVA channel opens). See
            :mod:`pvconsole.readthrough`.
        meta: Initial metadata.
        initial: pvdb ``value``, if given.
        pva_code: The value's PVA scalar type code where the pvdb's ``'pva': {'type':
            ...}`` chose one other than its pcaspy type's ('' otherwise).
    """

    name: str
    reason: str
    ca_type: str
    count: int = 1
    scan: float = 0
    asyn: bool = False
    asg: str = ""
    description: str = ""
    expose: bool = True
    readonly: bool = False
    longstring: bool = False
    read_poll: float | None = None
    meta: Meta = field(default_factory=Meta)
    initial: Any = None
    pva_code: str = ""

    @property
    def code(self) -> str:
        """The scalar type code of the value (or of its elements) as pcaspy holds it."""
        return CA_TYPES[self.ca_type][0]

    @property
    def value_code(self) -> str:
        """The PVA scalar type code of the value (or of its elements)."""
        return self.pva_code or self.code

    @property
    def kind(self) -> str:
        """One of 'enum', 'string', 'scalar', 'array'."""
        if self.ca_type == "enum" and self.count == 1:
            return "enum"
        if self.ca_type == "string" and self.count == 1:
            return "string"
        if self.ca_type == "char" and self.count > 1 and self.longstring:
            return "string"
        return "array" if self.count > 1 else "scalar"

    @property
    def max_string_bytes(self) -> int:
        """Longest string (UTF-8 bytes, no NUL) a put may carry: a ``string`` keeps CA's
        room for its NUL; a char array takes ``count`` bytes, as a CA put of them and as it
        serves a value that fills it (a text it served could not be put back)."""
        return self.count if self.ca_type == "char" else MAX_STRING_SIZE - 1


def spec_from_pvdb(prefix: str, reason: str, info: Mapping[str, Any]) -> PVSpec:
    """Normalise one pcaspy ``pvdb`` entry, with the checks pcaspy itself does not make.

    Raises:
        MappingError: naming the PV, for any field that is not what pcaspy documents."""
    try:
        return _spec_from_pvdb(prefix, reason, info)
    except (TypeError, ValueError, OverflowError) as e:
        if isinstance(e, MappingError):
            raise
        raise MappingError(f"{prefix}{reason}: pvdb entry not usable "
                           f"({type(e).__name__}: {e})") from None


def _spec_from_pvdb(prefix: str, reason: str, info: Mapping[str, Any]) -> PVSpec:
    name = prefix + reason
    if not isinstance(info, Mapping):
        raise MappingError(f"{name}: pvdb entry must be a dict, not {type(info).__name__}")
    ca_type = info.get("type", "float")
    if ca_type not in CA_TYPES:
        raise MappingError(f"{name}: unknown type {ca_type!r} (pcaspy knows "
                           f"{', '.join(sorted(CA_TYPES))})")
    ca_type = "string" if ca_type == "str" else ca_type
    try:
        count = int(info.get("count", 1))
    except (TypeError, ValueError):
        raise MappingError(f"{name}: count must be an integer, not {info.get('count')!r}")
    if count < 0:
        raise MappingError(f"{name}: count must be >= 0, not {count}")
    count = max(count, 1)  # 0: a scalar, as pcaspy serves it
    pva = info.get("pva", {}) or {}
    if not isinstance(pva, Mapping):
        raise MappingError(f"{name}: 'pva' must be a dict of {sorted(PVA_KEYS)}")
    unknown = set(pva) - PVA_KEYS
    if unknown:
        raise MappingError(f"{name}: unknown 'pva' keys {sorted(unknown)} "
                           f"(known: {sorted(PVA_KEYS)})")
    read_poll = pva.get("read_poll")
    if read_poll is not None:
        try:
            read_poll = float(read_poll)
            valid = read_poll >= 0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise MappingError(f"{name}: 'read_poll' must be seconds >= 0, not {pva['read_poll']!r}")
    pva_code = _pva_code(name, ca_type, count, pva.get("type"), info.get("value"), pva)
    try:
        control_limits(pva.get("control"))
    except (TypeError, ValueError):
        raise MappingError(f"{name}: 'pva' control must be [low, high] numbers, not "
                           f"{pva['control']!r}") from None
    for key, kinds, what in (("expose", _FLAGS, "bool"), ("readonly", _FLAGS, "bool"),
                             ("longstring", _FLAGS, "bool"), ("description", str, "str")):
        if key in pva and not isinstance(pva[key], kinds):  # 'no' would read as True
            raise MappingError(f"{name}: 'pva' key {key!r} must be a {what}, not {pva[key]!r}")
    return PVSpec(
        name=name,
        reason=reason,
        ca_type=ca_type,
        count=count,
        scan=float(info.get("scan", 0) or 0),
        asyn=bool(info.get("asyn", False)),
        asg=str(info.get("asg", "") or ""),
        description=str(pva.get("description", "")),
        expose=bool(pva.get("expose", True)),
        readonly=bool(pva.get("readonly", False)),
        longstring=bool(pva.get("longstring", _text_by_default(ca_type, count, info.get("value")))),
        read_poll=read_poll,
        meta=meta_from_info(info),
        initial=info.get("value"),
        pva_code=pva_code,
    )


def _pva_code(name: str, ca_type: str, count: int, chosen: Any, value: Any,
              pva: Mapping[str, Any]) -> str:
    """The ``'pva': {'type': ...}`` of a numeric PV as a type code ('' when not given or
    the pcaspy type's own)."""
    if chosen is None:
        return ""
    if chosen not in PVA_VALUE_TYPES:
        raise MappingError(f"{name}: 'pva' type {chosen!r} is not one of {', '.join(PVA_VALUE_TYPES)}")
    text = ca_type == "char" and bool(pva.get("longstring", _text_by_default(ca_type, count, value)))
    if ca_type in ("enum", "string") or (text and count > 1):
        what = "a char long string" if text else f"{'an' if ca_type == 'enum' else 'a'} {ca_type} PV"
        raise MappingError(f"{name}: 'pva' type applies to numbers, not to {what}")
    code = PVA_VALUE_TYPES[chosen]
    return "" if code == CA_TYPES[ca_type][0] else code


#: What a flag of a pvdb's ``'pva'`` dict may be (not a str: ``bool('no')`` is True).
_FLAGS = (bool, int, np.bool_)

#: Largest ``char`` array served as a string unless its pvdb says otherwise: beyond it a
#: char array is data (an image, a waveform of bytes), served as ``ubyte[]``.
LONGSTRING_MAX = 65536


def _text_by_default(ca_type: str, count: int, value: Any) -> bool:
    """Whether a ``char`` array is served as text when its pvdb entry does not say: it
    is, unless it is larger than :data:`LONGSTRING_MAX` or starts with byte values (a
    list, tuple or array rather than a str)."""
    if ca_type != "char" or count <= 1:
        return False
    return count <= LONGSTRING_MAX and (value is None or isinstance(value, str))


def meta_from_info(info: Any) -> Meta:
    """Read metadata from a pvdb dict or from pcaspy's ``PVInfo`` (attribute access)."""
    get = info.get if isinstance(info, Mapping) else (lambda k, d: getattr(info, k, d))
    enums = tuple(_cut(str(e), MAX_ENUM_STRING_SIZE - 1) for e in (get("enums", ()) or ())[:MAX_ENUM_STATES])
    states = tuple(int(s) for s in (get("states", ()) or ()))
    if isinstance(info, Mapping):
        control = control_limits((info.get("pva") or {}).get("control"))
    else:
        try:
            control = control_limits(getattr(info, "control", None))
        except (TypeError, ValueError):  # a driver's setParamInfo that is not [lo, hi]
            control = None
    return Meta(
        prec=_int(get("prec", 0)),
        unit=str(get("unit", "") or ""),
        lolim=_float(get("lolim", 0.0)),
        hilim=_float(get("hilim", 0.0)),
        low=_float(get("low", 0.0)),
        high=_float(get("high", 0.0)),
        lolo=_float(get("lolo", 0.0)),
        hihi=_float(get("hihi", 0.0)),
        enums=enums,
        states=states,
        control=control,
    )


def control_limits(given: Any) -> tuple[float, float] | None:
    """``(lo, hi)`` of a pvdb's ``'pva': {'control': ...}`` or a ``setParamInfo``'s
    ``'control'``; None for none.

    Raises:
        ValueError: not two numbers.
    """
    if given is None:
        return None
    lo, hi = given  # (not two: ValueError)
    return float(lo), float(hi)


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0


def _int(x: Any) -> int:
    try:
        return int(x)
    except (TypeError, ValueError):
        return 0


# --------------------------------------------------------------------------- types


def pva_type(spec: PVSpec) -> Type:
    """The PVA structure QSRV serves for the equivalent record (see the QSRV reference)."""
    return _pva_type(spec.kind, spec.ca_type, spec.value_code)


@lru_cache(maxsize=None)
def _pva_type(kind: str, ca_type: str, code: str) -> Type:
    """One shared Type per shape: 10,000 PVs of one kind need one type description."""
    if kind == "enum":
        return Type([("value", ENUM_T), ("alarm", ALARM_T), ("timeStamp", TIME_T),
                     ("display", ("S", None, [("description", "s")]))], id=NTENUM)
    if kind == "string":
        return Type([("value", "s"), ("alarm", ALARM_T), ("timeStamp", TIME_T),
                     ("display", ("S", None, [("description", "s"), ("units", "s")]))],
                    id=NTSCALAR)
    if ca_type == "string":  # string array: no numeric metadata
        return Type([("value", "as"), ("alarm", ALARM_T), ("timeStamp", TIME_T),
                     ("display", ("S", None, [("description", "s"), ("units", "s")]))],
                    id=NTSCALARARRAY)
    if ca_type == "enum":  # enum array: DBF_ENUM elements are uint16
        code = "H"
    m = code  # metadata fields carry the value's scalar type, as QSRV does
    fields = [
        ("value", ("a" + code) if kind == "array" else code),
        ("alarm", ALARM_T),
        ("timeStamp", TIME_T),
        ("display", ("S", None, [
            ("limitLow", m), ("limitHigh", m), ("description", "s"), ("units", "s"),
            ("precision", "i"), ("form", ENUM_T)])),
        ("control", ("S", None, [("limitLow", m), ("limitHigh", m), ("minStep", m)])),
        ("valueAlarm", ("S", None, [
            ("active", "?"), ("lowAlarmLimit", m), ("lowWarningLimit", m),
            ("highWarningLimit", m), ("highAlarmLimit", m), ("lowAlarmSeverity", "i"),
            ("lowWarningSeverity", "i"), ("highWarningSeverity", "i"),
            ("highAlarmSeverity", "i"), ("hysteresis", "d")])),
    ]
    return Type(fields, id=NTSCALARARRAY if kind == "array" else NTSCALAR)


def pva_type_name(spec: PVSpec) -> str:
    """Short human name of the PVA type, e.g. 'NTScalar double', 'NTScalarArray int16[16]'."""
    kind = spec.kind
    if kind == "enum":
        return "NTEnum"
    if kind == "string":
        return "NTScalar string"
    elem = "uint16" if spec.ca_type == "enum" else _CODE_NAMES[spec.value_code]
    if kind == "array":
        return f"NTScalarArray {elem}[{spec.count}]"
    return f"NTScalar {elem}"


# --------------------------------------------------------------------------- values


def alarm_fields(condition: int, severity: int) -> tuple[int, int, str]:
    """CA (condition, severity) -> PVA (severity, status, message), as QSRV maps them:
    the condition's name goes into ``message`` since PVA has no code for it."""
    condition = int(condition or 0)
    severity = int(severity or 0)
    if severity == 0:  # a record without an alarm has no condition (its STAT follows SEVR)
        return 0, 0, ""
    status = _PVA_STATUS_BY_CONDITION.get(condition, 6)  # unknown: UNDEFINED, as QSRV
    message = ALARM_CONDITIONS[condition] if 0 <= condition < len(ALARM_CONDITIONS) else str(condition)
    return severity, status, message


def alarm_shown_changed(old: tuple[Any, Any], new: tuple[Any, Any]) -> bool:
    """Whether a CA alarm change, ``(condition, severity)`` before and after, changes what
    PVA serves: a condition set without a severity (``setParamStatus(r, COMM, NO_ALARM)``)
    is no alarm there, and an IOC's record posts nothing for it."""
    return alarm_fields(*old) != alarm_fields(*new)


def posix_time(sec_past_epics_epoch: int, nsec: int) -> tuple[int, int]:
    """EPICS-epoch seconds -> POSIX seconds. pcaspy's zero timestamp (never written) maps
    to 631152000 (1990-01-01), exactly what QSRV serves for a never-processed record."""
    return int(sec_past_epics_epoch) + POSIX_TIME_AT_EPICS_EPOCH, int(nsec)


def to_pva_value(spec: PVSpec, value: Any) -> Any:
    """A driver value (what ``getParam`` returns) -> what goes into ``value`` over PVA.

    Mirrors the conversions pcaspy's CA server makes, so both protocols serve the same
    thing: a ``char`` scalar holds a 1-char string, a ``char`` array a str (or a
    list/array of byte values); a scalar given to an array PV becomes a one-element array;
    integers an integer field cannot hold are converted as C converts them (see
    :func:`ca_int`); a string is cut to CA's 39 bytes, a number stored in a string PV is
    formatted as CA's server library formats it.
    """
    kind = spec.kind
    ca_type = spec.ca_type
    if isinstance(value, np.ndarray) and value.ndim > 1:  # an image: flat, as CA serves it
        value = value.ravel()
    if kind == "enum":
        return ca_int("i", value)
    if kind == "string":
        if ca_type == "char":
            return _chars_to_str(value, spec.count)
        if isinstance(value, (bytes, bytearray)):
            return bytes_string(value)
        return ca_string(value)
    if kind == "array":
        if ca_type == "char" and isinstance(value, str):
            # pcaspy stores a str in a char array as one byte per character, NUL-terminated
            codes = [ord(c) & 0xFF for c in value[:spec.count]]
            return codes + [0] if len(codes) < spec.count else codes
        if ca_type == "char" and isinstance(value, (bytes, bytearray)):
            return list(value[:spec.count])
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            value = [value]
        if len(value) > spec.count:  # as CA serves it (capost.within_count)
            value = value[:spec.count]
        if ca_type == "string":
            return [ca_string(x) for x in value]
        return value
    if ca_type == "char" and isinstance(value, str):
        return ord(value[0]) & 0xFF if value else 0
    if spec.code == "d":
        return ca_float(value)
    return ca_int(spec.code, value)


_INT32_MIN = -(2**31)


def ca_int(code: str, x: Any) -> int:
    """A driver value as CA's server library stores it in an integer field.

    In-range values truncate towards zero; a value an int32 cannot hold becomes
    -2147483648 (the C conversion of an out-of-range double, which gdd makes); int16 and
    uint8 fields then keep the low bits, as a C cast does (40000 in a ``short`` is -25536).
    Numpy scalars and bools count as the numbers they are.
    """
    x = _one(x)
    try:
        i = int(x)
    except (OverflowError, ValueError):
        if not isinstance(x, (float, np.floating)):
            raise  # not a number at all: not servable
        i = _INT32_MIN  # inf, nan
    if not _INT32_MIN <= i < 2**31:
        i = _INT32_MIN
    if code == "i":
        return i
    bits = 16 if code in ("h", "H") else 8
    i &= (1 << bits) - 1
    return i - (1 << bits) if code == "h" and i >= 1 << 15 else i


def _one(x: Any) -> Any:
    """A one-element list or array where a scalar is due (a device register read with
    ``np.frombuffer``): its element, which is what CA serves."""
    if isinstance(x, np.ndarray) and x.ndim and x.size == 1:
        return x.reshape(-1)[0]
    if isinstance(x, (list, tuple)) and len(x) == 1:
        return x[0]
    return x


def ca_float(x: Any) -> float:
    """A driver value as a double (an int too large for one is +-inf, as in C)."""
    x = _one(x)
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def ca_int_array(code: str, values: Any) -> Any:
    """:func:`ca_int` for every element of an array (vectorised)."""
    a = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(a) & (a >= _INT32_MIN) & (a < 2**31)
    i32 = np.where(ok, np.trunc(np.where(ok, a, 0)), _INT32_MIN).astype(np.int64)
    return i32.astype({"i": np.int32, "h": np.int16, "H": np.uint16, "B": np.uint8}[code])


def ca_string(value: Any) -> str:
    """A driver value in a ``string`` PV as CA serves it: cut to 39 bytes (CA strings are
    40 with their NUL), a number formatted as gdd formats one (``%.4f`` between 1e-4
    and 1e4, else ``%g``), None as ''."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float, np.number)):
        x = float(value)
        text = f"{x:.4f}" if x == 0.0 or 1e-4 < abs(x) < 1e4 else f"{x:g}"
    else:
        text = str(value)
    return _cut(text, MAX_STRING_SIZE - 1)


def bytes_string(value: bytes | bytearray) -> str:
    """``bytes`` in a ``string`` PV (a subprocess's output) -> the text both protocols
    serve: up to the first NUL, at most CA's 39 bytes. pcaspy's CA side took them for a
    list of strings, and resizing the CA server's scalar to one killed the process."""
    return _chars_to_str(value, MAX_STRING_SIZE - 1)


def ca_put_text(value: Any) -> Any:
    """The text of a CA put to a ``string`` PV. pcaspy hands over bytes that are not
    UTF-8 (a Latin-1 ``caf\\xe9``) as a str with surrogate escapes, which neither
    protocol could serve again (every get of the PV failed): read as a CA client reads
    such bytes (:func:`bytes_string`, Latin-1 where not UTF-8)."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return bytes_string(value.encode("utf-8", "surrogateescape"))
    return value


def _cut(text: str, size: int) -> str:
    """``text`` cut to ``size`` UTF-8 bytes, without half a character at the end."""
    if len(text) <= size and text.isascii():
        return text
    return text.encode("utf-8")[:size].decode("utf-8", "ignore")


def _chars_to_str(value: Any, size: int) -> str:
    """The bytes CA serves for a char array (or bytes) -> the text before the first NUL,
    at most ``size`` bytes, read as a CA client reads them: UTF-8 where they are UTF-8,
    else one character per byte (Latin-1).

    A str in a char array holds one byte per character, its low byte, as pcaspy serves it
    to CA (a PVA put hands the driver its text that way: :func:`put_to_driver`), so both
    protocols read the same bytes.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        text = value.split("\0", 1)[0]
        if text.isascii():
            return text[:size]
        raw = bytes(ord(c) & 0xFF for c in text)
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raw = bytes(int(x) & 0xFF for x in value)
    raw = raw.split(b"\0", 1)[0]
    return _bytes_to_text(raw[:size], cut=len(raw) >= size)


def _bytes_to_text(raw: bytes, cut: bool = True) -> str:
    """UTF-8 (where ``cut``, at the size limit, a character cut in half at the end
    dropped), else Latin-1 (a short ``caf\\xe9`` is café, not a cut "caf")."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if cut and e.reason == "unexpected end of data":
            try:
                return raw[:e.start].decode("utf-8")
            except UnicodeDecodeError:
                pass
    return raw.decode("latin-1")


def assign_value(V: Value, spec: PVSpec, value: Any) -> None:
    """Write a driver value into ``V.value`` (``value.index`` of an enum).

    The fast path hands the value to p4p as it is; a value p4p refuses (an integer out of
    the field's range, an int too big for a double, numpy bools) is converted as CA
    converts it first. Integer scalars are range-checked before, since p4p silently
    wraps Python ints to the field's width where CA does not.
    """
    kind = spec.kind
    if kind == "enum":  # CA's DBR_ENUM is 16 bits: -1 is 65535 there, as QSRV's VAL
        V.value.index = ca_int("H", value)
        return
    code = spec.code
    if spec.pva_code:
        V.value = recast(spec.pva_code, to_pva_value(spec, value), kind == "array")
        return
    if kind == "scalar" and spec.ca_type in ("int", "short"):
        lo, hi = _INT_RANGE[code]
        V.value = value if type(value) is int and lo <= value <= hi else ca_int(code, value)
        return
    converted = to_pva_value(spec, value)
    try:
        if kind == "array":  # NaN or huge floats into integers: numpy's cast (the values
            with np.errstate(invalid="ignore", over="ignore"):  # CA serves), no warning
                V.value = converted
        else:
            V.value = converted
    except (TypeError, OverflowError, ValueError):
        if kind == "array" and code in _INT_RANGE:
            V.value = ca_int_array("H" if spec.ca_type == "enum" else code, converted)
        elif kind == "array" and code == "d":
            V.value = [ca_float(x) for x in converted]
        else:
            raise


def recast(code: str, value: Any, array: bool) -> Any:
    """A value as pcaspy's type holds it (:func:`to_pva_value`) -> the PVA type ``code``
    a pvdb's ``'pva': {'type': ...}`` chose: integers keep their low bits, as a C cast
    does (a CA ``char`` 255 is int8 -1, the signed byte it came from); a double into an
    integer type is cut towards zero and held to the type's range (NaN is 0)."""
    if not array and isinstance(value, (int, float)):  # (the mirror's hot path: no numpy)
        return _recast_scalar(code, value)
    a = np.asarray(value)
    if a.dtype.kind in "fc" and code in _INT_RANGE:
        lo, hi = _INT_RANGE[code]
        with np.errstate(invalid="ignore"):
            a = np.nan_to_num(np.trunc(a.real.astype(np.float64)), nan=0.0)
        if code in "lL":  # float64 cannot hold the int64 bounds: compare as Python ints
            out = np.array([max(lo, min(hi, int(x))) for x in a.reshape(-1)],
                           dtype=_NUMPY_TYPES[code])
        else:
            out = np.clip(a, lo, hi).astype(_NUMPY_TYPES[code])
    else:
        out = a.astype(_NUMPY_TYPES[code])  # integer to integer wraps, as in C
    return out.reshape(-1) if array else out.reshape(-1)[0].item()


def _recast_scalar(code: str, x: int | float) -> int | float:
    """:func:`recast` of one Python number, as numpy casts it there."""
    if code in ("f", "d"):
        return float(x)
    lo, hi = _INT_RANGE[code]
    if isinstance(x, float):
        if x != x:
            return 0
        if math.isinf(x):
            return hi if x > 0 else lo
        return max(lo, min(hi, int(x)))  # (int() cuts towards zero)
    return _low_bits(code, int(x))


def _low_bits(code: str, n: int) -> int:
    """``n`` in the integer type ``code``, keeping the low bits as a C cast does."""
    lo, hi = _INT_RANGE.get(code, (-(2**63), 2**63 - 1))
    return (n - lo) % (hi - lo + 1) + lo


def _metadata(spec: PVSpec, meta: Meta, opening: bool) -> dict[str, Any]:
    """display/control/valueAlarm for a numeric PV, cast to the value's scalar type: the
    fields QSRV fills for the equivalent record, so a monitor's changed fields are QSRV's
    too. Others (``control.minStep``, ``valueAlarm.active``, severities, ``hysteresis``;
    ``display.precision`` of integers, which CA's integer types lack; a waveform's
    ``valueAlarm``) keep their zero values and are never marked changed.

    pcaspy checks LOW/HIGH only when low < high and LOLO/HIHI only when lolo < hihi; a
    pair it ignores is served as an IOC serves a limit whose severity is NO_ALARM: NaN for
    doubles (Phoebus shows "not set"), 0 for integers.
    """
    code = spec.value_code
    double = code in ("f", "d")
    cast = float if double else (lambda x: _limit_int(code, x))
    display: dict[str, Any] = {"limitLow": cast(meta.lolim), "limitHigh": cast(meta.hilim),
                               "description": spec.description, "units": meta.unit}
    if double:
        display["precision"] = int(meta.prec)
    if opening:  # QSRV's property updates do not carry the form
        display["form"] = {"index": 0, "choices": FORM_CHOICES}
    lo, hi = meta.control or (meta.lolim, meta.hilim)
    out: dict[str, Any] = {"display": display, "control": {"limitLow": cast(lo), "limitHigh": cast(hi)}}
    # pcaspy never alarms a char (uint8) PV, scalar or array: its limits explain nothing
    checked = spec.ca_type != "char"
    valid_minor = checked and _valid_pair(meta.low, meta.high)
    valid_major = checked and _valid_pair(meta.lolo, meta.hihi)
    if spec.kind == "scalar":
        unset = math.nan if double else 0
        out["valueAlarm"] = {
            "lowAlarmLimit": cast(meta.lolo) if valid_major else unset,
            "lowWarningLimit": cast(meta.low) if valid_minor else unset,
            "highWarningLimit": cast(meta.high) if valid_minor else unset,
            "highAlarmLimit": cast(meta.hihi) if valid_major else unset,
        }
    elif valid_minor or valid_major:  # pcaspy alarms an array on any element: its limits
        alarm = {}  # explain the alarm (a waveform has none; QSRV leaves them at 0)
        if valid_major:
            alarm.update(lowAlarmLimit=cast(meta.lolo), highAlarmLimit=cast(meta.hihi))
        if valid_minor:
            alarm.update(lowWarningLimit=cast(meta.low), highWarningLimit=cast(meta.high))
        out["valueAlarm"] = alarm
    return out


def _valid_pair(lo: float, hi: float) -> bool:
    """Whether pcaspy checks an alarm limit pair (lo < hi), or one limit of it is set and
    the other NaN (unset: an IOC's limit whose severity is NO_ALARM, as the gateway gets
    it over CA), which is served as NaN beside the set one, as QSRV serves it."""
    return lo < hi or (math.isnan(lo) != math.isnan(hi))


def _limit_int(code: str, x: float) -> int:
    """A display/control/alarm limit in an integer value type: cut towards zero, with the
    low bits kept, as CA's conversion of pcaspy's limit and QSRV's of a record's both do
    (-3 as a uint8 limit is 253, 40000 as an int16 one -25536; beyond int32, types of 32
    bits or fewer get -2147483648's low bits, as CA serves them); NaN and inf: 0 (unset)."""
    if isinstance(x, float) and not math.isfinite(x):
        return 0
    i = int(x)
    if code not in ("l", "L", "I") and not _INT32_MIN <= i < 2**31:
        i = _INT32_MIN  # (a double beyond int32, converted to a 32-bit or narrower type)
    return _low_bits(code, i)


def pva_choices(enums: Sequence[str]) -> list[str]:
    """NTEnum ``value.choices`` of a pcaspy enum: its states without the trailing empty
    ones, as QSRV serves an mbbi/mbbo (an empty state inside the list stays). Puts take
    every index pcaspy takes, the trimmed ones too."""
    choices = list(enums)
    while choices and not choices[-1]:
        choices.pop()
    return choices


def meta_fields(spec: PVSpec, meta: Meta, opening: bool = True) -> dict[str, Any]:
    """The metadata part of the PVA value (everything but value/alarm/timeStamp) that QSRV
    fills: when the PV opens (``opening``), or on a property change."""
    kind = spec.kind
    if kind == "enum":
        return {"value": {"choices": pva_choices(meta.enums)}, "display": {"description": spec.description}}
    if kind == "string" and spec.ca_type == "char":  # a long string: QSRV's char
        # waveforms carry their EGU
        return {"display": {"description": spec.description, "units": meta.unit}}
    if spec.ca_type == "string" and spec.count > 1:  # QSRV's string waveform: its EGU is
        # marked, and empty (CA strings have no units)
        return {"display": {"description": spec.description, "units": ""}}
    if kind == "string" or spec.ca_type == "string":
        return {"display": {"description": spec.description}}  # CA strings have no units
    return _metadata(spec, meta, opening)


def initial_value(spec: PVSpec, meta: Meta, value: Any, condition: int, severity: int,
                  sec: int, nsec: int) -> Value:
    """The complete PVA value a newly opened PV serves."""
    V = pva_type(spec)()
    apply_meta(V, spec, meta)
    apply_update(V, spec, value, condition, severity, sec, nsec)
    return V


#: PVA ``alarm.status`` DRIVER: the driver gave a value the PV's type cannot hold.
UNSERVABLE_STATUS = 2


def mark_unservable(V: Value, value: Any) -> None:
    """Say in ``V``'s alarm that the driver's newest value cannot be served (INVALID,
    DRIVER, the value's type): the PV keeps its last good value, and a PVA client sees
    that it is stale instead of a value that quietly stopped changing."""
    V.alarm.severity = 3
    V.alarm.status = UNSERVABLE_STATUS
    V.alarm.message = f"driver value not servable ({type(value).__name__})"


def unservable_value(spec: PVSpec, meta: Meta, value: Any, sec: int, nsec: int) -> Value:
    """What a newly opened PV serves when its driver value cannot be served: the type's
    zero value, the metadata, an INVALID alarm (see :func:`mark_unservable`)."""
    V = pva_type(spec)()
    apply_meta(V, spec, meta)
    mark_unservable(V, value)
    _write_time(V, sec, nsec)
    return V


def apply_meta(V: Value, spec: PVSpec, meta: Meta, opening: bool = True) -> None:
    """Write metadata into ``V`` (marks the fields changed, as QSRV marks them)."""
    for key, sub in meta_fields(spec, meta, opening).items():
        _assign(V, key, sub)


def _assign(V: Value, path: str, sub: Any) -> None:
    if isinstance(sub, dict):
        for k, v in sub.items():
            _assign(V, f"{path}.{k}", v)
    else:
        V[path] = sub


def apply_update(V: Value, spec: PVSpec, value: Any, condition: int, severity: int,
                 sec: int, nsec: int) -> None:
    """Write value, alarm and timestamp (EPICS epoch) into ``V``. The mirror's hot path
    uses :func:`updater` instead; this is the readable reference it is tested against."""
    assign_value(V, spec, value)
    sevr, status, message = alarm_fields(condition, severity)
    V["alarm.severity"] = sevr
    V["alarm.status"] = status
    V["alarm.message"] = message
    _write_time(V, sec, nsec)


def _write_time(V: Value, sec: int, nsec: int) -> None:
    """The timestamp (EPICS epoch in, POSIX out); ``userTag`` marked too, as QSRV does."""
    s, ns = posix_time(sec, nsec)
    V["timeStamp.secondsPastEpoch"] = s
    V["timeStamp.nanoseconds"] = ns
    V["timeStamp.userTag"] = 0


Updater = Callable[[Value, Any, int, int, int, int], None]


def updater(spec: PVSpec) -> Updater:
    """A fast equivalent of :func:`apply_update` for one PV: attribute access on cached
    sub-structures, alarm fields written only when they change (monitors then carry only
    the changed fields, as QSRV's do)."""
    assign = assign_value
    alarm_cache: list[Any] = [None, None]  # the (condition, severity) and the fields written
    enum = spec.kind == "enum"
    double = spec.kind == "scalar" and spec.ca_type == "float" and not spec.pva_code
    integer = spec.kind == "scalar" and spec.ca_type in ("int", "short") and not spec.pva_code
    lo, hi = _INT_RANGE.get(spec.code, (0, 0))

    subs: list[Any] = [None, None, None]  # the Value, its timeStamp and its value (enum)

    def update(V: Value, value: Any, condition: int, severity: int, sec: int, nsec: int) -> None:
        if subs[0] is not V:  # each access to V.timeStamp builds a new wrapper (~1.3 us)
            subs[:] = [V, V.timeStamp, V.value if enum else None]
        if double and type(value) is float:
            V.value = value
        elif integer and type(value) is int and lo <= value <= hi:
            V.value = value
        elif enum and type(value) is int and 0 <= value <= ENUM_INDEX_MAX:
            subs[2].index = value
        else:
            assign(V, spec, value)
        key = (condition, severity)
        if alarm_cache[0] != key:
            alarm_cache[0] = key
            fields = alarm_fields(condition, severity)
            if fields != alarm_cache[1]:  # (COMM without a severity is no alarm, as before)
                a = V.alarm
                a.severity, a.status, a.message = fields
                alarm_cache[1] = fields
        ts = subs[1]
        ts.secondsPastEpoch = sec + POSIX_TIME_AT_EPICS_EPOCH
        ts.nanoseconds = nsec
        ts.userTag = 0  # QSRV marks it in every update

    def reset() -> None:
        alarm_cache[:] = [None, None]
        subs[:] = [None, None, None]

    update.reset = reset  # type: ignore[attr-defined]
    return update


# --------------------------------------------------------------------------- puts


def put_to_driver(spec: PVSpec, meta: Meta, V: Value) -> Any:
    """A PVA put -> the Python value ``Driver.write`` would get for the same CA put.

    Raises:
        PutRejected: with a message for the client (wrong type, enum index or choice out of
            range, array longer than ``count``, string over the CA limit).
    """
    kind = spec.kind
    if kind == "enum":
        return _enum_put(spec, meta, V)
    if not V.changed("value"):
        raise PutRejected(f"{spec.name}: put carries no 'value' field")
    raw = V.value
    if kind == "string":
        if not isinstance(raw, str):
            raise PutRejected(f"{spec.name}: expected a string, got {type(raw).__name__}")
        encoded = raw.encode("utf-8")
        if len(encoded) > spec.max_string_bytes:
            raise PutRejected(f"{spec.name}: string of {len(encoded)} bytes exceeds the limit "
                              f"of {spec.max_string_bytes} bytes")
        if spec.ca_type == "char" and not raw.isascii():  # its UTF-8 bytes, one character
            return encoded.decode("latin-1")  # each, as CA holds them (_chars_to_str)
        return raw
    if kind == "array":
        n = len(raw)
        if n > spec.count:
            raise PutRejected(f"{spec.name}: array of {n} elements exceeds count {spec.count}")
        if spec.ca_type == "string":
            too_long = [s for s in raw if len(s.encode("utf-8")) > MAX_STRING_SIZE - 1]
            if too_long:
                raise PutRejected(f"{spec.name}: string element exceeds {MAX_STRING_SIZE - 1} bytes")
            return list(raw)
        if spec.ca_type == "char":  # pcaspy hands CA char-array puts to the driver as str,
            # one character per byte, trailing NULs stripped (embedded ones kept)
            return bytes(int(x) & 0xFF for x in raw).decode("latin-1").rstrip("\0")
        if spec.ca_type == "float":
            return [float(x) for x in raw]
        return [int(x) for x in raw]
    # numeric scalar
    if spec.ca_type == "float":
        value = float(raw)
        return value
    # a ubyte scalar goes to the driver as an int: pcaspy's parameter database compares char
    # scalars numerically (a 1-char str, as CA puts deliver it, breaks setParam's deadband)
    return int(raw) & 0xFF if spec.ca_type == "char" else int(raw)


def _enum_put(spec: PVSpec, meta: Meta, V: Value) -> int:
    choices = list(meta.enums)
    if V.changed("value.index"):
        index = int(V["value.index"])
    elif V.changed("value.choices") and len(V["value.choices"]) == 1:
        # some clients send the choice string; accept it like caput does
        index = _choice_index(spec, choices, V["value.choices"][0])
    elif V.changed("value"):
        index = int(V["value.index"])
    else:
        raise PutRejected(f"{spec.name}: put carries no 'value.index'")
    return checked_enum_index(spec, choices, index)


#: The enum index CA carries (DBR_ENUM, unsigned 16 bits).
ENUM_INDEX_MAX = 0xFFFF


def checked_enum_index(spec: PVSpec, choices: Sequence[str], index: int) -> int:
    """``index`` if it selects a choice; without choices (an enum whose pvdb has none),
    any index CA can carry, as a CA put takes it (and QSRV's mbbo without states).
    Puts over both protocols are checked by it, so that neither stores a state that does
    not exist (pcaspy hands a CA put of any index to the driver)."""
    if not choices:
        if not 0 <= index <= ENUM_INDEX_MAX:
            raise PutRejected(f"{spec.name}: enum index {index} out of range 0..{ENUM_INDEX_MAX}")
        return index
    if not 0 <= index < len(choices):
        raise PutRejected(f"{spec.name}: enum index {index} out of range 0..{len(choices) - 1} "
                          f"({', '.join(choices)})")
    return index


def _choice_index(spec: PVSpec, choices: Sequence[str], choice: str) -> int:
    try:
        return choices.index(choice)
    except ValueError:
        raise PutRejected(f"{spec.name}: {choice!r} is not one of {', '.join(choices)}") from None


def coerce_enum_string(spec: PVSpec, meta: Meta, text: str) -> int:
    """A choice string or a decimal index -> enum index (for the console and ``ctl``)."""
    if text in meta.enums:
        return list(meta.enums).index(text)
    try:
        index = int(text)
    except ValueError:
        raise PutRejected(f"{spec.name}: {text!r} is not one of {', '.join(meta.enums)}") from None
    return checked_enum_index(spec, list(meta.enums), index)


def stamp_parts(t: Any) -> tuple[int, int]:
    """(secPastEpoch, nsec) of a driver's timestamp: pcaspy's ``epicsTimeStamp``, or a
    number, taken as POSIX seconds (``setParam(r, v, timestamp=time.time())``, a slip
    pcaspy's own CA server fails every get of the PV on).

    Raises:
        TypeError: anything else.
    """
    if hasattr(t, "secPastEpoch"):
        return int(t.secPastEpoch), int(t.nsec)
    if isinstance(t, numbers.Real) and not isinstance(t, (bool, np.bool_)) and math.isfinite(t):
        epics = max(0.0, float(t) - POSIX_TIME_AT_EPICS_EPOCH)
        sec = int(epics)
        return sec, min(999_999_999, int(round((epics - sec) * 1e9)))
    raise TypeError(f"timestamp {t!r} is not a pcaspy epicsTimeStamp")


def format_value(spec: PVSpec, meta: Meta, value: Any, max_items: int = 4) -> str:
    """A short, human rendering: precision and units, enum choice, array summary."""
    kind = spec.kind
    try:
        if kind == "enum":
            if isinstance(value, str):  # a put by choice name
                return value
            index = int(value)
            return meta.enums[index] if 0 <= index < len(meta.enums) else f"<{index}>"
        if kind == "string":
            return to_pva_value(spec, value)
        if kind == "array":
            items = to_pva_value(spec, value)
            n = len(items)
            shown = ", ".join(_fmt_num(spec, meta, x) for x in list(items[:max_items]))
            more = ", …" if n > max_items else ""
            return f"[{shown}{more}] ({n})"
        text = _fmt_num(spec, meta, to_pva_value(spec, value))
        return f"{text} {meta.unit}" if meta.unit else text
    except (TypeError, ValueError, IndexError, OverflowError):
        return repr(value)


def _fmt_num(spec: PVSpec, meta: Meta, x: Any) -> str:
    """A number with the PV's precision; in exponent form where the fixed form would show
    nothing of it (a pressure of 2e-8 mbar at precision 2 is not "0.00") or be too long."""
    if spec.ca_type == "float":
        x, prec = float(x), max(0, min(meta.prec, 17))
        if x and (abs(x) < 0.5 * 10 ** -prec or abs(x) >= 1e15):
            return f"{x:.{max(prec, 1)}e}"
        return f"{x:.{prec}f}"
    if spec.ca_type == "string":
        return str(x)
    return str(int(x))
