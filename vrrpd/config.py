"""What the VRRP role wants from a configuration generation: instances and their virtual addresses.

Turns the model's ``VrrpInstance``/``Vip`` (addresses as "ADDR/LEN" strings, the device defaulting to the
instance's interface) into hashable specs, so that applying a new generation is a set difference.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from supervisor.config.model.config import Config

SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


@dataclass(frozen=True, slots=True)
class VipSpec:
    dev: str
    address: str  # canonical, without the prefix length
    prefixlen: int
    family: int  # 4 or 6
    scope: int = 0
    label: str | None = None
    source: str = ""  # FILE:LINE of the configuration line, for error messages

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.dev, self.address, self.prefixlen)

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen} dev {self.dev}"


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    name: str
    interface: str | None
    priority: int
    vips: tuple[VipSpec, ...]
    source: str = ""


def vip_spec(address: str, dev: str, scope: str | None, label: str | None, source: str) -> VipSpec:
    iface = ipaddress.ip_interface(address)
    return VipSpec(dev=dev, address=str(iface.ip), prefixlen=iface.network.prefixlen, family=iface.version,
                   scope=SCOPES.get(scope or "global", 0), label=label, source=source)


def instances(config: Config) -> dict[str, InstanceSpec]:
    out: dict[str, InstanceSpec] = {}
    for inst in config.vrrp_instances:
        vips = []
        # keepalived adds the excluded addresses too; they only stay out of the adverts.
        for v in [*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded]:
            dev = v.dev or inst.interface
            if dev is None:
                continue  # the loader reports an instance without an interface
            vips.append(vip_spec(v.address, dev, v.scope, v.label, v.source))
        out[inst.name] = InstanceSpec(inst.name, inst.interface, inst.priority, tuple(vips),
                                      getattr(inst, "source", ""))
    return out
