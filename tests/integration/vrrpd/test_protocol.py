"""VRRP between pykeepalived routers on a lab bridge: election, failover, preemption, auth, unicast, IPv6.

Two routers (hosts 0 and 1) and a client (host 2) on one bridge; adverts are captured on the bridge,
so failover gaps are measured from the wire, as in ../shared/notes/lab.md. Fast intervals (v3 at
0.1-0.2 s) keep the module short; the v2 test runs at keepalived's 1 s.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.vrrpd.vlab import Capture, Router, conf, gap_after, instance_conf
from tests.lab.netns import LabBridge, wait_for

pytestmark = [pytest.mark.root]

VIP = "192.0.2.100/24"


@pytest.fixture
def lab(lab_bridge: Callable[..., LabBridge]) -> LabBridge:
    return lab_bridge(hosts=3, purpose="vrrp")


@pytest.fixture
def routers(lab: LabBridge, tmp_path: Path) -> Iterator[list[Router]]:
    rs = [Router(lab.hosts[i], tmp_path, f"r{i}") for i in range(2)]
    yield rs
    for r in rs:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
    for r in rs:
        if r.proc is not None:
            try:
                r.proc.wait(20)
            except Exception:
                r.proc.kill()


def has_vip(r: Router, vip: str = VIP) -> bool:
    return vip in r.ns.address_cidrs("eth0")


def test_election_sigkill_failover_and_term_v3(lab: LabBridge, routers: list[Router], tmp_path: Path) -> None:
    cap = Capture(lab, tmp_path)
    r0, r1 = routers
    r0.start(conf(instance_conf(prio=150, adv=0.1)))
    r1.start(conf(instance_conf(prio=100, adv=0.1)))
    r0.wait_state("MASTER")
    r1.wait_state("BACKUP")
    assert has_vip(r0) and not has_vip(r1)
    assert lab.hosts[2].run(["ping", "-c", "1", "-W", "1", VIP.split("/")[0]], check=False).returncode == 0
    time.sleep(0.5)
    # SIGKILL of the whole master: nothing is sent, the backup takes over after master_down_interval
    t_kill = time.time()
    r0.kill_all()
    wait_for(lambda: has_vip(r1), 5, interval=0.05, message="backup never took over")
    r1.wait_state("MASTER")
    time.sleep(0.3)
    gap = gap_after(cap.adverts(), lab.ip4(0), lab.ip4(1), after=t_kill - 1)
    mdi = 3 * 0.1 + (256 - 100) * 0.1 / 256
    assert mdi - 0.005 < gap < mdi + 0.030, f"gap {gap * 1000:.1f} ms vs {mdi * 1000:.1f} ms"
    # r0 comes back with the higher priority: it preempts
    r0.ns.run(["ip", "addr", "del", VIP, "dev", "eth0"], check=False)  # what a crashed host left behind
    r0.start(conf(instance_conf(prio=150, adv=0.1)))
    r0.wait_state("MASTER")
    r1.wait_state("BACKUP")
    wait_for(lambda: not has_vip(r1), 3, interval=0.05)
    # TERM: priority 0 advert, the backup takes over after its skew only
    t_term = time.time()
    assert r0.stop() == 0
    wait_for(lambda: has_vip(r1), 5, interval=0.05)
    time.sleep(0.3)
    cap.stop()
    ads = cap.adverts()
    zero = [a for a in ads if a.src == lab.ip4(0) and a.prio == 0 and a.ts >= t_term - 0.5]
    assert zero, "no priority-0 advert on TERM"
    first = min(a.ts for a in ads if a.src == lab.ip4(1) and a.ts > zero[0].ts)
    skew = (256 - 100) * 0.1 / 256
    assert skew - 0.005 < first - zero[0].ts < skew + 0.030
    assert not has_vip(r0)


def test_v2_pass_auth_and_mismatch(lab: LabBridge, routers: list[Router], tmp_path: Path) -> None:
    auth = "  authentication {\n    auth_type PASS\n    auth_pass s3cret99\n  }\n"
    bad = "  authentication {\n    auth_type PASS\n    auth_pass wrong\n  }\n"
    r0, r1 = routers
    cap = Capture(lab, tmp_path)
    r0.start(conf(instance_conf(prio=150, adv=1, version=2, extra=auth)))
    r1.start(conf(instance_conf(prio=100, adv=1, version=2, extra=auth)))
    r0.wait_state("MASTER", timeout=8)
    r1.wait_state("BACKUP")
    time.sleep(1.5)
    assert r1.state() == "BACKUP" and r1.counters()["adverts_received"] >= 1
    # a third router with another password does not hear them: it becomes MASTER and drops every advert
    r2 = Router(lab.hosts[2], tmp_path, "r2")
    r2.start(conf(instance_conf(prio=50, adv=1, version=2, extra=bad, vips=("192.0.2.101/24",))))
    try:
        r2.wait_state("MASTER", timeout=10)
        c = r2.counters()
        assert c.get("auth_failure", 0) >= 1 and c.get("adverts_received", 0) == 0
        assert r0.state() == "MASTER"
        assert r0.counters().get("auth_failure", 0) >= 1  # and r0 drops r2's adverts
    finally:
        r2.stop()
    cap.stop()
    ads = [a for a in cap.adverts() if a.src == lab.ip4(0)]
    assert ads and all(a.version == 2 for a in ads)


def test_preempt_nopreempt_and_preempt_delay(lab: LabBridge, routers: list[Router]) -> None:
    r0, r1 = routers
    r1.start(conf(instance_conf(prio=100, adv=0.1)))
    r1.wait_state("MASTER")
    # nopreempt: the higher priority stays BACKUP
    r0.start(conf(instance_conf(prio=150, adv=0.1, extra="  nopreempt\n")))
    r0.wait_state("BACKUP")
    time.sleep(1.0)
    assert r0.state() == "BACKUP" and r1.state() == "MASTER"
    # reload r0 to preempt with a 1 s preempt_delay: it takes over, but not before the delay
    t = time.monotonic()
    r0.stop()
    r0.start(conf(instance_conf(prio=150, adv=0.1, extra="  preempt_delay 1\n")))
    r0.wait_state("BACKUP")
    t_backup = time.monotonic()
    r0.wait_state("MASTER", timeout=6)
    assert time.monotonic() - t_backup > 1.0, "took over before preempt_delay"
    r1.wait_state("BACKUP")
    assert time.monotonic() - t < 10


def test_unicast_peers(lab: LabBridge, routers: list[Router], tmp_path: Path) -> None:
    def uni(me: int, peer: int) -> str:
        return (f"  unicast_src_ip {lab.ip4(me)}\n  unicast_peer {{\n    {lab.ip4(peer)}\n  }}\n")
    cap = Capture(lab, tmp_path)
    r0, r1 = routers
    r0.start(conf(instance_conf(prio=150, adv=0.1, extra=uni(0, 1))))
    r1.start(conf(instance_conf(prio=100, adv=0.1, extra=uni(1, 0))))
    r0.wait_state("MASTER")
    r1.wait_state("BACKUP")
    time.sleep(0.5)
    assert r1.counters()["adverts_received"] >= 3
    r0.kill_all()
    r1.wait_state("MASTER", timeout=3)
    cap.stop()
    ads = cap.adverts()
    assert ads and all(a.dst == lab.ip4(1 - (a.src == lab.ip4(1))) for a in ads)


def test_ipv6_v3_election_and_failover(lab: LabBridge, routers: list[Router], tmp_path: Path) -> None:
    vip6 = "fd00::100/64"
    cap = Capture(lab, tmp_path)
    r0, r1 = routers
    r0.start(conf(instance_conf(prio=150, adv=0.1, vips=(vip6,), vrid=52)))
    r1.start(conf(instance_conf(prio=100, adv=0.1, vips=(vip6,), vrid=52)))
    r0.wait_state("MASTER", timeout=15)
    r1.wait_state("BACKUP")
    assert has_vip(r0, vip6) and not has_vip(r1, vip6)
    wait_for(lambda: lab.hosts[2].run(["ping", "-6", "-c", "1", "-W", "1", "fd00::100"], check=False).returncode == 0,
             5, interval=0.2, message="client cannot reach the IPv6 VIP")
    r0.stop()
    r1.wait_state("MASTER", timeout=3)
    assert has_vip(r1, vip6)
    cap.stop()
    ads = cap.adverts()
    assert ads and all(a.src.startswith("fe80::") and a.dst == "ff02::12" and a.version == 3 for a in ads)


def test_reload_applies_the_difference_without_reelection(lab: LabBridge, routers: list[Router]) -> None:
    r0, r1 = routers
    vip2 = "192.0.2.102/24"
    r0.start(conf(instance_conf(prio=150, adv=0.1)))
    r0.wait_state("MASTER")
    r1.start(conf(instance_conf(prio=100, adv=0.1)))
    r1.wait_state("BACKUP")
    pid = r0.vrrp_pid()
    r0.reload(conf(instance_conf(prio=150, adv=0.1, vips=(VIP, vip2))))
    wait_for(lambda: has_vip(r0, vip2), 5, interval=0.05, message="added VIP not added")
    r0.reload(conf(instance_conf(prio=150, adv=0.1, vips=(vip2,))))
    wait_for(lambda: not has_vip(r0, VIP), 5, interval=0.05, message="removed VIP still there")
    assert has_vip(r0, vip2) and r0.vrrp_pid() == pid
    # a priority change below the peer's is applied in place too: the peer preempts
    r0.reload(conf(instance_conf(prio=50, adv=0.1, vips=(vip2,))))
    r1.wait_state("MASTER", timeout=5)
    r0.wait_state("BACKUP")
    assert r0.transitions() == ["BACKUP", "MASTER", "BACKUP"]  # no re-election on the VIP reloads
    assert r1.transitions() == ["BACKUP", "MASTER"]


def test_virtual_routes_rules_and_static_setup(lab: LabBridge, routers: list[Router]) -> None:
    r0 = routers[0]
    head = ("static_ipaddress {\n  192.0.2.50/24 dev eth0\n}\n"
            "static_routes {\n  198.51.100.0/25 via 192.0.2.254 dev eth0\n}\n")
    extra = ("  virtual_routes {\n    203.0.113.0/24 via 192.0.2.254 dev eth0 metric 5\n"
             "    blackhole 198.51.100.128/25\n    default via 192.0.2.253 dev eth0 table 100\n  }\n"
             "  virtual_rules {\n    from 192.0.2.100 table 100 priority 100\n  }\n")
    r0.start(conf(instance_conf(prio=150, adv=0.1, state="MASTER", extra=extra), head=head,
                  extra_global="  vrrp_startup_delay 0.5\n"))
    assert "Delaying startup for 0.5 seconds" in r0.log()
    r0.wait_state("MASTER")

    def routes() -> str:
        return r0.ns.run(["ip", "route", "show", "table", "all"]).stdout

    def rules() -> str:
        return r0.ns.run(["ip", "rule", "show"]).stdout
    wait_for(lambda: "203.0.113.0/24 via 192.0.2.254" in routes(), 5, interval=0.05)
    text = routes()
    assert "metric 5" in text and "blackhole 198.51.100.128/25" in text
    assert "default via 192.0.2.253 dev eth0 table 100" in text
    assert "198.51.100.0/25 via 192.0.2.254" in text  # static
    assert "from 192.0.2.100 lookup 100" in rules()
    assert "192.0.2.50/24" in r0.ns.address_cidrs("eth0")
    assert r0.stop() == 0
    text = routes()
    assert "203.0.113.0/24" not in text and "blackhole" not in text and "table 100" not in text
    assert "lookup 100" not in rules()
    assert "198.51.100.0/25 via 192.0.2.254" in text and "192.0.2.50/24" in r0.ns.address_cidrs("eth0")


def test_use_vmac_keeps_the_virtual_mac_across_failover(lab: LabBridge, routers: list[Router]) -> None:
    r0, r1 = routers
    client = lab.hosts[2]
    vmac = "00:00:5e:00:01:33"
    r0.start(conf(instance_conf(prio=150, adv=0.1, extra="  use_vmac\n")))
    r0.wait_state("MASTER")
    r1.start(conf(instance_conf(prio=100, adv=0.1, extra="  use_vmac\n")))
    r1.wait_state("BACKUP")
    link = r0.ns.ip_json("link", "show", "vrrp.51")[0]
    assert link["address"] == vmac and link.get("linkinfo", {}).get("info_kind", "macvlan") == "macvlan"
    assert VIP in r0.ns.address_cidrs("vrrp.51")

    def neigh() -> str:
        return client.run(["ip", "neigh", "show", VIP.split("/")[0]]).stdout

    def ping() -> bool:
        return client.run(["ping", "-c", "1", "-W", "1", VIP.split("/")[0]], check=False).returncode == 0
    assert wait_for(ping, 5, interval=0.2)
    assert vmac in neigh()
    r0.kill_all()
    r1.wait_state("MASTER", timeout=3)
    assert VIP in r1.ns.address_cidrs("vrrp.51")
    assert wait_for(ping, 5, interval=0.2)
    assert vmac in neigh()  # the client never had to learn a new MAC
    assert r1.stop() == 0
    assert "vrrp.51" not in r1.ns.links()  # the VMAC goes with the daemon


def test_use_vmac_ipv6_keeps_the_virtual_mac_and_own_link_local(lab: LabBridge, routers: list[Router],
                                                                 tmp_path: Path) -> None:
    r0, r1 = routers
    client = lab.hosts[2]
    vmac, vip6 = "00:00:5e:00:02:34", "fd00::100/64"
    cap = Capture(lab, tmp_path)
    r0.start(conf(instance_conf(prio=150, adv=0.1, vips=(vip6,), vrid=52, extra="  use_vmac vrrp6\n")))
    r0.wait_state("MASTER", timeout=15)
    r1.start(conf(instance_conf(prio=100, adv=0.1, vips=(vip6,), vrid=52, extra="  use_vmac vrrp6\n")))
    r1.wait_state("BACKUP", timeout=15)
    for r in (r0, r1):
        link = r.ns.ip_json("link", "show", "vrrp6")[0]
        assert link["address"] == vmac
        # no link-local made from the shared MAC: the router's own one, as on its base interface
        lls = r.ns.address_cidrs("vrrp6", scope="link")
        assert lls == r.ns.address_cidrs("eth0", scope="link") and len(lls) == 1
        assert "fe80::200:5eff:fe00:234/64" not in lls
    assert vip6 in r0.ns.address_cidrs("vrrp6") and vip6 not in r1.ns.address_cidrs("vrrp6")

    def ping() -> bool:
        return client.run(["ping", "-6", "-c", "1", "-W", "1", "fd00::100"], check=False).returncode == 0

    def neigh() -> str:
        return client.run(["ip", "-6", "neigh", "show", "fd00::100"]).stdout
    assert wait_for(ping, 5, interval=0.2)
    assert vmac in neigh()
    r0.kill_all()
    r1.wait_state("MASTER", timeout=3)
    assert vip6 in r1.ns.address_cidrs("vrrp6")
    assert wait_for(ping, 5, interval=0.2)
    assert vmac in neigh()  # the client kept the virtual MAC
    cap.stop()
    ads = cap.adverts()
    own = {next(iter(r.ns.address_cidrs("eth0", scope="link"))).split("/")[0] for r in (r0, r1)}
    assert ads and all(a.dst == "ff02::12" for a in ads)
    assert {a.src for a in ads} == own  # each router's own link-local, never a shared one
    assert r1.stop() == 0
    assert "vrrp6" not in r1.ns.links()


SMTP_SINK = r'''
import asyncio, sys
out = open(sys.argv[2], "a")
async def client(r, w):
    w.write(b"220 sink\r\n")
    data = False
    while line := await r.readline():
        text = line.decode(errors="replace")
        out.write(text); out.flush()
        if data:
            if text.rstrip("\r\n") == ".":
                data = False
                w.write(b"250 queued\r\n")
            continue
        if text.upper().startswith("DATA"):
            data = True
            w.write(b"354 go\r\n")
        elif text.upper().startswith("QUIT"):
            w.write(b"221 bye\r\n"); await w.drain(); break
        else:
            w.write(b"250 ok\r\n")
        await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(client, sys.argv[1], 2525)
    async with srv:
        await asyncio.sleep(60)
asyncio.run(main())
'''


def test_smtp_alert_on_state_change(lab: LabBridge, routers: list[Router], tmp_path: Path) -> None:
    import sys
    sink = tmp_path / "sink.py"
    sink.write_text(SMTP_SINK)
    mail = tmp_path / "mail.txt"
    lab.hosts[1].popen([sys.executable, str(sink), lab.ip4(1), str(mail)])
    time.sleep(0.3)
    glob = (f"  notification_email {{\n    ops@example.com\n  }}\n  notification_email_from vrrp@example.com\n"
            f"  smtp_server {lab.ip4(1)} 2525\n  smtp_connect_timeout 5\n")
    routers[0].start(conf(instance_conf(prio=150, adv=0.1, state="MASTER", extra="  smtp_alert\n"),
                          router_id="r0", extra_global=glob))
    routers[0].wait_state("MASTER")
    wait_for(lambda: mail.exists() and "QUIT" in mail.read_text(), 5, interval=0.1, message="no mail")
    text = mail.read_text()
    assert "MAIL FROM:<vrrp@example.com>" in text and "RCPT TO:<ops@example.com>" in text
    assert "Subject: [r0] VRRP Instance VI_1 - Entering MASTER state" in text
    assert "=> VRRP Instance is now owning VRRP VIPs <=" in text


def test_no_accept_drops_traffic_to_the_vips(lab: LabBridge, routers: list[Router]) -> None:
    r0 = routers[0]
    r0.start(conf(instance_conf("VI_1", prio=150, adv=0.1, state="MASTER", extra="  no_accept\n"),
                  instance_conf("VI_2", vrid=52, prio=150, adv=0.1, state="MASTER", vips=("192.0.2.101/24",))))
    r0.wait_state("MASTER", "VI_1")
    r0.wait_state("MASTER", "VI_2")

    def ping(addr: str) -> bool:
        return lab.hosts[2].run(["ping", "-c", "1", "-W", "1", addr], check=False).returncode == 0
    assert wait_for(lambda: ping("192.0.2.101"), 5, interval=0.2)  # accept mode (the default)
    assert not ping("192.0.2.100")  # no_accept: the master holds the VIP but drops what is sent to it
    listing = r0.ns.run(["nft", "list", "set", "inet", "pykeepalived_vrrp", "vips4"]).stdout
    assert "192.0.2.100" in listing and "192.0.2.101" not in listing
    assert r0.stop() == 0
    assert r0.ns.run(["nft", "list", "table", "inet", "pykeepalived_vrrp"], check=False).returncode != 0
