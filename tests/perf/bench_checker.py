"""Benchmark: checker CPU and server-death-to-down-event latency at scale (not collected by pytest).

``sudo .venv/bin/python -m tests.perf.bench_checker [--tcp 10000] [--http 2000] [--seconds 20]``

In a fresh namespace, one asyncio process listens on N ports of 192.0.2.10 (HTTP on the first
``--http`` of them, plain accept-and-close on the rest); the checker (tests/integration/checkerd/driver.py:
checkerd's HealthManager, the role minus the bus) checks them all with delay_loop 1, connect_timeout 1,
retry 1, delay_before_retry 1, warmup 1. After a steady period it measures the checker's CPU, then
closes 100 TCP and 100 HTTP listeners at a known instant and reports, per server, the time until its
down event (bound keepalived would have: delay_loop + retry x delay_before_retry = 2 s, +50 ms).
keepalived's own checker needs IPVS (UML): not run here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from tests.lab.netns import Namespace

ROOT = Path(__file__).resolve().parents[2]
ADDR = "192.0.2.10"
BASE = 20000

SERVER = r'''
import asyncio, os, resource, signal, sys, time
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
n, nhttp, kill, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
async def tcp(r, w):
    w.close()
async def http(r, w):
    try:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
        await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    servers = []
    for i in range(n):
        servers.append(await asyncio.start_server(http if i < nhttp else tcp, "%s", %d + i, backlog=64))
    ev = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, ev.set)
    print("ready", flush=True)
    await ev.wait()
    victims = list(range(kill)) + list(range(nhttp, nhttp + kill))
    t = time.monotonic()
    for i in victims:
        servers[i].close()
    open(out, "w").write("%%f %%s" %% (t, ",".join(str(%d + i) for i in victims)))
    await asyncio.sleep(60)
asyncio.run(main())
''' % (ADDR, BASE, BASE)  # noqa: UP031 (a script template with literal braces)


def conf(n: int, nhttp: int) -> str:
    parts = []
    for i in range(n):
        port = BASE + i
        chk = ("HTTP_GET {\n url {\n path /\n digest b1946ac92492d2347c6235b4d2611184\n }\n }" if i < nhttp
               else "TCP_CHECK {\n }")
        parts.append(f" real_server {ADDR} {port} {{\n {chk}\n }}\n")
    return ("virtual_server 203.0.113.1 80 {\n protocol TCP\n lb_algo rr\n delay_loop 1\n connect_timeout 1\n"
            " retry 1\n delay_before_retry 1\n warmup 1\n" + "".join(parts) + "}\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int, default=10000)
    p.add_argument("--http", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20)
    a = p.parse_args()
    n = a.tcp + a.http
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the server and the checker
    with tempfile.TemporaryDirectory() as d, Namespace("bench") as ns:
        ns.add_dummy("dummy0")
        ns.add_address("dummy0", f"{ADDR}/24")
        ns.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 19999", "net.ipv4.tcp_tw_reuse=1"])
        killed = Path(d) / "killed"
        srv = ns.popen([sys.executable, "-c", SERVER, str(n), str(a.http), "100", str(killed)],
                       stdout=subprocess.PIPE, text=True)
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        (Path(d) / "k.conf").write_text(conf(n, a.http))
        drv = ns.popen([sys.executable, "-m", "tests.integration.checkerd.driver", str(Path(d) / "k.conf"),
                        "--duration", str(a.seconds + 40)], stdout=subprocess.PIPE, text=True,
                       stderr=subprocess.DEVNULL, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
        events: list[dict] = []
        threading.Thread(target=lambda: [events.append(json.loads(x)) for x in drv.stdout], daemon=True).start()  # type: ignore[union-attr]
        time.sleep(5)  # warmup spread + first round
        # The driver runs as a child of `ip netns exec`: find the python process.
        proc = next(c for c in psutil.Process(drv.pid).children(recursive=True) if "driver" in " ".join(c.cmdline())) \
            if psutil.Process(drv.pid).children(recursive=True) else psutil.Process(drv.pid)
        c0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(a.seconds)
        c1, t1 = sum(proc.cpu_times()[:2]), time.monotonic()
        downs_before = sum(1 for e in events if e["data"] and e["data"].get("health") == "down")
        os.kill(srv.pid, signal.SIGUSR1)
        time.sleep(6)
        tk, ports = killed.read_text().split()
        victims = {f"{ADDR}:{x}" for x in ports.split(",")}
        lat = sorted(e["t"] - float(tk) for e in events if e["data"] and e["data"].get("health") == "down"
                     and e["key"].split("/")[1] in victims)
        rss = proc.memory_info().rss / 2**20

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

        print(f"real servers: {a.tcp} TCP_CHECK + {a.http} HTTP_GET, delay_loop 1 s")
        print(f"checker CPU: {100 * (c1 - c0) / (t1 - t0):.1f}% of one core over {t1 - t0:.0f} s; RSS {rss:.0f} MiB; "
              f"spurious downs before the kill: {downs_before}")
        print(f"down events: {len(lat)}/{len(victims)}; latency p50 {pct(0.5):.3f} s, p99 {pct(0.99):.3f} s, "
              f"max {lat[-1] if lat else float('nan'):.3f} s (keepalived's bound: 2 s + 50 ms)")
        print("keepalived side: not run (its checker needs IPVS, i.e. User-Mode Linux)")


if __name__ == "__main__":
    main()
