"""Options, pidfiles, sd_notify, logging fallback and the daemon's pure helpers (no root, no fork)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path

import pytest

from supervisor import log as logsetup
from supervisor import notify_systemd
from supervisor.config.load import load_text
from supervisor.daemon import tunables, usable, wanted_roles
from supervisor.options import DEFAULT_CONFIG, build_parser
from supervisor.pidfile import AlreadyRunning, PidFile, orphan, read_pid

CONF = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.10/24
        192.0.2.11 dev eth1
    }
    virtual_ipaddress_excluded {
        fd00::10/64
    }
}
virtual_server 192.0.2.10 80 {
    protocol TCP
    real_server 198.51.100.2 80 {
        weight 3
    }
}
"""


def test_options_keep_keepalived_letters() -> None:
    o = build_parser().parse_args(["-P", "-V", "-I", "-R", "-n", "-l", "-D", "-D", "-S", "local3", "-p", "a.pid",
                                   "-r", "v.pid", "-c", "c.pid", "--ipvs_pid", "i.pid", "-i", "lb1", "-s", "ns1",
                                   "--run-dir", "/tmp/x"])
    assert (o.vrrp, o.dont_release_vrrp, o.dont_release_ipvs, o.dont_respawn, o.dont_fork, o.log_console) == (
        True, True, True, True, True, True)
    assert (o.log_detail, o.log_facility, o.pid_file, o.vrrp_pid_file, o.checkers_pid_file, o.ipvs_pid_file) == (
        2, "local3", "a.pid", "v.pid", "c.pid", "i.pid")
    assert (o.config_id, o.namespace, o.run_dir, o.config_file) == ("lb1", "ns1", "/tmp/x", DEFAULT_CONFIG)
    assert build_parser().parse_args(["-t"]).config_test == ""
    assert build_parser().parse_args([]).config_test is None


def test_version_and_help_exit_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-v", "-h"):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([flag])
        assert e.value.code == 0
    assert "pykeepalived" in capsys.readouterr().out


def test_pidfile_lock_refuses_second_and_stale_file_is_taken(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "k.pid")
    a = PidFile(path)
    a.acquire()
    a.write(1234)
    with pytest.raises(AlreadyRunning) as e:
        PidFile(path).acquire()
    assert "already running" in str(e.value) and e.value.pid == 1234
    os.close(a.fd or -1)  # the process holding it died: the kernel drops the lock, the file stays
    assert read_pid(path) == 1234
    b = PidFile(path)
    b.acquire()
    b.write(os.getpid())
    assert read_pid(path) == os.getpid()
    b.release()
    assert not os.path.exists(path)


def test_orphan_only_matches_our_titles() -> None:
    assert orphan(os.getpid(), "pykeepalived: vrrp") is None
    assert orphan(None, "pykeepalived: vrrp") is None
    assert orphan(1, "pykeepalived: vrrp") is None


def test_notify_without_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify_systemd.notify("READY=1") is False


def test_notify_sends_datagram(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = str(tmp_path / "n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify_systemd.notify("RELOADING=1", "STATUS=x")
        msg = s.recv(1000).decode()
    assert msg.startswith("RELOADING=1\nSTATUS=x\nMONOTONIC_USEC=")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing"))
    assert notify_systemd.notify("READY=1") is False  # never raises


def test_syslog_missing_falls_back_to_stderr(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setattr(logsetup, "SYSLOG_PATH", str(tmp_path / "no-log-socket"))
    logsetup.setup("vrrp", console=False)
    logging.getLogger("pykeepalived.vrrp").warning("(VI_1) Entering MASTER STATE")
    err = capsys.readouterr().err
    assert "pykeepalived_vrrp[" in err and "(VI_1) Entering MASTER STATE" in err
    assert not logsetup.syslog_available()


def test_syslog_datagram_format(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        monkeypatch.setattr(logsetup, "SYSLOG_PATH", path)
        logsetup.setup("checker", console=False, facility="local3")
        logging.getLogger("x").error("boom")
        msg = s.recv(1000).decode()
    assert msg == f"<{19 << 3 | 3}>pykeepalived_checker[{os.getpid()}]: boom"


def _opts(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_wanted_roles_follow_config_and_P_C() -> None:
    r = load_text(CONF)
    assert r.config is not None
    assert wanted_roles(r.config, _opts()) == {"vrrp", "checker", "ipvs"}
    assert wanted_roles(r.config, _opts("-P")) == {"vrrp"}
    assert wanted_roles(r.config, _opts("-C")) == {"checker", "ipvs"}
    only_vrrp = load_text(CONF.split("virtual_server")[0]).config
    assert only_vrrp is not None and wanted_roles(only_vrrp, _opts()) == {"vrrp"}


def test_reload_refuses_errors_startup_only_fatal() -> None:
    bad = load_text(CONF + "vrrp_instance VI_2 {\n  virtual_router_id 999\n}\n")
    assert bad.config is not None and bad.diag.errors
    assert usable(bad, reload=False) and not usable(bad, reload=True)
    assert usable(load_text(CONF), reload=True)


def test_tunables_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYKEEPALIVED_TUNABLES", "hb_interval=0.2, hb_timeout=2,backoff_scale=0.5,bogus=1,x")
    t = tunables(7.0)
    assert (t.hb_interval, t.hb_timeout, t.child_wait_time, t.backoff.scale) == (0.2, 2.0, 7.0, 0.5)
    monkeypatch.delenv("PYKEEPALIVED_TUNABLES")
    assert tunables(5.0).hb_timeout == 5.0 and tunables(5.0).start_grace == 60.0
