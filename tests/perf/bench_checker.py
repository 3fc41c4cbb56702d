"""Benchmark: checker CPU and server-death-to-down-event latency at scale (not collected by pytest).

``sudo .venv/bin/python -m tests.perf.bench_checker [--tcp 10000] [--http 2000] [--seconds 20] [--kill 100]
[--verbose]``

In a fresh namespace, one asyncio process listens on N ports of 192.0.2.10 (HTTP on the first
``--http`` of them, plain accept-and-close on the rest); the checker (tests/integration/checkerd/driver.py:
checkerd's HealthManager, the role minus the bus) checks them all with delay_loop 1, connect_timeout 1,
retry 1, delay_before_retry 1, warmup 1. After a steady period it measures the checker's CPU, then
closes 100 TCP and 100 HTTP listeners at a known instant and reports, per server, the time until its
down event (bound keepalived would have: delay_loop + retry x delay_before_retry = 2 s, +50 ms). It also
reports the checker loop's lag (how late a 10 ms sleep wakes up, measured by the driver) in the steady
period and after the kill: where a latency tail comes from.
keepalived's own checker needs IPVS (UML): not run here.
"""

from __future__ import annotations

import argparse
import collections
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

# The real servers: one process, one epoll set over every listening socket, so that the servers
# cost far less than the checker they serve (an asyncio server per port would need a core of its own).
# TCP ports accept and close; HTTP ports answer one canned response and close.
SERVER = r'''
import os, resource, select, signal, socket, sys, time
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
addr, base = sys.argv[1], int(sys.argv[2])
n, nhttp, kill, out = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
RESP = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
ep = select.epoll()
listeners, conns = {}, {}
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, base + i))
    s.listen(512)
    listeners[s.fileno()] = (s, i < nhttp, i)
    ep.register(s.fileno(), select.EPOLLIN)
killed, asked = [], []
accepted = 0  # connections accepted so far: SIGUSR2 writes the count to OUT.count (checks made per second)
signal.signal(signal.SIGUSR1, lambda *_: killed.append(1))
signal.signal(signal.SIGUSR2, lambda *_: asked.append(1))
print("ready", flush=True)
end, done = time.monotonic() + 3600, False
def answer(c):
    try:
        data = c.recv(4096, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        data = b""
    if data:
        try:
            c.send(RESP, socket.MSG_DONTWAIT)
        except OSError:
            pass
    c.close()
    return True
while time.monotonic() < end:
    if killed and not done:
        done = True
        victims = [fd for fd, (s, http, i) in listeners.items() if i < kill or nhttp <= i < nhttp + kill]
        t = time.monotonic()
        ports = []
        for fd in victims:
            s, http, i = listeners.pop(fd)
            ep.unregister(fd)
            s.close()
            ports.append(str(base + i))
        with open(out, "w") as f:
            f.write("%f %s" % (t, ",".join(ports)))
    if asked:
        asked.clear()
        with open(out + ".tmp", "w") as f:
            f.write("%f %d" % (time.monotonic(), accepted))
        os.replace(out + ".tmp", out + ".count")
    try:
        events = ep.poll(0.2, 4096)
    except InterruptedError:
        continue
    for fd, ev in events:
        entry = listeners.get(fd)
        if entry is None:
            c = conns.pop(fd, None)
            if c is not None:
                ep.unregister(fd)
                answer(c)
            continue
        s, http, i = entry
        for _ in range(64):
            try:
                c, _a = s.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            accepted += 1
            if not http:
                c.close()
            elif not answer(c):
                conns[c.fileno()] = c
                ep.register(c.fileno(), select.EPOLLIN)
'''


def conf(n: int, nhttp: int) -> str:
    parts = []
    for i in range(n):
        port = BASE + i
        chk = ("HTTP_GET {\n url {\n path /\n digest b1946ac92492d2347c6235b4d2611184\n }\n }" if i < nhttp
               else "TCP_CHECK {\n }")
        parts.append(f" real_server {ADDR} {port} {{\n {chk}\n }}\n")
    return ("virtual_server 203.0.113.1 80 {\n protocol TCP\n lb_algo rr\n delay_loop 1\n connect_timeout 1\n"
            " retry 1\n delay_before_retry 1\n warmup 1\n" + "".join(parts) + "}\n")


