"""Processes, titles, respawn and exit codes of a whole daemon, in a test namespace (root)."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.supervisor.conftest import VIP_A, Daemon, config_text, gone
from tests.lab.netns import wait_for

pytestmark = [pytest.mark.root]

MakeDaemon = Callable[..., Daemon]


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ((), ["pykeepalived: checker", "pykeepalived: ipvs", "pykeepalived: supervisor", "pykeepalived: vrrp"]),
        (("-P",), ["pykeepalived: supervisor", "pykeepalived: vrrp"]),
        (("-C",), ["pykeepalived: checker", "pykeepalived: ipvs", "pykeepalived: supervisor"]),
    ],
    ids=["all", "-P", "-C"],
)
def test_titled_processes(daemon: MakeDaemon, opts: tuple[str, ...], expected: list[str]) -> None:
    d = daemon(*opts).start()
    assert d.titles() == expected
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_kill9_each_role_respawns_at_once_others_untouched(daemon: MakeDaemon) -> None:
    d = daemon().start()
    assert d.vips() == {VIP_A}
    latencies = {}
    for role in ("vrrp", "checker", "ipvs"):
        before = d.role_pids()
        t0 = time.monotonic()
        import os

        os.kill(before[role], signal.SIGKILL)
        new = d.wait_running(role, not_pid=before[role], timeout=5)
        latencies[role] = time.monotonic() - t0
        after = d.role_pids()
        assert after[role] == new != before[role]
        assert {r: p for r, p in after.items() if r != role} == {r: p for r, p in before.items() if r != role}
        assert d.vips() == {VIP_A}  # the VIP never went away: the new vrrp adopts it
    d.wait_log(r"VRRP child process\(\d+\) died: Respawning \(killed by SIGKILL")
    spawn = {name: _spawn_delays(d.log, name) for name in ("VRRP", "Healthcheck", "IPVS")}
    print(f"respawn latency kill -9 -> RUNNING: {latencies}; death -> new process: {spawn}")
    assert all(len(v) == 1 and v[0] < 0.2 for v in spawn.values()), spawn
    assert max(latencies.values()) < 3.0
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def _spawn_delays(log: str, display: str) -> list[float]:
    """From the supervisor's log: seconds between each death of ``display`` and the next spawn."""
    from datetime import datetime

    def ts(line: str) -> float:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    delays, died = [], None
    for line in log.splitlines():
        if f"{display} child process(" in line and "died: Respawning" in line:
            died = ts(line)
        elif died is not None and f"Starting {display} child process" in line:
            delays.append(ts(line) - died)
            died = None
    return delays


def test_crash_loop_real_timings(daemon: MakeDaemon) -> None:
    """Real policy (no scaling): restarts after deaths 1-3 are immediate, then 1 s, then 2 s."""
    import os

    d = daemon("-C", config=config_text(vrrp=False)).start()
    pid = d.role_pids()["checker"]
    gaps = []
    for _ in range(5):
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        pid = d.wait_running("checker", not_pid=pid, timeout=10)
        gaps.append(time.monotonic() - t0)
    delays = _spawn_delays(d.log, "Healthcheck")
    print(f"crash loop: kill -> running {[round(g, 2) for g in gaps]}, death -> spawn {[round(x, 3) for x in delays]}")
    assert len(delays) == 5
    assert all(x < 0.2 for x in delays[:3]), delays  # at once (pidfd wake-up, no tick; slack for load)
    assert 1.0 <= delays[3] < 1.25, delays  # the 0.1 s tick is the only slack
    assert 2.0 <= delays[4] < 2.25, delays
    assert re.search(r"Healthcheck child process\(\d+\) died: Respawning in 1 s", d.log)
    assert "Respawning in 2 s" in d.log
    assert d.role_state("checker")["restarts"] == 5
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_exception_in_role_is_respawned_not_fatal(daemon: MakeDaemon) -> None:
    d = daemon().start()
    pid = d.role_pids()["checker"]
    d.fault("checker", "raise")
    d.wait_running("checker", not_pid=pid)
    log = d.wait_log(r"died: Respawning \(exit code 70 \(PROGRAM_ERROR\)")
    assert "Unexpected exception in the checker role" in log
    assert d.proc is not None and d.proc.poll() is None
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_role_exit_2_stops_daemon_with_2(daemon: MakeDaemon) -> None:
    d = daemon().start()
    pids = list(d.role_pids().values())
    d.fault("vrrp", "exit2")
    assert d.wait_exit(timeout=15) == 2
    assert wait_for(lambda: gone(pids), timeout=5)
    assert "exited with permanent error CONFIG. Terminating" in d.log
    assert d.vips() == set()  # the other roles tore down; the vrrp one died without cleaning: see gaps


