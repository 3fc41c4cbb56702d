"""ipvsd.nft's pure parts (wrr cycle, hash slots, rule texts, the diff against a table read back) and
ipvsd.backend's choice of data plane."""

from __future__ import annotations

import re
from collections import Counter

from ipvsd.backend import choose
from ipvsd.desired import Planner, ServiceKey
from ipvsd.nft import Actual, NftBackend, fill, hash_slots, render, slot_count, wrr_sequence
from supervisor.config.load import load_text
from supervisor.config.model.config import Config

TEXT = """
local_address_group pool {
    198.51.100.201
    198.51.100.202
}
virtual_server 203.0.113.10 80 {
    lb_algo wrr
    lb_kind FNAT
    protocol TCP
    laddr_group_name pool
    syn_proxy
    real_server 198.51.100.11 8080 {
        weight 3
    }
    real_server 198.51.100.12 8080 {
        weight 1
    }
}
virtual_server 203.0.113.10 81 {
    lb_algo sh
    lb_kind NAT
    protocol TCP
    persistence_timeout 30
    real_server 198.51.100.11 8080 {
    }
}
"""


def cfg(text: str = TEXT) -> Config:
    r = load_text(text, name="k.conf")
    assert r.config is not None and not r.diag.errors, [str(p) for p in r.diag]
    return r.config


def test_wrr_cycle_is_ipvs_interleaving() -> None:
    assert wrr_sequence([3, 1]) == [0, 0, 0, 1]
    assert wrr_sequence([4, 3, 2]) == [0, 0, 1, 0, 1, 2, 0, 1, 2]
    assert wrr_sequence([2, 2]) == [0, 1]
    assert wrr_sequence([0, 0]) == []
    big = wrr_sequence([100000, 1])
    assert 0 < len(big) <= 1100 and big.count(1) == 1


def test_hash_slots_follow_weights() -> None:
    assert Counter(hash_slots([4, 2, 2])) == {0: 2, 1: 1, 2: 1}
    assert hash_slots([]) == []


def test_render_fnat_synproxy_and_persistence() -> None:
    p = Planner().plan(cfg(), {})
    fnat = render(p.services[ServiceKey("inet", "tcp", "203.0.113.10", 80)])
    # one rule in the shared chain dispatch (no chain per service: every batch pays per chain); it names a
    # shared map and a fixed slot count; which server each slot names is map data
    assert "svc_tcp_203_0_113_10_80" not in fnat.own
    assert fnat.base["dispatch"] == ["ip daddr 203.0.113.10 tcp dport 80 counter meta l4proto tcp dnat ip to "
                                     "ip daddr . tcp dport . numgen inc mod 4 map @s4_tcp"]
    assert fnat.elems["s4_tcp"] == {("203.0.113.10", 80, s): (f"198.51.100.{12 if s == 3 else 11}", 8080)
                                    for s in range(4)}
    assert fnat.base["pre_drop"] == ["ip daddr 203.0.113.10 tcp dport 80 drop"]  # what no rule dispatched
    assert fnat.base["post"] == ["meta nfproto ipv4 ct original ip daddr 203.0.113.10 ct original protocol tcp "
                                 "ct original proto-dst 80 snat ip to 198.51.100.201-198.51.100.202"]
    assert "notrack" in fnat.base["raw_pre"][0] and "synproxy" in fnat.own["syn_tcp_203_0_113_10_80"][0]
    pers = render(p.services[ServiceKey("inet", "tcp", "203.0.113.10", 81)])
    assert pers.dynamic == "p_tcp_203_0_113_10_81_30" and "timeout 30s" in pers.maps[pers.dynamic]
    assert any(r.startswith("update @p_tcp_203_0_113_10_81_30") for r in pers.own["svc_tcp_203_0_113_10_81"])
    assert pers.elems["pt_tcp_203_0_113_10_81_tcp"] == {(1,): ("198.51.100.11", 8080)}


