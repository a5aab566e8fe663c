"""The key bar: the focused view's key bindings in one line, as Textual's Footer shows them.

Textual's Footer is a widget per key and recomposes all of them whenever the active
bindings change, that is on every view switch (the focused table changes): about a third
of a switch's time with 18 keys. This bar is one widget that redraws one line, and only
when the hints it shows changed.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

#: Bars kept drawn (one per view and dialog, times the sizes seen).
DRAWN_KEPT = 16


def hints(active_bindings: Any, key_display: Any) -> list[tuple[str, str, bool]]:
    """(key, description, enabled) per shown action (its first key), in binding order.

    ``active_bindings`` is ``Screen.active_bindings``; ``key_display(binding)`` the app's
    key display.
    """
    seen: set[str] = set()
    out: list[tuple[str, str, bool]] = []
    for _node, binding, enabled, _tooltip in active_bindings.values():
        if not binding.show or binding.action in seen:
            continue
        seen.add(binding.action)
        out.append((key_display(binding), binding.description, enabled))
    return out


class KeyBar(Widget):
    """One line of key hints for the screen's focused widget (see the module docstring)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"keybar--key", "keybar--description", "keybar--palette"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._hints: tuple = ()
        self._drawn: dict[tuple, list[Strip]] = {}

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        shown = hints(screen.active_bindings, self.app.get_key_display)
        palette = None
        if self.app.ENABLE_COMMAND_PALETTE:
            entry = screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if entry is not None:
                palette = (self.app.get_key_display(entry[1]), entry[1].description)
        current = (tuple(shown), palette)
        if current != self._hints:  # most focus changes keep the same keys
            self._hints = current
            self.refresh()

    def notify_style_update(self) -> None:
        """New styles (a theme switch reaches them after ``app.theme`` changed): the kept
        lines were drawn with the old ones."""
        self._drawn.clear()
        super().notify_style_update()

    def render_lines(self, crop: Region) -> list[Strip]:
        """Each view's bar is drawn once per size and styles: a view switch changes the
        hints, and drawing the line anew was ~1.2 ms of the switch."""
        key = (self._hints, crop, self.size)
        strips = self._drawn.get(key)
        if strips is None:
            if len(self._drawn) >= DRAWN_KEPT:
                self._drawn.clear()
            strips = self._drawn[key] = super().render_lines(crop)
        return strips

    def render(self) -> RenderResult:
        shown, palette = self._hints or ((), None)
        key_style = self.get_component_rich_style("keybar--key")
        description_style = self.get_component_rich_style("keybar--description")
        line = Text(no_wrap=True, overflow="crop", end="")
        for key, description, enabled in shown:
            start = len(line)
            line.append(f" {key} ", key_style)
            if description:
                line.append(f"{description} ", description_style)
            if not enabled:
                line.stylize("dim", start)
        if palette is not None:
            key, description = palette
            tail = Text.assemble((f" {key} ", key_style), (f"{description} ", description_style))
            room = self.size.width - line.cell_len - tail.cell_len
            if room > 0:
                line.append(" " * room)
                line.append_text(tail)
        return line
