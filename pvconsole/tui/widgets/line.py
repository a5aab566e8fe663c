"""Setting the text of a one-line status widget without costing the screen a layout."""

from __future__ import annotations

from textual.visual import VisualType
from textual.widgets import Static


def show_line(static: Static, content: VisualType) -> None:
    """Show ``content`` in a Static whose size the CSS fixes (height 1, fixed or fractional
    width). ``Static.update`` lays out the whole screen by default, even for the same
    text: the status lines change every second, the view bars on every poll."""
    if static.content != content:
        static.update(content, layout=False)