def test_no_live_server_empties_the_slots_and_keeps_the_rules() -> None:
    c = cfg()
    h = {"203.0.113.10:81/198.51.100.11:8080": {"health": "down"}}
    up = render(Planner().plan(c, {}).services[ServiceKey("inet", "tcp", "203.0.113.10", 81)])
    down = render(Planner().plan(c, h).services[ServiceKey("inet", "tcp", "203.0.113.10", 81)])
    assert down.static() == up.static() and down.own["svc_tcp_203_0_113_10_81"][-1] == "drop"
    assert down.elems == {"pm_tcp_203_0_113_10_81": {}, "pt_tcp_203_0_113_10_81_tcp": {}}


def test_slots_fixed_at_creation_divide_for_one_server_down() -> None:
    servers = "".join(f" real_server 198.51.100.{11 + i} 80 {{\n }}\n" for i in range(10))
    c = cfg(f"virtual_server 203.0.113.10 80 {{\n lb_algo rr\n lb_kind NAT\n protocol TCP\n{servers}}}\n")
    svc = Planner().plan(c, {}).services[ServiceKey("inet", "tcp", "203.0.113.10", 80)]
    assert slot_count(svc) == 90  # lcm(10, 9)
    slots, exact = fill(90, "rr", [1] * 9)
    assert exact and Counter(slots) == {i: 10 for i in range(9)} and slots[:9] == list(range(9))
    slots, exact = fill(90, "rr", [1] * 7)  # 90 % 7 != 0: apportioned, and said to be
    assert not exact and len(slots) == 90 and set(Counter(slots).values()) <= {12, 13}
    slots, exact = fill(6, "wrr", [2, 1])
    assert exact and slots == [0, 0, 1] * 2


def actual_from(cmds: list[str]) -> Actual:
    """What the table would hold after ``cmds`` (parsing our own command texts)."""
    act = Actual(exists=True)
    handle = 0
    for c in cmds:
        if m := re.match(r"add chain inet pykeepalived (\S+)", c):
            act.chains.add(m.group(1))
        elif m := re.match(r"add map inet pykeepalived (\S+)", c):
            act.maps.add(m.group(1))
            act.elems.setdefault(m.group(1), {})
        elif m := re.match(r'add rule inet pykeepalived (\S+) .* comment "(.*)"$', c):
            handle += 1
            act.rules.setdefault(m.group(1), []).append((handle, m.group(2)))
        elif m := re.match(r"add element inet pykeepalived (\S+) \{ (.*) \}$", c):
            for item in m.group(2).split(", "):
                k, v = item.split(" : ")
                act.elems[m.group(1)][tuple(_num(x) for x in k.split(" . "))] = tuple(_num(x) for x in v.split(" . "))
    return act


def _num(x: str) -> object:
    return int(x) if x.isdigit() else x


def test_plan_is_empty_when_table_matches_and_minimal_on_health_change() -> None:
    be = NftBackend.__new__(NftBackend)  # plan() is pure: no libnftables needed
    c = cfg()
    pl = Planner()
    svcs = pl.plan(c, {}).services
    be.said_inexact = set()
    be.phase = {}
    first = be.plan(svcs, Actual())
    assert first[0] == "add table inet pykeepalived"
    act = actual_from(first)
    assert be.plan(svcs, act) == []
    # one server down: element updates in the shared slot map, no rule touched
    svcs2 = pl.plan(c, {"203.0.113.10:80/198.51.100.12:8080": {"health": "down"}}).services
    cmds = be.plan(svcs2, act)
    assert cmds == ["delete element inet pykeepalived s4_tcp { 203.0.113.10 . 80 . 3 }",
                    "add element inet pykeepalived s4_tcp { 203.0.113.10 . 80 . 3 : 198.51.100.11 . 8080 }"]
    key = ServiceKey("inet", "tcp", "203.0.113.10", 80)
    assert be.health_cmds(svcs[key], svcs2[key]) == cmds  # the health path sends the same, without a read
    # nothing configured: the table goes
    assert be.plan({}, act) == ["delete table inet pykeepalived"]
    assert be.plan({}, Actual()) == []


