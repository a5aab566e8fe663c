"""The CA -> PVA mapping as pure functions: no servers."""

import math

import numpy as np
import pytest

from pvconsole import typemap
from pvconsole.typemap import MappingError, PutRejected, spec_from_pvdb


def spec(**info):
    return spec_from_pvdb("P:", "X", info)


@pytest.mark.parametrize("info, nt, code, kind", [
    ({"type": "float"}, typemap.NTSCALAR, "d", "scalar"),
    ({}, typemap.NTSCALAR, "d", "scalar"),
    ({"type": "int"}, typemap.NTSCALAR, "i", "scalar"),
    ({"type": "short"}, typemap.NTSCALAR, "h", "scalar"),
    ({"type": "char"}, typemap.NTSCALAR, "B", "scalar"),
    ({"type": "string"}, typemap.NTSCALAR, "s", "string"),
    ({"type": "str"}, typemap.NTSCALAR, "s", "string"),
    ({"type": "enum", "enums": ["a", "b"]}, typemap.NTENUM, None, "enum"),
    ({"type": "float", "count": 4}, typemap.NTSCALARARRAY, "ad", "array"),
    ({"type": "int", "count": 4}, typemap.NTSCALARARRAY, "ai", "array"),
    ({"type": "short", "count": 4}, typemap.NTSCALARARRAY, "ah", "array"),
    ({"type": "char", "count": 4, "pva": {"longstring": False}}, typemap.NTSCALARARRAY, "aB", "array"),
    ({"type": "char", "count": 256}, typemap.NTSCALAR, "s", "string"),
    ({"type": "string", "count": 3}, typemap.NTSCALARARRAY, "as", "array"),
])
def test_nt_type_per_pcaspy_type(info, nt, code, kind):
    s = spec(**info)
    T = typemap.pva_type(s)
    assert T.getID() == nt
    assert s.kind == kind
    if code:
        assert dict(T.items())["value"] == code


@pytest.mark.parametrize("info, code, name", [
    ({"type": "float", "pva": {"type": "float32"}}, "f", "NTScalar float32"),
    ({"type": "float", "pva": {"type": "int64"}}, "l", "NTScalar int64"),
    ({"type": "float", "count": 4, "pva": {"type": "uint32"}}, "aI", "NTScalarArray uint32[4]"),
    ({"type": "int", "count": 4, "pva": {"type": "uint16"}}, "aH", "NTScalarArray uint16[4]"),
    ({"type": "char", "count": 4, "pva": {"type": "int8", "longstring": False}}, "ab",
     "NTScalarArray int8[4]"),
    ({"type": "char", "count": 4, "value": [1, 2], "pva": {"type": "int8"}}, "ab",
     "NTScalarArray int8[4]"),
    ({"type": "int", "pva": {"type": "int32"}}, "i", "NTScalar int32"),  # its own: no change
    ({"type": "string", "count": 2}, "as", "NTScalarArray string[2]"),  # (none chosen)
])
def test_a_chosen_pva_value_type(info, code, name):
    s = spec(**info)
    T = typemap.pva_type(s)
    assert dict(T.items())["value"] == code
    if code != "as":
        assert dict(T["display"].items())["limitLow"] == code.lstrip("a")  # metadata follow it
    assert typemap.pva_type_name(s) == name


@pytest.mark.parametrize("info, value, served, back", [
    ({"type": "float", "pva": {"type": "float32"}}, 0.1, np.float32(0.1), np.float32(0.1)),
    ({"type": "float", "pva": {"type": "int64"}}, 2.0**53, 2**53, 2.0**53),
    ({"type": "float", "pva": {"type": "int64"}}, -7.9, -7, -7.0),
    ({"type": "float", "pva": {"type": "int64"}}, math.nan, 0, 0.0),
    ({"type": "char", "count": 3, "pva": {"type": "int8", "longstring": False}}, [255, 1, 128],
     [-1, 1, -128], "\xff\x01\x80"),
    ({"type": "int", "count": 2, "pva": {"type": "uint16"}}, [65535, 7], [65535, 7], [65535, 7]),
    ({"type": "float", "count": 3, "pva": {"type": "uint32"}}, [4e9, -1.0, 1e12],
     [4000000000, 0, 2**32 - 1], [4e9, 0.0, 2.0**32 - 1]),
    ({"type": "float", "count": 2, "pva": {"type": "uint64"}}, [1e30, 5.0], [2**64 - 1, 5],
     [2.0**64, 5.0]),
])
def test_a_chosen_pva_value_type_serves_the_value_and_takes_puts(info, value, served, back):
    """Served as the chosen type holds the value pcaspy has (integers keep their low bits,
    as a C cast does; a double is cut towards zero and held to the range); a put goes to
    the driver as a CA put of the pcaspy type would."""
    s = spec(**info)
    V = typemap.initial_value(s, s.meta, value, 0, 0, 0, 0)
    got = V.value.tolist() if hasattr(V.value, "tolist") else V.value
    assert got == (served.tolist() if hasattr(served, "tolist") else served)
    assert typemap.put_to_driver(s, s.meta, V) == back
    up = typemap.updater(s)
    up(V, value, 0, 0, 1, 2)  # the mirror's hot path serves it alike
    assert (V.value.tolist() if hasattr(V.value, "tolist") else V.value) == got


