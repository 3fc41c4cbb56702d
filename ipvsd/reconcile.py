"""The reconciler: configuration + health -> desired state -> each data plane brought to it.

:class:`Engine` owns the planner (``ipvsd.desired``), the backends (``ipvsd.nft``, ``ipvsd.ipvs``),
the sysctls (``ipvsd.sysctl``) and the state file ``<run dir>/ipvs.state.json``. That file records
what this role programmed (IPVS services it created, whether the nftables table is ours, sysctl
values it changed), written before the role reports a change as done, so that a respawned role knows
which leftovers are its own: those the configuration no longer has are removed, entries someone else
created are left alone unless ``lvs_flush``. Reconciliation reads the kernel first and applies only
the difference, so a restart against a kernel that already matches sends nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ipvsd import backend as choice
from ipvsd.desired import Planned, Planner, QuorumEvent, Service, ServiceKey

if TYPE_CHECKING:
    from supervisor.config.model.config import Config

log = logging.getLogger("pykeepalived.ipvs")

STATE_FILE = "ipvs.state.json"


class ConfigRefused(Exception):
    """The configuration asks for something no available backend can do (messages are FILE:LINE: …)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class Result:
    changes: int = 0
    events: list[QuorumEvent] = field(default_factory=list)


def _key_to_json(k: ServiceKey) -> list[Any]:
    return [k.family, k.protocol, k.address, k.port, k.fwmark]