def python_of(pid: int) -> psutil.Process:
    """The python process itself, should ``ip netns exec`` have stayed its parent."""
    p = psutil.Process(pid)
    kids = [c for c in p.children(recursive=True) if "python" in c.name()]
    return kids[0] if kids else p


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int, default=10000)
    p.add_argument("--http", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--verbose", action="store_true", help="print the loop lag of every second")
    p.add_argument("--kill", type=int, default=100, help="listeners of each kind closed at the kill")
    a = p.parse_args()
    n = a.tcp + a.http
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the server and the checker
    with tempfile.TemporaryDirectory() as d, Namespace("bench") as ns:
        ns.add_dummy("dummy0")
        ns.add_address("dummy0", f"{ADDR}/24")
        ns.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])
        killed = Path(d) / "killed"
        srv = ns.popen([sys.executable, "-c", SERVER, ADDR, str(BASE), str(n), str(a.http), str(a.kill), str(killed)],
                       stdout=subprocess.PIPE, text=True)
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        (Path(d) / "k.conf").write_text(conf(n, a.http))
        drv = ns.popen([sys.executable, "-m", "tests.integration.checkerd.driver", str(Path(d) / "k.conf"),
                        "--duration", str(a.seconds + 330), "--lag"], stdout=subprocess.PIPE, text=True,
                       stderr=open(Path(d) / "driver.log", "w"), cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
        events: list[dict] = []
        lags: list[dict] = []  # the driver's loop lag, one line a second
        started = threading.Event()

        def read() -> None:
            assert drv.stdout is not None
            for line in drv.stdout:
                e = json.loads(line)
                if e["key"] == "":
                    started.set()
                elif e["key"] == "#lag":
                    lags.append(e)
                else:
                    events.append(e)

        threading.Thread(target=read, daemon=True).start()
        # Loading a 12,000-server configuration takes a while: time the checks only once they run.
        t_load = time.monotonic()
        if not started.wait(300):
            raise SystemExit("the checker did not start within 300 s")
        print(f"configuration loaded and checkers started in {time.monotonic() - t_load:.1f} s")
        time.sleep(3)  # warmup spread (1 s) + a first full round
        proc, sproc = python_of(drv.pid), python_of(srv.pid)
        m0 = psutil.cpu_times()
        u0, s0, t0 = proc.cpu_times()[:2], sum(sproc.cpu_times()[:2]), time.monotonic()
        c0 = sum(u0)
        time.sleep(a.seconds)
        u1, s1, t1 = proc.cpu_times()[:2], sum(sproc.cpu_times()[:2]), time.monotonic()
        m1 = psutil.cpu_times()
        c1 = sum(u1)
        early = [e["data"].get("reason", "") for e in list(events) if e["data"] and e["data"].get("health") == "down"]
        downs_before = len(early)
        os.kill(srv.pid, signal.SIGUSR1)
        time.sleep(6)
        tk, ports = killed.read_text().split()
        victims = {f"{ADDR}:{x}" for x in ports.split(",")}
        lat = sorted(e["t"] - float(tk) for e in events if e["data"] and e["data"].get("health") == "down"
                     and e["key"].split("/")[1] in victims)
        rss = proc.memory_info().rss / 2**20

        def worst(t_from: float, t_to: float) -> str:
            w = [e["data"] for e in list(lags) if t_from < e["t"] <= t_to]
            if not w:
                return "n/a"
            return (f"p50 {max(x['p50'] for x in w):.1f} / p99 {max(x['p99'] for x in w):.1f} / "
                    f"max {max(x['max'] for x in w):.1f} ms (worst second)")

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

        print(f"real servers: {a.tcp} TCP_CHECK + {a.http} HTTP_GET, delay_loop 1 s")
        print(f"checker CPU: {100 * (c1 - c0) / (t1 - t0):.1f}% of one core over {t1 - t0:.0f} s; RSS {rss:.0f} MiB; "
              f"spurious downs before the kill: {downs_before}")
        print(f"  of which user {100 * (u1[0] - u0[0]) / (t1 - t0):.1f}%, kernel {100 * (u1[1] - u0[1]) / (t1 - t0):.1f}%")
        # CPU per attempt does not depend on how much of a core a busy machine left the checker
        w = [e for e in list(lags) if t0 - 0.5 < e["t"] <= t1 + 0.5]
        if len(w) >= 2 and w[-1]["data"]["attempts"] > w[0]["data"]["attempts"]:
            rate = (w[-1]["data"]["attempts"] - w[0]["data"]["attempts"]) / (w[-1]["t"] - w[0]["t"])
            print(f"  attempts: {rate:.0f}/s (due: {n}/s); CPU per attempt {1e6 * (c1 - c0) / (t1 - t0) / rate:.1f} us")
        if early:
            print("  spurious down reasons:", collections.Counter(r.split(" to ")[0][:60] for r in early).most_common(3))
        if a.verbose:
            for e in list(lags):
                print(f"  lag at t-kill {e['t'] - float(tk):+7.2f} s: p50 {e['data']['p50']:.1f} p99 {e['data']['p99']:.1f} "
                      f"max {e['data']['max']:.1f} ms")
        print(f"checker loop lag (10 ms sleeps): steady {worst(t0, t1)}; after the kill {worst(float(tk), float(tk) + 6)}")
        print(f"test servers' CPU: {100 * (s1 - s0) / (t1 - t0):.1f}% of one core (one epoll loop)")
        # what else ran: a shared machine starves the checker, and the figures above then mean little
        busy = sum(m1) - sum(m0) - (m1.idle - m0.idle) - (getattr(m1, "iowait", 0) - getattr(m0, "iowait", 0))
        soft = getattr(m1, "softirq", 0) - getattr(m0, "softirq", 0)  # loopback TCP is mostly softirq
        others = busy - soft - (c1 - c0) - (s1 - s0)
        print(f"machine: {100 * busy / (t1 - t0):.0f}% busy of {psutil.cpu_count()} x 100%: softirq "
              f"{100 * soft / (t1 - t0):.0f}%, other processes {100 * others / (t1 - t0):.0f}%")
        print(f"down events: {len(lat)}/{len(victims)}; latency p50 {pct(0.5):.3f} s, p99 {pct(0.99):.3f} s, "
              f"max {lat[-1] if lat else float('nan'):.3f} s (keepalived's bound: 2 s + 50 ms)")
        print("keepalived side: not run (its checker needs IPVS, i.e. User-Mode Linux)")


if __name__ == "__main__":
    main()
