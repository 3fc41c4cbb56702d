"""Gratuitous ARP timing of a new master, witnessed on the lab bridge with tcpdump: garp_master_repeat
ARPs at once, a second burst garp_master_delay later, then garp_master_refresh_repeat ARPs every
garp_master_refresh while MASTER (small values, tolerance for the lab's scheduling)."""

from __future__ import annotations

import itertools
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

VIP = "192.0.2.100"
GARP = re.compile(rf"^(\d+\.\d+) ARP, Request who-has {re.escape(VIP)} (?:\(\S+\) )?tell {re.escape(VIP)}\b", re.M)


def bursts(times: list[float], gap: float = 0.3) -> list[tuple[float, int]]:
    """(start, frames) of each group of frames closer than ``gap`` to the previous one."""
    out: list[tuple[float, int]] = []
    last = -1e9
    for t in times:
        if t - last > gap:
            out.append((t, 1))
        else:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        last = t
    return out


def test_garp_master_delay_repeat_and_refresh(lab_bridge: Callable[..., LabBridge], tmp_path: Path) -> None:
    lab = lab_bridge(hosts=2, purpose="garp")
    path = tmp_path / "arp.txt"
    out = open(path, "wb")
    cap = lab.bridge.popen(["tcpdump", "-i", "br0", "-n", "-tt", "-l", "-U", "arp"], stdout=out,
                           stderr=subprocess.DEVNULL)
    r = Router(lab.hosts[0], tmp_path, "r0")
    try:
        time.sleep(0.3)  # tcpdump needs a moment before it captures
        extra = ("  garp_master_delay 1\n  garp_master_repeat 3\n"
                 "  garp_master_refresh 1.5\n  garp_master_refresh_repeat 2")
        r.start(conf(instance_conf(prio=150, adv=0.2, state="MASTER", vips=(f"{VIP}/24",), extra=extra)))
        r.wait_state("MASTER")
        wait_for(lambda: len(GARP.findall(path.read_text(errors="replace"))) > 0 or None, 5,
                 interval=0.05, message="no gratuitous ARP on the bridge")
        time.sleep(4.4)  # the first burst, the delayed one at +1 s, refreshes at +2.5 s and +4 s
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
    times = [float(m[1]) for m in (GARP.match(ln) for ln in path.read_text(errors="replace").splitlines()) if m]
    # only while MASTER: drop whatever the stop may have added after the window we look at
    bs = [b for b in bursts(times) if b[0] <= times[0] + 4.3]
    assert len(bs) >= 4, f"bursts {bs}"
    t0 = bs[0][0]
    assert [n for _, n in bs[:2]] == [3, 3], f"garp_master_repeat: bursts {bs}"
    assert abs(bs[1][0] - t0 - 1.0) < 0.2, f"garp_master_delay: bursts {bs}"
    assert [n for _, n in bs[2:4]] == [2, 2], f"garp_master_refresh_repeat: bursts {bs}"
    for a, b in itertools.pairwise(bs[2:]):
        assert abs(b[0] - a[0] - 1.5) < 0.2, f"garp_master_refresh: bursts {bs}"
    assert 1.0 + 0.2 < bs[2][0] - t0 < 2.5 + 0.2, f"first refresh: bursts {bs}"