class Engine:
    def __init__(self, run_dir: str | None, *, ipvs_probe: Callable[[], bool] | None = None,
                 nft_factory: Callable[[], Any] | None = None,
                 ipvs_factory: Callable[[set[ServiceKey], bool], Any] | None = None,
                 sysctls: bool = True, ipip_probe: Callable[[], bool] | None = None) -> None:
        self.run_dir = run_dir
        self.planner = Planner()
        self.health: dict[str, dict[str, Any]] = {}
        self.config: Config | None = None
        self.assign: dict[ServiceKey, str] = {}
        self.planned = Planned()
        self._ipvs_probe = ipvs_probe
        self._nft_factory = nft_factory
        self._ipvs_factory = ipvs_factory
        self._ipip_probe = ipip_probe
        self.nft: Any = None
        self.ipvs: Any = None
        self.ipvs_ok: bool | None = None
        self.state = self._load_state()
        self.sysctl: Any = None
        if sysctls:
            from ipvsd.sysctl import Sysctls

            self.sysctl = Sysctls(self.state.get("sysctl"))
        self.started_flush = False
        self.ipvs_synced = False
        self.lc_counts: Any = None  # conntrack counts of the last re-weighting (ipvsd.leastconn)
        self.synced = False  # one full pass done: later health events may plan and reconcile in part
        self._by_vs: dict[str, list[ServiceKey]] = {}  # virtual server -> its kernel services
        self._nft_want: dict[ServiceKey, Service] = {}  # what the nftables backend was last asked to hold
        self.sysctl_wanted: dict[str, str] = {}
        self.timeouts_said = False  # the once-only notice that lvs_timeouts do nothing on nftables

    # -- state file --------------------------------------------------------------------------------

    @property
    def state_path(self) -> str | None:
        return os.path.join(self.run_dir, STATE_FILE) if self.run_dir else None

    def _load_state(self) -> dict[str, Any]:
        p = self.state_path
        if p is None:
            return {}
        try:
            with open(p, encoding="utf-8") as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def owned_ipvs(self) -> set[ServiceKey]:
        out: set[ServiceKey] = set()
        for item in self.state.get("ipvs", []):
            try:
                fam, proto, addr, port, mark = item
                out.add(ServiceKey(str(fam), str(proto), str(addr), int(port), int(mark)))
            except (TypeError, ValueError):
                continue  # a damaged entry is forgotten, never fatal
        return out

    def _save_state(self) -> None:
        p = self.state_path
        if p is None:
            return
        data = {
            "ipvs": sorted(_key_to_json(k) for k in (self.ipvs.owned if self.ipvs is not None else self.owned_ipvs())),
            "nftables": bool(self.nft is not None and self.nft.programmed),
            "sysctl": dict(self.sysctl.saved) if self.sysctl is not None else {},
        }
        if data == self.state:
            return
        tmp = p + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, p)
        self.state = data

    # -- backends ----------------------------------------------------------------------------------

    def _probe_ipvs(self) -> bool:
        if self.ipvs_ok is None:
            if self._ipvs_probe is not None:
                self.ipvs_ok = self._ipvs_probe()
            else:
                from ipvsd.ipvs import ipvs_available

                self.ipvs_ok = ipvs_available()
        return self.ipvs_ok

    def _nft(self) -> Any:
        if self.nft is None:
            if self._nft_factory is not None:
                self.nft = self._nft_factory()
            else:
                from ipvsd.nft import NftBackend

                self.nft = NftBackend(self.run_dir)
        return self.nft

    def _ipvs(self, flush: bool) -> Any:
        if self.ipvs is None:
            if self._ipvs_factory is not None:
                self.ipvs = self._ipvs_factory(self.owned_ipvs(), flush)
            else:
                from ipvsd.ipvs import IpvsBackend

                self.ipvs = IpvsBackend(self.owned_ipvs(), flush)
        return self.ipvs

    # -- operations --------------------------------------------------------------------------------

    def configure(self, config: Config) -> Result:
        """Take a (new) configuration; raises ConfigRefused before touching anything when it cannot be served."""
        planned = Planner()
        planned.quorum = dict(self.planner.quorum)
        trial = planned.plan(config, self.health)
        setting = config.global_defs.lb_backend
        needs_ipvs = setting == "ipvs" or (setting == "auto" and any(
            choice.needs_nftables(s) is None for s in trial.services.values()))
        ipvs_ok = self._probe_ipvs() if needs_ipvs else False
        ch = choice.choose(trial.services.values(), setting, ipvs_ok)
        if ch.errors:
            raise ConfigRefused(ch.errors)
        tun_errors = self._check_tun(trial.services, ch.backend)
        if tun_errors:
            raise ConfigRefused(tun_errors)
        for n in ch.notices:
            log.warning("%s", n)
        if self._nft_factory is None:  # the real data plane (tests with fakes have no interfaces to look at)
            from ipvsd import nft_dr

            dr_errors = nft_dr.check({k: s for k, s in trial.services.items() if ch.backend.get(k) == "nftables"})
            if dr_errors:
                raise ConfigRefused(dr_errors)
            self._warn_missing_laddrs(trial.services)
        self.config = config
        self.assign = ch.backend
        return self.update(full=True)

    def _check_tun(self, services: dict[ServiceKey, Service], backend: dict[ServiceKey, str]) -> list[str]:
        """lb_kind TUN (tunnel type ipip, the default) on kernel IPVS needs the kernel's ipip support:
        refused with FILE:LINE when it has none (ipvsd.ipvs.ipip_available), never left to fail later."""
        tun = [s for k, s in services.items() if backend.get(k) == "ipvs"
               and any(d.method == "TUN" and d.tun_type in (None, "ipip") for d in s.dests)]
        if not tun:
            return []
        if self._ipip_probe is not None:
            ok = self._ipip_probe()
        else:
            from ipvsd.ipvs import ipip_available

            ok = ipip_available()
        if ok:
            return []
        said: set[str] = set()
        out = []
        for s in tun:
            if s.source not in said:  # a virtual_server_group's services share one source line
                said.add(s.source)
                out.append(f"{s.source}: lb_kind TUN (tunnel type ipip) needs the kernel's ipip support, and this "
                           "kernel has none (no /sys/module/ipip, and the module could not be loaded)")
        return out

    def _warn_missing_laddrs(self, services: dict[ServiceKey, Service]) -> None:
        """Pool addresses that are on no interface cannot source anything: name them (adding them is the
        operator's job, or static_ipaddress')."""
        pool = {a for s in services.values() for a in s.laddrs}
        if not pool:
            return
        try:
            from pyroute2 import IPRoute

            with IPRoute() as ipr:
                have = {str(m.get_attr("IFA_ADDRESS")) for m in ipr.get_addr()}
        except Exception as e:  # the check is advice; never a reason to stop
            log.debug("cannot list addresses: %s", e)
            return
        missing = sorted(pool - have)
        if missing:
            log.warning("local_address_group addresses on no interface (FNAT cannot use them): %s",
                        ", ".join(missing))

    def set_health(self, rs_key: str, data: dict[str, Any] | None) -> Result:
        if data is None:
            self.health.pop(rs_key, None)
        else:
            self.health[rs_key] = data
        return self.update(vs={rs_key.rsplit("/", 1)[0]})

    def update(self, full: bool = False, vs: set[str] | None = None) -> Result:
        """Plan and apply. ``full`` re-reads everything (configure does); health events (``vs``: the
        virtual servers they concern) plan those alone and look only at the services that moved."""
        if self.config is None:
            return Result()
        if vs is not None and not full and self.synced:
            return self._update_part(vs)
        planned = self.planner.plan(self.config, self.health)
        self.planned = planned
        self._by_vs = {}
        for k, s in planned.services.items():
            self._by_vs.setdefault(s.vs, []).append(k)
        res = Result(events=planned.events)
        nft_svcs = self._nft_services(planned)
        self._nft_want = nft_svcs
        ipvs_svcs = {k: s for k, s in planned.services.items() if self.assign.get(k) == "ipvs"}
        self.sysctl_wanted = self.wanted_sysctls(planned.services)
        if self.sysctl is not None:
            self.sysctl.want(self.sysctl_wanted)
        if nft_svcs or self.nft is not None or self.state.get("nftables"):
            res.changes += self._nft().reconcile(nft_svcs)
        if ipvs_svcs or self.ipvs is not None or self.state.get("ipvs"):
            if ipvs_svcs or self._probe_ipvs():
                flush = bool(self.config.global_defs.lvs_flush) and not self.started_flush
                self.started_flush = True
                be = self._ipvs(flush)
                res.changes += be.reconcile(ipvs_svcs, None)
                self.ipvs_synced = True
                if hasattr(be, "set_timeouts"):
                    g = self.config.global_defs
                    res.changes += be.set_timeouts(g.lvs_timeout_tcp, g.lvs_timeout_tcpfin, g.lvs_timeout_udp)
        self._timeouts_notice(nft_svcs)
        if self.sysctl is not None and nft_svcs:
            # conntrack sysctls exist only once nftables' NAT rules loaded conntrack: a second look
            self.sysctl.want(self.sysctl_wanted)
        self._save_state()
        self.synced = True
        return res

    def _timeouts_notice(self, nft_svcs: dict[ServiceKey, Service]) -> None:
        """lvs_timeouts are kernel IPVS settings: nftables has no such global (its conntrack timeouts are
        the whole host's, not the load balancer's), so say once that they are not applied there."""
        assert self.config is not None
        g = self.config.global_defs
        given = any(v is not None for v in (g.lvs_timeout_tcp, g.lvs_timeout_tcpfin, g.lvs_timeout_udp))
        if given and nft_svcs and not self.timeouts_said:
            self.timeouts_said = True
            log.warning("lvs_timeouts is not applied to the services on the nftables backend (it sets kernel "
                        "IPVS timeouts; nftables services keep conntrack's own timeouts)")

    def _update_part(self, vs: set[str]) -> Result:
        """A health event: plan the virtual servers in ``vs`` alone and hand each backend only the services
        that moved. Nothing here walks all services: at 1,000 of them that alone would cost milliseconds."""
        assert self.config is not None
        part = self.planner.plan(self.config, self.health, only=vs)
        planned = self.planned
        old_keys = {k for name in vs for k in self._by_vs.get(name, [])}
        for k in old_keys - set(part.services):
            planned.services.pop(k, None)
        planned.services.update(part.services)
        planned.events = part.events
        planned.quorum.update(part.quorum)
        for name in vs:
            self._by_vs[name] = [k for k in part.services if part.services[k].vs == name]
        res = Result(events=part.events)
        keys = old_keys | set(part.services)
        nft_part = self._nft_services(Planned({k: s for k, s in part.services.items()}))
        if self.sysctl is not None and part.services:
            # what a health event can add (a sorry server's method); a full pass drops what is no longer needed
            extra = self.wanted_sysctls(part.services)
            if set(extra) - set(self.sysctl_wanted):
                self.sysctl_wanted = {**self.sysctl_wanted, **extra}
                self.sysctl.want(self.sysctl_wanted)
        if self.nft is not None and (nft_part or any(k in self.nft.programmed for k in keys)):
            want = self._nft_want
            for k in keys:
                if k in nft_part:
                    want[k] = nft_part[k]
                else:
                    want.pop(k, None)
            moved = {k for k in keys if self.nft.programmed.get(k) != want.get(k)}
            if moved:
                res.changes += self.nft.reconcile_some(want, moved) if hasattr(self.nft, "reconcile_some") \
                    else self.nft.reconcile(want)
        ipvs_part = {k: s for k, s in part.services.items() if self.assign.get(k) == "ipvs"}
        if self.ipvs is not None:
            be = self.ipvs
            only = {k for k in keys if be.programmed.get(k) != ipvs_part.get(k)
                    and (k in ipvs_part or k in be.programmed)}
            if only:
                ipvs_svcs = {k: s for k, s in planned.services.items() if self.assign.get(k) == "ipvs"}
                res.changes += be.reconcile(ipvs_svcs, only)
        self._save_state()
        return res

    def _nft_services(self, planned: Planned) -> dict[ServiceKey, Service]:
        """The nftables services, with lc/wlc/sed/nq re-weighted from the last conntrack counts."""
        from ipvsd import leastconn

        out = {k: s for k, s in planned.services.items() if self.assign.get(k) == "nftables"}
        if self.lc_counts is not None:
            for k, s in out.items():
                if s.scheduler in leastconn.SCHEDULERS:
                    out[k] = leastconn.reweight(s, self.lc_counts)
        return out

    def needs_rebalance(self) -> bool:
        from ipvsd import leastconn

        return any(self.assign.get(k) == "nftables" and s.scheduler in leastconn.SCHEDULERS
                   for k, s in self.planned.services.items())

    def rebalance(self, counts: Any = None) -> int:
        """One period of the lc/wlc/sed/nq approximation: count connections, re-weight, rewrite the
        chains whose weights moved (one batch). ``counts`` is for tests; normally conntrack's."""
        from ipvsd import leastconn

        if not self.needs_rebalance() or self.nft is None:
            return 0
        self.lc_counts = counts if counts is not None else leastconn.count_established()
        want = self._nft_services(self.planned)
        moved = {k for k in set(want) | set(self.nft.programmed) if self.nft.programmed.get(k) != want.get(k)}
        if not moved:
            return 0
        phase = None
        if hasattr(self.nft, "dispatch_counts"):
            # the slots' numgen counter keeps running across element updates: start this period's plan
            # where it stands, so its first picks are the least-loaded servers
            counts_now = self.nft.dispatch_counts()
            phase = {k: counts_now[k] for k in moved if k in counts_now}
        return int(self.nft.reconcile_some(want, moved, phase)) if phase else int(self.nft.reconcile_some(want, moved))

    def wanted_sysctls(self, services: dict[ServiceKey, Service]) -> dict[str, str]:
        want: dict[str, str] = {}
        if any(s.method in ("NAT", "FNAT") or any(d.method in ("NAT", "FNAT") for d in s.dests)
               for s in services.values()):
            want["net.ipv4.ip_forward"] = "1"
        if any(s.key.family == "inet6" and (s.method in ("NAT", "FNAT") or any(d.method in ("NAT", "FNAT")
                                                                              for d in s.dests))
               for s in services.values()):
            want["net.ipv6.conf.all.forwarding"] = "1"  # an IPv6 NAT/FNAT service forwards to its real servers
        if any(s.syn_proxy for s in services.values() if self.assign.get(s.key) == "nftables"):
            want["net.netfilter.nf_conntrack_tcp_loose"] = "0"
        return want

    def stop(self, release: bool, flush_on_stop: str = "off") -> int:
        """Remove what we programmed (unless ``release`` is False: -I), and restore sysctls."""
        n = 0
        if release:
            if self.nft is not None:
                n += self.nft.clear()
            if self.ipvs is not None:
                n += self.ipvs.clear(flush_all=flush_on_stop == "all")
            if self.sysctl is not None:
                self.sysctl.restore()
            self._save_state()
        return n

    def programmed(self) -> dict[str, dict[str, Any]]:
        """What each service holds, for the bus: backend, scheduler, servers and weights."""
        out: dict[str, dict[str, Any]] = {}
        for key, svc in sorted(self.planned.services.items()):
            out[str(key)] = {
                "vs": svc.vs, "backend": self.assign.get(key), "scheduler": svc.scheduler, "method": svc.method,
                "sorry_active": svc.sorry_active,
                "real_servers": {f"{d.address}:{d.port}": d.weight for d in svc.dests},
                "quorum": self.planned.quorum.get(svc.vs, True),
            }
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for be in (self.nft, self.ipvs):
            if be is not None:
                try:
                    out.update(be.stats())
                except Exception as e:  # statistics are best effort; the data plane matters more
                    log.debug("stats: %s", e)
        return out
