"""The base of the main screen's views: a column its children cover entirely."""

from __future__ import annotations

from textual.containers import Vertical


class Pane(Vertical):
    """A view's column, drawn as one blank line repeated (Textual's ``BLANK``).

    Its children cover it, so its own lines never show; drawing them line by line, as
    every time the view is shown again, was ~1.2 ms of a view switch.
    """

    BLANK = True
