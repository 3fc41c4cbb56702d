"""Benchmark: programming a large load-balancer table, a 1 % reload, and health-event latency (not collected
by pytest).

``sudo .venv/bin/python -m tests.perf.bench_ipvs [--services 1000] [--reals 10] [--events 400] [--skip-uml]``

* IPVS, inside one User-Mode Linux boot (tests/uml/boot.py; this machine's kernel has no IPVS): ipvsd's
  Engine programs N virtual servers x M real servers from empty, then a reload where 1 % of the virtual
  servers change (one real server replaced, one re-weighted in each); next to it, in the same guest,
  ``ipvsadm -R`` of the same table from empty and ``ipvsadm -R`` of the minimal delta script for the
  reload (the best an operator could do by hand), plus ``ipvsadm -C`` + ``-R`` of the whole new table
  (what a reload without a diff costs). Then health events (one real server of one service down/up,
  alternately) against the full table: time from the event entering the Engine to the kernel change
  being acknowledged.
* nftables, on the host in a fresh namespace: the same table through the Engine (one atomic batch),
  next to ``nft -f`` of the identical ruleset (``nft list table`` of what the Engine made, loaded into
  an empty namespace), the same 1 % reload, the health-event latency, and a respawn against the
  matching table (state file trusted: no full read, no command).

Prints one JSON document with the figures and the ratios (Engine / reference; < 1 means faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def config_text(services: int, reals: int, changed: int = 0, backend: str = "auto", algo: str = "wlc") -> str:
    """N virtual servers (192.0.2.1-250 x ports 80..) with M real servers each; ``changed`` of them (spread
    over the table) have their first real server replaced and their second re-weighted."""
    step = max(1, services // changed) if changed else 0
    out = [f"global_defs {{\n    lb_backend {backend}\n}}\n"]
    for i in range(services):
        vip, port = f"192.0.2.{i % 250 + 1}", 80 + i // 250
        moved = bool(changed) and i % step == 0 and i // step < changed
        out.append(f"virtual_server {vip} {port} {{\n    lb_algo {algo}\n    lb_kind NAT\n    protocol TCP\n")
        for r in range(reals):
            addr = f"198.51.100.{11 + r}"
            weight = 1
            if moved and r == 0:
                addr = "198.51.100.99"
            if moved and r == 1:
                weight = 5
            out.append(f"    real_server {addr} 8080 {{\n        weight {weight}\n    }}\n")
        out.append("}\n")
    return "".join(out)


def load(text: str) -> Any:
    from supervisor.config.load import load_text

    r = load_text(text, name="bench.conf")
    assert r.config is not None and not r.diag.errors, [str(p) for p in r.diag][:5]
    return r.config


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, round(p / 100 * len(v)) - 1))], 3)


def health_latency(eng: Any, services: int, events: int) -> dict[str, float]:
    times: list[float] = []
    for i in range(events):
        n = (i // 2) * 37 % services  # a different service every pair, down then up
        vs = f"192.0.2.{n % 250 + 1}:{80 + n // 250}/198.51.100.12:8080"
        t0 = time.perf_counter()
        eng.set_health(vs, {"health": "down" if i % 2 == 0 else "up"})
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "max_ms": round(max(times), 3), "n": events}


def timed(argv: list[str], stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)
    return time.perf_counter() - t0


# -- inside UML ------------------------------------------------------------------------------------


def ipvsadm_delta(before: str, after: str) -> str:
    """The ipvsadm commands that turn saved table ``before`` into ``after`` (-d / -a / -e lines)."""
    def dests(text: str) -> dict[tuple[str, str], str]:
        out = {}
        for line in text.splitlines():
            if line.startswith("-a "):
                f = line.split()
                out[(f[2], f[4])] = line
        return out

    b, a = dests(before), dests(after)
    cmds = [f"-d -t {s} -r {r}" for (s, r) in sorted(set(b) - set(a))]
    cmds += [a[k] for k in sorted(set(a) - set(b))]
    cmds += ["-e" + a[k][2:] for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return "\n".join(cmds) + "\n"


def guest(args: argparse.Namespace) -> int:
    from ipvsd.reconcile import Engine

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "198.51.100.0/24", "dev", "lo"], check=True)
    a_text = config_text(args.services, args.reals)
    b_text = config_text(args.services, args.reals, changed=max(1, args.services // 100))
    a, b = load(a_text), load(b_text)
    out: dict[str, Any] = {"services": args.services, "reals": args.reals}
    run = tempfile.mkdtemp()
    eng = Engine(run, sysctls=False)
    t0 = time.perf_counter()
    r = eng.configure(a)
    out["engine_from_empty_s"] = round(time.perf_counter() - t0, 3)
    out["engine_from_empty_ops"] = r.changes
    saved_a = subprocess.run(["ipvsadm", "-S", "-n"], capture_output=True, text=True, check=True).stdout
    out["entries"] = saved_a.count("\n")
    t0 = time.perf_counter()
    r = eng.configure(b)
    out["engine_reload_s"] = round(time.perf_counter() - t0, 3)
    out["engine_reload_ops"] = r.changes
    saved_b = subprocess.run(["ipvsadm", "-S", "-n"], capture_output=True, text=True, check=True).stdout
    out["health"] = health_latency(eng, args.services, args.events)
    # restart against a matching kernel (a respawn): reads everything, sends nothing
    t0 = time.perf_counter()
    r = Engine(run, sysctls=False).configure(b)
    out["engine_restart_noop_s"] = round(time.perf_counter() - t0, 3)
    out["engine_restart_noop_ops"] = r.changes
    eng.stop(True)
    assert subprocess.run(["ipvsadm", "-S", "-n"], capture_output=True, text=True).stdout == ""
    # ipvsadm, same guest, same tables
    out["ipvsadm_R_from_empty_s"] = round(timed(["ipvsadm", "-R"], saved_a), 3)
    delta = ipvsadm_delta(saved_a, saved_b)
    out["ipvsadm_delta_lines"] = delta.count("\n")
    out["ipvsadm_R_delta_s"] = round(timed(["ipvsadm", "-R"], delta), 3)
    check = subprocess.run(["ipvsadm", "-S", "-n"], capture_output=True, text=True).stdout
    out["ipvsadm_delta_correct"] = check == saved_b
    out["ipvsadm_C_R_s"] = round(timed(["ipvsadm", "-C"]) + timed(["ipvsadm", "-R"], saved_b), 3)
    subprocess.run(["ipvsadm", "-C"], check=True)
    out["ratio_from_empty"] = round(out["engine_from_empty_s"] / out["ipvsadm_R_from_empty_s"], 2)
    out["ratio_reload_vs_delta"] = round(out["engine_reload_s"] / out["ipvsadm_R_delta_s"], 2)
    out["ratio_reload_vs_C_R"] = round(out["engine_reload_s"] / out["ipvsadm_C_R_s"], 2)
    print("GUEST-JSON-BEGIN")
    print(json.dumps(out))
    print("GUEST-JSON-END")
    return 0


# -- on the host: nftables in a namespace -------------------------------------------------------------


NFT_GUEST = r'''
import json, sys, tempfile, time, subprocess
sys.path.insert(0, sys.argv[1])
from tests.perf.bench_ipvs import config_text, load, health_latency
from ipvsd.reconcile import Engine
services, reals, events = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
a = load(config_text(services, reals, backend="nftables", algo="wrr"))
b = load(config_text(services, reals, changed=max(1, services // 100), backend="nftables", algo="wrr"))
out = {}
run = tempfile.mkdtemp()
eng = Engine(run, sysctls=False)
t0 = time.perf_counter(); r = eng.configure(a)
out["engine_from_empty_s"] = round(time.perf_counter() - t0, 3); out["engine_from_empty_cmds"] = r.changes
out["batches_from_empty"] = eng.nft.batches
table = subprocess.run(["nft", "list", "table", "inet", "pykeepalived"], capture_output=True, text=True, check=True).stdout
out["rules"] = table.count("\n")
t0 = time.perf_counter(); r = eng.configure(b)
out["engine_reload_s"] = round(time.perf_counter() - t0, 3); out["engine_reload_cmds"] = r.changes
out["health"] = health_latency(eng, services, events)
# a respawn against the matching table, same health: the record is trusted, nothing read in full, nothing sent
again = Engine(run, sysctls=False); again.health = dict(eng.health)
t0 = time.perf_counter(); r = again.configure(b)
out["engine_restart_noop_s"] = round(time.perf_counter() - t0, 3); out["engine_restart_noop_cmds"] = r.changes
out["restart_full_reads"] = again.nft.full_reads
eng.stop(True)
# the same ruleset through nft -f, from empty
t0 = time.perf_counter()
subprocess.run(["nft", "-f", "-"], input=table, text=True, check=True)
out["nft_f_from_empty_s"] = round(time.perf_counter() - t0, 3)
subprocess.run(["nft", "delete", "table", "inet", "pykeepalived"], check=True)
out["ratio_from_empty"] = round(out["engine_from_empty_s"] / out["nft_f_from_empty_s"], 2)
print(json.dumps(out))
'''


def host_nft(args: argparse.Namespace) -> dict[str, Any]:
    from tests.lab.netns import Namespace

    with Namespace("bnft") as ns:
        ns.ip("link", "set", "lo", "up")
        r = ns.run([sys.executable, "-c", NFT_GUEST, str(ROOT), str(args.services), str(args.reals),
                    str(args.events)], timeout=900)
        return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--reals", type=int, default=10)
    ap.add_argument("--events", type=int, default=400)
    ap.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--skip-uml", action="store_true")
    ap.add_argument("--skip-nft", action="store_true")
    args = ap.parse_args()
    if args.guest:
        return guest(args)
    report: dict[str, Any] = {}
    if not args.skip_nft:
        report["nftables_host_netns"] = host_nft(args)
        print(json.dumps(report, indent=1), flush=True)
    if not args.skip_uml:
        from tests.uml.boot import run_in_uml

        run = run_in_uml(Path(__file__), ["--guest", f"--services={args.services}", f"--reals={args.reals}",
                                          f"--events={args.events}"], timeout=900, mem="768M")
        if run.data is None:
            print(run.console[-3000:], file=sys.stderr)
            return 1
        report["ipvs_uml"] = run.data
        report["uml_seconds"] = round(run.seconds, 1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
