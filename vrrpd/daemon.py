"""The VRRP role (minimal, this issue): every instance acts as MASTER and holds its virtual addresses.

Real VRRP (adverts, election, priority 0 on stop) comes in a later issue; the module layout is already
the one it needs (``config`` turns a generation into specs, ``netlink`` changes the kernel, this module
runs the instances). What it does now:

* start: for every ``vrrp_instance``, add its ``virtual_ipaddress`` on its interface, publish the
  instance's state (``vrrp.instance.<name>``: state, priority, VIPs);
* new generation: apply only the difference (addresses that went are removed, new ones added; a
  removed instance's key is deleted from the bus);
* stop: unless -V (``--dont-release``), remove every address it holds, reporting progress to the
  supervisor after each one.

An instance whose interface is missing goes to FAULT (as keepalived does) instead of failing the role.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supervisor.bus import Envelope
from supervisor.exitcodes import ExitCode
from supervisor.role import RoleExit, Runtime
from vrrpd.config import InstanceSpec, VipSpec, instances
from vrrpd.netlink import Netlink, NetlinkFailure

if TYPE_CHECKING:
    from supervisor.config.model.config import Config

log = logging.getLogger("pykeepalived.vrrp")


class VrrpRole:
    name = "vrrp"
    subscriptions: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.nl = Netlink()
        self.rt: Runtime | None = None
        self.instances: dict[str, InstanceSpec] = {}
        self.states: dict[str, str] = {}
        self.held: dict[tuple[str, str, int], VipSpec] = {}
        self.counters: dict[str, dict[str, int]] = {}
        self.since: dict[str, float] = {}

    async def start(self, rt: Runtime, config: Config, gen: int) -> None:
        self.rt = rt
        try:
            await self.nl.open()
        except PermissionError as e:
            raise RoleExit(ExitCode.MISSING_PERMISSION, f"Cannot open netlink: {e}")
        await self._converge(instances(config))

    async def apply(self, config: Config, gen: int) -> None:
        await self._converge(instances(config))

    async def _converge(self, want: dict[str, InstanceSpec]) -> None:
        wanted_vips = {v.key: v for inst in want.values() for v in inst.vips}
        for name in sorted(set(self.instances) - set(want)):
            log.info("(%s) removed from the configuration", name)
            self._publish_delete(name)
            self.states.pop(name, None)
        for key in [k for k in self.held if k not in wanted_vips]:
            vip = self.held.pop(key)
            await self._delete(vip)
        self.instances = want
        for inst in want.values():
            state = "MASTER"
            for vip in inst.vips:
                if vip.key in self.held:
                    continue
                try:
                    await self.nl.add(vip)
                    self.held[vip.key] = vip
                except NetlinkFailure as e:
                    if e.code == errno.EPERM:
                        raise RoleExit(ExitCode.MISSING_PERMISSION, f"({inst.name}) {e}")
                    where = f"{vip.source}: " if vip.source else ""
                    log.error("%s(%s) %s", where, inst.name, e)
                    state = "FAULT"
            if self.states.get(inst.name) != state:
                log.info("(%s) Entering %s STATE", inst.name, state)
                self.since[inst.name] = time.time()
                c = self.counters.setdefault(inst.name, {"became_master": 0, "release_master": 0,
                                                         "vip_add": 0, "vip_del": 0})
                if state == "MASTER":
                    c["became_master"] += 1
            self.states[inst.name] = state
            self._publish(inst)

    async def _delete(self, vip: VipSpec) -> None:
        try:
            await self.nl.delete(vip)
        except NetlinkFailure as e:
            log.error("%s", e)

    def _publish(self, inst: InstanceSpec) -> None:
        if self.rt is not None:
            self.rt.publish(f"vrrp.instance.{inst.name}", "state", {
                "state": self.states.get(inst.name, "INIT"), "priority": inst.priority,
                "interface": inst.interface, "vips": [f"{v.address}/{v.prefixlen}" for v in inst.vips]})

    def _publish_delete(self, name: str) -> None:
        if self.rt is not None:
            self.rt.publish(f"vrrp.instance.{name}", "delete")

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        done = 0
        if release:
            for name in self.instances:
                log.info("(%s) removing VIPs.", name)
            for key in list(self.held):
                await self._delete(self.held.pop(key))
                done += 1
                progress(done)
        else:
            log.info("Leaving the virtual addresses in place (--dont-release-vrrp)")
        for name in self.instances:
            self._publish_delete(name)
        self.nl.close()

    def on_state(self, env: Envelope) -> None:
        pass

    def republish(self) -> None:
        for inst in self.instances.values():
            self._publish(inst)

    def dump(self) -> dict[str, Any]:
        return {"instances": {n: {"state": self.states.get(n), "priority": i.priority, "interface": i.interface,
                                  "vips": [str(v) for v in i.vips], "since": self.since.get(n)}
                              for n, i in self.instances.items()},
                "held": [str(v) for v in self.held.values()]}

    def stats(self) -> dict[str, Any] | None:
        return {"instances": self.counters}
