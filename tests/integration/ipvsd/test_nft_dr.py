"""DR on nftables, for real: client -> LB (netdev ingress fwd, VIP not on the LB) -> two real servers that
hold the VIP on lo (arp_ignore=1/arp_announce=2 set here, in their namespaces: the operator's job).

The real server answers from the VIP itself (its ``LOCAL`` address in the answer is the VIP, which only
happens when the unchanged packet reached it: no NAT on the way). A down event moves new flows to the
other server; a restart sends nothing; a crash's leftover table goes; other tables are never touched.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.integration.ipvsd.conftest import RS, LbLab

pytestmark = pytest.mark.root

DVIP = "203.0.113.20"  # in c0's subnet (the client-facing device by the documented rule), not on the LB
SYSCTLS = ("net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce")


def conf(port: int = 8080) -> str:
    rs = "".join(f"    real_server {a} {port} {{\n    }}\n" for a in RS[:2])
    return f"virtual_server {DVIP} {port} {{\n    lb_algo sh\n    lb_kind DR\n    protocol TCP\n{rs}}}\n"


def answers(lab: LbLab, n: int) -> list[str]:
    got = lab.requests(8080, n, host=DVIP)
    assert all(not a.startswith("ERR") for a in got), got
    return got


@pytest.fixture
def dr_lab(lab: LbLab) -> Iterator[LbLab]:
    saved = [[ns.run(["sysctl", "-n", k]).stdout.strip() for k in SYSCTLS] for ns in lab.rs[:2]]
    fwd = lab.lb.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip()
    try:
        for ns in lab.rs[:2]:
            ns.run(["sysctl", "-qw", f"{SYSCTLS[0]}=1", f"{SYSCTLS[1]}=2"])
            ns.ip("addr", "add", f"{DVIP}/32", "dev", "lo")
        lab.client.ip("route", "add", f"{DVIP}/32", "via", "203.0.113.1")
        # the real servers' replies go back through the LB here (their only link): it routes them
        lab.lb.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        yield lab
    finally:
        lab.client.ip("route", "del", f"{DVIP}/32", check=False)
        for ns, vals in zip(lab.rs[:2], saved, strict=True):
            ns.ip("addr", "del", f"{DVIP}/32", "dev", "lo", check=False)
            ns.run(["sysctl", "-qw", *(f"{k}={v}" for k, v in zip(SYSCTLS, vals, strict=True))], check=False)
        lab.lb.run(["sysctl", "-qw", f"net.ipv4.ip_forward={fwd}"], check=False)
        for d in lab.drivers:
            if d.proc.poll() is None:
                d.call("stop")
                d.proc.wait(timeout=10)
        lab.drivers.clear()
        assert "pykeepalived_dr" not in lab.nft("list", "tables")


def test_dr_per_flow_hash_health_restart_and_crash(dr_lab: LbLab) -> None:
    lab = dr_lab
    drv = lab.driver()
    drv.config(conf())
    tables = lab.nft("list", "tables")
    assert "table netdev pykeepalived_dr_c0" in tables
    assert DVIP not in lab.lb.ip("addr", "show").stdout  # the VIP is not on the LB
    got = answers(lab, 16)
    c = Counter(a.split()[0] for a in got)
    assert set(c) == {"rs1", "rs2"}, c  # per-flow hash spreads one client's connections
    assert {a.split()[2] for a in got} == {DVIP}  # the real servers got the unchanged packet (DR)
    assert {a.split()[1] for a in got} == {"203.0.113.2"}
    # a down event: new flows go to the other server only
    r = drv.health(f"{DVIP}:8080", f"{RS[0]}:8080", up=False)
    assert r["ok"] and r["changes"] > 0
    assert Counter(a.split()[0] for a in answers(lab, 8)) == {"rs2": 8}
    drv.health(f"{DVIP}:8080", f"{RS[0]}:8080", up=True)
    assert set(a.split()[0] for a in answers(lab, 16)) == {"rs1", "rs2"}
    before = lab.nft("-a", "list", "table", "netdev", "pykeepalived_dr_c0")
    # someone else's netdev table must survive everything
    lab.lb.run(["nft", "add table netdev foreign"])
    # restart against a matching kernel: nothing sent, rule and counters kept
    os.kill(drv.proc.pid, signal.SIGKILL)
    drv.proc.wait(timeout=10)
    again = lab.driver()
    assert again.config(conf())["changes"] == 0
    after = lab.nft("-a", "list", "table", "netdev", "pykeepalived_dr_c0")
    assert after == before
    # crash, then a configuration without the DR service: its table goes, the foreign one stays
    os.kill(again.proc.pid, signal.SIGKILL)
    again.proc.wait(timeout=10)
    third = lab.driver()
    third.config(f"virtual_server 203.0.113.10 80 {{\n    lb_algo rr\n    protocol TCP\n"
                 f"    real_server {RS[2]} 8080 {{\n    }}\n}}\n")
    tables = lab.nft("list", "tables")
    assert "pykeepalived_dr" not in tables and "table netdev foreign" in tables
    lab.lb.run(["nft", "delete table netdev foreign"])


def test_dr_device_that_cannot_be_told_is_refused(dr_lab: LbLab) -> None:
    drv = dr_lab.driver()
    r = drv.call("config", text=conf().replace(DVIP, "192.0.2.50"))
    assert not r["ok"]
    assert r["errors"][0].startswith("k.conf:1: lb_kind DR on nftables: cannot tell the client-facing device")
