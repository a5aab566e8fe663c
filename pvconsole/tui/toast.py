"""Toasts that show one row in full (Enter on a put or on a client)."""

from __future__ import annotations

from textual.app import App

#: The titles of the toasts shown of each kind, per app.
_SHOWN_ATTR = "_pvconsole_toasts"


def show_in_full(app: App, kind: str, text: str, title: str, timeout: float) -> None:
    """Show ``text`` as a toast in place of those of its ``kind`` ('put', 'client')
    still shown: Enter on row after row stacked them up to the screen's height. Other
    toasts (warnings) stay.

    Uses Textual's notification list (``App._notifications``, ``App._unnotify``): it has
    no public way to remove one toast; without them, toasts stack as before."""
    titles: set[str] = app.__dict__.setdefault(_SHOWN_ATTR, {}).setdefault(kind, set())
    notifications = getattr(app, "_notifications", None)
    if notifications is not None and hasattr(app, "_unnotify"):
        for old in [n for n in notifications if n.title in titles]:
            app._unnotify(old, refresh=False)
    titles.add(title)
    app.notify(text, title=title, timeout=timeout)
