"""virtual_server, real_server, virtual_server_group, local_address_group, SSL: keywords, keepalived
2.2.7's defaults, inheritance, fork keywords, and problems reported at the right FILE:LINE."""

from __future__ import annotations

from pathlib import Path

from supervisor.config.diag import Severity
from supervisor.config.load import LoadResult, load_text
from supervisor.config.model.config import Config
from supervisor.config.toml_io import from_toml, to_toml

SAMPLES = Path("/work/shared/reference/samples")


def samples_dir() -> Path:
    """The shared reference samples: beside the checkout, or the well-known location."""
    beside = Path(__file__).resolve().parents[4] / "shared" / "reference" / "samples"
    return beside if beside.is_dir() else SAMPLES


def load(text: str) -> LoadResult:
    return load_text(text, name="k.conf")


def config_of(result: LoadResult) -> Config:
    assert result.config is not None
    return result.config


def problems(result: LoadResult, severity: Severity | None = None) -> list[str]:
    return [str(p) for p in result.diag if severity is None or p.severity is severity]


BASE = """\
virtual_server 192.0.2.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 192.0.2.1 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
"""


def test_base_is_clean_and_has_keepalived_defaults() -> None:
    r = load(BASE)
    assert problems(r) == []
    vs = config_of(r).virtual_servers[0]
    assert (vs.address, vs.port, vs.protocol, vs.lb_algo, vs.lvs_method, vs.ip_family) == (
        "192.0.2.100", 80, "TCP", "rr", "NAT", "inet"
    )
    assert (vs.delay_loop, vs.connect_timeout, vs.quorum, vs.hysteresis, vs.weight) == (60.0, 5.0, 1, 0, 1)
    assert vs.persistence_timeout == 0 and vs.smtp_alert is False and vs.source == "k.conf:1"
    rs = vs.real_servers[0]
    assert (rs.address, rs.port, rs.weight, rs.lvs_method, rs.smtp_alert) == ("192.0.2.1", 80, 1, "NAT", True)
    assert rs.source == "k.conf:5"
    ch = rs.checkers[0]
    assert (ch.type, ch.connect_ip, ch.connect_port, ch.connect_timeout) == ("TCP_CHECK", "192.0.2.1", 80, 3.0)
    assert (ch.retry, ch.delay_before_retry, ch.delay_loop, ch.warmup) == (1, 1.0, 60.0, 60.0)


def test_missing_scheduler_protocol_and_method_get_keepalived_defaults_with_warnings() -> None:
    r = load("virtual_server 192.0.2.100 80 {\n real_server 192.0.2.1 80 {\n }\n}\n")
    vs = config_of(r).virtual_servers[0]
    assert (vs.lb_algo, vs.protocol, vs.lvs_method) == ("wlc", "UDP", "NAT")
    assert problems(r, Severity.WARNING) == [
        "k.conf:1: warning: Virtual server [192.0.2.100]:none:80: no scheduler set, setting default 'wlc'",
        "k.conf:1: warning: Virtual server [192.0.2.100]:none:80: no forwarding method set, setting default NAT",
        "k.conf:1: warning: Virtual server [192.0.2.100]:none:80: no protocol set - defaulting to UDP",
    ]


def test_persistence_timeout_without_value_is_360_and_zero_port_needs_persistence() -> None:
    r = load(BASE.replace("protocol TCP", "protocol TCP\n persistence_timeout"))
    assert config_of(r).virtual_servers[0].persistence_timeout == 360
    r = load(BASE.replace("192.0.2.100 80", "192.0.2.100 0").replace("192.0.2.1 80", "192.0.2.1"))
    vs = config_of(r).virtual_servers[0]
    assert vs.persistence_timeout == 360 and vs.port == 0
    assert any("zero port only valid for persistent services" in m for m in problems(r))


