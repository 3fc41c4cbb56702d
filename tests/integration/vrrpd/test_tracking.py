"""Trackers, sync groups and notify scripts on a running router.

Router r0 runs a sync group of two instances (VI_1 tracks a script with weight 0, VI_2 an interface) and
VI_3, whose script has weight -60 against a peer r1 at priority 120. Failing the script puts the
group in FAULT (VIPs removed) and hands VI_3 to the peer; fixing it brings everything back. A link
going down does the same through the group. The notify scripts record their arguments.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.vrrpd.vlab import Router, conf, instance_conf
from tests.lab.netns import LabBridge, wait_for

pytestmark = [pytest.mark.root]


def test_track_script_interface_sync_group_and_notify(lab_bridge: Callable[..., LabBridge], tmp_path: Path) -> None:
    lab = lab_bridge(hosts=2, purpose="vrrptrk")
    h0 = lab.hosts[0]
    h0.add_veth("t0", "t1")  # a link r0 tracks (both ends in r0's namespace)
    flag = tmp_path / "healthy"
    flag.write_text("ok")
    notes = tmp_path / "notify.log"
    script = tmp_path / "notify.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {notes}\n')
    script.chmod(0o755)
    master_note = tmp_path / "master.log"
    mscript = tmp_path / "master.sh"
    mscript.write_text(f'#!/bin/sh\necho "master $#" >> {master_note}\n')
    mscript.chmod(0o755)
    level = tmp_path / "level"
    level.write_text("0\n")
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    fifo_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the role's lines are kept
    head = (f"track_file tf {{\n  file {level}\n  weight 0\n}}\n"
            f'vrrp_script chk {{\n  script "/usr/bin/test -f {flag}"\n  interval 0.2\n  fall 1\n  rise 1\n}}\n'
            f'vrrp_script chk3 {{\n  script "/usr/bin/test -f {flag}"\n  interval 0.2\n  weight -60\n}}\n'
            "vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_2\n  }\n"
            f"  notify {script}\n}}\n")
    vi1 = instance_conf("VI_1", vrid=61, prio=100, adv=0.1, vips=("192.0.2.161/24",),
                        extra=f"  track_script {{\n    chk\n  }}\n  track_file {{\n    tf\n  }}\n"
                        f"  notify {script}\n  notify_master {mscript}\n")
    vi2 = instance_conf("VI_2", vrid=62, prio=100, adv=0.1, vips=("192.0.2.162/24",),
                        extra="  track_interface {\n    t0\n  }\n")
    vi3 = instance_conf("VI_3", vrid=63, prio=150, adv=0.1, vips=("192.0.2.163/24",),
                        extra="  track_script {\n    chk3\n  }\n")
    r0 = Router(h0, tmp_path, "r0")
    r1 = Router(lab.hosts[1], tmp_path, "r1")
    try:
        r0.start(conf(vi1, vi2, vi3, head=head, extra_global=f"  vrrp_notify_fifo {fifo}\n"))
        r1.start(conf(instance_conf("VI_3", vrid=63, prio=120, adv=0.1, vips=("192.0.2.163/24",))))
        for inst in ("VI_1", "VI_2", "VI_3"):
            r0.wait_state("MASTER", inst)
        r1.wait_state("BACKUP", "VI_3")

        def vips() -> set[str]:
            return {a for a in h0.address_cidrs("eth0") if a.startswith("192.0.2.16")}
        wait_for(lambda: vips() == {"192.0.2.161/24", "192.0.2.162/24", "192.0.2.163/24"}, 3, interval=0.05)
        # the script fails: VI_1 FAULT, VI_2 follows through the group, VI_3 drops to 90 and r1 preempts
        flag.unlink()
        r0.wait_state("FAULT", "VI_1", timeout=3)
        r0.wait_state("FAULT", "VI_2", timeout=3)
        r1.wait_state("MASTER", "VI_3", timeout=3)
        r0.wait_state("BACKUP", "VI_3", timeout=3)
        assert r0.data()["instances"]["VI_3"]["priority"] == 90
        wait_for(lambda: not vips(), 3, interval=0.05, message=f"VIPs left: {vips()}")
        # fixed: everything comes back (VI_3 at 150 preempts r1 again)
        flag.write_text("ok")
        for inst in ("VI_1", "VI_2", "VI_3"):
            r0.wait_state("MASTER", inst, timeout=5)
        r1.wait_state("BACKUP", "VI_3", timeout=3)
        # the tracked link goes down: VI_2 FAULT, VI_1 with it; up again: back to MASTER
        h0.link_down("t0")
        r0.wait_state("FAULT", "VI_2", timeout=3)
        r0.wait_state("FAULT", "VI_1", timeout=3)
        assert r0.state("VI_3") == "MASTER"
        h0.link_up("t0")
        for inst in ("VI_1", "VI_2"):
            r0.wait_state("MASTER", inst, timeout=5)
        # track_file with weight 0: a non-zero value is a FAULT (for the whole group)
        level.write_text("3\n")
        r0.wait_state("FAULT", "VI_1", timeout=3)
        r0.wait_state("FAULT", "VI_2", timeout=3)
        level.write_text("0\n")
        for inst in ("VI_1", "VI_2"):
            r0.wait_state("MASTER", inst, timeout=5)
        time.sleep(0.3)  # notify scripts run in the background
        fifo_lines = os.read(fifo_fd, 65536).decode().splitlines()
        assert 'INSTANCE "VI_1" MASTER 100' in fifo_lines and 'INSTANCE "VI_3" BACKUP 90' in fifo_lines
        assert 'GROUP "G1" FAULT' in fifo_lines
        lines = notes.read_text().splitlines()
        assert "INSTANCE VI_1 MASTER 100" in lines
        assert "INSTANCE VI_1 FAULT 100" in lines
        assert "GROUP G1 FAULT" in lines and "GROUP G1 MASTER" in lines
        assert lines.index("INSTANCE VI_1 FAULT 100") > lines.index("INSTANCE VI_1 MASTER 100")
        assert master_note.read_text().splitlines()[0] == "master 0"  # notify_master gets no arguments
        assert r0.stop() == 0
        time.sleep(0.3)
        assert "INSTANCE VI_1 STOP 100" in notes.read_text().splitlines()
    finally:
        os.close(fifo_fd)
        for r in (r0, r1):
            if r.proc is not None and r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        for r in (r0, r1):
            if r.proc is not None:
                try:
                    r.proc.wait(20)
                except Exception:
                    r.proc.kill()
