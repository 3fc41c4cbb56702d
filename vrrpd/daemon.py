"""The VRRP role: VRRP v2/v3 instances for IPv4 and IPv6 (``vrrpd.engine``) behind the role contract.

``supervisor.role`` runs the process lifecycle; this class adapts it to the engine:

* start: opens netlink, hands the engine the configuration generation and the bus cache snapshot
  (what an earlier process of this role published: the engine uses it to resume as MASTER after a
  respawn when that is safe, see ``vrrpd.engine``);
* apply: a new generation, applied as a difference (unchanged instances keep their state);
* stop: priority 0 and VIP removal for every MASTER unless -V, reporting progress per instance;
* bus: ``vrrp.instance.<name>`` state keys (state, priority, interface, vips, and more), ``vrrp.stats``
  and ``vrrp.resume``; the role follows ``vrrp.`` itself only to read its predecessor's keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supervisor.bus import Envelope
from supervisor.exitcodes import ExitCode
from supervisor.role import RoleExit, Runtime
from vrrpd.engine import Engine
from vrrpd.kernel import Kernel

if TYPE_CHECKING:
    from supervisor.config.model.config import Config

log = logging.getLogger("pykeepalived.vrrp")


class VrrpRole:
    name = "vrrp"
    subscriptions: tuple[str, ...] = ("vrrp.instance.", "vrrp.resume")

    def __init__(self) -> None:
        self.nl = Kernel()
        self.rt: Runtime | None = None
        self.engine: Engine | None = None

    def _publish(self, topic: str, kind: str, data: dict[str, Any] | None) -> None:
        if self.rt is not None:
            self.rt.publish(topic, kind, data)

    async def start(self, rt: Runtime, config: Config, gen: int) -> None:
        self.rt = rt
        try:
            await self.nl.open()
        except PermissionError as e:
            raise RoleExit(ExitCode.MISSING_PERMISSION, f"Cannot open netlink: {e}")
        # Only what an earlier process of this role left in the cache counts for a resume.
        cached = {k: e for k, e in rt.mirror.state.items() if e.src == self.name}
        self.engine = Engine(self.nl, self._publish)
        try:
            await self.engine.start(config, gen, cached)
        except PermissionError as e:
            raise RoleExit(ExitCode.MISSING_PERMISSION, f"Cannot open VRRP sockets: {e}")

    async def apply(self, config: Config, gen: int) -> None:
        if self.engine is not None:
            await self.engine.apply(config, gen)

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        if not release:
            log.info("Leaving the virtual addresses in place (--dont-release-vrrp)")
        if self.engine is not None:
            await self.engine.stop(release, progress)
        self.nl.close()

    def on_state(self, env: Envelope) -> None:
        pass  # our own keys come back to us; nothing else is followed

    def republish(self) -> None:
        if self.engine is not None:
            self.engine.republish()

    def dump(self) -> dict[str, Any]:
        return self.engine.dump() if self.engine is not None else {}

    def stats(self) -> dict[str, Any] | None:
        return self.engine.stats() if self.engine is not None else None
