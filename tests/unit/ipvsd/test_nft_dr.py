"""DR on nftables, pure parts: refusals, the client-facing device rule, the rule text and the devices check."""

from __future__ import annotations

from ipvsd import nft_dr
from ipvsd.desired import Dest, Service, ServiceKey


def svc(sched: str = "sh", method: str = "DR", bind: str | None = None, live: tuple[int, ...] = (1, 1),
        addr: str = "203.0.113.20") -> Service:
    dests = tuple(Dest(f"198.51.100.{11 + i}", 8080, w, method) for i, w in enumerate(live))
    return Service(key=ServiceKey("inet", "tcp", addr, 8080), vs=f"{addr}:8080", source="k.conf:3",
                   scheduler=sched, method=method, dests=dests, bind_dev=bind,
                   configured=tuple((d.address, 8080, 1) for d in dests))


class FakeLinks(nft_dr.Links):
    def __init__(self, gw: bool = False) -> None:
        self.gw = gw

    def addrs(self) -> list[tuple[str, str]]:
        return [("c0", "203.0.113.1/24"), ("br0", "198.51.100.1/24"), ("lo", "127.0.0.1/8")]

    def route_dev(self, dst: str) -> tuple[str | None, bool]:
        return ("br0", self.gw)

    def close(self) -> None:
        pass


def test_refusals() -> None:
    assert nft_dr.dr_refuses(svc()) is None
    assert nft_dr.dr_refuses(svc("mh")) is None
    assert "per-flow hash only" in str(nft_dr.dr_refuses(svc("rr")))
    mixed = svc()
    mixed = Service(**{**mixed.__dict__, "dests": (*mixed.dests, Dest("198.51.100.13", 8080, 1, "NAT"))})
    assert "every real server" in str(nft_dr.dr_refuses(mixed))
    v6 = Service(**{**svc().__dict__, "key": ServiceKey("inet6", "tcp", "fd00:1::20", 8080)})
    assert "IPv4 only" in str(nft_dr.dr_refuses(v6))
    pers = Service(**{**svc().__dict__, "persistence_timeout": 60})
    assert "persistence" in str(nft_dr.dr_refuses(pers))


def test_client_device_rule() -> None:
    addrs = FakeLinks().addrs()
    assert nft_dr.client_dev(svc(bind="eth9"), addrs) == "eth9"  # vip_bind_dev wins
    assert nft_dr.client_dev(svc(), addrs) == "c0"  # the interface whose subnet holds the VIP
    assert nft_dr.client_dev(svc(addr="192.0.2.7"), addrs) is None
    errs = nft_dr.check({svc(addr="192.0.2.7").key: svc(addr="192.0.2.7")}, FakeLinks())
    assert errs and errs[0].startswith("k.conf:3: lb_kind DR on nftables: cannot tell the client-facing device")
    assert nft_dr.check({svc().key: svc()}, FakeLinks()) == []
    errs = nft_dr.check({svc().key: svc()}, FakeLinks(gw=True))
    assert errs and "not on a directly connected network" in errs[0]


def test_rule_follows_health() -> None:
    both = nft_dr.rule_text(svc(), lambda a: "br0")
    assert both == ("ip daddr 203.0.113.20 tcp dport 8080 counter fwd ip to jhash ip saddr . tcp sport mod 2 "
                    'map { 0 : 198.51.100.11, 1 : 198.51.100.12 } device "br0"')
    one = nft_dr.rule_text(svc(live=(0, 1)), lambda a: "br0")
    assert "mod 1 map { 0 : 198.51.100.12 }" in one
    assert nft_dr.rule_text(svc(live=(0, 0)), lambda a: "br0").endswith("counter drop")
    wt = nft_dr.rule_text(svc(live=(2, 1)), lambda a: "br0")
    assert "mod 3 map { 0 : 198.51.100.11, 1 : 198.51.100.11, 2 : 198.51.100.12 }" in wt
    assert nft_dr.table_name("eth0.10") == "pykeepalived_dr_eth0_10"
