"""The lc/wlc/sed/nq approximation's weights (ipvsd.leastconn.fill / reweight)."""

from __future__ import annotations

from collections import Counter

from ipvsd.desired import Dest, Service, ServiceKey
from ipvsd.leastconn import fill, reweight


def test_loaded_server_gets_nothing_until_the_others_catch_up() -> None:
    assert fill([8, 0], [1, 1], "wlc", slots=8) == [0, 8]
    w = fill([8, 0], [1, 1], "wlc", slots=32)  # 32 new: 20 to the idle one, then both share
    assert w == [12, 20]


def test_equal_loads_follow_the_configured_weights() -> None:
    assert fill([0, 0, 0], [3, 1, 2], "wlc", slots=36) == [18, 6, 12]
    assert fill([5, 5], [3, 1], "lc", slots=10) == [5, 5]  # lc ignores weights


def test_nq_prefers_idle_servers_and_zero_weight_stays_out() -> None:
    assert fill([4, 0, 0], [1, 2, 0], "nq") == [0, 2, 0]
    assert fill([0, 0], [0, 0], "wlc") == [0, 0]


def test_reweight_keeps_inhibited_servers_and_single_servers() -> None:
    key = ServiceKey("inet", "tcp", "192.0.2.10", 80)
    svc = Service(key, "192.0.2.10:80", "k.conf:1", "wlc", "NAT",
                  dests=(Dest("198.51.100.1", 80, 1), Dest("198.51.100.2", 80, 1), Dest("198.51.100.3", 80, 0)))
    out = reweight(svc, Counter({("198.51.100.1", 80): 40}))
    assert [d.weight for d in out.dests] == [0, 32, 0]
    one = Service(key, "v", "s", "wlc", "NAT", dests=(Dest("198.51.100.1", 80, 5),))
    assert reweight(one, Counter()) is one