@pytest.mark.parametrize("info, message", [
    ({"type": "float", "pva": {"type": "float128"}}, "'pva' type 'float128' is not one of"),
    ({"type": "enum", "pva": {"type": "int32"}}, "applies to numbers, not to an enum PV"),
    ({"type": "string", "pva": {"type": "int8"}}, "applies to numbers"),
    ({"type": "char", "count": 80, "pva": {"type": "int8"}}, "not to a char long string"),
])
def test_a_chosen_pva_value_type_must_fit(info, message):
    with pytest.raises(MappingError, match=f"P:X: .*{message}"):
        spec(**info)


def test_control_limits_other_than_the_display_ones():
    s = spec(type="float", lolim=0, hilim=100, pva={"control": [5, 80]})
    V = typemap.initial_value(s, s.meta, 1.0, 0, 0, 0, 0)
    assert (V.display.limitLow, V.display.limitHigh) == (0.0, 100.0)
    assert (V.control.limitLow, V.control.limitHigh) == (5.0, 80.0)
    plain = spec(type="int", lolim=-3, hilim=3)
    V = typemap.initial_value(plain, plain.meta, 1, 0, 0, 0, 0)
    assert (V.control.limitLow, V.control.limitHigh) == (-3, 3)  # pcaspy's one pair
    with pytest.raises(MappingError, match="P:X: 'pva' control must be"):
        spec(pva={"control": [1]})

    class Info:  # pcaspy's PVInfo after setParamInfo(reason, {'control': ...})
        control = (1, 2)
    assert typemap.meta_from_info(Info()).control == (1.0, 2.0)
    Info.control = "bad"
    assert typemap.meta_from_info(Info()).control is None


def test_numeric_metadata_fields_carry_the_value_type():
    T = typemap.pva_type(spec(type="short"))
    assert dict(T["display"].items())["limitLow"] == "h"
    assert dict(T["control"].items())["minStep"] == "h"
    assert dict(T["valueAlarm"].items())["highAlarmLimit"] == "h"
    assert dict(T["valueAlarm"].items())["hysteresis"] == "d"


@pytest.mark.parametrize("pvdb, low, high", [
    ({"type": "short", "lolim": -40000, "hilim": 40000}, 25536, -25536),
    ({"type": "char", "lolim": -3, "hilim": 300}, 253, 44),
    ({"type": "int", "lolim": -3, "hilim": 7.9, "pva": {"type": "uint16"}}, 65533, 7),
    ({"type": "int", "lolim": -200, "hilim": 200, "pva": {"type": "int8"}}, 56, -56),
    ({"type": "int", "lolim": -1e10, "hilim": 3e9}, -2**31, -2**31),
    ({"type": "short", "lolim": 0, "hilim": 1e10}, 0, 0),
    ({"type": "int", "lolim": -3, "hilim": 3e9, "pva": {"type": "uint32"}}, 2**32 - 3, 3 * 10**9),
])
def test_integer_limits_out_of_the_value_types_range_keep_their_low_bits(pvdb, low, high):
    """As CA serves pcaspy's limits and QSRV a record's: a C conversion, not a clamp."""
    s = spec(**pvdb)
    V = typemap.initial_value(s, s.meta, 0, 0, 0, 0, 0)
    assert (V["display.limitLow"], V["display.limitHigh"]) == (low, high)
    assert (V["control.limitLow"], V["control.limitHigh"]) == (low, high)


