"""The checker role: runs keepalived's health checkers and publishes real-server health on the bus.

Each real server is published on ``checker.rs.<vs>/<ip>:<port>`` with ``{"vs", "rs", "health",
"weight", "checkers", "reason", "failed", "dynamic_weight"}``: ``health`` up/down, ``reason`` what the
failing check saw, ``failed`` which check, ``weight`` the configured weight or the dynamic one
(misc_dynamic, FILE_CHECK). A real server without checkers is always up, as in keepalived.

The checks themselves live in ``checkerd.checks`` and their timing in ``checkerd.scheduler``. On a
restart the role resumes from the supervisor's cache (it follows its own ``checker.rs.`` keys): a real
server that was up stays up until a check says otherwise. A reload keeps unchanged checkers running
with their state. The role never touches the kernel: ipvsd does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from checkerd.scheduler import HealthManager, vs_key
from supervisor.bus import Envelope
from supervisor.role import Runtime

if TYPE_CHECKING:
    from supervisor.config.model.config import Config

log = logging.getLogger("pykeepalived.checker")

TOPIC = "checker.rs."

__all__ = ["CheckerRole", "real_servers", "vs_key"]


def real_servers(config: Config) -> dict[str, dict[str, Any]]:
    """Every real server as published before any check has run (configured weight, up)."""
    out: dict[str, dict[str, Any]] = {}
    for vs in config.virtual_servers:
        for rs in vs.real_servers:
            key = f"{vs_key(vs)}/{rs.address}:{rs.port}"
            out[key] = {"vs": vs_key(vs), "rs": f"{rs.address}:{rs.port}", "health": "up", "weight": rs.weight,
                        "checkers": len(rs.checkers)}
    return out


class CheckerRole:
    name = "checker"
    subscriptions: tuple[str, ...] = (TOPIC,)  # our own keys: the cache we resume from after a restart

    def __init__(self) -> None:
        self.rt: Runtime | None = None
        self.manager = HealthManager(self._pub)

    @property
    def servers(self) -> dict[str, dict[str, Any]]:
        return self.manager.published

    async def start(self, rt: Runtime, config: Config, gen: int) -> None:
        self.rt = rt
        resume = {t[len(TOPIC):]: dict(env.data) for t, env in rt.mirror.state.items()
                  if t.startswith(TOPIC) and env.kind == "state" and isinstance(env.data, dict)}
        if resume:
            log.info("Resuming the health of %d real servers from the cache", len(resume))
        self.manager.apply(config, resume)

    async def apply(self, config: Config, gen: int) -> None:
        self.manager.apply(config)

    def _pub(self, key: str, data: dict[str, Any] | None) -> None:
        if self.rt is not None:
            self.rt.publish(f"{TOPIC}{key}", "delete" if data is None else "state", data)

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        self.manager.stop()
        for n, key in enumerate(list(self.manager.published), 1):
            self._pub(key, None)
            progress(n)

    def on_state(self, env: Envelope) -> None:
        pass  # our own keys echoed back: only the snapshot at start matters

    def republish(self) -> None:
        for key, data in self.manager.published.items():
            self._pub(key, data)

    def dump(self) -> dict[str, Any]:
        return {"real_servers": self.manager.dump()}

    def stats(self) -> dict[str, Any] | None:
        return {"real_servers": len(self.manager.servers),
                "checkers": sum(len(h.runners) for h in self.manager.servers.values()),
                "down": sum(1 for h in self.manager.servers.values() if not h.alive)}
