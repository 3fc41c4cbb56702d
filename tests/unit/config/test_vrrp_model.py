"""global_defs and VRRP blocks: keywords, keepalived's defaults, references and errors with FILE:LINE."""

from __future__ import annotations

from supervisor.config.diag import Severity
from supervisor.config.load import LoadResult, load_text


def load(text: str) -> LoadResult:
    return load_text(text, name="k.conf")


def messages(result: LoadResult, at_least: Severity = Severity.WARNING) -> list[str]:
    return [str(p) for p in result.diag if p.severity >= at_least]


BASE = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.10/24 dev eth0 label eth0:1
        192.0.2.11
    }
}
"""


def test_instance_defaults_match_keepalived() -> None:
    r = load(BASE)
    assert r.config is not None and messages(r) == []
    inst = r.config.vrrp_instances[0]
    assert (inst.priority, inst.advert_int, inst.version, inst.family) == (100, 1.0, 2, "inet")
    assert inst.state is None and not inst.nopreempt
    assert [v.address for v in inst.virtual_ipaddress] == ["192.0.2.10/24", "192.0.2.11/32"]
    assert inst.virtual_ipaddress[0].label == "eth0:1" and inst.virtual_ipaddress[0].dev == "eth0"
    assert inst.source == "k.conf:2"


def test_state_master_without_priority_is_address_owner() -> None:
    r = load(BASE.replace("interface eth0", "interface eth0\n state MASTER"))
    assert r.config is not None
    assert r.config.vrrp_instances[0].priority == 255
    r = load(BASE.replace("interface eth0", "interface eth0\n state MASTER\n priority 150"))
    assert r.config is not None and r.config.vrrp_instances[0].priority == 150


def test_out_of_range_priority_keeps_default_and_names_the_line() -> None:
    r = load(BASE.replace("virtual_router_id 51", "virtual_router_id 51\n    priority 256"))
    assert r.config is not None and r.config.vrrp_instances[0].priority == 100
    assert messages(r) == ["k.conf:5: priority: value 256 out of range [1, 255]"]


def test_missing_vrid_and_bad_vip() -> None:
    r = load(BASE.replace("virtual_router_id 51", "").replace("192.0.2.11", "192.0.2.300"))
    assert r.config is not None
    got = messages(r)
    assert "k.conf:7: 192.0.2.300: invalid IP address '192.0.2.300'" in got
    assert "k.conf:2: (VI_1) the virtual router id must be set" in got


def test_unknown_keyword_in_instance() -> None:
    r = load(BASE.replace("virtual_router_id 51", "virtual_router_id 51\n    bogus_kw 1"))
    assert messages(r) == ["k.conf:5: unknown keyword 'bogus_kw' in vrrp_instance"]


def test_ipv6_instance_is_version_3_and_centisecond_interval() -> None:
    r = load(
        """
vrrp_instance V6 {
    interface eth0
    virtual_router_id 7
    advert_int 0.25
    virtual_ipaddress { fd00::10/64 }
}"""
    )
    assert r.config is not None
    inst = r.config.vrrp_instances[0]
    assert (inst.family, inst.version, inst.advert_int) == ("inet6", 3, 0.25)


def test_v2_interval_rounds_to_seconds() -> None:
    r = load(BASE.replace("virtual_router_id 51", "virtual_router_id 51\n advert_int 1.6"))
    assert r.config is not None and r.config.vrrp_instances[0].advert_int == 2.0


def test_track_script_reference_and_weights() -> None:
    r = load(
        """
vrrp_script chk { script "/bin/true"
  interval 2
  weight -20 reverse
  rise 2
  fall 3 }
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    track_script { chk
      nosuch }
    track_interface { eth1 weight 10 }
    virtual_ipaddress { 192.0.2.10/24 }
}"""
    )
    assert r.config is not None
    script = r.config.vrrp_scripts[0]
    assert (script.script, script.interval, script.weight, script.weight_reverse, script.rise, script.fall) == (
        '"/bin/true"', 2.0, -20, True, 2, 3)
    inst = r.config.vrrp_instances[0]
    assert [t.name for t in inst.track_scripts] == ["chk"]
    assert inst.track_interfaces[0].weight == 10
    assert "k.conf:11: (VI_1) track script nosuch not found, ignoring..." in messages(r)


def test_unicast_auth_routes_rules() -> None:
    r = load(
        """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2 min_ttl 250 max_ttl 255
    }
    authentication {
        auth_type PASS
        auth_pass secret123
    }
    virtual_ipaddress { 192.0.2.10/24 }
    virtual_routes {
        198.51.100.0/24 via 192.0.2.254 dev eth0 metric 10
        blackhole 203.0.113.0/24
    }
    virtual_rules {
        from 198.51.100.0/24 table 100 priority 1000
    }
}"""
    )
    assert r.config is not None
    inst = r.config.vrrp_instances[0]
    assert inst.unicast_peers[0].min_ttl == 250
    assert (inst.auth_type, inst.auth_pass) == ("PASS", "secret12")
    assert inst.virtual_routes[0].via == "192.0.2.254" and inst.virtual_routes[0].metric == 10
    assert inst.virtual_routes[1].route_type == "blackhole"
    assert inst.virtual_rules[0].table == "100" and inst.virtual_rules[0].priority == 1000


def test_sync_group_members() -> None:
    r = load(BASE + BASE.replace("VI_1", "VI_2").replace("51", "52") + "vrrp_sync_group G { group { VI_1 VI_2 NOPE } }")
    assert r.config is not None
    assert [i.sync_group for i in r.config.vrrp_instances] == ["G", "G"]
    assert any("instance NOPE not found" in m for m in messages(r))


def test_global_defs() -> None:
    r = load(
        """
