"""VRRP benchmarks, side by side with Debian's keepalived 2.2.7 in the same run (root; namespaces).

1. Failover precision, from a capture on the bridge: the gap between the old master's last advert and
   the new master's first advert, minus the RFC master_down_interval (SIGKILL of the whole master), and
   the gap after a TERM (priority-0 advert) minus the skew. v2 at 1 s and v3 at 0.1 s.
2. Scale: N instances (default 255) on one interface, v3 at 0.1 s: CPU and RSS of the VRRP process as
   master and as backup, for pykeepalived and keepalived.

    .venv/bin/python -m tests.perf.bench_vrrp [--runs 3] [--instances 255] [--window 10] [--skip-failover]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from tests.integration.vrrpd.vlab import Capture, Keepalived, Router, conf, gap_after, instance_conf
from tests.lab.netns import lab_bridge, wait_for


def mdi(version: int, adv: float, prio: int) -> float:
    skew = (256 - prio) / 256 if version == 2 else (256 - prio) * adv / 256
    return 3 * adv + skew


def has_vip(ns: object, vip: str = "192.0.2.100/24") -> bool:
    return vip in ns.address_cidrs("eth0")  # type: ignore[attr-defined]


def failover_once(kind: str, version: int, adv: float, graceful: bool, tmp: Path) -> float:
    """One failover; returns (gap - bound) in ms."""
    with lab_bridge(hosts=2, purpose="vbench") as lab:
        cap = Capture(lab, tmp)
        text = [conf(instance_conf(prio=p, adv=adv, version=version)) for p in (150, 100)]
        if kind == "pyk":
            a: Router | Keepalived = Router(lab.hosts[0], tmp, f"a{time.monotonic_ns()}")
            b: Router | Keepalived = Router(lab.hosts[1], tmp, f"b{time.monotonic_ns()}")
        else:
            a = Keepalived(lab.hosts[0], tmp, f"a{time.monotonic_ns()}")
            b = Keepalived(lab.hosts[1], tmp, f"b{time.monotonic_ns()}")
        try:
            a.start(text[0])
            wait_for(lambda: has_vip(lab.hosts[0]), 15, interval=0.05)
            b.start(text[1])
            time.sleep(max(1.0, 5 * adv) + (1.5 if kind == "pyk" else 0.5))
            t = time.time()
            if graceful:
                a.stop()
            elif isinstance(a, Router):
                a.kill_all()
            else:
                assert a.proc is not None
                # children first: a parent's death would make its VRRP child stop gracefully (priority 0)
                for p in [*psutil.Process(a.proc.pid).children(recursive=True)[::-1], psutil.Process(a.proc.pid)]:
                    p.kill()
                a.proc.wait(10)
            wait_for(lambda: has_vip(lab.hosts[1]), 10, interval=0.02)
            time.sleep(3 * adv + 0.2)
        finally:
            cap.stop()
            for r in (a, b):
                if r.proc is not None and r.proc.poll() is None:
                    r.proc.terminate()
                    r.proc.wait(20)
        ads = cap.adverts()
        if graceful:
            zero = min(x.ts for x in ads if x.src == lab.ip4(0) and x.prio == 0 and x.ts >= t - 1)
            first = min(x.ts for x in ads if x.src == lab.ip4(1) and x.ts > zero)
            skew = (256 - 100) / 256 if version == 2 else (256 - 100) * adv / 256
            return (first - zero - skew) * 1000
        return (gap_after(ads, lab.ip4(0), lab.ip4(1), after=t - 2) - mdi(version, adv, 100)) * 1000


def many(n: int, prio: int, adv: float) -> str:
    insts = []
    for i in range(n):
        vrid = i + 1
        insts.append(instance_conf(f"VI_{vrid}", vrid=vrid, prio=prio, adv=adv, version=3,
                                   vips=(f"198.51.100.{vrid % 250 + 1}/32",) if vrid <= 250 else
                                   (f"203.0.113.{vrid - 249}/32",)))
    return conf(*insts)


def vrrp_process(r: Router | Keepalived) -> psutil.Process:
    assert r.proc is not None
    root = psutil.Process(r.proc.pid)
    kids = root.children(recursive=True)
    if isinstance(r, Router):
        for p in kids:
            if " ".join(p.cmdline()).startswith("pykeepalived: vrrp"):
                return p
        raise RuntimeError("no vrrp role")
    return kids[0] if kids else root  # keepalived -P: the parent forks the VRRP child


def vip_count(ns: object) -> float:
    """VIPs held (-1 when `ip` cannot answer in time: a busy rtnl lock under 255 flapping instances)."""
    try:
        return float(len(ns.address_cidrs("eth0")) - 1)  # type: ignore[attr-defined]
    except Exception:
        return -1.0


def cpu_window(procs: list[psutil.Process], window: float) -> list[float]:
    before = [p.cpu_times() for p in procs]
    time.sleep(window)
    after = [p.cpu_times() for p in procs]
    return [((a.user + a.system) - (b.user + b.system)) / window * 100 for a, b in zip(after, before, strict=True)]


def scale(kind: str, n: int, adv: float, window: float, tmp: Path) -> dict[str, float]:
    with lab_bridge(hosts=2, purpose="vscale") as lab:
        cls = Router if kind == "pyk" else Keepalived
        a = cls(lab.hosts[0], tmp, f"sa{kind}")  # type: ignore[abstract]
        b = cls(lab.hosts[1], tmp, f"sb{kind}")  # type: ignore[abstract]
        try:
            a.start(many(n, 150, adv))
            wait_for(lambda: len(lab.hosts[0].address_cidrs("eth0")) > n // 2, 30, interval=0.2)
            b.start(many(n, 100, adv))
            time.sleep(4)
            pa, pb = vrrp_process(a), vrrp_process(b)
            cm, cb = cpu_window([pa, pb], window)
            return {"cpu_master": cm, "cpu_backup": cb, "rss_master_mb": pa.memory_info().rss / 2**20,
                    "rss_backup_mb": pb.memory_info().rss / 2**20,
                    "master_vips": vip_count(lab.hosts[0]), "backup_vips": vip_count(lab.hosts[1])}
        finally:
            for r in (a, b):
                if r.proc is not None and r.proc.poll() is None:
                    r.proc.terminate()
                    r.proc.wait(60)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--instances", type=int, default=255)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--skip-failover", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vbench-") as d:
        tmp = Path(d)
        if not args.skip_failover:
            for version, adv in ((2, 1.0), (3, 0.1)):
                for graceful in (False, True):
                    what = "TERM, gap - skew" if graceful else "SIGKILL, gap - master_down_interval"
                    res = {}
                    for kind in ("keepalived", "pyk"):
                        res[kind] = [failover_once(kind, version, adv, graceful, tmp) for _ in range(args.runs)]
                    print(f"v{version} advert {adv:g}s {what}: "
                          + "; ".join(f"{k}: median {statistics.median(v):+.1f} ms ({', '.join(f'{x:+.1f}' for x in v)})"
                                      for k, v in res.items()), flush=True)
        if not args.skip_scale:
            out = {k: scale(k, args.instances, 0.1, args.window, tmp) for k in ("keepalived", "pyk")}
            for k, v in out.items():
                print(f"{args.instances} instances v3 0.1s {k}: CPU master {v['cpu_master']:.1f} % backup "
                      f"{v['cpu_backup']:.1f} %, RSS master {v['rss_master_mb']:.1f} MB backup "
                      f"{v['rss_backup_mb']:.1f} MB, VIPs master/backup {v['master_vips']:.0f}/{v['backup_vips']:.0f}",
                      flush=True)
            ka, py = out["keepalived"], out["pyk"]
            print(f"ratio pykeepalived/keepalived: CPU master {py['cpu_master'] / max(ka['cpu_master'], 0.01):.2f}, "
                  f"backup {py['cpu_backup'] / max(ka['cpu_backup'], 0.01):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
