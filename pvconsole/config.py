"""Configuration: CLI flags > ``pvconsole.toml`` > EPICS environment variables > defaults.

The server settings are the standard EPICS ones (``EPICS_CAS_*`` for the CA server,
``EPICS_PVAS_*`` for the PVA server), so an IOC host's existing environment just works.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .pluginspec import split_args, with_args


class ConfigError(Exception):
    """A configuration that cannot work; the message is one line for the operator."""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/pvconsole`` (``~/.local/state/pvconsole``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "pvconsole"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def default_control_prefix() -> str:
    host = socket.gethostname().split(".")[0].upper() or "LOCALHOST"
    return f"PVCONSOLE:{host}:"


@dataclass
class Config:
    """Everything the engine needs to run.

    Attributes:
        plugins: Plugin specs (paths, modules, ``module:attr``, ``ep:name``).
        plugins_dir: Directory scanned when no plugin is named.
        ca_intf: ``EPICS_CAS_INTF_ADDR_LIST``: CA server interfaces (empty: all).
        ca_port: ``EPICS_CAS_SERVER_PORT``.
        ca_beacon_addr: ``EPICS_CAS_BEACON_ADDR_LIST``.
        ca_beacon_port: ``EPICS_CAS_BEACON_PORT``.
        ca_auto_beacon: ``EPICS_CAS_AUTO_BEACON_ADDR_LIST``.
        pva_intf: ``EPICS_PVAS_INTF_ADDR_LIST``: PVA server interfaces (empty: all).
        pva_port: ``EPICS_PVAS_SERVER_PORT``.
        pva_broadcast_port: ``EPICS_PVAS_BROADCAST_PORT``.
        state_dir: Where exposure choices and the put log live.
        acf: Access security file for both protocols.
        control_prefix: Prefix of the console's own status/control PVs ('' to disable).
        asyn_timeout: Seconds a PVA put to an ``asyn`` PV waits for ``callbackPV``.
        read_poll: Seconds between ``Driver.read`` calls for PVA while a PV is watched, for
            drivers that compute values in ``read`` (0: only on the first PVA connect).
    """

    plugins: list[str] = field(default_factory=list)
    plugins_dir: Path | None = None
    ca_intf: str = ""
    ca_port: int = 5064
    ca_beacon_addr: str = ""
    ca_beacon_port: int = 5065
    ca_auto_beacon: str = "YES"
    pva_intf: str = ""
    pva_port: int = 5075
    pva_broadcast_port: int = 5076
    state_dir: Path = field(default_factory=default_state_dir)
    acf: Path | None = None
    control_prefix: str = ""
    asyn_timeout: float = 10.0
    read_poll: float = field(default_factory=lambda: _env_float("PVCONSOLE_READ_POLL", 1.0))
    #: ``pvconsole gateway``: its gateway plugin must load (headless: exit 2 if not)
    gateway: bool = False

    def ca_env(self) -> dict[str, str]:
        """The environment the CA server library (pcaspy's CAS) reads when it starts."""
        env = {
            "EPICS_CAS_SERVER_PORT": str(self.ca_port),
            "EPICS_CAS_BEACON_PORT": str(self.ca_beacon_port),
            "EPICS_CAS_AUTO_BEACON_ADDR_LIST": self.ca_auto_beacon,
            "EPICS_CAS_INTF_ADDR_LIST": self.ca_intf,
            "EPICS_CAS_BEACON_ADDR_LIST": self.ca_beacon_addr,
        }
        return env

    def pva_conf(self) -> dict[str, str]:
        """Configuration for p4p's ``Server(conf=..., useenv=False)``."""
        conf = {
            "EPICS_PVAS_SERVER_PORT": str(self.pva_port),
            "EPICS_PVAS_BROADCAST_PORT": str(self.pva_broadcast_port),
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": os.environ.get("EPICS_PVAS_AUTO_BEACON_ADDR_LIST", "YES"),
        }
        if self.pva_intf:
            conf["EPICS_PVAS_INTF_ADDR_LIST"] = self.pva_intf
        beacons = os.environ.get("EPICS_PVAS_BEACON_ADDR_LIST")
        if beacons:
            conf["EPICS_PVAS_BEACON_ADDR_LIST"] = beacons
        return conf


# config attribute <- EPICS variable (with the client-side fallback EPICS documents)
_ENV = {
    "ca_intf": ("EPICS_CAS_INTF_ADDR_LIST",),
    "ca_port": ("EPICS_CAS_SERVER_PORT", "EPICS_CA_SERVER_PORT"),
    "ca_beacon_addr": ("EPICS_CAS_BEACON_ADDR_LIST",),
    "ca_beacon_port": ("EPICS_CAS_BEACON_PORT", "EPICS_CA_REPEATER_PORT"),
    "ca_auto_beacon": ("EPICS_CAS_AUTO_BEACON_ADDR_LIST",),
    "pva_intf": ("EPICS_PVAS_INTF_ADDR_LIST",),
    "pva_port": ("EPICS_PVAS_SERVER_PORT", "EPICS_PVA_SERVER_PORT"),
    "pva_broadcast_port": ("EPICS_PVAS_BROADCAST_PORT", "EPICS_PVA_BROADCAST_PORT"),
}


def build(cli: Mapping[str, Any], toml_path: Path | None = None,
          environ: Mapping[str, str] | None = None) -> Config:
    """Merge the layers. ``cli`` holds only the flags the user gave (None = not given)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # where each value came from, for error messages
    for attr, names in _ENV.items():
        for name in names:
            if environ.get(name):
                values[attr], origin[attr] = environ[name], name
                break
    if toml_path is None and Path("pvconsole.toml").is_file():
        toml_path = Path("pvconsole.toml")
    if toml_path is not None:
        from_file = _read_toml(toml_path)
        values.update(from_file)
        origin.update({k: f"{toml_path}: {k}" for k in from_file})
    given = {k: v for k, v in cli.items() if v is not None and v != []}
    values.update(given)
    origin.update({k: "--" + k.replace("_", "-") for k in given})
    return _coerce(values, origin)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    known = {f.name for f in fields(Config)}
    flat: dict[str, Any] = {}
    written: dict[str, str] = {}  # flat key -> as the file spells it
    for key, value in data.items():
        if isinstance(value, dict):  # [ca] port = ... -> ca_port
            for sub, v in value.items():
                flat[f"{key}_{sub}"] = v
                written[f"{key}_{sub}"] = f"[{key}] {sub}"
        else:
            flat[key] = value
            written[key] = key
    unknown = set(flat) - known
    if unknown:
        names = ", ".join(sorted(written[k] for k in unknown))
        raise ConfigError(f"config file {path}: unknown keys {names}")
    return _relative_to(path.parent, flat)


#: Settings that name files: in a config file, relative to the file's directory.
_PATHS = ("state_dir", "plugins_dir", "acf")


def _relative_to(base: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Paths in a config file mean what they say wherever pvconsole is started from."""
    out = dict(values)
    for key in _PATHS:
        if isinstance(out.get(key), str) and out[key] and not Path(out[key]).expanduser().is_absolute():
            out[key] = str(base / out[key])
    plugins = out.get("plugins")
    if plugins is not None:
        out["plugins"] = [_relative_plugin(base, p)
                          for p in ([plugins] if isinstance(plugins, str) else plugins)]
    return out


def _relative_plugin(base: Path, spec: Any) -> Any:
    """A plugin spec with its file made relative to ``base`` (its arguments kept)."""
    if not isinstance(spec, str):
        return spec
    if _is_relative_file(spec) and (base / spec).is_file():  # a path with spaces, no arguments
        return str(base / spec)
    target, args = split_args(spec)
    return with_args(str(base / target), args) if _is_relative_file(target) else spec


def _is_relative_file(spec: Any) -> bool:
    """A plugin spec that is a relative file path (not a module name or entry point)."""
    if not isinstance(spec, str) or spec.startswith("ep:"):
        return False
    file = spec.rsplit(":", 1)[0] if ":" in spec else spec
    return (file.endswith(".py") or "/" in file) and not Path(file).expanduser().is_absolute()


def _coerce(values: dict[str, Any], origin: Mapping[str, str] | None = None) -> Config:
    cfg = Config()
    for f in fields(Config):
        if f.name not in values:
            continue
        v = values[f.name]
        try:
            if f.name in ("ca_port", "ca_beacon_port", "pva_port", "pva_broadcast_port"):
                v = int(v)
                if not 0 <= v <= 65535:
                    raise ValueError
            elif f.name in _PATHS:
                v = Path(v).expanduser() if v else None
            elif f.name in ("asyn_timeout", "read_poll"):
                v = float(v)
                if not v >= 0:
                    raise ValueError
            elif f.name == "plugins":
                v = [v] if isinstance(v, str) else list(v)
            else:
                v = str(v)
        except (TypeError, ValueError):
            where = (origin or {}).get(f.name, f.name)
            raise ConfigError(f"{where}: invalid value {values[f.name]!r}") from None
        setattr(cfg, f.name, v)
    if cfg.state_dir is None:
        cfg.state_dir = default_state_dir()
    return cfg


def _bindable(addr: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((addr, port))
        except OSError:
            return False
        return True


def free_port(addrs: str = "", udp: bool = False) -> int:
    """A port the kernel reports free for TCP (and UDP when ``udp``) on every address of
    ``addrs`` (empty: all interfaces). CA needs the same number on both: its server
    listens for searches on UDP and for circuits on TCP."""
    hosts = addrs.split() or ["0.0.0.0"]
    while True:
        with socket.socket() as s:
            try:
                s.bind((hosts[0], 0))
            except OSError as e:
                raise ConfigError(f"no free port on {hosts[0]}: {e.strerror or e}") from None
            port = s.getsockname()[1]
        if all(_bindable(h, port, socket.SOCK_STREAM) and (not udp or _bindable(h, port, socket.SOCK_DGRAM))
               for h in hosts):
            return port


def client_addresses(addrs: str, port: int) -> list[str]:
    """``host:port`` a client on this host uses to reach a server bound to ``addrs``
    (the wildcard address is reached on loopback)."""
    return [f"{'127.0.0.1' if a == '0.0.0.0' else a}:{port}" for a in (addrs.split() or ["0.0.0.0"])]


def check_port_free(kind: str, addrs: str, port: int, udp: bool = False) -> None:
    """Fail fast when the TCP port is taken: the CA and PVA libraries would otherwise
    quietly fall back to a random port and clients would never find the server. With
    ``udp``, the UDP port too, as a CA server binds it (shared with other CA servers on
    the host): held by a program that does not share it, the CA server library aborts
    the process."""
    if port == 0:
        return
    for addr in (addrs.split() or ["0.0.0.0"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the servers: TIME_WAIT is fine
        try:
            s.bind((addr, port))
        except OSError as e:
            raise ConfigError(f"{kind} port {port} on {addr} is not usable: {e.strerror or e}") from None
        finally:
            s.close()
        if udp:
            _check_shared_udp(kind, addr, port)


def _check_shared_udp(kind: str, addr: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as EPICS binds it
    if hasattr(socket, "SO_REUSEPORT"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind((addr, port))
    except OSError as e:
        raise ConfigError(f"{kind} port {port} on {addr} (UDP, name searches) is not usable: "
                          f"{e.strerror or e}") from None
    finally:
        s.close()