def test_real_server_inherits_from_virtual_server() -> None:
    text = """\
virtual_server 192.0.2.100 80 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    delay_loop 10
    retry 4
    inhibit_on_failure
    alpha
    weight 7
    virtualhost www.example.com
    real_server 192.0.2.1 {
        connect_timeout 2
    }
    real_server 192.0.2.2 80 {
        weight 3
        lvs_method NAT
        inhibit_on_failure off
        delay_loop 5
    }
}
"""
    r = load(text)
    assert problems(r) == []
    a, b = config_of(r).virtual_servers[0].real_servers
    assert (a.port, a.weight, a.lvs_method, a.inhibit_on_failure, a.alpha) == (80, 7, "DR", True, True)
    assert (a.delay_loop, a.connect_timeout, a.retry, a.virtualhost) == (10.0, 2.0, 4, "www.example.com")
    assert (b.weight, b.lvs_method, b.inhibit_on_failure, b.delay_loop, b.connect_timeout) == (3, "NAT", False, 5.0, 5.0)


def test_ports_of_direct_routing_servers_are_reset_to_the_virtual_port() -> None:
    r = load(BASE.replace("lb_kind NAT", "lb_kind DR").replace("192.0.2.1 80", "192.0.2.1 8080"))
    assert config_of(r).virtual_servers[0].real_servers[0].port == 80
    assert problems(r) == [
        "k.conf:5: warning: WARNING - virtual server [192.0.2.100]:tcp:80 and real server 192.0.2.1:8080 "
        "ports don't match - resetting"
    ]


def test_fwmark_service() -> None:
    text = """\
virtual_server fwmark 7 {
    lb_algo sh
    sh-port
    lb_kind DR
    real_server 192.0.2.1 80 {
    }
}
"""
    r = load(text)
    vs = config_of(r).virtual_servers[0]
    assert (vs.fwmark, vs.address, vs.protocol, vs.ip_family, vs.sh_port) == (7, None, None, "inet", True)
    assert vs.real_servers[0].port == 0
    assert problems(r) == [
        "k.conf:5: warning: WARNING - fwmark virtual server FWM 7, real server 192.0.2.1:80 has port specified - clearing"
    ]


def test_scheduler_flags_need_their_scheduler() -> None:
    r = load(BASE.replace("lb_algo rr", "lb_algo rr\n mh-port\n ops"))
    vs = config_of(r).virtual_servers[0]
    assert not vs.mh_port and not vs.ops  # ops is for UDP only
    assert problems(r, Severity.ERROR) == [
        "k.conf:3: mh-port only applies to mh scheduler - ignoring",
        "k.conf:1: Virtual server [192.0.2.100]:tcp:80: one packet scheduling requires UDP - resetting",
    ]


def test_tunnel_options() -> None:
    r = load(BASE.replace("lb_kind NAT", "lb_kind TUN type gue port 6080 csum"))
    rs = config_of(r).virtual_servers[0].real_servers[0]
    assert (rs.lvs_method, rs.tun_type, rs.tun_port, rs.tun_csum) == ("TUN", "gue", 6080, "csum")
    r = load(BASE.replace("lb_kind NAT", "lb_kind TUN type gue"))
    assert "k.conf:3: gue tunnels require port, otherwise cannot have port." in problems(r)
    r = load(BASE.replace("lb_kind NAT", "lb_kind TUN"))
    rs = config_of(r).virtual_servers[0].real_servers[0]
    assert (rs.tun_type, rs.tun_port, rs.tun_csum) == ("ipip", 0, "nocsum")


def test_quorum_and_hysteresis_sanity() -> None:
    r = load(BASE.replace("protocol TCP", "protocol TCP\n quorum 5\n hysteresis 4\n quorum_up /no/such/up"))
    vs = config_of(r).virtual_servers[0]
    assert (vs.quorum, vs.hysteresis, vs.quorum_up) == (1, 0, "/no/such/up")
    assert problems(r) == [
        "k.conf:1: warning: Warning - quorum 5 for [192.0.2.100]:tcp:80 exceeds total weight of real servers 1, "
        "reducing quorum to 1",
        "k.conf:1: warning: Virtual server [192.0.2.100]:tcp:80: hysteresis 4 >= quorum 1; setting hysteresis to 0",
    ]


