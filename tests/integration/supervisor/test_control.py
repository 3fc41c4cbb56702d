"""Reload, pykeepalivectl and the bus, against a whole daemon in a test namespace (root)."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable

import pytest

from tests.integration.supervisor.conftest import REPO, VIP_A, VIP_B, Daemon, config_text
from tests.lab.netns import wait_for

pytestmark = [pytest.mark.root]

MakeDaemon = Callable[..., Daemon]


def test_ctl_restart_checker_only(daemon: MakeDaemon) -> None:
    d = daemon().start()
    before = d.role_pids()
    r = d.ctl("restart", "checker")
    assert r.returncode == 0, r.stderr
    new = d.wait_running("checker", not_pid=before["checker"])
    after = d.role_pids()
    assert after == {**before, "checker": new}
    st = d.role_state("checker")
    assert st["restarts"] == 0  # a commanded restart is not a death
    assert "Restarting Healthcheck child process" in d.log
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_status_json_and_text(daemon: MakeDaemon) -> None:
    d = daemon().start()
    st = wait_for(lambda: (s := d.status())["virtual_servers"] and s, timeout=5)
    assert {r["role"]: r["state"] for r in st["roles"]} == {"vrrp": "RUNNING", "checker": "RUNNING",
                                                               "ipvs": "RUNNING"}
    assert all(r["rss"] > 0 and r["pid"] for r in st["roles"])
    assert st["vrrp_instances"] == [{"name": "VI_1", "state": "MASTER", "priority": 150, "interface": "veth0",
                                     "vips": [VIP_A]}]
    assert sorted((rs["rs"], rs["health"], rs["weight"]) for rs in st["real_servers"]) == [
        ("198.51.100.2:80", "up", 1), ("198.51.100.3:80", "up", 2)]
    # ipvsd followed the checker's state through the bus (snapshot + updates)
    assert st["virtual_servers"][0]["up"] == 2
    text = d.ctl("status").stdout
    assert re.search(r"VI_1\s+MASTER\s+150\s+192.0.2.10/24", text)
    toml = d.ctl("dump", "--toml")
    assert toml.returncode == 0 and "VI_1" in toml.stdout
    dump = json.loads(d.ctl("dump", "--json").stdout)
    assert "vrrp.instance.VI_1" in dump["state"]
    assert d.ctl("restart", "nope").returncode != 0
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert d.ctl("--timeout", "1", "status").returncode == 3  # nobody answers any more


def test_reload_applies_difference(daemon: MakeDaemon) -> None:
    d = daemon().start()
    pids = d.role_pids()
    d.mark()
    d.write_config(config_text((VIP_B,)))
    d.signal(signal.SIGHUP)
    d.wait_log("Reload complete")
    wait_for(lambda: d.vips() == {VIP_B}, timeout=5)
    assert d.role_pids() == pids  # applied in place: no role restarted
    # A reload that drops the load balancer stops checker and ipvs; the next one starts them again.
    d.mark()
    d.write_config(config_text((VIP_B,), lvs=False))
    assert d.ctl("reload").returncode == 0
    d.wait_log("Reload complete")
    wait_for(lambda: set(d.role_pids()) == {"vrrp"}, timeout=5)
    d.mark()
    d.write_config(config_text((VIP_A,)))
    d.signal(signal.SIGHUP)
    d.wait_log("Reload complete")
    wait_for(lambda: set(d.role_pids()) == {"vrrp", "checker", "ipvs"}, timeout=5)
    assert d.role_pids()["vrrp"] == pids["vrrp"]
    wait_for(lambda: d.vips() == {VIP_A}, timeout=5)
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_hup_with_broken_config_keeps_running_one(daemon: MakeDaemon) -> None:
    d = daemon().start()
    d.mark()
    d.write_config(config_text(broken=True))
    d.signal(signal.SIGHUP)
    log = d.wait_log("Reload failed")
    assert re.search(r"keepalived\.conf:\d+: ", log), log  # FILE:LINE: message
    assert "Traceback" not in d.log
    assert d.vips() == {VIP_A}
    assert d.status()["supervisor"]["generation"] == 1
    # Fixed again: the next HUP goes through.
    d.mark()
    d.write_config(config_text((VIP_B,)))
    d.signal(signal.SIGHUP)
    d.wait_log("Reload complete")
    wait_for(lambda: d.vips() == {VIP_B}, timeout=5)
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_50_hups_converge_without_leaks(daemon: MakeDaemon) -> None:
    d = daemon().start()
    pids = d.role_pids()
    configs = [config_text((VIP_A,)), config_text((VIP_B,)), config_text(broken=True)]
    for i in range(50):
        d.write_config(configs[i % 3])
        d.signal(signal.SIGHUP)
        time.sleep(0.01)
    d.write_config(config_text((VIP_A, VIP_B)))
    d.signal(signal.SIGHUP)

    def settled() -> bool:
        st = d.status()["supervisor"]
        return not st["reloading"] and d.vips() == {VIP_A, VIP_B}

    wait_for(settled, timeout=30, interval=0.2)
    assert d.role_pids() == pids
    assert len(d.all_titled()) == 4
    assert "queued" in d.log
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert d.vips() == set()


def test_restarted_ipvs_rebuilds_state_from_snapshot(daemon: MakeDaemon) -> None:
    """The checker publishes its real servers once; a new ipvs gets them from the cache's snapshot."""
    d = daemon().start()
    wait_for(lambda: d.status()["virtual_servers"][0]["up"] == 2, timeout=5)
    old = d.role_pids()["ipvs"]
    assert d.ctl("restart", "ipvs").returncode == 0
    d.wait_running("ipvs", not_pid=old)

    def rebuilt() -> bool:
        vs = d.status()["virtual_servers"]
        return bool(vs) and vs[0]["up"] == 2

    wait_for(rebuilt, timeout=3)  # well before the checker's periodic re-publication (30 heartbeats)
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_malformed_bus_messages_are_dropped_and_counted(daemon: MakeDaemon) -> None:
    import zmq

    d = daemon().start()
    ctx = zmq.Context()
    try:
        s = ctx.socket(zmq.PUB)
        s.connect(f"ipc://{d.run_dir}/pub")
        time.sleep(0.3)  # let the broker's subscription reach this publisher
        good = json.loads(json.dumps({"v": 2, "topic": "x", "kind": "state", "src": "vrrp", "pid": 1, "seq": 1,
                                      "gen": 1, "ts": 0, "data": {}}))
        s.send_multipart([b"x", json.dumps(good).encode()])
        s.send_multipart([b"x", b"{not json"])
        s.send_multipart([b"only-one-frame"])
        wait_for(lambda: sum(d.status()["bus"]["rejected"].values()) >= 3, timeout=5)
        rejected = d.status()["bus"]["rejected"]
        assert rejected["version"] == 1 and rejected["json"] == 1 and rejected["frames"] == 1
    finally:
        ctx.destroy(linger=0)
    assert d.role_state("vrrp")["state"] == "RUNNING"
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_control_socket_is_root_only(daemon: MakeDaemon) -> None:
    import os
    import shutil
    import stat
    import subprocess
    import sys

    d = daemon().start()
    assert stat.S_IMODE(os.stat(d.run_dir).st_mode) == 0o700
    for name in ("pub", "sub", "ctl"):
        assert stat.S_IMODE(os.stat(d.run_dir / name).st_mode) & 0o077 == 0
    runuser = shutil.which("setpriv")
    if runuser is not None:
        r = subprocess.run([runuser, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                            "supervisor.ctl", "--run-dir", str(d.run_dir), "--timeout", "1", "status"],
                           capture_output=True, text=True, timeout=30, cwd="/", env={"PYTHONPATH": str(REPO)})
        assert r.returncode == 3, (r.stdout, r.stderr)
        assert "Permission denied" in r.stderr
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_ctl_reload_answers_when_applied(daemon: MakeDaemon) -> None:
    d = daemon().start()
    d.write_config(config_text((VIP_B,)))
    r = d.ctl("reload")
    assert r.returncode == 0 and "reloaded: configuration generation 2" in r.stdout, (r.stdout, r.stderr)
    assert d.vips() == {VIP_B}  # the answer came after vrrp applied it
    d.write_config(config_text(broken=True))
    r = d.ctl("reload")
    assert r.returncode == 0 and "failed: configuration errors" in r.stdout
    from supervisor.ctl import request

    reply = request(str(d.run_dir), {"cmd": "reload-apply", "result": {"config": {}}}, timeout=5)
    assert reply == {"ok": False, "error": "unknown command 'reload-apply'"}  # internal only
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
