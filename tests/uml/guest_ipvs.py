"""Runs INSIDE User-Mode Linux (tests/uml/boot.py): the whole kernel-IPVS scenario in one process.

Prints its observations as JSON between GUEST-JSON-BEGIN/END; tests/uml/test_ipvs_uml.py asserts on
them. ``ipvsadm -S -n`` is the independent witness of what the kernel holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from typing import Any

from ipvsd.reconcile import ConfigRefused, Engine
from supervisor.config.load import load_text

A = """
virtual_server 192.0.2.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
        weight 2
    }
    real_server 198.51.100.12 8080 {
        weight 1
        inhibit_on_failure
    }
}
virtual_server 192.0.2.10 53 {
    lb_algo wrr
    lb_kind DR
    protocol UDP
    persistence_timeout 60
    persistence_granularity 255.255.255.0
    real_server 198.51.100.11 53 {
        weight 3
        uthreshold 100
        lthreshold 10
    }
}
virtual_server fwmark 7 {
    lb_algo sh
    sh-port
    sh-fallback
    lb_kind DR
    real_server 198.51.100.13 80 {
    }
}
virtual_server 192.0.2.10 443 {
    lb_algo mh
    lb_kind TUN
    protocol TCP
    real_server 198.51.100.14 443 {
    }
}
virtual_server 192.0.2.11 80 {
    lb_algo wlc
    lb_kind NAT
    protocol SCTP
    real_server 198.51.100.15 80 {
    }
}
"""
B = A.split("virtual_server 192.0.2.10 443")[0]
FNAT = """
global_defs {
    lb_backend ipvs
}
virtual_server 192.0.2.10 80 {
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    real_server 198.51.100.11 8080 {
    }
}
"""


def conf(text: str) -> Any:
    r = load_text(text, name="k.conf")
    assert r.config is not None and not r.diag.errors, [str(p) for p in r.diag]
    return r.config


def saved() -> str:
    return subprocess.run(["ipvsadm", "-S", "-n"], capture_output=True, text=True, check=True).stdout


TRAFFIC = """
global_defs {
    lb_backend ipvs
}
virtual_server 203.0.113.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.21 8080 {
    }
    real_server 198.51.100.22 8080 {
    }
}
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, timeout=30)


def traffic(run: str) -> dict[str, Any]:
    """Real TCP through kernel IPVS NAT: client netns -> guest (the LB) -> a real-server netns holding both
    real server addresses; the tiny server answers with the address it was reached on."""
    here = "tests/integration/ipvsd"
    sh("ip", "route", "del", "198.51.100.0/24", "dev", "lo")
    for ns in ("c", "r"):
        sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns", "c")
    sh("ip", "link", "add", "vr", "type", "veth", "peer", "name", "eth0", "netns", "r")
    sh("ip", "addr", "add", "203.0.113.1/24", "dev", "vc")
    sh("ip", "addr", "add", "203.0.113.100/32", "dev", "lo")
    sh("ip", "addr", "add", "198.51.100.1/24", "dev", "vr")
    sh("ip", "link", "set", "vc", "up")
    sh("ip", "link", "set", "vr", "up")
    script = ("ip link set lo up; ip link set eth0 up; ip addr add 203.0.113.2/24 dev eth0; "
              "ip route add default via 203.0.113.1")
    sh("ip", "netns", "exec", "c", "sh", "-c", script)
    script = ("ip link set lo up; ip link set eth0 up; ip addr add 198.51.100.21/24 dev eth0; "
              "ip addr add 198.51.100.22/24 dev eth0; ip route add default via 198.51.100.1")
    sh("ip", "netns", "exec", "r", "sh", "-c", script)
    server = subprocess.Popen(["ip", "netns", "exec", "r", sys.executable, f"{here}/rsserver.py", "rs", "8080"],
                              stdout=subprocess.PIPE, text=True)
    out: dict[str, Any] = {}
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        eng = Engine(run)
        eng.configure(conf(TRAFFIC))
        got = subprocess.run(["ip", "netns", "exec", "c", sys.executable, f"{here}/client.py", "203.0.113.100",
                              "80", "6"], capture_output=True, text=True, timeout=60, check=True).stdout
        out["answers"] = json.loads(got)
        out["stats"] = eng.stats()
        eng.set_health("203.0.113.100:80/198.51.100.21:8080", {"health": "down"})
        got = subprocess.run(["ip", "netns", "exec", "c", sys.executable, f"{here}/client.py", "203.0.113.100",
                              "80", "3"], capture_output=True, text=True, timeout=60, check=True).stdout
        out["after_down"] = json.loads(got)
        eng.stop(True)
    finally:
        server.kill()
        server.wait()
    return out


