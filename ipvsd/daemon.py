"""The IPVS role (minimal, this issue): computes what it would program, touches no kernel state.

It follows the checker's real-server health through the bus (snapshot, then updates: see
``supervisor.cache``) and publishes, per virtual server, the table it would program
(``ipvs.vs.<vs>``: scheduler, method, real servers that are up with their weights, ``programmed:
false``). The reconciler against the kernel's IPVS (or nftables) comes in the load-balancer issue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from checkerd.daemon import vs_key
from supervisor.bus import Envelope
from supervisor.role import Runtime

if TYPE_CHECKING:
    from supervisor.config.model.config import Config

log = logging.getLogger("pykeepalived.ipvs")


class IpvsRole:
    name = "ipvs"
    subscriptions: tuple[str, ...] = ("checker.rs.",)

    def __init__(self) -> None:
        self.rt: Runtime | None = None
        self.services: dict[str, dict[str, Any]] = {}
        self.health: dict[str, dict[str, Any]] = {}
        self.published: dict[str, dict[str, Any]] = {}

    async def start(self, rt: Runtime, config: Config, gen: int) -> None:
        self.rt = rt
        for key, env in rt.mirror.state.items():
            if key.startswith("checker.rs."):
                self.health[key[len("checker.rs."):]] = env.data
        await self.apply(config, gen)

    async def apply(self, config: Config, gen: int) -> None:
        self.services = {vs_key(vs): {"scheduler": vs.lb_algo, "method": vs.lvs_method, "protocol": vs.protocol}
                         for vs in config.virtual_servers}
        self._recompute()

    def _recompute(self) -> None:
        want: dict[str, dict[str, Any]] = {}
        for key, svc in self.services.items():
            up = {h["rs"]: h.get("weight", 1) for rk, h in self.health.items()
                  if rk.startswith(key + "/") and h.get("health") == "up"}
            want[key] = {**svc, "real_servers": up, "up": len(up), "programmed": False}
        for key in set(self.published) - set(want):
            self._pub(key, None)
        for key, data in want.items():
            if self.published.get(key) != data:
                self._pub(key, data)
        self.published = want

    def _pub(self, key: str, data: dict[str, Any] | None) -> None:
        if self.rt is not None:
            self.rt.publish(f"ipvs.vs.{key}", "delete" if data is None else "state", data)

    def on_state(self, env: Envelope) -> None:
        rk = env.topic[len("checker.rs."):]
        if env.kind == "delete":
            self.health.pop(rk, None)
        else:
            self.health[rk] = env.data
        self._recompute()

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        # Nothing is in the kernel yet; with -I (release False) the table would be left in place.
        for n, key in enumerate(list(self.published), 1):
            self._pub(key, None)
            progress(n)

    def republish(self) -> None:
        for key, data in self.published.items():
            self._pub(key, data)

    def dump(self) -> dict[str, Any]:
        return {"virtual_servers": self.published, "health": self.health}

    def stats(self) -> dict[str, Any] | None:
        return None
