"""Benchmark: our checker next to keepalived's, on the same real servers in the same User-Mode Linux guest
(not collected by pytest).

``sudo .venv/bin/python -m tests.perf.bench_checker_uml [--tcp 800] [--http 200] [--seconds 15] [--kill 50]
[--rounds 2] [--together]``

keepalived's checker needs IPVS, which this machine's kernel lacks, so the whole comparison runs inside
UML (packaging/setup-uml.sh; tests/uml/boot.py boots it with the host root read-only and one python
process as the test). Inside the guest, one process (this file with ``--guest``):

* puts 192.0.2.10 on the guest's loopback (the guest's own kernel, nothing on the host) and starts the
  test servers of tests/perf/bench_checker.py: N listeners in one epoll loop, HTTP on the first
  ``--http`` ports, accept-and-close on the rest;
* writes one keepalived.conf (TCP_CHECK / HTTP_GET with digest, delay_loop 1, connect_timeout 1,
  retry 1, delay_before_retry 1, warmup 1) and runs both checkers on it at the same time: Debian's
  ``keepalived -C -n -l`` (its IPVS is the guest's kernel IPVS) and our checker
  (tests/integration/checkerd/driver.py: checkerd's HealthManager, the role minus the bus);
* measures the CPU of each checker process over the same window from /proc/<pid>/schedstat (the
  scheduler's exact runtime; /proc/<pid>/stat's tick samples under-charge timer-driven processes),
  keepalived's checker child found by its ``-c`` pid file, and the connections the servers accepted
  meanwhile, hence CPU per check made, then closes ``--kill`` TCP and ``--kill`` HTTP
  listeners at a known instant and takes, per victim, the time until each checker reports it down:
  keepalived's "Removing service ..." line, our published ``health: down``. Both kinds of lines are
  stamped the same way, when they reach this process through a pipe.

The guest has one CPU, shared by both checkers and the servers: the guest's idle share is printed, and
if it is near zero the latencies say more about contention than about either checker. UML makes every
syscall several times dearer than the host does, so the default size is scaled down from the issue's
10,000 + 2,000 (``--tcp``/``--http`` change it). The host side prints the figures and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADDR = "192.0.2.10"
BASE = 20000
REMOVING = re.compile(r"Removing service \[([0-9.]+)\]:tcp:(\d+) from VS")


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` in seconds: the scheduler's exact runtime (/proc/<pid>/schedstat) where the
    kernel has it, else utime + stime (/proc/<pid>/stat), which is sampled at each tick: a process
    that wakes on a timer tick and sleeps before the next one is under-charged there, and the
    checkers' timers make exactly that pattern."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def cpu_source() -> str:
    return "schedstat" if os.path.exists("/proc/self/schedstat") else "stat ticks"


def guest_idle() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v)


class Running:
    """One checker process under test and the down events it reported (victim -> arrival time)."""

    def __init__(self, name: str, proc: subprocess.Popen) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid  # the process whose CPU counts (keepalived: its checker child)
        self.down: dict[str, float] = {}
        self.started = threading.Event()
        self.lags: list[tuple[float, dict[str, float]]] = []  # ours: the loop's lag, one line a second


def start_keepalived(cfg: Path, tmp: Path) -> Running:
    proc = subprocess.Popen(["keepalived", "-C", "-n", "-l", "-G", "-f", str(cfg), "-p", str(tmp / "ka.pid"),
                             "-c", str(tmp / "ka-checker.pid")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    run = Running("keepalived", proc)

    def read() -> None:
        assert proc.stderr is not None
        with open(tmp / "keepalived.log", "a") as log:
            for line in proc.stderr:
                t = time.monotonic()
                log.write(line)
                m = REMOVING.search(line)
                if m:
                    run.down.setdefault(f"{m.group(1)}:{m.group(2)}", t)

    threading.Thread(target=read, daemon=True).start()
    pidfile = tmp / "ka-checker.pid"
    for _ in range(600):
        if pidfile.exists() and pidfile.read_text().strip():
            run.pid = int(pidfile.read_text())
            run.started.set()
            break
        if proc.poll() is not None:
            raise SystemExit(f"keepalived exited with {proc.returncode}: see its log")
        time.sleep(0.1)
    return run


def start_ours(cfg: Path, tmp: Path, duration: float) -> Running:
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.checkerd.driver", str(cfg),
                             "--duration", str(duration), "--lag"], stdout=subprocess.PIPE,
                            stderr=open(tmp / "driver.log", "a"), text=True, cwd=str(ROOT),
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    run = Running("ours", proc)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            t = time.monotonic()
            e = json.loads(line)
            if e["key"] == "":
                run.started.set()
            elif e["key"] == "#lag":
                run.lags.append((e["t"], e["data"]))
            elif e["data"] and e["data"].get("health") == "down":
                run.down.setdefault(e["key"].split("/")[1], t)

    threading.Thread(target=read, daemon=True).start()
    return run


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def phase(a: argparse.Namespace, tmp: Path, who: list[str]) -> dict:
    """Fresh servers, the checkers in ``who`` started together on them, a CPU window, then the kill."""
    from tests.perf.bench_checker import SERVER, conf

    n = a.tcp + a.http
    procs: list[subprocess.Popen] = []
    try:
        killed = tmp / "killed"
        killed.unlink(missing_ok=True)
        srv = subprocess.Popen([sys.executable, "-c", SERVER, ADDR, str(BASE), str(n), str(a.http), str(a.kill),
                                str(killed)], stdout=subprocess.PIPE, text=True)
        procs.append(srv)
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        cfg = tmp / "keepalived.conf"
        # lb_kind for keepalived's IPVS service; our parser takes the same file
        cfg.write_text(conf(n, a.http).replace(" lb_algo rr\n", " lb_algo rr\n lb_kind NAT\n", 1))
        runs: list[Running] = []
        t_start = time.monotonic()
        for w in who:
            r = start_keepalived(cfg, tmp) if w == "keepalived" else start_ours(cfg, tmp, a.seconds + 120)
            procs.append(r.proc)
            runs.append(r)
        for r in runs:
            if not r.started.wait(120):
                raise SystemExit(f"{r.name} did not start within 120 s")
        started_in = time.monotonic() - t_start
        time.sleep(4)  # warmup spread (1 s) + keepalived loading its IPVS table + a first full round
        early = {r.name: len(r.down) for r in runs}

        def accepted() -> tuple[float, int]:
            """The servers' count of accepted connections (= check attempts that connected)."""
            count = tmp / "killed.count"
            count.unlink(missing_ok=True)
            os.kill(srv.pid, signal.SIGUSR2)
            for _ in range(100):
                if count.exists():
                    t, c = count.read_text().split()
                    return float(t), int(c)
                time.sleep(0.05)
            raise SystemExit("the test servers did not report their count")

        n0 = accepted()
        c0, s0, (i0, a0), t0 = [cpu_seconds(r.pid) for r in runs], cpu_seconds(srv.pid), guest_idle(), time.monotonic()
        time.sleep(a.seconds)
        c1, s1, (i1, a1), t1 = [cpu_seconds(r.pid) for r in runs], cpu_seconds(srv.pid), guest_idle(), time.monotonic()
        n1 = accepted()
        os.kill(srv.pid, signal.SIGUSR1)
        for _ in range(100):
            if killed.exists() and killed.read_text():
                break
            time.sleep(0.05)
        tk_s, ports = killed.read_text().split()
        tk = float(tk_s)
        victims = {f"{ADDR}:{p}" for p in ports.split(",")}
        deadline = time.monotonic() + a.wait
        while time.monotonic() < deadline and not all(victims <= r.down.keys() for r in runs):
            time.sleep(0.2)

        def rss(pid: int) -> float:
            with open(f"/proc/{pid}/status") as f:
                return next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) / 1024

        win = t1 - t0
        return {
            "who": who, "victims": len(victims), "window": win, "started_in": started_in,
            "cpu": {r.name: 100 * (c1[i] - c0[i]) / win for i, r in enumerate(runs)},
            "cpu_source": cpu_source(),
            "servers_cpu": 100 * (s1 - s0) / win,
            "checks_per_s": (n1[1] - n0[1]) / (n1[0] - n0[0]),  # all checkers of the phase together
            "guest_idle": 100 * (i1 - i0) / max(1, a1 - a0),
            "rss": {r.name: rss(r.pid) for r in runs},
            "early_downs": early,
            "lag_ms": {r.name: {"steady": max((x["max"] for t, x in r.lags if t0 < t <= t1), default=None),
                                "after_kill": max((x["max"] for t, x in r.lags if tk < t <= tk + a.wait),
                                                  default=None)} for r in runs if r.lags},
            "latency": {r.name: sorted(r.down[v] - tk for v in victims if v in r.down) for r in runs},
        }
    finally:
        stop(procs)


