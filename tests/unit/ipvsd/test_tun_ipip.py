"""lb_kind TUN (ipip) on kernel IPVS without the kernel's ipip support is refused at start with FILE:LINE
and the reason (the probe is injected here; the UML guest runs the real one with ipip loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ipvsd.desired import Service, ServiceKey
from ipvsd.ipvs import ipip_available
from ipvsd.reconcile import ConfigRefused, Engine
from supervisor.config.load import load_text

CONF = """global_defs {
    lb_backend ipvs
}
virtual_server 192.0.2.10 80 {
    lb_algo rr
    lb_kind TUN
    protocol TCP
    real_server 198.51.100.2 80 {
    }
}
"""


def config(text: str) -> Any:
    r = load_text(text, name="k.conf")
    assert r.config is not None and not r.diag.errors, [str(p) for p in r.diag]
    return r.config


class FakeIpvs:
    def __init__(self, owned: set[ServiceKey], flush: bool) -> None:
        self.owned = set(owned)
        self.programmed: dict[ServiceKey, Service] = {}

    def reconcile(self, services: dict[ServiceKey, Service], only: set[ServiceKey] | None) -> int:
        self.programmed = dict(services)
        return len(services)


def engine(tmp_path: Path, ipip: bool, asked: list[int]) -> Engine:
    def probe() -> bool:
        asked.append(1)
        return ipip

    return Engine(str(tmp_path), ipvs_probe=lambda: True, ipvs_factory=FakeIpvs, sysctls=False, ipip_probe=probe)


def test_tun_without_ipip_is_refused_with_file_line(tmp_path: Path) -> None:
    asked: list[int] = []
    eng = engine(tmp_path, False, asked)
    with pytest.raises(ConfigRefused) as e:
        eng.configure(config(CONF))
    assert e.value.errors == ["k.conf:4: lb_kind TUN (tunnel type ipip) needs the kernel's ipip support, and this "
                              "kernel has none (no /sys/module/ipip, and the module could not be loaded)"]
    assert eng.ipvs is None  # refused before anything was touched


def test_tun_with_ipip_is_programmed(tmp_path: Path) -> None:
    asked: list[int] = []
    eng = engine(tmp_path, True, asked)
    assert eng.configure(config(CONF)).changes == 1 and asked == [1]


@pytest.mark.parametrize("text", [CONF.replace("lb_kind TUN", "lb_kind DR"),
                                  CONF.replace("lb_kind TUN", "lb_kind TUN type gue port 6080")])
def test_other_methods_and_tunnel_types_do_not_need_ipip(tmp_path: Path, text: str) -> None:
    asked: list[int] = []
    eng = engine(tmp_path, False, asked)
    eng.configure(config(text))
    assert asked == []
    (svc,) = eng.ipvs.programmed.values()
    assert (svc.dests[0].method, svc.dests[0].tun_type) in {("DR", "ipip"), ("DR", None), ("TUN", "gue")}


def test_sys_module_ipip_present_means_available(tmp_path: Path) -> None:
    (tmp_path / "ipip").mkdir()
    assert ipip_available(str(tmp_path / "ipip")) is True