@pytest.mark.parametrize("pvdb", [{"type": "char"}, {"type": "char", "count": 4,
                                                      "pva": {"longstring": False}}])
def test_char_pvs_serve_no_alarm_limits_as_pcaspy_never_alarms_them(pvdb):
    s = spec(**pvdb, lolo=1, low=2, high=8, hihi=9)
    V = typemap.initial_value(s, s.meta, [0] * s.count if s.count > 1 else 0, 0, 0, 0, 0)
    assert [V[f"valueAlarm.{f}"] for f in ("lowAlarmLimit", "lowWarningLimit",
                                           "highWarningLimit", "highAlarmLimit")] == [0] * 4


@pytest.mark.parametrize("value, index", [(5, 5), (-1, 65535), (70000, 4464),
                                          (float("nan"), 0), (2.7, 2)])
def test_a_driver_enum_index_is_the_16_bits_ca_serves(value, index):
    s = spec(type="enum", enums=["a", "b"])
    V = typemap.initial_value(s, s.meta, 0, 0, 0, 0, 0)
    update = typemap.updater(s)
    update(V, value, 0, 0, 0, 0)
    assert V["value.index"] == index
    assert typemap.initial_value(s, s.meta, value, 0, 0, 0, 0)["value.index"] == index


def test_string_has_only_description_and_units():
    T = typemap.pva_type(spec(type="string"))
    assert [k for k, _ in T.items()] == ["value", "alarm", "timeStamp", "display"]
    assert [k for k, _ in T["display"].items()] == ["description", "units"]


@pytest.mark.parametrize("condition, severity, expected", [
    (0, 0, (0, 0, "")),
    (3, 2, (2, 1, "HIHI")),
    (6, 1, (1, 1, "LOW")),
    (7, 2, (2, 1, "STATE")),
    (9, 3, (3, 2, "COMM")),
    (10, 3, (3, 2, "TIMEOUT")),
    (17, 3, (3, 2, "UDF")),
    (15, 2, (2, 3, "SOFT")),
    (19, 1, (1, 4, "SIMM")),
    (3, 0, (0, 0, "")),  # a record never has STAT without SEVR: softioc's set(alarm=COMM,
    (9, 0, (0, 0, "")),  # severity=0) serves no alarm
])
def test_alarm_mapping_matches_qsrv(condition, severity, expected):
    assert typemap.alarm_fields(condition, severity) == expected


def test_epics_epoch_converts_to_posix():
    assert typemap.posix_time(0, 0) == (631152000, 0)
    assert typemap.posix_time(1, 5) == (631152001, 5)


def test_unset_alarm_limits_are_nan_for_doubles_and_zero_for_ints():
    V = typemap.initial_value(spec(type="float"), spec(type="float").meta, 1.0, 0, 0, 0, 0)
    assert math.isnan(V["valueAlarm.highAlarmLimit"])
    s = spec(type="float", lolo=1, hihi=9)
    V = typemap.initial_value(s, s.meta, 1.0, 0, 0, 0, 0)
    assert V["valueAlarm.lowAlarmLimit"] == 1.0 and V["valueAlarm.highAlarmLimit"] == 9.0
    assert math.isnan(V["valueAlarm.lowWarningLimit"])
    s = spec(type="int")
    assert typemap.initial_value(s, s.meta, 1, 0, 0, 0, 0)["valueAlarm.highAlarmLimit"] == 0


def test_updater_matches_reference_apply_update():
    s = spec(type="float", prec=2, lolo=1, low=2, high=8, hihi=9)  # no NaN: NaN != NaN
    fast = typemap.initial_value(s, s.meta, 0.0, 0, 0, 0, 0)
    slow = typemap.initial_value(s, s.meta, 0.0, 0, 0, 0, 0)
    up = typemap.updater(s)
    for args in [(1.5, 3, 2, 100, 7), (2.5, 0, 0, 101, 8), (3.5, 0, 0, 102, 9)]:
        up(fast, *args)
        typemap.apply_update(slow, s, *args)
        assert fast.todict() == slow.todict()


