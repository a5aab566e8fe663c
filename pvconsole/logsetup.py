"""The process's logging: one handler for pvconsole and its plugins, that plugins keep.

Plugins run in pvconsole's process, so the root logger they configure is pvconsole's.
What keeps an unmodified IOC script's logging working without taking pvconsole's away:

* The console's own records (pvconsole's loggers, what plugins print, what the C libraries
  print) go to the console's handler on loggers that do not propagate and have levels of
  their own: no level, handler or ``dictConfig`` a plugin gives the root loses them or
  sends them into the plugin's file.
* ``logging.basicConfig`` configures the root as in a process of the plugin's own: its
  ``filename``/``handlers``/``stream`` are added beside the console's handler (plain
  logging found a handler there and did nothing), its ``level`` applies. A stream that is
  stdout or stderr gets no handler: that output is the console's log already.
* A handler a plugin adds (``addHandler``, ``basicConfig``, ``dictConfig``) that writes to
  stdout or stderr (a ``RichHandler``, a module logger's own ``StreamHandler``) writes
  nothing there for the records the console's handler logs too: they would be logged
  twice. For a logger that does not propagate, it writes into the log as before.
* The console's handler shows a plugin's records from the root's level up, as the
  plugin's own stderr would have (a logger set to DEBUG for a file handler of its own
  does not fill the console's log with DEBUG records).

One process has one root logger: the first plugin's ``basicConfig`` configures it for
every plugin, a second one's does nothing (its file is not made), as two ``basicConfig``
calls in one script do; a plugin that needs a file of its own adds a handler to its own
logger.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
from typing import Any

from . import fdcapture

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: The console's own records: pvconsole's loggers and the captured output's.
CONSOLE_LOGGERS = ("pvconsole", "stdout", "stderr", "epics")
#: Libraries' levels whatever level a plugin gives the root: (logger, -v count that
#: shows its debug messages, its level below that). p4p logs every put at DEBUG.
LIBRARIES = (("pcaspy", 1, logging.WARNING), ("p4p", 2, logging.INFO))

#: logging.basicConfig's default format per style.
BASIC_FORMATS = {"%": logging.BASIC_FORMAT, "{": "{levelname}:{name}:{message}",
                 "$": "${levelname}:${name}:${message}"}

_console: list[logging.Handler] = []
_lock = threading.Lock()  # one configuration at a time (plugins load on several threads)
_basic_config = logging.basicConfig
_dict_config = logging.config.dictConfig
_file_config = logging.config.fileConfig
_add_handler = logging.Logger.addHandler


def install(handler: logging.Handler, verbose: int) -> None:
    """Make ``handler`` the console's log: the root's handler and the console loggers'."""
    _console[:] = [handler]
    handler.addFilter(_root_level)
    logging.getLogger().handlers[:] = [handler]
    _keep_console()
    set_levels(verbose)
    logging.basicConfig = basic_config
    logging.config.dictConfig = dict_config
    logging.config.fileConfig = file_config
    logging.Logger.addHandler = add_handler  # type: ignore[method-assign]


def add_handler(logger: logging.Logger, handler: logging.Handler) -> None:
    """``Logger.addHandler``: a plugin's handler, with what it writes to stdout/stderr
    dropped where the console's handler shows the record anyway (see :func:`_unlogged`)."""
    _add_handler(logger, handler if handler in _console else _unlogged(handler))


def _own(name: str) -> bool:
    """A record of the console's own loggers or of the libraries it sets the level of."""
    top = name.split(".", 1)[0]
    return top in CONSOLE_LOGGERS or any(top == lib for lib, _, _ in LIBRARIES)


def _root_level(record: logging.LogRecord) -> bool:
    """The console's handler shows a plugin's records from the root's level up: a plugin
    logger set to DEBUG for a handler of its own propagates its DEBUG records to the root's
    handlers, which a plugin's own process has none of."""
    return _own(record.name) or record.levelno >= logging.getLogger().level


def _shown_by_console(record: logging.LogRecord) -> bool:
    """Whether the console's handler logs ``record`` (its logger propagates to it)."""
    logger: Any = logging.getLogger(record.name) if record.name != "root" else logging.getLogger()
    while logger is not None:
        if any(h in _console for h in logger.handlers):
            return _root_level(record)
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def set_levels(verbose: int) -> None:
    """-v: pcaspy's debug messages; -vv: everything at debug level."""
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.getLogger().setLevel(level)
    for name in CONSOLE_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name, needs, quiet in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= needs else quiet)


