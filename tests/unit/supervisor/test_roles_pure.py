"""The roles' pure parts: what vrrpd holds and what checkerd reports (ipvsd: tests/unit/ipvsd/test_role.py)."""

from __future__ import annotations

import asyncio

from checkerd.daemon import CheckerRole, real_servers
from supervisor.config.load import load_text
from supervisor.config.model.config import Config
from vrrpd.config import instances

CONF = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 120
    virtual_ipaddress {
        192.0.2.10/24
        192.0.2.11 dev eth1 scope link
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
    real_server 198.51.100.3 80 {
    }
}
"""


def _config(text: str = CONF) -> Config:
    r = load_text(text)
    assert r.config is not None, [str(p) for p in r.diag]
    return r.config


def test_vrrp_specs() -> None:
    inst = instances(_config())["VI_1"]
    assert inst.priority == 120
    assert [(v.dev, v.address, v.prefixlen, v.family, v.scope) for v in inst.vips] == [
        ("eth0", "192.0.2.10", 24, 4, 0), ("eth1", "192.0.2.11", 32, 4, 253), ("eth0", "fd00::10", 64, 6, 0)]


def test_checker_reports_servers_without_checkers_up() -> None:
    rs = real_servers(_config())
    assert rs["192.0.2.10:80/198.51.100.2:80"] == {"vs": "192.0.2.10:80", "rs": "198.51.100.2:80", "health": "up",
                                                   "weight": 3, "checkers": 0}
    assert rs["192.0.2.10:80/198.51.100.3:80"]["weight"] == 1


class _Rt:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []

    def publish(self, topic: str, kind: str, data: object = None) -> None:
        self.sent.append((topic, kind, data))


def test_checker_apply_publishes_only_differences() -> None:
    role = CheckerRole()
    rt = _Rt()
    role.rt = rt  # type: ignore[assignment]
    asyncio.run(role.apply(_config(), 1))
    assert len(rt.sent) == 2
    asyncio.run(role.apply(_config(), 2))
    assert len(rt.sent) == 2
    asyncio.run(role.apply(_config(CONF.replace("weight 3", "weight 5")), 3))
    assert rt.sent[-1][2]["weight"] == 5  # type: ignore[index]
