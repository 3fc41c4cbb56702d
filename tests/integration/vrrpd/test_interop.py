"""Interoperation with Debian's keepalived 2.2.7 as the peer, both ways: v2 and v3, IPv4 and IPv6.

For each flavour: the higher-priority router wins the election, the other is BACKUP; TERM on the master
(priority 0) moves the VIP to the other; the master restarted preempts it back. Once with pykeepalived
as the master, once with keepalived.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.vrrpd.vlab import Keepalived, Router, conf, instance_conf
from tests.lab.netns import LabBridge, wait_for

pytestmark = [pytest.mark.root, pytest.mark.keepalived]

FLAVOURS = {
    "v2-ipv4": dict(version=2, adv=1, vips=("192.0.2.100/24",), vrid=51),
    "v3-ipv4": dict(version=3, adv=0.2, vips=("192.0.2.100/24",), vrid=52),
    "v3-ipv6": dict(version=3, adv=0.2, vips=("fd00::100/64",), vrid=53),
}


def has(ns_router: Router | Keepalived, vip: str) -> bool:
    return vip in ns_router.ns.address_cidrs("eth0")


def ka_state(ka: Keepalived) -> str | None:
    t = ka.transitions()
    return t[-1] if t else None


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@pytest.mark.parametrize("pyk_master", [True, False], ids=["pyk-master", "ka-master"])
def test_interop(flavour: str, pyk_master: bool, lab_bridge: Callable[..., LabBridge], keepalived_bin: Path,
                 tmp_path: Path) -> None:
    f = FLAVOURS[flavour]
    vip = f["vips"][0]  # type: ignore[index]
    lab = lab_bridge(hosts=2, purpose="vrrpka")
    hi, lo = (150, 100)
    pyk = Router(lab.hosts[0], tmp_path, "pyk")
    ka = Keepalived(lab.hosts[1], tmp_path, "ka")
    pyk_conf = conf(instance_conf(prio=hi if pyk_master else lo, **f))  # type: ignore[arg-type]
    ka_conf = conf(instance_conf(prio=lo if pyk_master else hi, **f))  # type: ignore[arg-type]
    timeout = 10 if f["version"] == 2 else 6
    try:
        master, backup = (pyk, ka) if pyk_master else (ka, pyk)
        # the master first (IPv6: each side waits for its link-local address, which takes a DAD)
        master.start(pyk_conf if pyk_master else ka_conf)
        wait_for(lambda: has(master, vip), timeout, interval=0.05, message="no master")
        backup.start(ka_conf if pyk_master else pyk_conf)
        if pyk_master:
            pyk.wait_state("MASTER")
            wait_for(lambda: ka_state(ka) == "BACKUP", timeout, message=f"keepalived not BACKUP:\n{ka.log()[-2000:]}")
        else:
            pyk.wait_state("BACKUP", timeout=timeout)
            assert ka_state(ka) == "MASTER"
            wait_for(lambda: pyk.counters().get("adverts_received", 0) >= 2, timeout, interval=0.1,
                     message="pykeepalived hears no advert from keepalived")
        time.sleep(3 * float(f["adv"]))  # type: ignore[arg-type]
        assert not has(backup, vip)
        assert "MASTER" not in (ka.transitions() if pyk_master else pyk.transitions())
        # graceful failover: TERM the master (priority 0)
        if pyk_master:
            assert pyk.stop() == 0
        else:
            assert ka.stop() == 0
        wait_for(lambda: has(backup, vip), timeout, interval=0.05, message=f"no failover to {type(backup).__name__}")
        assert not has(master, vip)
        # the master comes back and preempts
        if pyk_master:
            pyk.start(pyk_conf)
            pyk.wait_state("MASTER", timeout=timeout)
            wait_for(lambda: ka_state(ka) == "BACKUP", timeout, message="keepalived not preempted")
        else:
            ka.start(ka_conf)
            wait_for(lambda: ka_state(ka) == "MASTER" and has(ka, vip), timeout, message="keepalived did not preempt")
            pyk.wait_state("BACKUP", timeout=timeout)
        wait_for(lambda: not has(backup, vip), timeout, interval=0.05)
        assert has(master, vip)
        c = pyk.counters()
        assert not {k: v for k, v in c.items() if k in ("checksum_err", "auth_failure", "packet_len_err",
                                                        "version_err", "advert_interval_err", "ip_ttl_err")}, c
    finally:
        for p in (pyk.proc, ka.proc):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (pyk.proc, ka.proc):
            if p is not None:
                try:
                    p.wait(20)
                except Exception:
                    p.kill()
