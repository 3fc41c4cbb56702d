"""ipvsd.daemon.IpvsRole with a fake data plane: health events reach the backend, the bus gets what was
programmed, a configuration no backend can serve is a CONFIG exit, stop clears."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import pytest

from ipvsd.daemon import IpvsRole
from ipvsd.desired import Service, ServiceKey
from ipvsd.reconcile import Engine
from supervisor.bus import Envelope
from supervisor.config.load import load_text
from supervisor.role import RoleExit

CONF = """
virtual_server 192.0.2.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.2 80 {
        weight 3
    }
    real_server 198.51.100.3 80 {
    }
}
"""


class FakeNft:
    name = "nftables"

    def __init__(self) -> None:
        self.programmed: dict[ServiceKey, Service] = {}
        self.calls = 0

    def reconcile(self, services: dict[ServiceKey, Service]) -> int:
        self.calls += 1
        changed = int(services != self.programmed)
        self.programmed = dict(services)
        return changed

    def clear(self) -> int:
        self.programmed = {}
        return 1

    def stats(self) -> dict[str, dict[str, int]]:
        return {str(k): {"conns": 0} for k in self.programmed}


class Rt:
    def __init__(self, run_dir: Path) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.args = types.SimpleNamespace(run_dir=str(run_dir))
        self.mirror = types.SimpleNamespace(state={})

    def publish(self, topic: str, kind: str, data: Any = None) -> None:
        self.sent.append((topic, kind, data))


def config(text: str = CONF) -> Any:
    r = load_text(text, name="k.conf")
    assert r.config is not None and not r.diag.errors
    return r.config


def test_role_programs_follows_health_and_stops(tmp_path: Path) -> None:
    fake = FakeNft()
    role = IpvsRole(lambda d: Engine(d, ipvs_probe=lambda: False, nft_factory=lambda: fake, sysctls=False))
    rt = Rt(tmp_path)
    asyncio.run(role.start(rt, config(), 1))  # type: ignore[arg-type]
    assert role.published["192.0.2.10:80"]["real_servers"] == {"198.51.100.2:80": 3, "198.51.100.3:80": 1}
    assert role.published["192.0.2.10:80"]["backend"] == "nftables" and role.published["192.0.2.10:80"]["programmed"]
    role.on_state(Envelope("checker.rs.192.0.2.10:80/198.51.100.3:80", "state", "checker", 1, 1, 1, 0.0,
                           {"health": "down"}))
    assert role.published["192.0.2.10:80"]["up"] == 1
    svc = fake.programmed[ServiceKey("inet", "tcp", "192.0.2.10", 80)]
    assert [(d.address, d.weight) for d in svc.dests] == [("198.51.100.2", 3)]
    assert (tmp_path / "ipvs.state.json").exists()
    asyncio.run(role.stop(True, lambda n: None))
    assert fake.programmed == {} and rt.sent[-1] == ("ipvs.vs.192.0.2.10:80", "delete", None)


def test_unservable_configuration_is_a_config_exit(tmp_path: Path) -> None:
    role = IpvsRole(lambda d: Engine(d, ipvs_probe=lambda: False, nft_factory=FakeNft, sysctls=False))
    with pytest.raises(RoleExit) as e:
        asyncio.run(role.start(Rt(tmp_path), config(CONF.replace("NAT", "TUN")), 1))  # type: ignore[arg-type]
    assert "k.conf:2: nftables backend: lb_kind TUN needs kernel IPVS" in str(e.value)


def test_omega_runs_down_notifiers_of_a_removed_virtual_server(tmp_path: Path) -> None:
    role = IpvsRole(lambda d: Engine(d, ipvs_probe=lambda: False, nft_factory=FakeNft, sysctls=False))
    ran: list[str] = []
    role._run_script = ran.append  # type: ignore[method-assign]
    with_omega = CONF.replace("    protocol TCP\n", "    protocol TCP\n    omega\n    quorum_down /bin/qd\n").replace(
        "        weight 3\n", "        weight 3\n        notify_down /bin/nd\n")

    async def go() -> None:
        await role.start(Rt(tmp_path), config(with_omega), 1)  # type: ignore[arg-type]
        await role.apply(config("virtual_server 192.0.2.11 80 {\n    real_server 198.51.100.2 80 {\n    }\n}\n"), 2)

    asyncio.run(go())
    assert ran == ["/bin/nd", "/bin/qd"]
