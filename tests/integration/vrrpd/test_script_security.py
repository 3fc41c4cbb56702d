"""enable_script_security at run time: a notify or track script that a non-root user could change is
refused with keepalived's SECURITY VIOLATION line and never run; a root:root script runs (also group-writable by root's group, as keepalived 2.2.7 allows)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.vrrpd.vlab import Router, conf, instance_conf
from tests.lab.netns import LabBridge, wait_for

pytestmark = [pytest.mark.root]


def _script(path: Path, marker: Path, mode: int) -> Path:
    path.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 0\n")
    path.chmod(mode)
    return path


def test_insecure_scripts_are_refused_and_secure_ones_run(lab_bridge: Callable[..., LabBridge],
                                                          tmp_path: Path) -> None:
    lab = lab_bridge(hosts=1, purpose="scrsec")
    d = tmp_path / "scripts"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    d.chmod(0o755)
    good_m, bad_m, chk_m = d / "good.out", d / "bad.out", d / "chk.out"
    good = _script(d / "good.sh", good_m, 0o775)  # root:root, group-writable: secure, as in keepalived
    bad = _script(d / "bad.sh", bad_m, 0o775)  # group-writable, group not root
    os.chown(bad, 0, 1000)
    chk = _script(d / "chk.sh", chk_m, 0o777)  # world-writable
    text = conf(f'vrrp_script chk {{\n  script "{chk}"\n  interval 0.2\n  weight -10\n}}\n'
                + instance_conf(prio=150, adv=0.2, state="MASTER",
                                extra=f"  notify_master {good}\n  notify {bad}\n  track_script {{\n    chk\n  }}\n"),
                extra_global="  enable_script_security\n  script_user root\n")
    r = Router(lab.hosts[0], tmp_path, "r0")
    try:
        r.start(text)
        r.wait_state("MASTER")
        wait_for(lambda: good_m.exists(), 5, interval=0.05, message=f"secure notify_master never ran:\n{r.log()}")
        wait_for(lambda: f"script {bad} is writable" in r.log() and f"script {chk} is writable" in r.log(), 5,
                 interval=0.05, message=f"no SECURITY VIOLATION lines:\n{r.log()}")
        log = r.log()
        assert "SECURITY VIOLATION" in log
        assert not bad_m.exists() and not chk_m.exists(), "an insecure script was run"
    finally:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
            try:
                r.proc.wait(20)
            except subprocess.TimeoutExpired:
                r.proc.kill()
