"""``pvconsole ctl``: talk to a running console through its control PVs over PVA.

The console is found like any PVA server, through the ``EPICS_PVA_*`` environment
variables; ``--prefix`` names which console (default: this host's).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any, Sequence

from .config import default_control_prefix

STATUS_PVS = ["HEARTBEAT", "UPTIME", "CPU", "MEM", "THREADS", "PVS", "EXPOSED", "CA_RATE",
              "PVA_RATE", "MIRROR_LAG"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pvconsole ctl", description=__doc__)
    p.add_argument("--prefix", default=default_control_prefix(),
                   help="control prefix of the console (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="health, rates, PV counts")
    e = sub.add_parser("expose", help="turn PVA exposure on, off or read-only")
    e.add_argument("pattern", help="PV name or glob, e.g. 'PSU:*'")
    e.add_argument("mode", choices=["on", "off", "ro"])
    sub.add_parser("clients", help="connected CA and PVA clients")
    pl = sub.add_parser("putlog", help="recent puts")
    pl.add_argument("--tail", type=int, default=20)
    a = sub.add_parser("acf-test", help="what each protocol allows USER on HOST for PV")
    a.add_argument("pv")
    a.add_argument("user")
    a.add_argument("host")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    from p4p.client.thread import Context, RemoteError
    ctx = Context("pva", unwrap=False)
    P = args.prefix
    try:
        if args.cmd == "status":
            values = ctx.get([P + n for n in STATUS_PVS], timeout=args.timeout)
            for name, v in zip(STATUS_PVS, values):
                units = v.display.units if "display" in v and "units" in v.display else ""
                prec = v.display.precision if "display" in v and "precision" in v.display else 0
                text = f"{v.value:.{prec}f}" if isinstance(v.value, float) else str(v.value)
                print(f"{name:<12} {text} {units}".rstrip())
        elif args.cmd == "expose":
            ctx.put(P + "EXPOSE", f"{args.pattern} {args.mode}", wait=True, timeout=args.timeout)
            print(ctx.get(P + "EXPOSE:RESULT", timeout=args.timeout).value)
        elif args.cmd == "clients":
            _print_clients(json.loads(ctx.get(P + "CLIENTS", timeout=args.timeout).value or "[]"))
        elif args.cmd == "putlog":
            recs = json.loads(ctx.get(P + "PUTLOG", timeout=args.timeout).value or "[]")
            for r in recs[-args.tail:] if args.tail > 0 else []:
                why = f"  ({r['reason']})" if r.get("reason") else ""
                print(f"{r['time']}  {r['protocol']:<3} {r['pv']:<24} {r['client']:<28} "
                      f"{r['old']!r} -> {r['requested']!r}  {r['result']}{why}")
        elif args.cmd == "acf-test":
            ctx.put(P + "ACF:TEST", f"{args.pv} {args.user} {args.host}", wait=True, timeout=args.timeout)
            answer = json.loads(ctx.get(P + "ACF:TEST", timeout=args.timeout).value)
            print(f"{answer['pv']}: ASG {answer['asg']}, PVA exposure {answer['pva_exposure']}")
            for v in answer["verdicts"]:
                print(f"  {v['protocol'].upper():<3} read {'yes' if v['read'] else 'no'}  "
                      f"write {'yes' if v['write'] else 'no'}   {v['why']}")
    except TimeoutError:
        print(f"pvconsole ctl: no console answers under {P!r} (check EPICS_PVA_* and --prefix)",
              file=sys.stderr)
        return 1
    except RemoteError as e:
        print(f"pvconsole ctl: {e}", file=sys.stderr)  # the console says what it refused
        return 1
    finally:
        ctx.close()
    return 0


def _print_clients(clients: list[dict[str, Any]]) -> None:
    if not clients:
        print("no clients")
        return
    print(f"{'PROTO':<5} {'PEER':<22} {'USER':<12} {'HOST':<16} {'CHANNELS':>8} {'MONITORS':>8}  FIRST SEEN")
    for c in clients:
        since = datetime.fromtimestamp(c["since"]).strftime("%H:%M:%S")
        mon = "?" if c["monitors"] is None else str(c["monitors"])
        print(f"{c['protocol']:<5} {c['peer']:<22} {c['user']:<12} {c['host']:<16} "
              f"{len(c['channels']):>8} {mon:>8}  {since}")