def basic_config(**kwargs: Any) -> None:
    """``logging.basicConfig`` for plugins (see the module docstring); the same arguments,
    the same errors."""
    with _lock:
        root = logging.getLogger()
        force = kwargs.pop("force", False)
        encoding = kwargs.pop("encoding", None)
        errors = kwargs.pop("errors", "backslashreplace")
        if force:
            for h in [h for h in root.handlers if h not in _console]:
                root.removeHandler(h)
                h.close()
        if not force and any(h not in _console for h in root.handlers):
            return  # configured already (by another plugin: one process, one root)
        handlers = kwargs.pop("handlers", None)
        stream = kwargs.pop("stream", None)
        filename = kwargs.pop("filename", None)
        mode = kwargs.pop("filemode", "a")
        if handlers is not None and (stream is not None or filename is not None):
            raise ValueError("'stream' or 'filename' should not be specified together with 'handlers'")
        if stream is not None and filename is not None:
            raise ValueError("'stream' and 'filename' should not be specified together")
        if handlers is None:
            if filename is not None:
                handlers = [logging.FileHandler(filename, mode, encoding=encoding,
                                                errors=None if "b" in mode else errors)]
            elif stream is not None and not _is_log(stream):
                handlers = [logging.StreamHandler(stream)]
            else:
                handlers = []  # stderr (basicConfig's default) is the console's log
        style = kwargs.pop("style", "%")
        if style not in BASIC_FORMATS:
            raise ValueError(f"Style must be one of: {','.join(BASIC_FORMATS)}")
        formatter = logging.Formatter(kwargs.pop("format", BASIC_FORMATS[style]),
                                      kwargs.pop("datefmt", None), style)
        level = kwargs.pop("level", None)
        if kwargs:
            raise ValueError(f"Unrecognised argument(s): {', '.join(kwargs)}")
        for h in handlers:
            if h.formatter is None:
                h.setFormatter(formatter)
            root.addHandler(_unlogged(h))
        if level is not None:
            root.setLevel(level)


def dict_config(config: dict) -> None:
    """``logging.config.dictConfig``, after which the console's log is as it was."""
    with _lock:
        try:
            _dict_config(config)
        finally:
            _keep_console()


def file_config(*args: Any, **kwargs: Any) -> None:
    """``logging.config.fileConfig``, after which the console's log is as it was."""
    with _lock:
        try:
            _file_config(*args, **kwargs)
        finally:
            _keep_console()


def _keep_console() -> None:
    """The console loggers enabled (their children and the libraries' too: ``dictConfig``
    disables the loggers it does not name), with the console's handler, not propagating;
    the root with the console's handler, and the plugins' handlers writing nothing into
    the log."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and _own(name):
            logger.disabled = False
    for name in CONSOLE_LOGGERS:
        logger = logging.getLogger(name)
        logger.disabled = False
        logger.handlers[:] = list(_console)
        logger.propagate = False
    root = logging.getLogger()
    for h in root.handlers:
        if h not in _console:
            _unlogged(h)
    for h in _console:
        if h not in root.handlers:
            root.addHandler(h)


def _unlogged(handler: logging.Handler) -> logging.Handler:
    """``handler`` with what it writes to stdout/stderr dropped for the records the
    console's handler logs too (see the module docstring); others (a logger that does not
    propagate) it writes into the log as a plugin's output."""
    if getattr(handler, "_pvconsole_unlogged", False):
        return handler
    handle = handler.handle

    def unlogged_handle(record: logging.LogRecord) -> Any:
        if not _shown_by_console(record):
            return handle(record)
        with fdcapture.unlogged():
            return handle(record)
    try:
        handler.handle = unlogged_handle  # type: ignore[method-assign]
        handler._pvconsole_unlogged = True  # type: ignore[attr-defined]
    except AttributeError:  # a handler with __slots__: left as it is (it may log twice)
        pass
    return handler


def _is_log(stream: Any) -> bool:
    """stdout or stderr: the console's log (captured, or the terminal it writes to)."""
    return stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
