"""Heartbeats, dumps, systemd notification, scripts, daemonizing and the run dir (root, namespaces)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.supervisor.conftest import REPO, VIP_A, VIP_B, Daemon, config_text, gone
from tests.lab.netns import wait_for

pytestmark = [pytest.mark.root]

MakeDaemon = Callable[..., Daemon]
# Short heartbeat deadlines once running; a start grace long enough for a loaded CI machine, where
# importing pyroute2 alone can take more than a second (the test is about a role that stops later).
HB = "hb_interval=0.2,hb_timeout=1.5,start_grace=8,abort_grace=1"


@pytest.mark.parametrize("how", ["hang", "SIGSTOP"])
def test_unresponsive_role_gets_abort_then_kill_and_respawns(daemon: MakeDaemon, how: str) -> None:
    d = daemon(tunables=HB).start()
    pids = d.role_pids()
    if how == "hang":
        d.fault("checker", "hang")
    else:
        os.kill(pids["checker"], signal.SIGSTOP)
    t0 = time.monotonic()
    new = d.wait_running("checker", not_pid=pids["checker"], timeout=15)
    print(f"{how}: unresponsive checker replaced after {time.monotonic() - t0:.2f} s")
    log = d.wait_log(r"Healthcheck child process\(\d+\) is not answering heartbeats: sending SIGABRT")
    if how == "hang":
        assert "killed by SIGABRT" in log  # faulthandler dumped the traceback, then it died
        assert "Fatal Python error: Aborted" in d.log
    else:
        assert "failed to die - forcing termination" in log and "killed by SIGKILL" in log
    assert d.role_pids() == {**pids, "checker": new}
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_usr1_usr2_write_dumps(daemon: MakeDaemon) -> None:
    d = daemon().start()
    d.signal(signal.SIGUSR1)
    for name in ("supervisor", "vrrp", "checker", "ipvs"):
        wait_for(lambda n=name: (d.run_dir / f"{n}.data").exists(), timeout=5)  # type: ignore[misc]
    vrrp = json.loads((d.run_dir / "vrrp.data").read_text())
    assert vrrp["instances"]["VI_1"]["state"] == "MASTER"
    sup = json.loads((d.run_dir / "supervisor.data").read_text())
    assert {r["role"] for r in sup["roles"]} == {"vrrp", "checker", "ipvs"}
    d.signal(signal.SIGUSR2)
    wait_for(lambda: (d.run_dir / "vrrp.stats").exists(), timeout=5)
    assert json.loads((d.run_dir / "vrrp.stats").read_text())["instances"]["VI_1"]["became_master"] == 1
    assert not (d.run_dir / "checker.stats").exists()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_systemd_notify_ready_and_reload(daemon: MakeDaemon, tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        d = daemon()
        d.env["NOTIFY_SOCKET"] = path
        d.start()
        msgs = [sock.recv(4096).decode()]
        assert "READY=1" in msgs[0]
        d.write_config(config_text((VIP_B,)))
        d.signal(signal.SIGHUP)
        msgs += [sock.recv(4096).decode(), sock.recv(4096).decode()]
        assert "RELOADING=1" in msgs[1] and "MONOTONIC_USEC=" in msgs[1]
        assert "READY=1" in msgs[2]
        wait_for(lambda: d.vips() == {VIP_B}, timeout=5)
        d.signal(signal.SIGTERM)
        assert "STOPPING=1" in sock.recv(4096).decode()
        assert d.wait_exit() == 0
    finally:
        sock.close()


def test_startup_and_shutdown_scripts_with_timeout(daemon: MakeDaemon, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    script = tmp_path / "mark.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {marks}\n[ "$1" = slow ] && exec sleep 60\nexit 0\n')
    script.chmod(0o755)
    extra = (f"    enable_script_security\n    script_user root\n    startup_script \"{script} start\"\n"
             f"    shutdown_script \"{script} slow\"\n    shutdown_script_timeout 1\n")
    d = daemon(config=config_text(extra_global=extra))
    d.start()
    assert marks.read_text().split() == ["start"]
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    elapsed = time.monotonic() - t0
    assert marks.read_text().split() == ["start", "slow"]
    assert "shutdown_script timed out after 1 s" in d.log
    assert 1.0 <= elapsed < 6, elapsed


def test_daemonizes_and_stops_by_pidfile(daemon: MakeDaemon) -> None:
    d = daemon()
    d.foreground = False
    d.start(wait=False)
    assert d.wait_exit(timeout=15) == 0  # returns once the daemon holds its pidfile
    pid = int((d.run_dir / "pykeepalived.pid").read_text())
    try:
        wait_for(lambda: d.vips() == {VIP_A}, timeout=10)
        role_pids = [int((d.run_dir / n).read_text()) for n in ("vrrp.pid", "checkers.pid", "ipvs.pid")]
        assert all(role_pids)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: gone([pid, *role_pids]), timeout=10)
        assert d.vips() == set()
        assert not (d.run_dir / "pykeepalived.pid").exists()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_long_run_dir_and_events(daemon: MakeDaemon, tmp_path: Path) -> None:
    d = daemon()
    d.run_dir = tmp_path / ("r" * 60) / ("u" * 60)  # far beyond the 107 bytes of a unix socket path
    d.start()
    assert d.status()["vrrp_instances"][0]["state"] == "MASTER"
    ev = subprocess.Popen([sys.executable, "-m", "supervisor.ctl", "--run-dir", str(d.run_dir), "events",
                           "--count", "1"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        time.sleep(0.5)  # let it subscribe
        d.write_config(config_text((VIP_B,)))
        d.signal(signal.SIGHUP)
        out, _ = ev.communicate(timeout=10)
    finally:
        ev.kill()
    msg = json.loads(out.splitlines()[0])
    assert msg["v"] == 1 and msg["bseq"] > 0 and msg["topic"]
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_reload_refuses_namespace_change(daemon: MakeDaemon) -> None:
    d = daemon().start()
    d.write_config("net_namespace elsewhere\n" + config_text((VIP_B,)))
    d.signal(signal.SIGHUP)
    d.wait_log("Reload failed: net_namespace changed")
    assert d.vips() == {VIP_A}
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