def test_sorry_server() -> None:
    text = BASE.replace("lb_kind NAT", "lb_kind DR").replace(
        "protocol TCP", "protocol TCP\n sorry_server 192.0.2.9\n sorry_server_inhibit"
    )
    s = config_of(load(text)).virtual_servers[0].sorry_server
    assert s is not None and (s.address, s.port, s.lvs_method, s.inhibit) == ("192.0.2.9", 80, "DR", True)
    r = load(BASE.replace("protocol TCP", "protocol TCP\n sorry_server_inhibit"))
    assert problems(r) == ["k.conf:5: Ignoring sorry_server inhibit used before or without sorry_server"]


def test_errors_at_their_line() -> None:
    text = """\
virtual_server 192.0.2.300 80 {
    lb_algo rr
}
virtual_server 192.0.2.100 80 {
    lb_algo bogus
    lb_kind XNAT
    protocol TCP
    weight 0
    real_server 192.0.2.1 70000 {
    }
    real_server 192.0.2.2 80 {
        weight -1
        bogus_rs_kw 1
    }
    real_server 192.0.2.3 80
    real_server 192.0.2.2 80 {
    }
}
"""
    r = load(text)
    assert problems(r, Severity.ERROR) == [
        "k.conf:1: Invalid virtual server IP address/port 192.0.2.300/80 - skipping",
        "k.conf:5: Invalid lvs_scheduler 'bogus' - ignoring",
        "k.conf:6: PARSER : unknown [XNAT] routing method for virtual server.",
        "k.conf:8: weight: value 0 out of range [1, 2147483647]",
        "k.conf:9: Invalid real server ip address/port 192.0.2.1/70000 - skipping",
        "k.conf:12: weight: value -1 out of range [0, 2147483647]",
        "k.conf:13: unknown keyword 'bogus_rs_kw' in real_server",
        "k.conf:15: real_server: missing '{' to open its block",
        "k.conf:16: VS [192.0.2.100]:tcp:80: real server 192.0.2.2:80 is duplicated - removing second rs",
    ]
    vs = config_of(r).virtual_servers[0]
    assert [rs.address for rs in vs.real_servers] == ["192.0.2.2"]


def test_virtual_server_without_real_servers_or_block() -> None:
    r = load("virtual_server 192.0.2.100 80 {\n lb_algo rr\n protocol TCP\n lb_kind NAT\n}\nvirtual_server 192.0.2.101 80\n")
    assert config_of(r).virtual_servers == []
    assert problems(r, Severity.ERROR) == [
        "k.conf:6: virtual_server: missing '{' to open its block",
        "k.conf:1: Virtual server [192.0.2.100]:tcp:80 has no real servers - ignoring",
    ]


def test_duplicate_virtual_server_is_dropped() -> None:
    r = load(BASE + BASE)
    assert len(config_of(r).virtual_servers) == 1
    assert problems(r) == ["k.conf:11: Virtual server [192.0.2.100]:tcp:80 is duplicated - ignoring this one"]


def test_address_family_mismatch_drops_the_real_server() -> None:
    r = load(BASE.replace("192.0.2.1 80", "2001:db8::1 80"))
    assert "k.conf:5: Address family of virtual server and real server 2001:db8::1 don't match - skipping real server." in problems(r)


