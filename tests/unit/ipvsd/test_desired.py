"""ipvsd.desired: health, alpha, inhibit_on_failure, quorum with hysteresis, sorry server, weights, groups."""

from __future__ import annotations

from typing import Any

from ipvsd.desired import Planner, ServiceKey, vs_key
from supervisor.config.load import load_text
from supervisor.config.model.config import Config


def cfg(body: str, vs_opts: str = "", rs: str = "") -> Config:
    text = body or f"""
virtual_server 203.0.113.10 80 {{
    lb_algo rr
    lb_kind NAT
    protocol TCP
    {vs_opts}
    real_server 198.51.100.11 8080 {{
        weight 2
        {rs}
    }}
    real_server 198.51.100.12 8080 {{
        weight 1
        {rs}
    }}
    real_server 198.51.100.13 8080 {{
        weight 1
        {rs}
    }}
}}
"""
    r = load_text(text, name="k.conf")
    assert r.config is not None, [str(p) for p in r.diag]
    assert not r.diag.errors, [str(p) for p in r.diag]
    return r.config


KEY = ServiceKey("inet", "tcp", "203.0.113.10", 80)
VS = "203.0.113.10:80"


def down(*last: int) -> dict[str, dict[str, Any]]:
    return {f"{VS}/198.51.100.{n}:8080": {"health": "down"} for n in last}


def weights(planner: Planner, config: Config, health: dict[str, dict[str, Any]]) -> dict[str, int]:
    svc = planner.plan(config, health).services[KEY]
    return {f"{d.address}:{d.port}": d.weight for d in svc.dests}


def test_no_report_means_up_and_configured_weights() -> None:
    c = cfg("")
    p = Planner().plan(c, {})
    svc = p.services[KEY]
    assert (svc.scheduler, svc.method, svc.vs, svc.source) == ("rr", "NAT", VS, "k.conf:2")
    assert {(d.address, d.port, d.weight) for d in svc.dests} == {
        ("198.51.100.11", 8080, 2), ("198.51.100.12", 8080, 1), ("198.51.100.13", 8080, 1)}
    assert vs_key(c.virtual_servers[0]) == VS and p.quorum == {VS: True}


def test_down_removes_and_inhibit_sets_weight_zero() -> None:
    assert weights(Planner(), cfg(""), down(12)) == {"198.51.100.11:8080": 2, "198.51.100.13:8080": 1}
    c = cfg("", rs="inhibit_on_failure")
    assert weights(Planner(), c, down(12)) == {"198.51.100.11:8080": 2, "198.51.100.12:8080": 0,
                                               "198.51.100.13:8080": 1}


def test_checker_weight_overrides_and_bad_weight_is_ignored() -> None:
    h = {f"{VS}/198.51.100.11:8080": {"health": "up", "weight": 7},
         f"{VS}/198.51.100.12:8080": {"health": "up", "weight": "x"}}
    assert weights(Planner(), cfg(""), h) == {"198.51.100.11:8080": 7, "198.51.100.12:8080": 1,
                                              "198.51.100.13:8080": 1}


def test_alpha_starts_down_until_reported_up() -> None:
    c = cfg("", vs_opts="alpha")
    pl = Planner()
    assert weights(pl, c, {}) == {}
    assert weights(pl, c, {f"{VS}/198.51.100.12:8080": {"health": "up"}}) == {"198.51.100.12:8080": 1}


