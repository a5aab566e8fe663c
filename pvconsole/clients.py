"""Who is connected, per protocol.

Neither server library offers a public client list, so each side uses the best honest
source it has, wrapped here and nowhere else:

* **CA** (pcaspy's CAS, EPICS 3.14): ``caServer.show(3)`` prints, per client, the user and
  host the client announced, its channels by PV name, its subscription count and the fd of
  its TCP socket; the peer address comes from ``getpeername()`` on that fd. The report is
  printed to fd 1 by C code, so it is captured around the call, on the driver thread (the
  CAS is not thread-safe). Not known for CA: per-channel monitor split, traffic.
* **PVA** (pvxs via p4p): ``p4p._gw.Server_report`` (p4p's gateway uses it; it works on a
  plain server) gives, per channel, the peer, the account and bytes sent/received since
  the previous report. Not known for PVA: which channels are monitors.

``tests/test_clients.py`` fails loudly if a library upgrade changes either source.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

_libc = ctypes.CDLL(None)


@dataclass(frozen=True)
class ClientInfo:
    """One client connection.

    Attributes:
        protocol: 'ca' or 'pva'.
        peer: ``address:port`` of the client's socket.
        user: CA user name the client announced / PVA account.
        host: CA host name the client announced / PVA peer address.
        channels: PV names it has open.
        monitors: CA subscriptions; None where the protocol report does not say (PVA).
        since: POSIX time pvconsole first saw this connection.
        tx_bps: Bytes/s sent to it (PVA), None when unknown.
        rx_bps: Bytes/s received from it (PVA), None when unknown.
    """

    protocol: str
    peer: str
    user: str
    host: str
    channels: tuple[str, ...]
    monitors: int | None
    since: float
    tx_bps: float | None = None
    rx_bps: float | None = None


@dataclass
class _RawCAClient:
    user: str = ""
    host: str = ""
    channels: list[str] = field(default_factory=list)
    monitors: int = 0
    fd: int | None = None


_CLIENT_START = re.compile(r"^casStrmClient at ")
_USER_HOST = re.compile(r"^\s*user (\S*) at (\S*)")
_CHANNEL = re.compile(r"^casChannelI: client id \d+ PV (\S+)")
_SUBSCRIPTIONS = re.compile(r"umSubscriptions = (\d+)")
_FD = re.compile(r"^\s*fd = (\d+), type = \d+")


def parse_cas_show(text: str) -> list[_RawCAClient]:
    """Parse ``caServer.show(3)`` output into per-client records (pure; unit-tested)."""
    clients: list[_RawCAClient] = []
    current: _RawCAClient | None = None
    for line in text.splitlines():
        if _CLIENT_START.match(line):
            current = _RawCAClient()
            clients.append(current)
            continue
        if line.startswith(("casIntfOS", "casDGIntfOS", "casDGClient")):
            current = None  # the datagram (search) side follows: not a client connection
            continue
        if current is None:
            continue
        if m := _USER_HOST.match(line):
            current.user, current.host = m.group(1), m.group(2)
        elif m := _CHANNEL.match(line):
            current.channels.append(m.group(1))
        elif m := _SUBSCRIPTIONS.search(line):
            current.monitors = int(m.group(1))
        elif (m := _FD.match(line)) and current.fd is None:
            current.fd = int(m.group(1))
    return clients


def peer_of_fd(fd: int | None) -> str:
    """``host:port`` of the socket's peer, or '' (a dup is used; the original stays open)."""
    if fd is None:
        return ""
    try:
        dup = os.dup(fd)
    except OSError:
        return ""
    try:
        s = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return ""
    try:
        host, port = s.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return ""
    finally:
        s.close()


def established_peers(local_port: int) -> list[str]:
    """Peers of this host's established IPv4 TCP connections to ``local_port``."""
    peers = []
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, state = parts[1], parts[2], parts[3]
                if state != "01" or int(local.split(":")[1], 16) != local_port:
                    continue
                addr, port = remote.split(":")
                ip = socket.inet_ntoa(int(addr, 16).to_bytes(4, "little"))
                peers.append(f"{ip}:{int(port, 16)}")
    except (OSError, ValueError, StopIteration):
        pass
    return peers


def capture_fd1(fn: Callable[[], Any]) -> str:
    """Run ``fn`` with fd 1 pointed at a temporary file; return what C code printed."""
    with tempfile.TemporaryFile() as f:
        _libc.fflush(None)
        saved = os.dup(1)
        os.dup2(f.fileno(), 1)
        try:
            fn()
            _libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        f.seek(0)
        return f.read().decode("utf-8", "replace")


def pva_report(server: Any, interval: float) -> list[tuple]:
    """Per-channel rows (usname, channel, opTx, opRx, account, peer, connTx, connRx),
    counters normalised by ``interval`` (bytes/s since the previous call)."""
    from p4p import _gw  # internal to p4p: see the module docstring
    return _gw.Server_report(server._S, max(interval, 1e-3))


class ClientTracker:
    """Builds :class:`ClientInfo` lists and remembers when each connection was first seen."""

    def __init__(self) -> None:
        self._first_seen: dict[tuple[str, str], float] = {}
        self._last_pva = time.monotonic()
        self._lock = threading.Lock()

    def _since(self, key: tuple[str, str], live: set) -> float:
        live.add(key)
        return self._first_seen.setdefault(key, time.time())

    def build(self, ca_text: str | None, pva_rows: list[tuple] | None,
              ca_port: int = 0) -> list[ClientInfo]:
        out: list[ClientInfo] = []
        live: set = set()
        raws = parse_cas_show(ca_text or "")
        peers = [peer_of_fd(raw.fd) for raw in raws]
        if ca_port and peers.count("") == 1:  # the report had no usable fd for one client
            spare = set(established_peers(ca_port)) - set(peers)
            if len(spare) == 1:
                peers[peers.index("")] = spare.pop()
        with self._lock:
            for raw, peer in zip(raws, peers):
                peer = peer or f"{raw.host}:?"
                out.append(ClientInfo("ca", peer, raw.user, raw.host, tuple(raw.channels),
                                      raw.monitors, self._since(("ca", peer), live)))
            conns: dict[str, dict] = {}
            for _us, chan, _otx, _orx, account, peer, ctx_bps, crx_bps in pva_rows or []:
                c = conns.setdefault(peer, {"account": account, "channels": [], "tx": ctx_bps, "rx": crx_bps})
                c["channels"].append(chan)
            for peer, c in conns.items():
                out.append(ClientInfo("pva", peer, c["account"], peer.rsplit(":", 1)[0],
                                      tuple(c["channels"]), None, self._since(("pva", peer), live),
                                      c["tx"], c["rx"]))
            for key in list(self._first_seen):
                if key not in live:
                    del self._first_seen[key]
        return out

    def pva_interval(self) -> float:
        """Seconds since the previous PVA report (its counters are deltas)."""
        now = time.monotonic()
        dt, self._last_pva = now - self._last_pva, now
        return dt


def per_pv_counts(clients: list[ClientInfo]) -> dict[str, tuple[int, int]]:
    """PV name -> (CA clients, PVA clients) with the channel open."""
    counts: dict[str, list[int]] = {}
    for c in clients:
        idx = 0 if c.protocol == "ca" else 1
        for name in set(c.channels):
            counts.setdefault(name, [0, 0])[idx] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}
