"""A running router under hostile input, and under kill -9 of its VRRP role.

* Fuzz: a client sends malformed, truncated, wrong-checksum, wrong-TTL, wrong-auth, wrong-interval,
  unicast-on-multicast, CARP and random packets, all with a priority that would win if accepted, at a
  router holding two MASTER instances (v3, and v2 with PASS): the role stays up (same pid), both
  instances stay MASTER, and the drop counters name each reason.
* kill -9 of the vrrp role on the master while a client pings the VIP: the supervisor respawns it,
  it resumes as MASTER from the bus cache without dropping the VIP, and the peer never becomes MASTER
  (advert_int 1: master_down_interval 3.6 s).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.vrrpd.vlab import REPO, Capture, Router, conf, instance_conf
from tests.lab.netns import LabBridge, wait_for

pytestmark = [pytest.mark.root]

FUZZER = r'''
import random, socket, struct, sys
from vrrpd import packet as P
target, src = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
s.setsockopt(socket.SOL_SOCKET, 25, b"eth0")
def ip(payload, dst="224.0.0.18", ttl=255, proto=112):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0xc0, 20 + len(payload), 1, 0, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h + payload
def send(payload, **kw):
    dst = kw.get("dst", "224.0.0.18")
    s.sendto(ip(payload, **kw), (dst, 0))
vip = ["192.0.2.100"]
good3 = P.build(3, 4, 51, 254, 10, vip, src=src, dst="224.0.0.18")
pw = P.pass_bytes("s3cret99")
good2 = P.build(2, 4, 52, 254, 100, ["192.0.2.101"], auth_type=P.AUTH_PASS, auth_pass=pw)
for _ in range(3):
    send(good3[:6] + b"\xde\xad" + good3[8:])                          # checksum_err
    send(good3, ttl=64)                                               # ip_ttl_err
    send(good3[:8])                                                   # packet_len_err (1 address announced)
    send(P.build(2, 4, 51, 254, 100, vip))                            # version_err (a valid v2 advert)
    t2 = bytes([0x32]) + good3[1:6] + b"\0\0" + good3[8:]
    send(P.rechecksum_v3(t2, 4, src, "224.0.0.18"))                   # invalid_type
    send(P.rechecksum_v3(good3, 4, src, target), dst=target)          # dest_mismatch (unicast to a mcast instance)
    send(P.build(2, 4, 52, 254, 100, ["192.0.2.101"], auth_type=P.AUTH_PASS, auth_pass=P.pass_bytes("nope")))  # auth_failure
    send(P.build(2, 4, 52, 254, 100, ["192.0.2.101"]))                # auth_type_mismatch
    send(P.build(2, 4, 52, 254, 300, ["192.0.2.101"], auth_type=P.AUTH_PASS, auth_pass=pw))  # advert_interval_err
    carp = struct.pack("!BBBBBBH", 0x21, 51, 0, 7, 0, 1, 0) + bytes(8) + bytes(20)
    send(carp)                                                        # CARP on VRID 51: packet_len_err
    send(struct.pack("!BBBBBBH", 0x21, 52, 0, 7, 0, 1, 0) + bytes(28))  # CARP on VRID 52: packet_len_err
    send(struct.pack("!BBBBBBH", 0x21, 99, 0, 7, 0, 1, 0) + bytes(28))  # unknown_vrid
rnd = random.Random(7)
for _ in range(300):
    body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80)))
    if len(body) > 1 and rnd.random() < 0.7:
        body = bytes([rnd.choice([0x21, 0x31]), rnd.choice([51, 52])]) + body[2:]
    send(body, ttl=rnd.choice([255, 255, 1]))
print("sent")
'''


def test_fuzz_running_instance(lab_bridge: Callable[..., LabBridge], tmp_path: Path) -> None:
    lab = lab_bridge(hosts=2, purpose="vrrpfz")
    auth = "  authentication {\n    auth_type PASS\n    auth_pass s3cret99\n  }\n"
    r = Router(lab.hosts[0], tmp_path, "r0")
    try:
        r.start(conf(instance_conf("VI_1", vrid=51, prio=100, adv=0.1, state="MASTER"),
                     instance_conf("VI_2", vrid=52, prio=100, adv=1, version=2, state="MASTER",
                                   vips=("192.0.2.101/24",), extra=auth)))
        r.wait_state("MASTER", "VI_1")
        r.wait_state("MASTER", "VI_2", timeout=5)
        pid = r.vrrp_pid()
        script = tmp_path / "fuzz.py"
        script.write_text(FUZZER)
        out = lab.hosts[1].run([sys.executable, str(script), lab.ip4(0), lab.ip4(1)], timeout=60,
                               check=False)
        assert out.returncode == 0, out.stderr
        time.sleep(0.5)
        d = r.data()
        assert r.vrrp_pid() == pid, "the role restarted"
        assert d["instances"]["VI_1"]["state"] == "MASTER" and d["instances"]["VI_2"]["state"] == "MASTER"
        c1, c2 = d["instances"]["VI_1"]["counters"], d["instances"]["VI_2"]["counters"]
        for reason in ("checksum_err", "ip_ttl_err", "packet_len_err", "version_err", "invalid_type",
                       "dest_mismatch"):
            assert c1.get(reason, 0) >= 3, (reason, c1)
        for reason in ("auth_failure", "auth_type_mismatch", "advert_interval_err", "packet_len_err"):
            assert c2.get(reason, 0) >= 3, (reason, c2)
        assert c1.get("adverts_received", 0) == 0 and c2.get("adverts_received", 0) == 0
        stats = r.data()
        assert stats["instances"]["VI_1"]["priority"] == 100
        pkt_stats = (r.run_dir / "vrrp.data").read_text()
        assert "Traceback" not in r.log()
        assert pkt_stats
    finally:
        if r.proc is not None and r.proc.poll() is None:
            r.stop()


def test_kill9_of_vrrp_role_on_master_keeps_the_vip(lab_bridge: Callable[..., LabBridge], tmp_path: Path) -> None:
    lab = lab_bridge(hosts=3, purpose="vrrpk9")
    cap = Capture(lab, tmp_path)
    r0 = Router(lab.hosts[0], tmp_path, "r0")
    r1 = Router(lab.hosts[1], tmp_path, "r1")
    try:
        r0.start(conf(instance_conf(prio=150, adv=1, version=2, state="MASTER")))
        r0.wait_state("MASTER", timeout=5)
        r1.start(conf(instance_conf(prio=100, adv=1, version=2)))
        r1.wait_state("BACKUP")
        time.sleep(1.5)
        ping = lab.hosts[2].popen(["ping", "-n", "-i", "0.05", "-w", "9", "192.0.2.100"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        old = r0.vrrp_pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        new = wait_for(lambda: (p := r0.vrrp_pid()) not in (None, old) and p, 5, interval=0.02,
                       message="vrrp role not respawned")
        r0.wait_state("MASTER", timeout=5)
        out, _ = ping.communicate(timeout=20)
        assert "resuming as MASTER" in r0.log(), r0.log()[-2000:]
        assert new != old
        assert "MASTER" not in r1.transitions(), r1.log()[-2000:]
        cap.stop()
        assert not [a for a in cap.adverts() if a.src == lab.ip4(1)], "the peer advertised"
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert m, out
        sent, got = int(m[1]), int(m[2])
        assert sent >= 100 and sent - got <= 2, out  # the VIP stayed reachable
    finally:
        for r in (r0, r1):
            if r.proc is not None and r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        for r in (r0, r1):
            if r.proc is not None:
                try:
                    r.proc.wait(20)
                except Exception:
                    r.proc.kill()


assert REPO.is_dir()