def test_plan_removes_a_service_the_config_dropped() -> None:
    be = NftBackend.__new__(NftBackend)
    be.said_inexact = set()
    be.phase = {}
    svcs = Planner().plan(cfg(), {}).services
    act = actual_from(be.plan(svcs, Actual()))
    only80 = {k: v for k, v in svcs.items() if k.port == 80}
    cmds = be.plan(only80, act)
    assert "delete chain inet pykeepalived svc_tcp_203_0_113_10_81" in cmds
    assert "delete map inet pykeepalived p_tcp_203_0_113_10_81_30" in cmds
    assert "delete map inet pykeepalived pt_tcp_203_0_113_10_81_tcp" in cmds
    assert any(c.startswith("delete rule inet pykeepalived pre handle") for c in cmds)
    assert not any("_80" in c for c in cmds)


def test_backend_choice() -> None:
    svcs = list(Planner().plan(cfg(), {}).services.values())
    ch = choose(svcs, "auto", ipvs_available=True)
    assert sorted((str(k), b) for k, b in ch.backend.items()) == [
        ("tcp:203.0.113.10:80", "nftables"), ("tcp:203.0.113.10:81", "ipvs")]
    ch = choose(svcs, "auto", ipvs_available=False)
    assert set(ch.backend.values()) == {"nftables"} and not ch.errors
    ch = choose(svcs, "ipvs", ipvs_available=True)
    assert ch.errors == ["k.conf:6: lb_kind FNAT is not available on kernel IPVS (lb_backend ipvs); "
                         "use lb_backend auto or nftables"]
    dr = cfg("virtual_server 203.0.113.10 80 {\n lb_algo wlc\n lb_kind DR\n protocol TCP\n"
             " real_server 198.51.100.11 80 {\n }\n}\n")
    ch = choose(list(Planner().plan(dr, {}).services.values()), "nftables", ipvs_available=True)
    assert ch.errors == ["k.conf:1: nftables backend: lb_kind DR on nftables schedules by a per-flow hash only "
                         "(no connection table at the ingress hook): lb_algo wlc cannot be honoured, use sh or mh"]
    dr_sh = cfg("virtual_server 203.0.113.10 80 {\n lb_algo sh\n lb_kind DR\n protocol TCP\n"
                " real_server 198.51.100.11 80 {\n }\n}\n")
    ch = choose(list(Planner().plan(dr_sh, {}).services.values()), "nftables", ipvs_available=True)
    assert not ch.errors and set(ch.backend.values()) == {"nftables"}
    tun = cfg("virtual_server 203.0.113.10 80 {\n lb_algo wlc\n lb_kind TUN\n protocol TCP\n"
              " real_server 198.51.100.11 80 {\n }\n}\n")
    ch = choose(list(Planner().plan(tun, {}).services.values()), "auto", ipvs_available=False)
    assert ch.errors and "TUN needs kernel IPVS" in ch.errors[0]
    nat = cfg("virtual_server 203.0.113.10 80 {\n lb_algo wlc\n lb_kind NAT\n protocol TCP\n"
              " real_server 198.51.100.11 80 {\n }\n}\n")
    ch = choose(list(Planner().plan(nat, {}).services.values()), "nftables", ipvs_available=True)
    assert not ch.errors and len(ch.notices) == 1 and "lb_algo wlc" in ch.notices[0]
    udp = cfg("virtual_server 203.0.113.10 53 {\n lb_algo rr\n lb_kind NAT\n protocol UDP\n est_timeout 30\n"
              " real_server 198.51.100.11 53 {\n }\n}\n")
    ch = choose(list(Planner().plan(udp, {}).services.values()), "auto", ipvs_available=True)
    assert ch.errors == ["k.conf:1: nftables backend (needed for est_timeout): est_timeout needs protocol TCP "
                         "(it is the established-state timeout)"]