def guest(a: argparse.Namespace) -> dict:
    """Runs inside UML: set up the guest, then the phases; returns the figures."""
    from pyroute2 import IPRoute

    tmp = Path(os.environ.get("TMPDIR", "/run/tmp"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))  # inherited by servers and checkers
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up")
        ipr.addr("add", index=lo, address=ADDR, prefixlen=32)
    Path("/proc/sys/net/ipv4/tcp_tw_reuse").write_text("1\n")
    # alternating phases: a host whose load changes during the run weighs on both checkers alike
    plan = ([["keepalived", "ours"]] if a.together else [["keepalived"], ["ours"]]) * a.rounds
    return {"tcp": a.tcp, "http": a.http, "phases": [phase(a, tmp, who) for who in plan]}


def host(a: argparse.Namespace) -> None:
    from tests.uml.boot import run_in_uml

    load = os.getloadavg()
    args = ["--guest", "--tcp", str(a.tcp), "--http", str(a.http), "--seconds", str(a.seconds),
            "--kill", str(a.kill), "--wait", str(a.wait), "--rounds", str(a.rounds), *(["--together"] if a.together else [])]
    if a.replay:  # print again the figures of an earlier run (--save)
        d, seconds = json.loads(Path(a.replay).read_text()), float("nan")
    else:
        run = run_in_uml(Path(__file__), args, timeout=a.timeout, mem=a.mem)
        d, seconds = run.data, run.seconds
        if d is None:
            print(run.console[-4000:])
            raise SystemExit(f"the guest gave no result (rc={run.rc}, {run.seconds:.0f} s)")
        if a.save:
            Path(a.save).write_text(json.dumps(d))
    bound = 2.0 + 0.05
    print(f"host load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    how = "at the same time" if a.together else "one after the other, each alone on the guest's CPU"
    print(f"User-Mode Linux guest (1 CPU, mem={a.mem}), {seconds:.0f} s in all; both checkers on the same "
          f"{d['tcp']} TCP_CHECK + {d['http']} HTTP_GET real servers, delay_loop 1 s, {how} "
          f"(scaled down from 10,000 + 2,000: UML syscalls are slow)")
    cpus: dict[str, list[float]] = {}
    per: dict[str, list[float]] = {}  # CPU microseconds per check made
    lat: dict[str, list[float]] = {}
    for ph in d["phases"]:
        print(f"phase {' + '.join(ph['who'])} (CPU from {ph.get('cpu_source', 'stat ticks')}): guest CPU idle {ph['guest_idle']:.0f}% over {ph['window']:.0f} s, "
              f"test servers {ph['servers_cpu']:.1f}%, started in {ph['started_in']:.1f} s; connections made "
              f"{ph['checks_per_s']:.0f}/s (due: {len(ph['who']) * (d['tcp'] + d['http'])}/s)")
        for who in ph["who"]:
            cpus.setdefault(who, []).append(ph["cpu"][who])
            if len(ph["who"]) == 1:  # alone: every connection the servers saw is this checker's
                per.setdefault(who, []).append(1e4 * ph["cpu"][who] / ph["checks_per_s"])
            lat.setdefault(who, []).extend(ph["latency"][who])
            xs = ph["latency"][who]
            print(f"  {who:>10}: CPU {ph['cpu'][who]:.1f}% of one core, RSS {ph['rss'][who]:.0f} MiB, "
                  f"downs before the kill {ph['early_downs'][who]} (should be 0); death->down {len(xs)}/"
                  f"{ph['victims']} seen, p50 {pct(xs, 0.5):.3f} s, p99 {pct(xs, 0.99):.3f} s, "
                  f"max {xs[-1] if xs else float('nan'):.3f} s (bound {bound:.2f} s)")
            if who in ph.get("lag_ms", {}):
                lg = ph["lag_ms"][who]
                print(f"  {'':>10}  its loop lag (10 ms sleeps), worst: steady {lg['steady']:.0f} ms, "
                      f"after the kill {lg['after_kill']:.0f} ms")
    cpu = {w: statistics.median(x) for w, x in cpus.items()}
    for w in cpu:
        xs = sorted(lat[w])
        print(f"{w:>10} over {a.rounds} phase(s): CPU median {cpu[w]:.1f}% of one core; death->down pooled "
              f"p50 {pct(xs, 0.5):.3f} s, p99 {pct(xs, 0.99):.3f} s, max {xs[-1] if xs else float('nan'):.3f} s "
              f"({len(xs)} victims)")
    for w, x in per.items():
        print(f"{w:>10}: CPU per check made, median {statistics.median(x):.0f} us (a checker that falls behind "
              f"makes fewer checks and shows less CPU)")
    ka, ours = cpu.get("keepalived", 0.0), cpu.get("ours", 0.0)
    if "keepalived" in per and "ours" in per:
        print(f"ratio ours/keepalived: CPU per check {statistics.median(per['ours']) / statistics.median(per['keepalived']):.2f}; ", end="")
    print(f"ratio ours/keepalived: CPU {ours / ka if ka else float('nan'):.2f}", end="")
    lk, lo = sorted(lat.get("keepalived", [])), sorted(lat.get("ours", []))
    if lk and lo:
        print(f", death->down p50 {pct(lo, 0.5) / pct(lk, 0.5):.2f}, p99 {pct(lo, 0.99) / pct(lk, 0.99):.2f}")
    else:
        print()
    print("(latencies are stamped when each checker's line reaches the guest's bench process through a pipe)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int, default=800)
    p.add_argument("--http", type=int, default=200)
    p.add_argument("--seconds", type=float, default=15, help="CPU measurement window")
    p.add_argument("--kill", type=int, default=50, help="listeners of each kind closed at the kill")
    p.add_argument("--wait", type=float, default=10, help="at most this long for the down events")
    p.add_argument("--mem", default="1G")
    p.add_argument("--timeout", type=float, default=300, help="the whole guest run, boot included")
    p.add_argument("--rounds", type=int, default=2, help="phases per checker, alternating")
    p.add_argument("--together", action="store_true", help="run both checkers at once instead of one after "
                   "the other (they then share the guest's one CPU)")
    p.add_argument("--save", help="also write the guest's raw figures (JSON) here")
    p.add_argument("--replay", help="print the figures saved by --save instead of running")
    p.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.guest:
        try:
            d = guest(a)
        finally:
            sys.stdout.flush()
        print("GUEST-JSON-BEGIN")
        print(json.dumps(d))
        print("GUEST-JSON-END", flush=True)
    else:
        host(a)


if __name__ == "__main__":
    main()
