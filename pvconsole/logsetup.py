"""The process's logging: one handler for pvconsole and its plugins, that plugins keep.

Plugins run in pvconsole's process, so the root logger they configure is pvconsole's. Two
things keep an unmodified IOC script's logging working without taking pvconsole's away:

* pvconsole's own loggers have the handler too and do not propagate: a plugin's
  ``logging.basicConfig(force=True, ...)`` (or one that replaces the root's handlers)
  cannot silence the console's log or send it into the plugin's file.
* ``logging.basicConfig`` configures the root as in a process of the plugin's own: its
  ``filename``/``handlers``/``stream`` are added beside the console's handler (plain
  logging would find a handler there and do nothing), its ``level`` applies. A handler
  that would write to stderr or stdout is left out: those are the console's log already,
  it would log every record twice.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Loggers of pvconsole itself: never propagate to the root, which plugins configure.
OWN = "pvconsole"
#: Libraries' levels whatever level a plugin gives the root: (logger, -v count that
#: shows its debug messages, its level below that). p4p logs every put at DEBUG.
LIBRARIES = (("pcaspy", 1, logging.WARNING), ("p4p", 2, logging.INFO))

_console: list[logging.Handler] = []
_basic_config = logging.basicConfig


def install(handler: logging.Handler, verbose: int) -> None:
    """Make ``handler`` the console's log: the root's only handler and pvconsole's own."""
    _console[:] = [handler]
    logging.getLogger().handlers[:] = [handler]
    own = logging.getLogger(OWN)
    own.handlers[:] = [handler]
    own.propagate = False
    set_levels(verbose)
    logging.basicConfig = basic_config


def set_levels(verbose: int) -> None:
    """-v: pcaspy's debug messages; -vv: everything at debug level."""
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.getLogger().setLevel(level)
    logging.getLogger(OWN).setLevel(level)
    for name, needs, quiet in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= needs else quiet)


def basic_config(**kwargs: Any) -> None:
    """``logging.basicConfig`` for plugins (see the module docstring)."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if h in _console]
    root.handlers[:] = [h for h in root.handlers if h not in ours]
    try:
        _basic_config(**kwargs)
    finally:
        added = [h for h in root.handlers if h not in ours and not _to_log(h)]
        root.handlers[:] = ours + added


def _to_log(handler: logging.Handler) -> bool:
    """A handler writing to stdout or stderr: captured into the console's log already."""
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