def test_char_scalar_and_long_string_values():
    c = spec(type="char")
    assert typemap.to_pva_value(c, "A") == 65
    assert typemap.to_pva_value(c, "") == 0
    ls = spec(type="char", count=16)
    assert typemap.to_pva_value(ls, [104, 105, 0, 120]) == "hi"
    assert typemap.to_pva_value(ls, "text") == "text"
    raw = spec(type="char", count=16, pva={"longstring": False})
    assert typemap.to_pva_value(raw, "AB") == [65, 66, 0]  # NUL-terminated, as CA serves it
    assert typemap.to_pva_value(spec(type="char", count=3, pva={"longstring": False}), "5\u20ac") == [53, 172, 0]
    assert typemap.to_pva_value(spec(type="char", count=2, pva={"longstring": False}), "abc") == [97, 98]


def test_long_strings_read_the_bytes_ca_serves():
    """A char array holds bytes (a str: each character's low byte, as pcaspy serves it to
    CA); PVA reads them as a CA client does: UTF-8 where they are, else Latin-1."""
    ls = spec(type="char", count=16)
    utf8 = "\u20acuro \u00fc".encode("utf-8")
    assert typemap.to_pva_value(ls, utf8.decode("latin-1")) == "\u20acuro \u00fc"  # a PVA put's form
    assert typemap.to_pva_value(ls, list(utf8)) == "\u20acuro \u00fc"
    assert typemap.to_pva_value(ls, "h\u00e9llo") == "h\u00e9llo"  # Latin-1 bytes: as they are
    assert typemap.to_pva_value(ls, "\u20acuro") == "\u00acuro"  # CA serves 0xAC for the euro sign
    assert typemap.to_pva_value(spec(type="char", count=2), utf8.decode("latin-1")) == ""  # half a char
    assert _put(ls, value="\u20acuro \u00fc") == utf8.decode("latin-1")  # what a CA put of those bytes gives
    assert _put(ls, value="plain") == "plain"
    assert _put(spec(type="string"), value="caf\u00e9") == "caf\u00e9"  # string PVs: CA's own UTF-8


# What pcaspy's CA server serves for odd driver values (read with pyepics from a real
# server): pvconsole's PVA side serves the same.
CA_SERVES = [
    ("int", 2**33 + 5, -2147483648), ("int", -2**33, -2147483648), ("int", 2**31, -2147483648),
    ("int", 1e12, -2147483648), ("int", np.bool_(True), 1), ("int", np.int64(2**40), -2147483648),
    ("int", 3.9, 3), ("short", 40000, -25536), ("short", -40000, 25536), ("short", 2**33, 0),
    ("float", 10**20, 1e20), ("string", 3.14159265358979, "3.1416"), ("string", 42, "42.0000"),
    ("string", 1234567.891, "1.23457e+06"), ("string", "x" * 45 + "END", "x" * 39),
    ("string", None, ""),
    # a device register read with np.frombuffer: a one-element array where a scalar is due
    ("float", np.frombuffer(b"\x00\x00\x20\x40", "<f4"), 2.5),
    ("int", np.frombuffer(b"\x07\x00", "<u2"), 7), ("float", [1.5], 1.5),
]


@pytest.mark.parametrize("ca_type,value,served", CA_SERVES)
def test_odd_driver_values_are_served_as_ca_serves_them(ca_type, value, served):
    s = spec(type=ca_type)
    assert typemap.to_pva_value(s, value) == served
    V = typemap.initial_value(s, s.meta, value, 0, 0, 0, 0)  # and p4p takes it
    assert V.value == served


@pytest.mark.parametrize("ca_type,values,served", [
    ("int", [2**33, 2**31, -2**31 - 1], [-2147483648] * 3),
    ("short", [40000, -40000, 70000], [-25536, 25536, 4464]),
    ("char", [300, -1, 65], [44, 255, 65]),
    ("float", [10**20, 2**70], [1e20, 2.0**70]),
    ("short", np.array([40000, 1], dtype=np.int64), [-25536, 1]),
])
def test_odd_array_values_are_served_as_ca_serves_them(ca_type, values, served):
    s = spec(type=ca_type, count=3, pva={"longstring": False} if ca_type == "char" else {})
    V = typemap.initial_value(s, s.meta, values, 0, 0, 0, 0)
    assert list(V.value) == served
    up = typemap.updater(s)
    up(V, [1, 2, 3], 0, 0, 0, 0)
    up(V, values, 0, 0, 0, 0)
    assert list(V.value) == served