def shown_timeouts() -> str:
    return subprocess.run(["ipvsadm", "-L", "--timeout"], capture_output=True, text=True, check=True).stdout.strip()


def timeouts(run: str) -> dict[str, Any]:
    """lvs_timeouts at start, unchanged on a restart, a reload changing one value (the others kept)."""
    vs = B.split("virtual_server 192.0.2.10 53")[0]
    g = "global_defs {\n    lvs_timeouts tcp 7200 tcpfin 60 udp 200\n}\n"
    out: dict[str, Any] = {"before": shown_timeouts()}
    e = Engine(run)
    out["start_ops"] = e.configure(conf(g + vs)).changes
    out["start"] = shown_timeouts()
    out["restart_ops"] = Engine(run).configure(conf(g + vs)).changes
    out["reload_ops"] = e.configure(conf(g.replace("tcp 7200 tcpfin 60 udp 200", "tcpfin 30") + vs)).changes
    out["reload"] = shown_timeouts()
    e.stop(True)
    return out


def main() -> int:
    out: dict[str, Any] = {}
    # Inside the guest only: real servers must be routable for IPVS to accept them ("address not unicast").
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "198.51.100.0/24", "dev", "lo"], check=True)
    run = tempfile.mkdtemp()
    from ipvsd.ipvs import ipip_available

    out["ipip"] = ipip_available()  # boot.py inserts ipip: the TUN service of A passes the check
    e1 = Engine(run)
    r = e1.configure(conf(A))
    out["a"] = saved()
    out["a_ops"] = r.changes
    out["errors"] = e1.ipvs.errors
    e1.set_health("192.0.2.10:80/198.51.100.12:8080", {"health": "down"})
    out["down_inhibit"] = saved()
    e1.set_health("192.0.2.10:80/198.51.100.11:8080", {"health": "down"})
    out["down_remove"] = saved()
    e1.set_health("192.0.2.10:80/198.51.100.11:8080", {"health": "up"})
    e1.set_health("192.0.2.10:80/198.51.100.12:8080", {"health": "up"})
    out["back_up"] = saved()
    times = []
    for i in range(200):
        t0 = time.perf_counter()
        e1.set_health("192.0.2.10:80/198.51.100.11:8080", {"health": "down" if i % 2 == 0 else "up"})
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    out["health_ms_p50"] = times[len(times) // 2]
    out["health_ms_p99"] = times[int(len(times) * 0.99) - 1]
    # a restart against a kernel that matches: nothing sent
    proc_before = open("/proc/net/ip_vs").read()
    e2 = Engine(run)
    out["restart_ops"] = e2.configure(conf(A)).changes
    out["restart_same"] = saved() == out["back_up"] and open("/proc/net/ip_vs").read() == proc_before
    # someone else's service; then the role "crashes" (no stop) and comes back with fewer services
    subprocess.run(["ipvsadm", "-A", "-t", "192.0.2.99:80", "-s", "rr"], check=True)
    e3 = Engine(run)
    out["crash_ops"] = e3.configure(conf(B)).changes
    out["after_crash"] = saved()
    # lvs_flush: the foreign service goes too
    e4 = Engine(run)
    out["flush_ops"] = e4.configure(conf("global_defs {\n    lvs_flush\n}\n" + B)).changes
    out["after_flush"] = saved()
    e4.stop(True)
    out["after_stop"] = saved()
    # lvs_flush_on_stop all: a foreign service goes too on stop; -I (release False) keeps everything
    subprocess.run(["ipvsadm", "-A", "-t", "192.0.2.98:80", "-s", "rr"], check=True)
    e5 = Engine(run)
    e5.configure(conf(B))
    e5.stop(False, "all")
    out["after_stop_keep"] = saved().count("-A ")
    e5.stop(True, "all")
    out["after_stop_flush_all"] = saved()
    out["traffic"] = traffic(run)
    try:
        Engine(run).configure(conf(FNAT))
        out["fnat_error"] = None
    except ConfigRefused as e:
        out["fnat_error"] = e.errors
    out["timeouts"] = timeouts(run)
    print("GUEST-JSON-BEGIN")
    print(json.dumps(out))
    print("GUEST-JSON-END")
    return 0


if __name__ == "__main__":
    sys.exit(main())
