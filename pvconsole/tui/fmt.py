"""Pure formatting helpers shared by the screens (no widgets, easy to test)."""

from __future__ import annotations

import re
import time
from functools import lru_cache
from datetime import datetime, timezone, tzinfo
from typing import Any

from rich._emoji_codes import EMOJI
from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

from ..typemap import ALARM_CONDITIONS, SEVERITY_NAMES

#: Alarm colours the EPICS way (MEDM/Phoebus): MINOR yellow, MAJOR red, INVALID magenta.
#: Truecolor, not ANSI names: themes remap ANSI yellow/magenta to orange/pink. Light themes
#: get darker shades so the text stays readable on white.
SEVERITY_STYLES_DARK = ("", "bold #ffd700", "bold #ff3b3b", "bold #ff40ff")
SEVERITY_STYLES_LIGHT = ("", "bold #8a6a00", "bold #c00000", "bold #a000a0")
#: The alarm column is a badge, readable on both themes.
SEVERITY_BADGES = ("", "bold #000000 on #ffd700", "bold #ffffff on #d00000",
                   "bold #ffffff on #b000b0")

EXPOSURE_LABELS = {"on": "on", "off": "off", "ro": "ro"}
EXPOSURE_STYLES_DARK = {"on": "green", "off": "bright_black", "ro": "cyan"}
EXPOSURE_STYLES_LIGHT = {"on": "green4", "off": "grey35", "ro": "dark_cyan"}  # (grey50: hard to read)


#: Characters a terminal acts on instead of showing: C0 controls as their Control
#: Pictures (``\x1b`` -> ␛, ``\n`` -> ␊), DEL as ␡, C1 controls (``\x9b`` is CSI to some
#: terminals) and the bidirectional overrides (they reorder the line) as U+FFFD.
_VISIBLE = {**{c: 0x2400 + c for c in range(0x20)}, 0x7F: 0x2421,
            **{c: 0xFFFD for c in (*range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))}}


def visible(text: str) -> str:
    """``text`` with nothing a terminal would act on: values, names, units, log lines and
    put texts come from plugins and clients, and an escape sequence in one (``\x1b[2J``)
    cleared the operator's screen; a newline hid the rest of a cell."""
    return text if text.isprintable() else text.translate(_VISIBLE)


#: Rich's emoji-code pattern (``:x:``, ``:on:``): PV names are full of colons
_EMOJI_CODE = re.compile(r":(\S*?)(?:(?:\-)(?:emoji|text))?:")


@lru_cache(maxsize=32768)
def has_markup(text: str) -> bool:
    """Whether Rich or Textual would change ``text`` when they parse a ``str`` as markup:
    a tag (``[red]``) or an emoji code (``SR:X:POS`` holds ``:x:``). Cached: a row's
    names are asked about when the row is made and again when its cells are drawn."""
    return "[" in text or (":" in text and any(m.group(1).lower() in EMOJI
                                               for m in _EMOJI_CODE.finditer(text)))


def literal(text: str) -> str | Text:
    """``text`` to be shown as it is: PV names, values, client names and error texts come
    from plugins and clients, and a ``str`` in a table cell or a Rich table is markup."""
    text = visible(text)
    return Text(text) if has_markup(text) else text


def severity_style(severity: int, dark: bool = True) -> str:
    """Rich style of an alarm severity."""
    styles = SEVERITY_STYLES_DARK if dark else SEVERITY_STYLES_LIGHT
    return styles[severity] if 0 <= severity < len(styles) else styles[3]


def severity_text(severity: int, dark: bool = True, condition: int | None = None,
                  width: int = 0) -> Text:
    """The severity name, coloured; empty for NO_ALARM so alarms stand out. With
    ``condition``, its name too (``MAJOR HIHI``: why), cut to ``width``."""
    if severity <= 0:
        return Text("")
    name = SEVERITY_NAMES[severity] if severity < len(SEVERITY_NAMES) else str(severity)
    if condition is not None:
        cond = ALARM_CONDITIONS[condition] if 0 <= condition < len(ALARM_CONDITIONS) else str(condition)
        name = f"{name} {cond}"[:max(1, width - 2)] if width else f"{name} {cond}"
    return Text(f" {name} ", style=SEVERITY_BADGES[min(severity, 3)])


def alarm_description(severity: int, condition: int) -> str:
    """'MAJOR (HIHI)' style text for details views."""
    sev = SEVERITY_NAMES[severity] if 0 <= severity < len(SEVERITY_NAMES) else str(severity)
    cond = ALARM_CONDITIONS[condition] if 0 <= condition < len(ALARM_CONDITIONS) else str(condition)
    return sev if severity == 0 and condition == 0 else f"{sev} ({cond})"


