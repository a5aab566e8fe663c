"""``pvconsole`` entry point: the console (default), ``--headless``, ``gateway``, ``ctl``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__, exitguard, logsetup

log = logging.getLogger("pvconsole")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pvconsole",
        description="Host pcaspy IOC plugins and serve every PV over Channel Access and PVAccess.",
        epilog="Subcommands: 'pvconsole gateway --help' serves PVs of CA IOCs over PVA; "
               "'pvconsole ctl --help' talks to a running console. Server settings "
               "default to the EPICS_CAS_* / EPICS_PVAS_* environment variables.")
    p.add_argument("--version", action="version", version=f"pvconsole {__version__}")
    p.add_argument("--plugin", dest="plugins", action="append", metavar="PATH_OR_MODULE",
                   help="IOC plugin to load (repeatable): file, module, module:attr or ep:NAME, "
                        "then the script's own arguments, if any, in one word: 'ioc.py -P SEIS:'")
    p.add_argument("--plugins-dir", type=Path, metavar="DIR",
                   help="load every *.py plugin in DIR (default: ./ioc_plugins when present)")
    p.add_argument("--headless", action="store_true", help="run without the console (systemd, procServ)")
    p.add_argument("--config", type=Path, metavar="TOML", help="configuration file (default: ./pvconsole.toml)")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="exposure choices and put log (default: $XDG_STATE_HOME/pvconsole)")
    p.add_argument("--acf", type=Path, metavar="FILE", help="access security file (.acf) for CA and PVA")
    p.add_argument("--control-prefix", metavar="PREFIX", help="prefix of the console's own status PVs")
    p.add_argument("--read-poll", type=float, metavar="SECONDS",
                   help="for drivers that compute values in read(): how often PVA re-reads a "
                        "watched PV (default 1; 0: only when its first PVA channel opens)")
    g = p.add_argument_group("servers (override EPICS_CAS_* / EPICS_PVAS_*)")
    g.add_argument("--ca-intf", metavar="ADDRS", help="EPICS_CAS_INTF_ADDR_LIST")
    g.add_argument("--ca-port", type=int, metavar="PORT", help="EPICS_CAS_SERVER_PORT")
    g.add_argument("--ca-beacon-addr", metavar="ADDRS", help="EPICS_CAS_BEACON_ADDR_LIST")
    g.add_argument("--ca-beacon-port", type=int, metavar="PORT", help="EPICS_CAS_BEACON_PORT")
    g.add_argument("--pva-intf", metavar="ADDRS", help="EPICS_PVAS_INTF_ADDR_LIST")
    g.add_argument("--pva-port", type=int, metavar="PORT", help="EPICS_PVAS_SERVER_PORT")
    g.add_argument("--pva-broadcast-port", type=int, metavar="PORT", help="EPICS_PVAS_BROADCAST_PORT")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    return p


def make_config(args: argparse.Namespace):
    from .config import build, default_control_prefix
    cli = {
        "plugins": args.plugins, "plugins_dir": args.plugins_dir, "state_dir": args.state_dir,
        "acf": args.acf, "control_prefix": args.control_prefix, "ca_intf": args.ca_intf,
        "ca_port": args.ca_port, "ca_beacon_addr": args.ca_beacon_addr,
        "ca_beacon_port": args.ca_beacon_port, "pva_intf": args.pva_intf,
        "pva_port": args.pva_port, "pva_broadcast_port": args.pva_broadcast_port,
        "read_poll": args.read_poll,
    }
    cfg = build(cli, args.config)
    if args.control_prefix is None and not cfg.control_prefix:
        cfg.control_prefix = default_control_prefix()
    if not cfg.plugins and cfg.plugins_dir is None and Path("ioc_plugins").is_dir():
        cfg.plugins_dir = Path("ioc_plugins")
    return cfg


def build_gateway_parser() -> argparse.ArgumentParser:
    from .cagateway import add_arguments
    p = build_parser()
    p.prog = "pvconsole gateway"
    p.description = ("Serve PVs of CA IOCs over PVA (a CA -> PVA gateway), beside any plugins "
                     "named. pvconsole's own CA server then listens on loopback only, on a free "
                     "port, unless --ca-intf/--ca-port say otherwise: CA clients keep finding "
                     "the IOCs themselves.")
    p.epilog = None
    add_arguments(p)
    return p


def gateway_config(cfg, args: argparse.Namespace) -> None:
    """The gateway plugin first, and the CA server out of the CA clients' way."""
    from . import cagateway
    from .config import ConfigError
    from .pluginspec import with_args
    if not args.pvs and not args.pv_list:
        raise ConfigError("gateway: name the PVs to serve (PV ..., or --pv-list FILE)")
    for path in args.pv_list:
        if not path.is_file():
            raise ConfigError(f"gateway: --pv-list {path}: no such file")
    cfg.plugins = [with_args(cagateway.__file__, cagateway.script_args(args)), *cfg.plugins]
    cfg.gateway = True
    # connecting comes before the gateway's hand-over: its wait is not a hung script's
    names = cagateway.pv_names(args.pvs, args.pv_list)
    budget = args.connect_timeout + 10.0 + 0.005 * len(names)
    # read when plugins load (plugins.handover_timeout), also in the console's engine child
    current = float(os.environ.get("PVCONSOLE_HANDOVER_TIMEOUT") or 10)
    os.environ["PVCONSOLE_HANDOVER_TIMEOUT"] = str(max(current, budget))
    if args.ca_intf is None:
        cfg.ca_intf = "127.0.0.1"
    if args.ca_port is None:
        cfg.ca_port = 0
    if args.ca_beacon_addr is None:  # beacons to a port that takes them without a word
        from .loopback import beacon_sink
        cfg.ca_beacon_addr, cfg.ca_auto_beacon = "127.0.0.1", "NO"
        if args.ca_beacon_port is None:
            cfg.ca_beacon_port = beacon_sink()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ctl":
        from .ctl import main as ctl_main
        return ctl_main(argv[1:])
    gateway = bool(argv) and argv[0] == "gateway"
    args = (build_gateway_parser() if gateway else build_parser()).parse_args(argv[gateway:])
    from .config import ConfigError
    try:
        cfg = make_config(args)
        if gateway:
            gateway_config(cfg, args)
    except ConfigError as e:
        print(f"pvconsole: error: {e}", file=sys.stderr)
        return 2
    if args.headless:
        return run_headless(cfg, args.verbose)
    from .tui.app import run_console
    return run_console(cfg, args.verbose)


