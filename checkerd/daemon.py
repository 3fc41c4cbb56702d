"""The checker role (minimal, this issue): loads its generation and publishes real-server health.

No checks run yet: every real server is reported "up" with its configured weight
(``checker.rs.<vs>/<rs>``), which is what keepalived does for a real server that has no checker. Health
checks come with the checker issue; the bus keys and their payload are already the ones they will use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supervisor.bus import Envelope
from supervisor.role import Runtime

if TYPE_CHECKING:
    from supervisor.config.model.config import Config
    from supervisor.config.model.lvs import VirtualServer

log = logging.getLogger("pykeepalived.checker")


def vs_key(vs: VirtualServer) -> str:
    if vs.fwmark is not None:
        return f"fwmark:{vs.fwmark}"
    if vs.group is not None:
        return f"group:{vs.group}"
    return f"{vs.address}:{vs.port}"


def real_servers(config: Config) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for vs in config.virtual_servers:
        for rs in vs.real_servers:
            key = f"{vs_key(vs)}/{rs.address}:{rs.port}"
            out[key] = {"vs": vs_key(vs), "rs": f"{rs.address}:{rs.port}", "health": "up", "weight": rs.weight,
                        "checkers": len(rs.checkers)}
    return out


class CheckerRole:
    name = "checker"
    subscriptions: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.rt: Runtime | None = None
        self.servers: dict[str, dict[str, Any]] = {}

    async def start(self, rt: Runtime, config: Config, gen: int) -> None:
        self.rt = rt
        await self.apply(config, gen)

    async def apply(self, config: Config, gen: int) -> None:
        new = real_servers(config)
        for key in set(self.servers) - set(new):
            self._pub(key, None)
        for key, data in new.items():
            if self.servers.get(key) != data:
                if key not in self.servers:
                    log.info("Adding real server [%s] (no checker: up)", key)
                self._pub(key, data)
        self.servers = new

    def _pub(self, key: str, data: dict[str, Any] | None) -> None:
        if self.rt is not None:
            self.rt.publish(f"checker.rs.{key}", "delete" if data is None else "state", data)

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        for n, key in enumerate(list(self.servers), 1):
            self._pub(key, None)
            progress(n)

    def on_state(self, env: Envelope) -> None:
        pass

    def republish(self) -> None:
        for key, data in self.servers.items():
            self._pub(key, data)

    def dump(self) -> dict[str, Any]:
        return {"real_servers": self.servers}

    def stats(self) -> dict[str, Any] | None:
        return None