def test_bytes_in_a_string_pv_are_text() -> None:
    """A script that stores a subprocess's output (bytes) in a string PV means the text."""
    s = spec(type="string")
    assert typemap.to_pva_value(s, b"out\n") == "out\n"
    assert typemap.to_pva_value(s, b"") == ""
    assert typemap.format_value(s, s.meta, b"") == ""


def _put(s, **fields):
    V = typemap.pva_type(s)()
    for k, v in fields.items():
        V[k] = v
    return typemap.put_to_driver(s, s.meta, V)


def test_put_conversions_match_what_ca_puts_deliver():
    assert _put(spec(type="float"), value=2) == 2.0
    assert _put(spec(type="int"), value=5) == 5
    assert _put(spec(type="char", count=8, pva={"longstring": False}), value=[72, 73, 0]) == "HI"
    assert _put(spec(type="char", count=64), value="long text") == "long text"
    assert _put(spec(type="float", count=3), value=[1, 2]) == [1.0, 2.0]
    e = spec(type="enum", enums=["a", "b", "c"])
    assert _put(e, **{"value.index": 2}) == 2


@pytest.mark.parametrize("info, fields, message", [
    ({"type": "enum", "enums": ["a", "b"]}, {"value.index": 2}, "out of range"),
    ({"type": "enum", "enums": ["a", "b"]}, {"value.index": -1}, "out of range"),
    ({"type": "enum", "enums": ["a", "b"]}, {"value.choices": ["zz"]}, "not one of"),
    ({"type": "float", "count": 2}, {"value": [1, 2, 3]}, "exceeds count 2"),
    ({"type": "string"}, {"value": "x" * 40}, "exceeds the limit of 39"),
    ({"type": "char", "count": 10}, {"value": "x" * 11}, "exceeds the limit of 10"),
    ({"type": "string", "count": 2}, {"value": ["a" * 45]}, "exceeds 39"),
])
def test_bad_puts_are_rejected_with_a_clear_message(info, fields, message):
    with pytest.raises(PutRejected, match=message):
        _put(spec(**info), **fields)


def test_an_enum_without_choices_takes_any_index_ca_carries():
    e = spec(type="enum")
    assert _put(e, **{"value.index": 7}) == 7
    assert typemap.coerce_enum_string(e, e.meta, "3") == 3
    with pytest.raises(PutRejected, match="out of range 0..65535"):
        _put(e, **{"value.index": -1})


def test_enum_choice_string_put_is_accepted():
    assert _put(spec(type="enum", enums=["a", "b"]), **{"value.choices": ["b"]}) == 1


@pytest.mark.parametrize("info, message", [
    ({"type": "double"}, "unknown type"),
    ({"count": -1}, "count must be >= 0"),
    ({"count": "many"}, "count must be an integer"),
    ({"pva": {"exposed": True}}, "unknown 'pva' keys"),
])
def test_bad_pvdb_entries_name_the_pv(info, message):
    with pytest.raises(MappingError, match=f"P:X: .*{message}"):
        spec(**info)


@pytest.mark.parametrize("enums, choices", [
    (["Idle", "", "Run", ""], ["Idle", "", "Run"]),  # QSRV's mbbi: trailing empty states go
    ([""], []),
    (["", "B"], ["", "B"]),
    ([], []),
])
def test_enum_choices_lose_trailing_empty_states_as_qsrv_serves_them(enums, choices):
    s = spec(type="enum", enums=enums)
    assert typemap.meta_fields(s, s.meta)["value"]["choices"] == choices
    if len(enums) == 4:  # a put takes every index pcaspy takes, as a CA put does
        assert _put(s, **{"value.index": 3}) == 3


def test_enums_are_truncated_like_pcaspy():
    s = spec(type="enum", enums=[f"s{i}" for i in range(20)])
    assert len(s.meta.enums) == 16


@pytest.mark.parametrize("info, value, text", [
    ({"type": "float", "prec": 2, "unit": "V"}, 1.23456, "1.23 V"),
    ({"type": "float", "prec": 2, "unit": "mbar"}, 2.3456e-8, "2.35e-08 mbar"),
    ({"type": "float", "prec": 0}, 0.004, "4.0e-03"),
    ({"type": "float", "prec": 2}, 0.0, "0.00"),
    ({"type": "float", "prec": 1}, 3e20, "3.0e+20"),
    ({"type": "enum", "enums": ["Off", "On"]}, 1, "On"),
    ({"type": "int", "count": 8}, list(range(8)), "[0, 1, 2, 3, …] (8)"),
    ({"type": "char", "count": 20}, "hello", "hello"),
])
def test_format_value(info, value, text):
    s = spec(**info)
    assert typemap.format_value(s, s.meta, value) == text


