"""A Python child process with one duplex pipe to it: the console's engine process
(:mod:`pvconsole.enginehost`) and the gateway's CA client (:mod:`pvconsole.gwclient`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any


def spawn(module: str, args: list[str], **popen: Any) -> tuple[subprocess.Popen, Connection]:
    """Start ``python -m module FD *args``; FD is the child's end of the pipe (it makes a
    ``Connection`` of it). Returns the process and this end."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.Popen([sys.executable, "-m", module, str(theirs.fileno()), *args],
                                pass_fds=(theirs.fileno(),), **popen)
        return proc, Connection(os.dup(ours.fileno()))
