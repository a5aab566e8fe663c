"""A loopback-only engine configuration on free ports: tests, demos, screenshots.

Nothing leaves the host: CA and PVA bind 127.0.0.1, beacons go to 127.0.0.1, and every
port is one the kernel just reported free (CA needs the same number free on TCP and UDP).
"""

from __future__ import annotations

import socket
from pathlib import Path

from typing import Any

from .config import Config, free_port as _free_port


def free_port(udp: bool = False) -> int:
    """A loopback port free for TCP (and for UDP too when ``udp``)."""
    return _free_port("127.0.0.1", udp=udp)


_beacon_sinks: list[socket.socket] = []


def beacon_sink() -> int:
    """A loopback UDP port that stays bound for the process's life and swallows CA
    beacons: beacons to a closed port come back as ICMP errors, which the CA server
    library prints on every beacon ("CA beacon ... error was Connection refused")."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    _beacon_sinks.append(sink)
    return sink.getsockname()[1]


def loopback_config(plugins: list[str], state_dir: Path, **kw: Any) -> Config:
    """Engine configuration serving ``plugins`` on loopback only, on free ports."""
    settings: dict[str, Any] = dict(
        ca_intf="127.0.0.1", ca_port=free_port(udp=True), ca_beacon_addr="127.0.0.1",
        ca_beacon_port=beacon_sink(), ca_auto_beacon="NO", pva_intf="127.0.0.1",
        pva_port=free_port(), pva_broadcast_port=free_port(udp=True))
    settings.update(kw)
    return Config(plugins=plugins, state_dir=state_dir, **settings)
