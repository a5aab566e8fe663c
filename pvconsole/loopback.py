"""A loopback-only engine configuration on free ports: tests, demos, screenshots.

Nothing leaves the host: CA and PVA bind 127.0.0.1, beacons go to 127.0.0.1, and every
port was free when chosen, below the kernel's ephemeral range (CA needs the same number
free on TCP and UDP).
"""

from __future__ import annotations

import functools
import random
import socket
from pathlib import Path

from typing import Any

from .config import Config, _bindable, free_port as _free_port


#: Where the kernel picks ports for sockets bound to port 0 (Linux).
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Lowest port chosen below that range.
LOWEST = 10000


@functools.cache
def _ephemeral_low() -> int:
    """The lowest port the kernel hands out by itself (0 when it does not say)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port(udp: bool = False) -> int:
    """A loopback port free for TCP (and for UDP too when ``udp``), chosen below the
    kernel's ephemeral range where it can: a port the kernel hands out could go to any
    other socket bound to port 0 (a client's, a test's) between this choice and the
    server's bind, which happened to a CA server's UDP port in CI."""
    low = _ephemeral_low()
    if low - LOWEST >= 1000:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(LOWEST, low)
            if _bindable("127.0.0.1", port, socket.SOCK_STREAM) and (
                    not udp or _bindable("127.0.0.1", port, socket.SOCK_DGRAM)):
                return port
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
