"""vmac_xmit_base: with use_vmac the VIP lives on the macvlan (00:00:5e:00:01:VRID) but the adverts leave
from the base interface, so their source MAC on the bridge is the base interface's own MAC."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.vrrpd.vlab import Router, conf, instance_conf
from tests.lab.netns import LabBridge, wait_for

pytestmark = [pytest.mark.root]

VIP = "192.0.2.100/24"
ADV = re.compile(r"^\d+\.\d+ ([0-9a-f:]{17}) > ([0-9a-f:]{17}), .*: (\S+) > 224\.0\.0\.18: VRRPv3, Advertisement",
                 re.M)


def test_vmac_xmit_base_sends_adverts_from_the_base_mac(lab_bridge: Callable[..., LabBridge],
                                                         tmp_path: Path) -> None:
    lab = lab_bridge(hosts=1, purpose="xmitbase")
    path = tmp_path / "cap.txt"
    out = open(path, "wb")
    cap = lab.bridge.popen(["tcpdump", "-i", "br0", "-n", "-e", "-tt", "-l", "-U", "ip proto 112"], stdout=out,
                           stderr=subprocess.DEVNULL)
    r = Router(lab.hosts[0], tmp_path, "r0")
    try:
        time.sleep(0.3)  # tcpdump needs a moment before it captures
        base_mac = r.ns.ip_json("link", "show", "eth0")[0]["address"]
        r.start(conf(instance_conf(prio=150, adv=0.1, state="MASTER", extra="  use_vmac\n  vmac_xmit_base\n")))
        r.wait_state("MASTER")
        assert r.ns.ip_json("link", "show", "vrrp.51")[0]["address"] == "00:00:5e:00:01:33"
        assert VIP in r.ns.address_cidrs("vrrp.51") and VIP not in r.ns.address_cidrs("eth0")
        found = wait_for(lambda: len(ADV.findall(path.read_text(errors="replace"))) >= 5 or None, 5,
                         interval=0.05, message="no adverts on the bridge")
        assert found
    finally:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
            try:
                r.proc.wait(20)
            except subprocess.TimeoutExpired:
                r.proc.kill()
        cap.terminate()
        try:
            cap.wait(5)
        except subprocess.TimeoutExpired:
            cap.kill()
        out.close()
    ads = ADV.findall(path.read_text(errors="replace"))
    assert ads
    assert {src for src, _, _ in ads} == {base_mac}, f"base {base_mac}, adverts from {set(ads)}"
    assert {ip for _, _, ip in ads} == {lab.ip4(0)}