global_defs {
   notification_email {
     acassen@firewall.loc
     failover@firewall.loc
   }
   smtp_server 192.0.2.25 2525
   router_id LVS_DEVEL
   vrrp_version 3
   vrrp_strict
   lvs_flush_on_stop VS
   lvs_timeouts tcp 900 udp 30
   enable_snmp_vrrp
}"""
    )
    assert r.config is not None
    g = r.config.global_defs
    assert g.notification_email == ["acassen@firewall.loc", "failover@firewall.loc"]
    assert (g.smtp_server, g.smtp_port, g.router_id, g.vrrp_version, g.vrrp_strict) == (
        "192.0.2.25", 2525, "LVS_DEVEL", 3, True)
    assert (g.lvs_flush_on_stop, g.lvs_timeout_tcp, g.lvs_timeout_udp) == ("vs", 900, 30)
    # SNMP is accepted with one notice, which never changes keepalived's verdict
    assert r.diag.config_test_code() == 0
    assert [p.severity for p in r.diag] == [Severity.NOTICE]


def test_not_yet_built_keywords_warn_once() -> None:
    r = load(BASE.replace("virtual_router_id 51", "virtual_router_id 51\n auth_hmac { }\n")
             + BASE.replace("VI_1", "VI_2").replace("51", "52").replace("virtual_router_id 52", "virtual_router_id 52\n auth_hmac { }"))
    notices = [p for p in r.diag if p.severity is Severity.NOTICE]
    assert len(notices) == 1 and "'auth_hmac' accepted, has no effect yet" in str(notices[0])


def test_script_security_reads_the_user_written_after_the_script() -> None:
    text = """
global_defs {{ enable_script_security }}
vrrp_script chk {{
    script "/bin/true"
    {user}
}}
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    track_script {{ chk }}
    virtual_ipaddress {{ 192.0.2.10/24 }}
}}
"""
    with_user = load(text.format(user="user root"))
    assert messages(with_user) == []
    import pwd

    try:
        pwd.getpwnam("keepalived_script")
    except KeyError:
        without = load(text.format(user=""))
        assert messages(without) == ["k.conf:4: Unable to set default user keepalived_script for script"]


def test_scripts_without_script_security_are_a_security_violation() -> None:
    r = load(BASE.replace("virtual_router_id 51", "virtual_router_id 51\n notify_master /bin/true"))
    assert r.diag.config_test_code() == 6
    assert messages(r) == [
        "k.conf:0: SECURITY VIOLATION - scripts are being executed but script_security not enabled."
    ]
    # a script that does not exist is never run, so keepalived says nothing about it
    r = load(BASE.replace("virtual_router_id 51", "virtual_router_id 51\n notify_master /nonexistent/x.sh"))
    assert r.diag.config_test_code() == 0


def test_shell_syntax_in_a_script_line_gets_a_notice_that_keeps_the_verdict() -> None:
    r = load(BASE.replace("virtual_router_id 51", 'virtual_router_id 51\n notify_master "/nonexistent/a.sh; echo x > /tmp/y"'))
    notices = [str(p) for p in r.diag if p.severity is Severity.NOTICE]
    assert len(notices) == 1 and "k.conf:5:" in notices[0] and "';'" in notices[0] and "/bin/sh -c" in notices[0]
    assert r.diag.config_test_code() == 0
    r = load(BASE.replace("virtual_router_id 51", "virtual_router_id 51\n notify_master \"/bin/sh -c 'a; b'\""))
    assert [p for p in r.diag if p.severity is Severity.NOTICE] == []