def test_virtual_server_group() -> None:
    text = """\
virtual_server_group web {
    192.0.2.10-20 80
    192.0.2.64/30 443
    192.0.2.100-192.0.3.4 8080
    2001:db8::1
    fwmark 5 inet
    192.0.2.300 80
}
virtual_server group web {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    persistence_timeout 60
    real_server 192.0.2.1 80 {
    }
}
virtual_server group nosuch {
    lb_algo rr
    real_server 192.0.2.1 80 {
    }
}
"""
    r = load(text)
    cfg = config_of(r)
    g = cfg.virtual_server_groups[0]
    assert [(x.address, x.address_end, x.port) for x in g.ranges] == [
        ("192.0.2.10", "192.0.2.20", 80),
        ("192.0.2.64", "192.0.2.67", 443),
        ("192.0.2.100", "192.0.3.4", 8080),
        ("2001:db8::1", "2001:db8::1", 0),
    ]
    assert [(f.fwmark, f.family) for f in g.fwmarks] == [(5, "inet")]
    assert [vs.group for vs in cfg.virtual_servers] == ["web"]
    assert problems(r, Severity.ERROR) == [
        "k.conf:7: Invalid virtual server group IP address 192.0.2.300 - skipping",
        "k.conf:17: Virtual server group nosuch specified but not configured - ignoring virtual server [nosuch]:0",
    ]


def test_virtual_server_group_range_errors() -> None:
    r = load("virtual_server_group g {\n 192.0.2.20-10\n 192.0.2.1/24\n fwmark 1 inet9\n}\n")
    assert config_of(r).virtual_server_groups == []
    assert problems(r, Severity.ERROR) == [
        "k.conf:2: Address range end is not greater than address range start - 192.0.2.20-10 - skipping",
        "k.conf:3: Address mask bits not empty - 192.0.2.1/24 - skipping",
        "k.conf:4: (g): fwmark '1' family inet9 unknown - ignoring",
        "k.conf:1: virtual server group g has no entries - removing",
    ]


def test_seed_manual_fnat_example() -> None:
    text = (samples_dir() / "alibaba_seed_manual.conf").read_text()
    r = load_text(text, name="seed.conf")
    cfg = config_of(r)
    vs = cfg.virtual_servers[0]
    assert (vs.lvs_method, vs.syn_proxy, vs.laddr_group_name, vs.lb_algo) == ("FNAT", True, "laddr_g1", "rr")
    assert (vs.persistence_timeout, vs.alpha, vs.omega, vs.delay_loop) == (50, True, True, 9.0)
    lag = cfg.local_address_groups[0]
    assert lag.name == "laddr_g1"
    assert lag.addresses == ["192.168.3.1"] + [f"192.168.3.{i}" for i in range(2, 255)]
    assert [rs.lvs_method for rs in vs.real_servers] == ["FNAT", "FNAT"]
    # nb_get_retry: applied, with one notice; the seed's own configuration must load cleanly
    assert vs.real_servers[0].checkers[0].retry == 3
    assert problems(r) == ["seed.conf:45: warning: 'nb_get_retry' accepted as keepalived 2's 'retry'"]
    assert r.diag.config_test_code() == 0


def test_dpvs_keywords_are_accepted_with_one_notice_each() -> None:
    text = (samples_dir() / "dpvs_doc_containerized_keepalived.conf").read_text()
    r = load_text(text, name="dpvs.conf")
    cfg = config_of(r)
    notices = problems(r, Severity.NOTICE)
    for kw in ("establish_timeout", "daddr_group_name", "deny_address_group"):
        assert len([n for n in notices if f"'{kw}' has no effect here" in n]) == 1, kw
    assert "dpvs.conf:79: warning: 'lb_algo conhash' has no effect here: only the DPVS (DPDK) data plane " \
           "honours it; using 'wlc'" in notices
    assert [vs.lb_algo for vs in cfg.virtual_servers] == ["rr", "wlc"]
    assert cfg.local_address_groups[0].addresses == ["192.168.88.240", "192.168.88.241"]
    assert problems(r, Severity.ERROR) == []


def test_every_dpvs_only_virtual_server_keyword() -> None:
    kws = ["daddr_group_name x", "waddr_group_name x", "establish_timeout 5", "proxy_protocol v2", "quic",
           "bps 10", "limit_proportion 10", "hash_target sip", "expire_quiescent_conn", "src-range a",
           "dst-range b", "oif x", "iif y"]
    body = "\n".join(kws)
    r = load(BASE.replace("protocol TCP", f"protocol TCP\n{body}\n{body}"))
    notices = problems(r, Severity.NOTICE)
    assert len(notices) == len(kws)
    assert problems(r, Severity.ERROR) == [] and problems(r, Severity.WARNING) == []


