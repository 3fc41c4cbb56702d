"""Benchmark: parsing a large configuration, pykeepalived next to ``keepalived -t`` in the same run.

The generated file has 1,000 vrrp_instances (over eth0..eth3) and 1,000 virtual_servers x 10
real_servers with TCP_CHECK. Both tools run inside one network namespace that has eth0..eth3, so the
host-dependent checks see the same interfaces. Prints the median of N runs and the ratio.

    .venv/bin/python -m tests.perf.bench_config [--runs 5]

A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.lab.netns import Namespace


def generate(n_instances: int = 1000, n_vs: int = 1000, n_rs: int = 10) -> str:
    out = ["global_defs {\n    router_id bench\n}\n"]
    for i in range(n_instances):
        third, fourth = divmod(i, 250)
        out.append(
            f"vrrp_instance VI_{i} {{\n    state BACKUP\n    interface eth{i % 4}\n"
            f"    virtual_router_id {i % 255 + 1}\n    priority {100 + i % 100}\n    advert_int 1\n"
            f"    virtual_ipaddress {{\n        198.51.{100 + third}.{fourth + 1}/24\n    }}\n}}\n"
        )
    for v in range(n_vs):
        a, b = divmod(v, 250)
        out.append(
            f"virtual_server 203.0.{113 + a % 2}.{b + 1} {8000 + v} {{\n    delay_loop 6\n    lb_algo rr\n"
            f"    lb_kind NAT\n    protocol TCP\n"
        )
        for r in range(n_rs):
            out.append(
                f"    real_server 192.0.2.{r + 1} {8000 + v} {{\n        weight 1\n"
                f"        TCP_CHECK {{\n            connect_timeout 3\n        }}\n    }}\n"
            )
        out.append("}\n")
    return "".join(out)


def timed(cmd: list[str], ns: Namespace, runs: int) -> tuple[float, int]:
    times = []
    rc = 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(["ip", "netns", "exec", ns.name, *cmd], capture_output=True, timeout=600, check=False)
        times.append(time.perf_counter() - start)
        rc = proc.returncode
    return statistics.median(times), rc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Namespace("bench") as ns:
        for i in range(4):
            ns.add_dummy(f"eth{i}")
        conf = Path(tmp) / "big.conf"
        conf.write_text(generate())
        lines = conf.read_text().count("\n")
        ours, rc_ours = timed([sys.executable, "-m", "supervisor.cli", "-t", "-f", str(conf)], ns, args.runs)
        print(f"config: {lines} lines, 1000 vrrp_instances, 1000 virtual_servers x 10 real_servers")
        print(f"pykeepalived -t: median {ours * 1000:.0f} ms over {args.runs} runs (exit {rc_ours})")
        ka = shutil.which("keepalived") or "/usr/sbin/keepalived"
        pid = [f"-p{tmp}/k.pid", f"-r{tmp}/v.pid", f"-c{tmp}/c.pid"]
        theirs, rc_theirs = timed([ka, "-t", "-f", str(conf), *pid], ns, args.runs)
        print(f"keepalived -t:   median {theirs * 1000:.0f} ms over {args.runs} runs (exit {rc_theirs})")
        print(f"ratio pykeepalived/keepalived: {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