def setup_logging(stream, verbose: int) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logsetup.FORMAT))
    logsetup.install(handler, verbose)


#: Seconds a headless stop may take before the process exits without finishing it: a
#: plugin or a library call that never returns must not keep a service from stopping.
STOP_DEADLINE = float(os.environ.get("PVCONSOLE_STOP_DEADLINE", "10"))


def _exit_now(fds, why: str) -> None:
    """Leave at once, exit code 1, one line saying why (written straight to the real
    stderr: the log machinery may be what is stuck)."""
    try:
        os.set_blocking(fds.saved_err, False)  # a stderr nobody reads must not hold the exit
        os.write(fds.saved_err, f"pvconsole: {why}\n".encode())
    finally:
        exitguard.real_exit(1)


def forward_signals(stop: Callable[[int, Any], None]) -> None:
    """SIGHUP, SIGUSR1, SIGUSR2: to the hosted scripts' handlers for them; ``stop`` (this
    process's handler for SIGTERM) where none handles or ignores one: a terminal's hangup
    stops pvconsole cleanly, where it killed every hosted IOC without a stop. Scripts are
    told of such a stop as of SIGTERM (:func:`told_signal`)."""
    from .plugins import forward_signal, start_forwarding

    def on_signal(signum: int, frame: Any) -> None:
        if not forward_signal(signum):
            stop(signum, frame)
    start_forwarding()
    for signum in exitguard.FORWARDED_SIGNALS:
        signal.signal(signum, on_signal)


def told_signal(signum: int) -> int:
    """The stop signal scripts are told of when pvconsole stops on ``signum``: SIGTERM
    for a signal no script handles (SIGHUP: their SIGTERM handlers run)."""
    return signum if signum in exitguard.STOP_SIGNALS else signal.SIGTERM