def test_fork_keywords_and_laddr_reference() -> None:
    text = BASE.replace("lb_kind NAT", "lb_kind FNAT\n est_timeout 30\n vip_bind_dev eth1\n laddr_group_name nope")
    r = load(text)
    vs = config_of(r).virtual_servers[0]
    assert (vs.est_timeout, vs.vip_bind_dev, vs.laddr_group_name) == (30, "eth1", None)
    assert problems(r, Severity.ERROR) == ["k.conf:1: Virtual server [192.0.2.100]:tcp:80: local_address_group nope not found"]


def test_local_address_group_ranges_and_errors() -> None:
    r = load("local_address_group g {\n 10.0.0.250-252\n 10.0.0.9-3\n bogus\n 2001:db8::fe-ff\n}\n")
    assert config_of(r).local_address_groups[0].addresses == [
        "10.0.0.250", "10.0.0.251", "10.0.0.252", "2001:db8::fe", "2001:db8::ff"
    ]
    assert problems(r, Severity.ERROR) == [
        "k.conf:3: Address range end is not greater than address range start - 10.0.0.9-3 - skipping",
        "k.conf:4: local_address_group g: invalid IP address 'bogus' - skipping",
    ]


def test_ssl_block() -> None:
    r = load("SSL {\n password secret\n ca /etc/ca.pem\n certificate /etc/c.pem\n key /etc/k.pem\n}\n")
    ssl = config_of(r).ssl
    assert ssl is not None and (ssl.password, ssl.ca, ssl.certificate, ssl.key) == (
        "secret", "/etc/ca.pem", "/etc/c.pem", "/etc/k.pem"
    )
    r = load("SSL {\n ca\n}\nSSL {\n}\n")
    assert problems(r) == ["k.conf:2: SSL cafile missing", "k.conf:4: SSL context already specified - replacing"]


def test_smtp_alert_defaults_follow_global_defs() -> None:
    r = load("global_defs {\n smtp_alert_checker off\n}\n" + BASE)
    vs = config_of(r).virtual_servers[0]
    assert vs.smtp_alert is False and vs.real_servers[0].smtp_alert is False


def test_scripts_are_registered() -> None:
    text = BASE.replace("protocol TCP", "protocol TCP\n quorum_down \"/bin/echo down\"").replace(
        "TCP_CHECK {", "notify_up /bin/up.sh\n TCP_CHECK {"
    )
    from supervisor.config.diag import Diagnostics
    from supervisor.config.lexer import read_text
    from supervisor.config.parse.root import parse_tree
    from supervisor.config.parse.table import Ctx
    from supervisor.config.tree import build_tree

    diag = Diagnostics()
    ctx = Ctx(diag)
    cfg = parse_tree(build_tree(read_text(text, diag, name="k.conf"), diag), ctx)
    assert [(str(s.where), s.cmdline) for s in ctx.scripts] == [
        ("k.conf:5", '"/bin/echo down"'), ("k.conf:7", "/bin/up.sh")
    ]
    assert cfg.virtual_servers[0].real_servers[0].notify_up == "/bin/up.sh"


def test_samples_round_trip_through_toml() -> None:
    for name in ("keepalived.conf.sample", "keepalived.conf.virtual_server_group", "alibaba_seed_manual.conf",
                 "keepalived.conf.SSL_GET", "keepalived.conf.misc_check", "keepalived.conf.SMTP_CHECK"):
        cfg = config_of(load_text((Path(samples_dir()) / name).read_text(), name=name))
        from supervisor.config.diag import Diagnostics

        back = from_toml(to_toml(cfg), Diagnostics())
        assert back == cfg, name
