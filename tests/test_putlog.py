"""The put log keeps every put, bounded in size (pure: no servers)."""

from __future__ import annotations

import json

import numpy as np

from pvconsole.putlog import ARRAY_ITEMS, TEXT_CHARS, PutLog, PutRecord, PutResult, _plain


def test_small_values_are_kept_whole():
    assert _plain(1.5) == 1.5
    assert _plain(np.float32(2.5)) == 2.5 and type(_plain(np.float32(2.5))) is float
    assert _plain([1, 2, 3]) == [1, 2, 3]
    assert _plain(np.arange(ARRAY_ITEMS)) == list(range(ARRAY_ITEMS))
    assert _plain("text") == "text"


def test_large_arrays_and_text_are_summarised():
    big = np.arange(1_000_000, dtype=np.float64)
    assert _plain(big) == "[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, … (1,000,000 × float64)]"
    assert _plain(list(range(100))).endswith("… (100 × list)]")
    long = "x" * (TEXT_CHARS + 10)
    assert _plain(long) == "x" * TEXT_CHARS + f"… ({TEXT_CHARS + 10:,} chars)"


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
