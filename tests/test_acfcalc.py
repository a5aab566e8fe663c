"""EPICS calc expressions of ACF CALC conditions (pure)."""

from __future__ import annotations

import math

import pytest

from pvconsole import acfcalc


@pytest.mark.parametrize("text, inputs, value", [
    ("A#1", {"A": 1}, 0.0), ("A#1", {"A": 0}, 1.0), ("A!=1", {"A": 2}, 1.0),
    ("A=1", {"A": 1}, 1.0), ("A==1", {"A": 2}, 0.0),
    ("!A", {"A": 0}, 1.0), ("!A", {"A": 3}, 0.0),
    ("A<1&&A>=0", {"A": 0.5}, 1.0), ("A=1&&B=0", {"A": 1, "B": 0}, 1.0),
    ("A||B", {"A": 0, "B": 2}, 1.0), ("A|B", {"A": 1, "B": 2}, 3.0),
    ("A&B", {"A": 3, "B": 6}, 2.0), ("A AND B", {"A": 3, "B": 6}, 2.0),
    ("A XOR B", {"A": 3, "B": 6}, 5.0), ("~A", {"A": 0}, -1.0),
    ("A^2", {"A": 3}, 9.0), ("A**2", {"A": 3}, 9.0),
    ("2+3*4", {}, 14.0), ("(2+3)*4", {}, 20.0), ("7%3", {}, 1.0), ("1<<4", {}, 16.0),
    ("A?2:3", {"A": 1}, 2.0), ("A?2:B?4:5", {"A": 0, "B": 0}, 5.0),
    ("MAX(A,B,C)", {"A": 1, "B": 5, "C": 2}, 5.0), ("MIN(A,3)", {"A": 4}, 3.0),
    ("ABS(A-1)<0.5", {"A": 1.2}, 1.0), ("A>?B", {"A": 1, "B": 2}, 2.0),
    ("0x10", {}, 16.0), ("1e3", {}, 1000.0), ("a=1", {"A": 1}, 1.0),
    ("NINT(2.5)", {}, 3.0), ("FLOOR(-0.5)", {}, -1.0), ("ISNAN(A)", {"A": math.nan}, 1.0),
    ("1/0", {}, math.inf),
])
def test_values_follow_epics_calc(text, inputs, value):
    assert acfcalc.evaluate(acfcalc.parse(text), inputs) == value


@pytest.mark.parametrize("result, applies", [(1.0, True), (1.005, True), (2.0, False),
                                             (0.5, False), (-1.0, False), (math.nan, False)])
def test_a_rule_applies_only_when_its_calc_gives_1(result, applies):
    """asLib: (result > .99) && (result < 1.01); p4p's engine took any non-zero result."""
    assert acfcalc.grants(acfcalc.parse("A"), {"A": result}) is applies


@pytest.mark.parametrize("text", ["", "A+", "(A", "A)", "FOO(A)", "M", "A B", "MAX()", "ATAN2(A)", "A=:1"])
def test_what_epics_would_not_take_is_refused(text):
    with pytest.raises(acfcalc.CalcError):
        acfcalc.parse(text)


def test_inputs_used_are_the_letters_read():
    assert acfcalc.inputs_used(acfcalc.parse("A#1 && MAX(B, PI) > C")) == {"A", "B", "C"}