def test_an_image_in_a_waveform_is_served_flat_and_cut_to_count():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    s = spec(type="char", count=100000)  # large: data, not text
    assert s.kind == "array"
    assert list(typemap.initial_value(s, s.meta, img, 0, 0, 0, 0).value) == list(range(12))
    f = spec(type="float", count=5)
    V = typemap.initial_value(f, f.meta, np.ones((2, 4)), 0, 0, 0, 0)
    assert list(V.value) == [1.0] * 5


@pytest.mark.parametrize("info, text", [
    ({"type": "char", "count": 256}, True),
    ({"type": "char", "count": 256, "value": "ready"}, True),
    ({"type": "char", "count": 256, "value": [1, 2, 3]}, False),
    ({"type": "char", "count": 800000}, False),
    ({"type": "char", "count": 800000, "pva": {"longstring": True}}, True),
    ({"type": "char", "count": 65536}, True),
])
def test_which_char_arrays_are_text(info, text):
    assert (spec(**info).kind == "string") is text


def test_driver_timestamps_as_posix_seconds_are_understood():
    from pcaspy import cas

    stamp = cas.epicsTimeStamp()
    stamp.secPastEpoch, stamp.nsec = 5, 7
    assert typemap.stamp_parts(stamp) == (5, 7)
    assert typemap.stamp_parts(1700000000.5) == (1700000000 - 631152000, 500_000_000)
    assert typemap.stamp_parts(np.float64(1700000000.5)) == (1700000000 - 631152000, 500_000_000)
    assert typemap.stamp_parts(np.int64(1700000000)) == (1700000000 - 631152000, 0)
    assert typemap.stamp_parts(0) == (0, 0)  # before the EPICS epoch: never processed
    for bad in ("yesterday", None, float("nan"), True):
        with pytest.raises(TypeError):
            typemap.stamp_parts(bad)


def test_pva_flags_given_as_text_are_an_error():
    """{'readonly': 'no'} made the PV read-only over PVA (bool('no') is True)."""
    with pytest.raises(MappingError, match="'readonly' must be a bool, not 'no'"):
        spec_from_pvdb("P:", "X", {"pva": {"readonly": "no"}})
    with pytest.raises(MappingError, match="'description' must be a str"):
        spec_from_pvdb("P:", "X", {"pva": {"description": 5}})
    assert spec_from_pvdb("P:", "X", {"pva": {"readonly": 1, "expose": True}}).readonly


def test_nan_into_an_integer_array_warns_nothing(recwarn):
    spec = spec_from_pvdb("P:", "W", {"type": "int", "count": 3})
    V = typemap.initial_value(spec, spec.meta, [0, 0, 0], 0, 0, 0, 0)
    typemap.apply_update(V, spec, np.array([float("nan"), 1e12, 2.0]), 0, 0, 0, 0)
    assert list(V.value) == [-2**31, -2**31, 2] and not [w for w in recwarn if "cast" in str(w.message)]


def test_enum_choices_are_cut_to_cas_25_bytes_on_a_character():
    """CA's enum strings hold 25 bytes: 20 'ü' (40 bytes) were served whole on PVA."""
    meta = typemap.meta_from_info({"type": "enum", "enums": ["Größe", "ü" * 20]})
    assert meta.enums == ("Größe", "ü" * 12)


def test_an_array_with_alarm_limits_serves_them():
    """pcaspy raises an array's alarm on any element: its valueAlarm limits say why."""
    s = spec(type="float", count=4, lolo=1, low=2, high=8, hihi=9)
    fields = typemap.meta_fields(s, typemap.meta_from_info({"lolo": 1, "low": 2, "high": 8, "hihi": 9}))
    assert fields["valueAlarm"] == {"lowAlarmLimit": 1.0, "highAlarmLimit": 9.0,
                                    "lowWarningLimit": 2.0, "highWarningLimit": 8.0}
    assert "valueAlarm" not in typemap.meta_fields(s, typemap.meta_from_info({}))