def test_quorum_with_hysteresis_and_events() -> None:
    # total weight 4; quorum 3, hysteresis 1: lost below 2, regained at 4
    c = cfg("", vs_opts="quorum 3\n hysteresis 1\n quorum_up /bin/up\n quorum_down /bin/down")
    pl = Planner()
    assert pl.plan(c, {}).quorum[VS] is True
    r = pl.plan(c, down(12))  # live 3 >= 2: still up
    assert r.quorum[VS] is True and r.events == []
    r = pl.plan(c, down(12, 13))  # live 2: not below 2, up
    assert r.quorum[VS] is True and r.events == []
    r = pl.plan(c, down(11))  # live 2 (12 and 13): still up
    assert r.events == []
    r = pl.plan(c, down(11, 12))  # live 1 < 2: lost
    assert r.quorum[VS] is False
    assert [(e.up, e.live_weight, e.script) for e in r.events] == [(False, 1, "/bin/down")]
    r = pl.plan(c, down(11))  # live 2 < 4: still down (hysteresis)
    assert r.quorum[VS] is False and r.events == []
    r = pl.plan(c, down(13))  # live 3 < 4: still down
    assert r.quorum[VS] is False
    r = pl.plan(c, {})  # live 4: regained
    assert [(e.up, e.script) for e in r.events] == [(True, "/bin/up")]


def test_sorry_server_takes_over_alone_and_gives_back() -> None:
    c = cfg("", vs_opts="quorum 2\n sorry_server 198.51.100.99 8080")
    pl = Planner()
    w = weights(pl, c, down(11, 12))  # live weight 1 < 2
    assert w == {"198.51.100.99:8080": 1}
    svc = pl.plan(c, down(11, 12)).services[KEY]
    assert svc.sorry_active and svc.dests[0].sorry
    assert weights(pl, c, down(12)) == {"198.51.100.11:8080": 2, "198.51.100.13:8080": 1}
    assert not pl.plan(c, {}).services[KEY].sorry_active


def test_sorry_server_inhibit_keeps_it_at_weight_zero() -> None:
    c = cfg("", vs_opts="quorum 2\n sorry_server 198.51.100.99 8080\n sorry_server_inhibit",
            rs="inhibit_on_failure")
    pl = Planner()
    assert weights(pl, c, {})["198.51.100.99:8080"] == 0
    w = weights(pl, c, down(11, 12))
    # quorum lost: the remaining live server is inhibited too (it keeps its entry at weight 0)
    assert w == {"198.51.100.99:8080": 1, "198.51.100.11:8080": 0, "198.51.100.12:8080": 0,
                 "198.51.100.13:8080": 0}


def test_quorum_lost_without_sorry_server_keeps_live_servers() -> None:
    c = cfg("", vs_opts="quorum 3")
    assert weights(Planner(), c, down(11)) == {"198.51.100.12:8080": 1, "198.51.100.13:8080": 1}


def test_group_expands_to_services_and_fnat_pool() -> None:
    text = """
local_address_group pool {
    198.51.100.201-203
}
virtual_server_group web {
    203.0.113.10-11 80
    fwmark 7
}
virtual_server group web {
    lb_algo wrr
    lb_kind FNAT
    protocol TCP
    laddr_group_name pool
    syn_proxy
    persistence_timeout 30
    persistence_granularity 255.255.255.0
    real_server 198.51.100.11 8080 {
    }
}
"""
    p = Planner().plan(cfg(text), {})
    keys = sorted(p.services)
    assert [str(k) for k in keys] == ["tcp:203.0.113.10:80", "tcp:203.0.113.11:80", "fwm:7"] or \
        {str(k) for k in keys} == {"tcp:203.0.113.10:80", "tcp:203.0.113.11:80", "fwm:7"}
    svc = p.services[ServiceKey("inet", "tcp", "203.0.113.11", 80)]
    assert svc.vs == "group:web" and svc.method == "FNAT" and svc.syn_proxy
    assert svc.laddrs == ("198.51.100.201", "198.51.100.202", "198.51.100.203")
    assert (svc.persistence_timeout, svc.persistence_netmask) == (30, "255.255.255.0")


def test_scheduler_flags() -> None:
    c = cfg("", vs_opts="lb_algo sh\n sh-port\n sh-fallback\n hashed")
    svc = Planner().plan(c, {}).services[KEY]
    assert svc.flags == ("flag-1", "flag-2", "hashed")
