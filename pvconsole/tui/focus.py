"""Focus that has moved before the next key is routed."""

from __future__ import annotations

from textual.widget import Widget


def focus_now(widget: Widget) -> None:
    """Focus ``widget`` at once (``Widget.focus()`` only schedules it behind the keys the
    App already holds; see ``PvConsoleApp.on_event``)."""
    widget.screen.set_focus(widget)
