"""``pykeepalivectl``: talk to a running supervisor over its control socket.

    pykeepalivectl [--run-dir DIR] status [--json] | reload | restart vrrp|checker|ipvs
                                   | dump [--json|--toml] | events [--all]

The control socket is ``ctl`` in the run dir (0700, root only). ``events`` subscribes to the bus and
prints each message as it passes (heartbeats only with --all). Exit status: 0 on success, 1 if the
supervisor refused the request, 3 if no supervisor answered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from supervisor.bus import CTL_NAME, SUB_NAME, Rejects, endpoint, enter_run_dir, split_bseq
from supervisor.options import DEFAULT_RUN_DIR

EXIT_REFUSED = 1
EXIT_NO_DAEMON = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pykeepalivectl", description="Control a running pykeepalived.")
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help=f"the daemon's run dir (default {DEFAULT_RUN_DIR})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("status", help="roles, VRRP instances, virtual and real servers")
    s.add_argument("--json", action="store_true")
    sub.add_parser("reload", help="reload the configuration (as SIGHUP)")
    r = sub.add_parser("restart", help="restart one role")
    r.add_argument("role", choices=["vrrp", "checker", "ipvs"])
    d = sub.add_parser("dump", help="the configuration and the cached state")
    g = d.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true")
    g.add_argument("--toml", action="store_true")
    e = sub.add_parser("events", help="follow the bus")
    e.add_argument("--all", action="store_true", help="include heartbeats")
    e.add_argument("--count", type=int, default=0, help="stop after N messages")
    return p


class NoDaemon(Exception):
    pass


def request(run_dir: str, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    import zmq

    ctx = zmq.Context()
    try:
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint(run_dir, CTL_NAME))
        s.send(json.dumps({"v": 1, **req}).encode())
        if not s.poll(int(timeout * 1000)):
            raise NoDaemon(f"no answer from the supervisor on {endpoint(run_dir, CTL_NAME)}")
        reply: dict[str, Any] = json.loads(s.recv())
        return reply
    finally:
        ctx.destroy(linger=0)


def format_status(st: dict[str, Any]) -> str:
    out = []
    sv = st["supervisor"]
    out.append(f"supervisor  pid {sv['pid']}  up {sv['uptime']:.0f}s  generation {sv['generation']}"
               f"{'  (reloading)' if sv['reloading'] else ''}  config {sv['config']}")
    out.append("")
    out.append(f"{'ROLE':8} {'PID':>7} {'STATE':12} {'UPTIME':>8} {'RESTARTS':>8} {'RSS':>9}  LAST EXIT")
    for r in st["roles"]:
        rss = f"{r['rss'] / 1048576:.1f}M" if r.get("rss") else "-"
        up = f"{r['uptime']:.0f}s" if r.get("uptime") is not None else "-"
        out.append(f"{r['role']:8} {r['pid'] or '-':>7} {r['state']:12} {up:>8} {r['restarts']:>8} {rss:>9}  "
                   f"{r.get('last_exit') or ''}")
    if st["vrrp_instances"]:
        out += ["", f"{'VRRP INSTANCE':20} {'STATE':8} {'PRIO':>4}  VIRTUAL ADDRESSES"]
        for i in st["vrrp_instances"]:
            out.append(f"{i['name']:20} {i.get('state', '?'):8} {i.get('priority', ''):>4}  "
                       f"{' '.join(i.get('vips', []))}")
    if st["virtual_servers"] or st["real_servers"]:
        out += ["", f"{'REAL SERVER':40} {'HEALTH':8} {'WEIGHT':>6}"]
        for rs in st["real_servers"]:
            out.append(f"{rs['key']:40} {rs.get('health', '?'):8} {rs.get('weight', ''):>6}")
        out += ["", f"{'VIRTUAL SERVER':40} PROGRAMMED  REAL SERVERS UP"]
        for vs in st["virtual_servers"]:
            out.append(f"{vs['key']:40} {vs.get('programmed', False)!s:10}  {vs.get('up', '')}")
    return "\n".join(out)


def events(run_dir: str, show_all: bool, count: int) -> int:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint(run_dir, SUB_NAME))
    rejects = Rejects()
    seen = 0
    try:
        while True:
            frames = s.recv_multipart()
            env = rejects.decode(frames)
            if env is None or (env.kind == "heartbeat" and not show_all):
                continue
            print(json.dumps({"bseq": split_bseq(frames), **json.loads(frames[1])}), flush=True)
            seen += 1
            if count and seen >= count:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        ctx.destroy(linger=0)


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    run_dir = os.path.abspath(opts.run_dir)
    try:
        enter_run_dir(run_dir)  # endpoints too long for a socket path are relative to it
    except OSError as e:
        print(f"pykeepalivectl: {run_dir}: {e.strerror} (is pykeepalived running?)", file=sys.stderr)
        return EXIT_NO_DAEMON
    if opts.cmd == "events":
        return events(run_dir, opts.all, opts.count)
    req: dict[str, Any] = {"cmd": opts.cmd}
    if opts.cmd == "restart":
        req["role"] = opts.role
    if opts.cmd == "dump" and opts.toml:
        req["format"] = "toml"
    try:
        reply = request(run_dir, req, opts.timeout)
    except NoDaemon as e:
        print(f"pykeepalivectl: {e}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except (OSError, ValueError) as e:
        print(f"pykeepalivectl: {e}", file=sys.stderr)
        return EXIT_NO_DAEMON
    if not reply.get("ok"):
        print(f"pykeepalivectl: {reply.get('error')}", file=sys.stderr)
        return EXIT_REFUSED
    result = reply["result"]
    if opts.cmd == "status" and not opts.json:
        print(format_status(result))
    elif isinstance(result, str):
        print(result, end="" if result.endswith("\n") else "\n")
    else:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