def test_dont_respawn_stops_on_any_death(daemon: MakeDaemon) -> None:
    import os

    d = daemon("-R").start()
    pids = d.role_pids()
    os.kill(pids["ipvs"], signal.SIGKILL)
    assert d.wait_exit(timeout=15) == 1
    assert wait_for(lambda: gone(list(pids.values())), timeout=5)
    assert re.search(r"IPVS child process\(\d+\) died: Exiting", d.log)
    assert d.vips() == set()


@pytest.mark.parametrize("keep", [False, True], ids=["release", "-V"])
def test_kill9_supervisor_roles_exit_and_tear_down(daemon: MakeDaemon, keep: bool) -> None:
    import os

    d = daemon(*(("-V",) if keep else ())).start()
    pids = list(d.role_pids().values())
    assert len(pids) == 3 and d.vips() == {VIP_A}
    assert d.proc is not None
    t0 = time.monotonic()
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(timeout=5)
    wait_for(lambda: gone(pids), timeout=2.0, message="roles still alive 2 s after the supervisor died")
    elapsed = time.monotonic() - t0
    print(f"roles gone {elapsed:.3f} s after kill -9 of the supervisor")
    assert d.vips() == ({VIP_A} if keep else set())
    # A stale pidfile left by the killed daemon does not block a new one.
    d.start()
    assert d.vips() == {VIP_A}
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_term_removes_vip_and_second_daemon_refuses(daemon: MakeDaemon) -> None:
    d = daemon().start()
    assert d.vips() == {VIP_A}
    second = daemon(sub="second")
    second.run_dir = d.run_dir  # same run dir, hence the same default pidfiles
    second.start(wait=False)
    assert second.wait_exit(timeout=10) == 1
    assert "daemon is already running" in second.log
    assert d.proc is not None and d.proc.poll() is None and d.vips() == {VIP_A}
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    print(f"stop time (TERM -> supervisor exit): {time.monotonic() - t0:.3f} s")
    assert d.vips() == set()
    assert not any((d.run_dir / n).exists() for n in ("pykeepalived.pid", "vrrp.pid", "checkers.pid", "ipvs.pid"))
    assert "(VI_1) removing VIPs." in d.log


def test_term_with_V_leaves_vip(daemon: MakeDaemon) -> None:
    d = daemon("-V").start()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert d.vips() == {VIP_A}


def test_orphaned_role_of_killed_daemon_is_stopped_by_the_next(daemon: MakeDaemon) -> None:
    import os

    d = daemon().start()
    pids = d.role_pids()
    os.kill(pids["vrrp"], signal.SIGSTOP)  # it cannot act on its parent's death while stopped
    assert d.proc is not None
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(timeout=5)
    wait_for(lambda: gone([pids["checker"], pids["ipvs"]]), timeout=3)
    assert not gone([pids["vrrp"]])
    d.start()
    assert gone([pids["vrrp"]])
    assert f"Found orphaned vrrp process {pids['vrrp']}" in d.log
    wait_for(lambda: d.vips() == {VIP_A}, timeout=5)
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_term_during_startup_is_held_not_fatal(daemon: MakeDaemon, tmp_path: Path) -> None:
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\nexec sleep 1\n")
    script.chmod(0o755)
    extra = f"    enable_script_security\n    script_user root\n    startup_script {script}\n"
    d = daemon(config=config_text(extra_global=extra))
    d.start(wait=False)
    d.wait_log("Running startup_script")
    d.signal(signal.SIGTERM)  # arrives while the startup script runs
    assert d.wait_exit(timeout=15) == 0
    assert d.vips() == set()
    assert not (d.run_dir / "pykeepalived.pid").exists()


def test_stop_waits_while_teardown_progresses_and_kills_when_stuck(daemon: MakeDaemon) -> None:
    """keepalived's fixed 5 s wait leaves IPVS residue (its #1173); ours waits as long as there is progress."""
    d = daemon(tunables="hb_interval=0.2,hb_timeout=3,start_grace=10,child_wait_time=1").start()
    pids = d.role_pids()
    d.fault("checker", "slowstop")  # 4 s of teardown, progress every 0.4 s: longer than child_wait_time
    d.fault("ipvs", "stuckstop")  # no progress at all: killed after child_wait_time
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(timeout=20) == 0
    elapsed = time.monotonic() - t0
    log = d.log
    assert re.search(rf"Healthcheck child process\({pids['checker']}\) stopped \(exit code 0", log), log[-3000:]
    assert f"IPVS child process({pids['ipvs']}) failed to die - forcing termination" in log
    assert 4.0 <= elapsed < 8, elapsed
    assert d.vips() == set()
