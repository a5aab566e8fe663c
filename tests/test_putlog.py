"""The put log keeps every put, bounded in size (pure: no servers)."""

from __future__ import annotations

import json

import numpy as np

from pvconsole.putlog import ARRAY_ITEMS, TEXT_CHARS, PutLog, PutRecord, PutResult, plain


def test_small_values_are_kept_whole():
    assert plain(1.5) == 1.5
    assert plain(np.float32(2.5)) == 2.5 and type(plain(np.float32(2.5))) is float
    assert plain([1, 2, 3]) == [1, 2, 3]
    assert plain(np.arange(ARRAY_ITEMS)) == list(range(ARRAY_ITEMS))
    assert plain("text") == "text"


def test_large_arrays_and_text_are_summarised():
    big = np.arange(1_000_000, dtype=np.float64)
    assert plain(big) == "[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, … (1,000,000 × float64)]"
    assert plain(list(range(100))).endswith("… (100 × list)]")
    long = "x" * (TEXT_CHARS + 10)
    assert plain(long) == "x" * TEXT_CHARS + f"… ({TEXT_CHARS + 10:,} chars)"


def test_a_put_of_a_huge_waveform_is_one_short_line(tmp_path):
    """A million-point put made the log line 40 MB (each put rotated the file, the audit
    history went with it) and took seconds on the driver thread."""
    log = PutLog(tmp_path / "putlog.jsonl", rotate_bytes=10_000)
    for _ in range(3):
        rec = PutRecord.start("W:TABLE", "pva", "op@host", np.zeros(1_000_000), np.ones(1_000_000))
        rec.finish(PutResult.ACCEPTED)
        log.append(rec)
    lines = (tmp_path / "putlog.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(len(line) < 500 for line in lines)
    assert json.loads(lines[0])["requested"].endswith("(1,000,000 × float64)]")


def test_puts_of_earlier_runs_are_not_counted_as_this_runs(tmp_path):
    """The header said 'puts 77' right after a restart: the puts read back from the file."""
    path = tmp_path / "putlog.jsonl"
    first = PutLog(path)
    for value in (1, 2):
        rec = PutRecord.start("X:A", "ca", "op@host", 0, value)
        rec.finish(PutResult.ACCEPTED)
        first.append(rec)
    first.close()
    second = PutLog(path)
    assert (second.seq, second.loaded, second.since_start) == (2, 2, 0)
    rec = PutRecord.start("X:A", "pva", "op@host", 2, 3)
    rec.finish(PutResult.ACCEPTED)
    second.append(rec)
    assert second.since_start == 1 and [r.seq for r in second.tail(5)] == [1, 2, 3]
    second.close()


def test_a_put_of_another_day_shows_its_date():
    from datetime import datetime, timezone

    from pvconsole.tui.fmt import iso_clock

    now = datetime(2026, 12, 2, 1, 30, tzinfo=timezone.utc).timestamp()
    assert iso_clock("2026-12-02T01:02:03.456+00:00", timezone.utc, now) == "01:02:03.456"
    assert iso_clock("2026-12-01T23:59:58.000+00:00", timezone.utc, now) == "12-01 23:59:58.000"


def test_a_puts_values_read_as_the_pv_is_shown():
    """A put to an enum logged "1 → 2" where the table shows "On" and "Fault"."""
    from pvconsole import typemap
    from pvconsole.putlog import shown
    from pvconsole.tui.widgets.putlog import change_text

    mode = typemap.spec_from_pvdb("PSU:", "MODE", {"type": "enum", "enums": ["Off", "On", "Fault"]})
    volt = typemap.spec_from_pvdb("PSU:", "VOLT", {"prec": 2, "unit": "V"})
    wave = typemap.spec_from_pvdb("PSU:", "WAVE", {"count": 1000})
    msg = typemap.spec_from_pvdb("PSU:", "MSG", {"type": "string"})
    assert [shown(mode, mode.meta, v) for v in (1, "Fault", 7)] == ["On", "Fault", "<7>"]
    assert shown(volt, volt.meta, None) == "—" and shown(volt, volt.meta, 1.23456) == "1.23 V"
    assert shown(wave, wave.meta, np.arange(1000.0)).endswith("(1,000 × float64)]")
    assert shown(volt, volt.meta, np.array(3.0)) == "3.00 V"  # 0-d: len() raised
    rec = PutRecord.start("PSU:MSG", "ca", "op@host", "a → b", "c")  # the arrow in a value
    rec.describe(msg, msg.meta, "a → b", "c")
    assert change_text(rec, 20) == "a → b → c" and (rec.old_text, rec.requested_text) == ("a → b", "c")
