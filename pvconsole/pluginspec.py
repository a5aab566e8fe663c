"""A plugin spec's own command line: ``--plugin 'ioc.py -P SEIS:'``.

Kept apart from :mod:`pvconsole.plugins` (which imports pcaspy) for the configuration
file's reader.
"""

from __future__ import annotations

import shlex
from pathlib import Path


def split_args(spec: str) -> tuple[str, list[str]]:
    """``'ioc.py -P SEIS: --sim'`` -> ``('ioc.py', ['-P', 'SEIS:', '--sim'])``: what
    follows a plugin's file or module is its script's command line, in shell quoting
    (``sys.argv[1:]`` while its code runs). A spec that names an existing file as a whole
    (a path with spaces) has none."""
    if not any(c.isspace() for c in spec) or is_file(spec):
        return spec, []
    try:
        tokens = shlex.split(spec)
    except ValueError:  # an unclosed quote: left to fail as a file or module name
        return spec, []
    return (tokens[0], tokens[1:]) if tokens else (spec, [])


def is_file(spec: str) -> bool:
    """``Path(spec).is_file()``, False for a name no file can have."""
    try:
        return Path(spec).is_file()
    except OSError:  # a name longer than the file system takes (a gateway's PV list)
        return False


def with_args(spec: str, args: list[str]) -> str:
    return shlex.join([spec, *args]) if args else spec