def value_text(text: str, severity: int, dark: bool = True, width: int = 28) -> Text:
    """A value cell: cut to ``width`` and coloured by alarm, as alarm-sensitive displays do."""
    return Text(cut(text, width), style=severity_style(severity, dark))


def exposure_text(mode: str, dark: bool = True) -> Text:
    """The PVA exposure of a PV ('on', 'off', 'ro'), coloured."""
    styles = EXPOSURE_STYLES_DARK if dark else EXPOSURE_STYLES_LIGHT
    return Text(EXPOSURE_LABELS.get(mode, mode), style=styles.get(mode, ""))


def clock_time(ts: float, tz: tzinfo | None = None) -> str:
    """HH:MM:SS.mmm of a POSIX time; '—' for never (pcaspy's zero timestamp)."""
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S.%f")[:-3]


def full_time(ts: float, tz: tzinfo | None = None) -> str:
    """Date and time with milliseconds and zone, for details views."""
    if not ts:
        return "never (no update since start)"
    dt = datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + dt.strftime(" %Z")


def iso_seconds(iso: str) -> float:
    """A put-log ISO time -> POSIX seconds (inf when it does not parse: not earlier)."""
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return float("inf")
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def iso_clock(iso: str, tz: tzinfo | None = None, now: float | None = None) -> str:
    """A put-log ISO time -> local HH:MM:SS.mmm, with MM-DD before it when it is not of
    today (``now``, POSIX seconds; default the current time): the date is noise in a
    live log, but the log holds earlier runs' puts too, and yesterday's must not read as
    tonight's."""
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    local = dt.astimezone(tz)
    today = datetime.fromtimestamp(time.time() if now is None else now, local.tzinfo).date()
    clock = local.strftime("%H:%M:%S.%f")[:-3]
    return clock if local.date() == today else f"{local:%m-%d} {clock}"


def middle_cut(text: str, width: int) -> str:
    """``text`` in ``width`` characters, shortened in its middle: a PV name's prefix and
    its last fields are what tell it from the others."""
    text = visible(text)
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return f"{text[:head]}…{text[len(text) - (width - 1 - head):]}"


def _head_cells(text: str, cells: int) -> str:
    """The longest start of ``text`` that takes at most ``cells`` terminal cells."""
    used = 0
    for i, ch in enumerate(text):
        used += get_character_cell_size(ch)
        if used > cells:
            return text[:i]
    return text


def cut(text: str, width: int) -> str:
    """``text`` in ``width`` terminal cells, an ellipsis marking a cut (a CJK character or
    an emoji takes two: cut by characters, the cell cut the ellipsis off); an array's
    summary (``[1, 2, 3, …] (8)``) keeps its closing bracket and its count."""
    text = visible(text)
    cells = len(text) if text.isascii() else cell_len(text)
    if cells <= width:
        return text
    if cells != len(text):
        return _head_cells(text, width - 1) + "…"
    head, sep, count = text.rpartition("] (")
    tail = "…] (" + count
    if sep and text.startswith("[") and text.endswith(")") and len(tail) <= width // 2:
        kept = head[: width - len(tail)]
        if head[len(kept)] not in ", " and ", " in kept:  # whole items only
            kept = kept[: kept.rfind(", ")]
        return kept.rstrip(", …") + tail
    return text[: width - 1] + "…"


def listing(items: list[str], width: int) -> str:
    """'a, b, …': the items that fit in ``width`` characters (the first one at least, cut)."""
    shown = ""
    for n in range(1, len(items) + 1):
        text = ", ".join(items[:n]) + (", …" if n < len(items) else "")
        if len(text) > width and shown:
            break
        shown = text
    return cut(shown, width)


def short(value: Any, width: int = 24) -> str:
    """repr-free short rendering of a put value: a list as the elements that fit, then
    its length."""
    if value is None:
        return "—"
    if not isinstance(value, (list, tuple)):
        return cut(f"{value:.6g}" if isinstance(value, float) else str(value), width)
    count = f" ({len(value)})"
    items = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in value]
    return f"[{listing(items, width - len(count) - 2)}]{count}"


def duration(seconds: float) -> str:
    """Compact uptime: '45s', '12m03s', '3h07m', '2d04h'."""
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def rate(value: float) -> str:
    """Updates per second, short: '0', '12', '1.2k', '35k'."""
    if value < 1000:
        return f"{value:.0f}"
    if value < 10000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1000:.0f}k"


def count(value: int) -> str:
    """A running total, short: '950', '12.3k', '4.56M' (the header's post counters)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)


def bytes_rate(value: float) -> str:
    """Bytes per second, short: '80B/s', '1.2kB/s', '3.4MB/s'."""
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}/s"
    return f"{value:.0f}B/s"


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural when it is not 1 ("1 put", "2 puts")."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
