"""The IPVS role: the only process that writes load-balancer state to the kernel.

It follows the checker's real-server health through the bus (snapshot, then updates: see
``supervisor.cache``), turns configuration + health into the desired state and has
``ipvsd.reconcile.Engine`` bring kernel IPVS and/or pykeepalived's nftables table to it, changing only
the difference. Per virtual server it publishes what it programmed (``ipvs.vs.<vs>``: scheduler,
method, backend, real servers with their weights, ``up``, quorum, ``programmed: true``); statistics
go out with SIGUSR2 / ``stats()``. Quorum transitions run ``quorum_up`` / ``quorum_down``.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipvsd.desired import QuorumEvent
from ipvsd.reconcile import ConfigRefused, Engine
from supervisor.bus import Envelope
from supervisor.exitcodes import ExitCode
from supervisor.role import RoleExit, Runtime

if TYPE_CHECKING:
    from supervisor.config.model.config import Config

log = logging.getLogger("pykeepalived.ipvs")


class IpvsRole:
    name = "ipvs"
    subscriptions: tuple[str, ...] = ("checker.rs.",)

    def __init__(self, engine_factory: Callable[[str], Engine] | None = None) -> None:
        self.rt: Runtime | None = None
        # Tests inject an Engine with fake backends (Engine(..., nft_factory=, ipvs_factory=, sysctls=False)).
        self.engine_factory: Callable[[str], Engine] = engine_factory or Engine
        self.engine: Engine | None = None
        self.config: Config | None = None
        self.published: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, rt: Runtime, config: Config, gen: int) -> None:
        self.rt = rt
        self.engine = self.engine_factory(rt.args.run_dir)
        for key, env in rt.mirror.state.items():
            if key.startswith("checker.rs.") and isinstance(env.data, dict):
                self.engine.health[key[len("checker.rs."):]] = env.data
        await self.apply(config, gen)
        self._spawn(self._rebalance_loop())

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _rebalance_loop(self) -> None:
        """lc/wlc/sed/nq on nftables: re-weight from conntrack every period (ipvsd.leastconn)."""
        from ipvsd.leastconn import PERIOD

        while True:
            await asyncio.sleep(PERIOD)
            if self.engine is None or not self.engine.needs_rebalance():
                continue
            try:
                self.engine.rebalance()
            except Exception as e:  # a failed count or commit waits for the next period
                log.debug("lc re-weighting: %s", e)

    async def apply(self, config: Config, gen: int) -> None:
        assert self.engine is not None
        try:
            res = self.engine.configure(config)
        except ConfigRefused as e:
            raise RoleExit(ExitCode.CONFIG, "; ".join(e.errors))
        self._omega(self.config, config)
        self.config = config
        self._after(res.events)

    def _omega(self, old: Config | None, new: Config) -> None:
        """keepalived's omega: a virtual server removed by a reload runs its real servers' notify_down
        and its quorum_down, as if everything had gone down."""
        if old is None:
            return
        from ipvsd.desired import vs_key

        kept = {vs_key(v) for v in new.virtual_servers}
        for vs in old.virtual_servers:
            if vs.omega and vs_key(vs) not in kept:
                log.info("Removing virtual server %s (omega: running its down notifiers)", vs_key(vs))
                for rs in vs.real_servers:
                    if rs.notify_down:
                        self._run_script(rs.notify_down)
                if vs.quorum_down:
                    self._run_script(vs.quorum_down)

    def _after(self, events: list[QuorumEvent]) -> None:
        for ev in events:
            log.info("%s the quorum of virtual server %s (live weight %d)", "Gained" if ev.up else "Lost",
                     ev.vs, ev.live_weight)
            if ev.script:
                self._run_script(ev.script)
        self._publish_all()

    def _run_script(self, script: str) -> None:
        async def run() -> None:
            try:
                proc = await asyncio.create_subprocess_exec(*shlex.split(script))
                await asyncio.wait_for(proc.wait(), timeout=30)
            except (OSError, TimeoutError, ValueError) as e:
                log.error("Cannot run %s: %s", script, e)

        try:
            t = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            return
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def _state(self) -> dict[str, dict[str, Any]]:
        if self.engine is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for svc in self.engine.programmed().values():  # a group's services share one entry
            vs = svc["vs"]
            live = {rs: w for rs, w in svc["real_servers"].items() if w > 0}
            entry = out.setdefault(vs, {"scheduler": svc["scheduler"], "method": svc["method"],
                                        "backend": svc["backend"], "real_servers": live, "up": len(live),
                                        "quorum": svc["quorum"], "sorry_active": svc["sorry_active"],
                                        "programmed": True})
            entry["up"] = len(entry["real_servers"])
        return out

    def _publish_all(self) -> None:
        want = self._state()
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
        if self.engine is None or not env.topic.startswith("checker.rs."):
            return
        rk = env.topic[len("checker.rs."):]
        data = env.data if env.kind != "delete" and isinstance(env.data, dict) else None
        try:
            res = self.engine.set_health(rk, data)
        except Exception as e:  # a kernel refusal must not kill the role; the next event or reload retries
            log.error("Cannot apply the health of %s: %s", rk, e)
            return
        self._after(res.events)

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        for t in list(self.tasks):
            t.cancel()
        if self.engine is not None:
            flush = self.config.global_defs.lvs_flush_on_stop if self.config is not None else "off"
            try:
                self.engine.stop(release, flush)
            except Exception as e:
                log.error("Cannot remove the load-balancer state: %s", e)
        for n, key in enumerate(list(self.published), 1):
            self._pub(key, None)
            progress(n)
        self.published = {}

    def republish(self) -> None:
        for key, data in self.published.items():
            self._pub(key, data)

    def dump(self) -> dict[str, Any]:
        eng = self.engine
        return {"virtual_servers": self.published, "services": eng.programmed() if eng else {},
                "health": eng.health if eng else {}}

    def stats(self) -> dict[str, Any] | None:
        return self.engine.stats() if self.engine is not None else None
