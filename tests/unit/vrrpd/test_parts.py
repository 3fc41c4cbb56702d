"""Pure parts of the running role: tracker weights, script results, notify argv and fifo lines, settings."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.config.load import load_text
from vrrpd import packet as P
from vrrpd.instance import settings
from vrrpd.notify import fifo_line, shell_warning
from vrrpd.track import ScriptTracker, Track, effect


def test_effect_weights_fault_and_bounds() -> None:
    up, down = True, False
    assert effect(100, []) == (False, 100, [])
    assert effect(100, [(Track("script", "chk", 0), down)]) == (True, 100, ["script chk"])
    assert effect(100, [(Track("script", "chk", 20), up)])[1] == 120
    assert effect(100, [(Track("script", "chk", 20), down)])[1] == 100
    assert effect(100, [(Track("script", "chk", -30), down)])[1] == 70
    assert effect(100, [(Track("script", "chk", -30), up)])[1] == 100
    assert effect(100, [(Track("script", "chk", 20, reverse=True), up)])[1] == 80
    assert effect(100, [(Track("script", "chk", -20, reverse=True), down)])[1] == 120
    assert effect(100, [(Track("script", "chk", 0, reverse=True), up)])[0]
    assert effect(250, [(Track("interface", "eth1", 50), up)])[1] == 254  # never reaches 255
    assert effect(10, [(Track("interface", "eth1", -50), down)])[1] == 1
    assert effect(255, [(Track("interface", "eth1", -50), down)])[1] == 255  # owner stays owner


def test_script_rise_fall_and_init_fail() -> None:
    t = ScriptTracker("chk", "/bin/true", rise=2, fall=3)
    assert t.good
    assert not t.record(False) and not t.record(False) and t.record(False) and not t.good
    assert not t.record(True) and t.record(True) and t.good
    assert not ScriptTracker("chk", "/bin/true", init_fail=True).good


def test_shell_syntax_warning() -> None:
    assert shell_warning("/usr/bin/check.sh arg") is None
    assert shell_warning("/bin/sh -c 'a | b'") is None
    w = shell_warning("/usr/bin/check.sh > /tmp/out")
    assert w is not None and "/bin/sh -c" in w
    assert shell_warning("killall -0 sshd; echo x") is not None


def test_fifo_line_format() -> None:
    assert fifo_line("INSTANCE", "VI_1", "MASTER", 100) == 'INSTANCE "VI_1" MASTER 100'
    assert fifo_line("GROUP", "G1", "BACKUP", None) == 'GROUP "G1" BACKUP'


def _settings(text: str):  # type: ignore[no-untyped-def]
    res = load_text(text)
    cfg = res.config
    assert cfg is not None, [str(p) for p in res.diag.errors]
    return settings(cfg.vrrp_instances[0], cfg.global_defs, {s.name: (s.weight, s.weight_reverse)
                                                              for s in cfg.vrrp_scripts})


def test_settings_from_config() -> None:
    s = _settings("""
vrrp_script chk { script "/bin/true"
  weight -20 }
vrrp_instance VI_1 {
  interface eth0
  state MASTER
  virtual_router_id 51
  priority 150
  advert_int 1.5
  nopreempt
  authentication {
    auth_type PASS
    auth_pass 0123456789
  }
  track_script { chk }
  virtual_ipaddress { 192.0.2.100/24 }
}
""")
    assert (s.version, s.family, s.vrid, s.priority, s.interval_cs) == (2, 4, 51, 150, 200)  # v2: whole seconds
    assert s.initial_master and s.preempt  # nopreempt is ignored with state MASTER
    assert s.auth_type == P.AUTH_PASS and s.auth_pass == b"01234567"
    assert s.tracks == (Track("script", "chk", -20),)
    assert s.mcast_group == "224.0.0.18" and s.garp_repeat == 5 and s.garp_delay == 5.0
    v6 = _settings("""
vrrp_instance VI_6 {
  interface eth0
  virtual_router_id 52
  advert_int 0.25
  virtual_ipaddress { fd00::100/64 }
}
""")
    assert (v6.version, v6.family, v6.interval_cs, v6.mcast_group, v6.initial_master) == (3, 6, 25, "ff02::12", False)


def test_track_file_effect() -> None:
    f0 = Track("file", "tf", 0)
    assert effect(100, [(f0, 0)]) == (False, 100, [])
    assert effect(100, [(f0, 2)])[0]
    assert effect(100, [(Track("file", "tf", 5), 3)])[1] == 115
    assert effect(100, [(Track("file", "tf", 5, reverse=True), 3)])[1] == 85
    assert effect(100, [(Track("file", "tf", -1), 254)])[0]  # a change of -254 or less is a FAULT


def test_script_security_check(tmp_path: Path) -> None:
    from vrrpd.notify import insecure

    assert not insecure("/bin/true")
    d = tmp_path / "d"
    d.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    f = d / "s.sh"
    f.write_text("#!/bin/sh\n")
    f.chmod(0o755)
    assert not insecure(str(f))  # root-owned, 0755, under root-owned or sticky directories
    f.chmod(0o777)
    assert insecure(str(f))
    f.chmod(0o775)
    assert not insecure(str(f))  # group-writable by root's group: keepalived 2.2.7 runs it too
    os.chown(f, 0, 1000)
    assert insecure(str(f))
    os.chown(f, 0, 0)
    f.chmod(0o755)
    os.chown(f, 1000, 1000)
    assert insecure(str(f))


def test_use_vmac_for_ipv6_gets_the_ipv6_virtual_mac_and_holds_the_vips() -> None:
    from vrrpd.kernel import vmac_address
    s = _settings("""
vrrp_instance V6 {
    interface eth0
    virtual_router_id 52
    use_vmac
    virtual_ipaddress {
        fe80::52/64
        fd00::52/64
    }
}
""")
    assert s.family == 6 and s.vmac == "vrrp.52"
    assert {v.dev for v in s.vips} == {"vrrp.52"}
    assert vmac_address(52, 6) == "00:00:5e:00:02:34" and vmac_address(52, 4) == "00:00:5e:00:01:34"