class _StopRequested(BaseException):
    """SIGINT/SIGTERM while the engine starts (raised from the signal handler)."""


def run_headless(cfg, verbose: int = 0) -> int:
    """Run the engine until SIGINT/SIGTERM; exit 0 after a clean stop."""
    from .engine import Engine, StartupError
    from .fdcapture import capture

    fds = capture(python_to_log=True)  # a plugin's print(): a log line like the others
    setup_logging(fds.stderr, verbose)
    stop = threading.Event()
    starting = [True]
    received: list[signal.Signals] = []

    def on_signal(signum, frame):
        # no logging here: the handler runs between two bytecodes of the main thread,
        # possibly inside a write to the same stream (a reentrant write fails)
        if received:  # a second signal while stopping: the operator means now
            _exit_now(fds, f"{signal.Signals(signum).name} while stopping: exiting without "
                           "finishing the stop")
        received.append(signal.Signals(signum))
        stop.set()
        if starting[0]:  # plugins may take long to load: stop now, not when they are up
            raise _StopRequested()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    forward_signals(on_signal)
    engine = Engine(cfg)
    try:
        engine.start()  # stops what it started before it lets an exception out
    except StartupError as e:
        fds.restore()
        print(f"pvconsole: error: {e}", file=sys.stderr)
        return 2
    except _StopRequested:
        log.info("signal %s during start-up: stopped", received[0].name)
        logging.shutdown()
        return 0
    finally:
        starting[0] = False
    fatal = unservable(engine, cfg.gateway)
    if fatal:  # what it was started for cannot be served: a unit's Restart= may retry
        engine.stop()
        fds.restore()
        print(f"pvconsole: error: {fatal}", file=sys.stderr)
        return 2
    if not any(not p.error and p.source != "builtin" for p in engine.plugins):
        log.warning("no IOC plugin is served: name one with --plugin, or --plugins-dir")
    print(f"pvconsole: {serving_summary(engine)}", file=fds.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    watchdog = threading.Timer(STOP_DEADLINE, _exit_now, args=(
        fds, f"the stop did not finish within {STOP_DEADLINE:g} s (PVCONSOLE_STOP_DEADLINE): "
             "exiting without it"))
    watchdog.daemon = True
    watchdog.start()  # first: the log line below blocks while nobody reads stderr
    log.info("signal %s: stopping", received[0].name if received else "?")
    engine.stop(told_signal(received[0]) if received else signal.SIGINT)
    held = exitguard.held_threads()
    log.info("stopped")
    logging.shutdown()
    if engine.left_running or held:  # finalizing would wait for them
        exitguard.leave(0, handlers=not engine.left_running)
    return 0


def unservable(engine, gateway: bool) -> str | None:
    """Why a headless pvconsole should not go on serving, or None: the gateway it was
    started as failed, or every IOC plugin it was given failed (alone, each script would
    have exited; serving only pvconsole's own PVs would hide that from systemd)."""
    failed = [p for p in engine.plugins if p.error]
    if gateway:
        mine = next((p.error for p in failed if p.source.startswith(_gateway_file())), None)
        if mine:
            return mine
    if failed and not any(not p.error and p.source != "builtin" for p in engine.plugins):
        return (f"no plugin could be served: {failed[0].error}"
                + (f" (and {len(failed) - 1} more: see the log)" if len(failed) > 1 else ""))
    return None


def _gateway_file() -> str:
    from . import cagateway
    return cagateway.__file__


def serving_summary(engine) -> str:
    """One line for the operator: what is served where, and which plugins are not."""
    loaded = [p.name for p in engine.plugins if not p.error and p.source != "builtin"]
    failed = [p.name for p in engine.plugins if p.error]
    what = (f"{len(engine.entries)} PVs from {len(loaded)} plugin(s)" if loaded else
            f"no IOC plugin ({len(engine.entries)} PVs of pvconsole's own)")
    if failed:
        what += f", {len(failed)} not loaded ({', '.join(failed)}: see the log)"
    return f"serving {what} (CA {engine.ca_address()}, PVA {engine.pva_address()})"


def entry() -> None:
    sys.exit(main())
