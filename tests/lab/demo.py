"""The demo: pykeepalived on a small lab of network namespaces, step by step, with timings.

A bridge joins a load-balancer host and a client. The load balancer runs pykeepalived with one VRRP
instance; the demo shows the per-role processes, the virtual IP answering the client, a role killed
with SIGKILL and respawned while the others keep their pids, a reload, and an orderly stop that
removes the VIP. Everything lives in namespaces made here and removed at the end, also on failure.

    bash packaging/demo.sh
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.lab.netns import lab_bridge, wait_for

VIP = "192.0.2.100"
CONFIG = """
global_defs {{
    router_id demo
}}
vrrp_instance VI_DEMO {{
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def roles(supervisor_pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for child in psutil.Process(supervisor_pid).children():
            title = " ".join(child.cmdline())
            if title.startswith("pykeepalived: "):
                out[title.removeprefix("pykeepalived: ").split()[0]] = child.pid
    except psutil.NoSuchProcess:
        pass
    return out


def main() -> int:
    with lab_bridge(hosts=2, purpose="demo") as lab, tempfile.TemporaryDirectory(prefix="pka-demo-") as tmp:
        lb, client = lab.hosts
        conf = Path(tmp) / "keepalived.conf"
        conf.write_text(CONFIG.format(vip=VIP))
        run_dir = Path(tmp) / "run"
        say(f"lab: load balancer in namespace {lb.name} ({lab.ip4(0)}), client in {client.name} ({lab.ip4(1)})")
        check = lb.run([sys.executable, "-m", "supervisor.cli", "-t", "-f", str(conf)], check=False)
        say(f"pykeepalived -t: exit {check.returncode}")
        start = time.monotonic()
        daemon = lb.popen(
            [sys.executable, "-m", "supervisor.cli", "-n", "-l", "-f", str(conf), "--run-dir", str(run_dir)],
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "daemon.log", "w"),  # the lab closes it with the process
        )
        try:
            wait_for(lambda: f"{VIP}/24" in lb.address_cidrs("eth0"), 15, message="VIP never appeared")
            say(f"VIP {VIP} is on the load balancer after {time.monotonic() - start:.2f} s")
            pids = wait_for(lambda: roles(daemon.pid) or None, 10, message="no role processes")
            for role, pid in sorted(pids.items()):
                say(f"  pid {pid}: pykeepalived: {role}")
            ping = client.run(["ping", "-c", "1", "-W", "1", VIP], check=False)
            say(f"client pings the VIP: {'ok' if ping.returncode == 0 else 'FAILED'}")
            if "vrrp" in pids:
                killed = time.monotonic()
                os.kill(pids["vrrp"], signal.SIGKILL)
                new = wait_for(
                    lambda: (roles(daemon.pid).get("vrrp") not in (None, pids["vrrp"])) and roles(daemon.pid), 10
                )
                say(f"kill -9 of the vrrp role: respawned as pid {new['vrrp']} in {time.monotonic() - killed:.2f} s;"
                    f" other roles unchanged: {all(new.get(r) == p for r, p in pids.items() if r != 'vrrp')}")
                ping = client.run(["ping", "-c", "1", "-W", "1", VIP], check=False)
                say(f"client pings the VIP after the respawn: {'ok' if ping.returncode == 0 else 'FAILED'}")
            stopping = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            rc = daemon.wait(timeout=30)
            gone = f"{VIP}/24" not in lb.address_cidrs("eth0")
            say(f"SIGTERM: daemon exited {rc} in {time.monotonic() - stopping:.2f} s; VIP removed: {gone}")
            return 0 if rc == 0 and gone and ping.returncode == 0 else 1
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=10)
            log = Path(tmp) / "daemon.log"
            if log.exists():
                say("daemon log:")
                for line in log.read_text().splitlines()[-30:]:
                    print(f"    {line}")


if __name__ == "__main__":
    sys.exit(main())
