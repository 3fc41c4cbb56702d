"""Configuration + real-server health -> the load-balancer state the kernel should hold (pure).

Nothing here touches the kernel or the bus: :class:`Planner` takes the configuration and the
checker's health (``checker.rs.<vs>/<addr>:<port>`` payloads) and returns, per kernel service, the
scheduler, flags, persistence, forwarding method, FNAT pool and the real servers with their weights.
It keeps one piece of memory between calls, each virtual server's quorum state, because hysteresis
makes the quorum depend on its past.

keepalived's semantics (survey §2.5, ``check/ipwrapper.c``), re-stated:

* a real server the checker reports down is removed, or kept with weight 0 when ``inhibit_on_failure``;
* a real server the checker has not reported yet is up, unless ``alpha`` (then it starts down);
* the live weight of a virtual server is the sum of the weights of its live real servers; the quorum is
  lost when it drops below ``quorum - hysteresis`` and regained when it reaches ``quorum + hysteresis``;
* while the quorum is lost and a ``sorry_server`` exists, the sorry server serves alone (the remaining
  live real servers are removed, or set to weight 0 with inhibit_on_failure); with
  ``sorry_server_inhibit`` the sorry server stays in the table with weight 0 while the quorum holds.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.config.model.config import Config
    from supervisor.config.model.lvs import RealServer, VirtualServer

# Scheduler flags as keepalived names them, in IPVS bit order (IP_VS_SVC_F_SCHED1..3 carry sh/mh meanings).
FLAG_BITS = {"persistent": 0x1, "hashed": 0x2, "onepacket": 0x4, "flag-1": 0x8, "flag-2": 0x10, "flag-3": 0x20}


def vs_key(vs: VirtualServer) -> str:
    """The virtual server's name on the bus (the checker publishes ``checker.rs.<vs_key>/<addr>:<port>``)."""
    if vs.fwmark is not None:
        return f"fwmark:{vs.fwmark}"
    if vs.group is not None:
        return f"group:{vs.group}"
    return f"{vs.address}:{vs.port}"


@dataclass(frozen=True, order=True)
class ServiceKey:
    """What identifies a kernel service: (family, protocol, address, port) or (family, fwmark)."""

    family: str  # inet | inet6
    protocol: str  # tcp | udp | sctp | "" for a fwmark service
    address: str  # "" for a fwmark service
    port: int
    fwmark: int = 0

    def __hash__(self) -> int:
        # Looked up thousands of times per health event at 1,000 services: hash once, not per lookup.
        h: int | None = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.family, self.protocol, self.address, self.port, self.fwmark))
            object.__setattr__(self, "_hash", h)
        return h

    def __str__(self) -> str:
        if self.fwmark:
            return f"fwm:{self.fwmark}" + (":6" if self.family == "inet6" else "")
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.protocol}:{host}:{self.port}"


@dataclass(frozen=True, order=True)
class Dest:
    """A real server (or the sorry server) as the kernel holds it."""

    address: str
    port: int
    weight: int
    method: str = "NAT"  # NAT | DR | TUN | FNAT
    uthreshold: int = 0
    lthreshold: int = 0
    tun_type: str | None = None
    tun_port: int = 0
    sorry: bool = False


@dataclass(frozen=True)
class Service:
    key: ServiceKey
    vs: str  # vs_key of the virtual server it comes from
    source: str  # FILE:LINE of that virtual server
    scheduler: str
    method: str
    flags: tuple[str, ...] = ()  # hashed, onepacket, flag-1..3 (sh-port etc. are given as flag-N)
    persistence_timeout: int = 0
    persistence_netmask: str | None = None  # IPv4 mask or IPv6 prefix length
    laddrs: tuple[str, ...] = ()  # FNAT source pool
    syn_proxy: bool = False
    est_timeout: int | None = None
    dests: tuple[Dest, ...] = ()
    sorry_active: bool = False
    # Every real server the configuration names (and the sorry server), as (address, port, weight), health
    # aside: the nftables backend sizes a service's scheduling slots from it once, so that health events
    # move map elements and never the service's rules.
    configured: tuple[tuple[str, int, int], ...] = ()
    bind_dev: str | None = None  # vip_bind_dev: the client-facing device (DR on nftables hooks there)

    def live_dests(self) -> tuple[Dest, ...]:
        """Real servers that receive new connections (weight > 0)."""
        return tuple(d for d in self.dests if d.weight > 0)


@dataclass(frozen=True)
class QuorumEvent:
    vs: str
    up: bool
    live_weight: int
    script: str | None  # quorum_up / quorum_down, to be run by the role


@dataclass
class Planned:
    services: dict[ServiceKey, Service] = field(default_factory=dict)
    events: list[QuorumEvent] = field(default_factory=list)
    quorum: dict[str, bool] = field(default_factory=dict)


def scheduler_flags(vs: VirtualServer) -> tuple[str, ...]:
    """keepalived's flag keywords as IPVS flag names (sh-port/mh-port = flag-2, sh/mh-fallback = flag-1)."""
    out: set[str] = set()
    if vs.hashed:
        out.add("hashed")
    if vs.ops:
        out.add("onepacket")
    if vs.flag_1 or vs.sh_fallback or vs.mh_fallback:
        out.add("flag-1")
    if vs.flag_2 or vs.sh_port or vs.mh_port:
        out.add("flag-2")
    if vs.flag_3:
        out.add("flag-3")
    return tuple(sorted(out))


def expand_keys(vs: VirtualServer, config: Config) -> list[ServiceKey]:
    """Every kernel service a virtual server stands for (a group expands to its addresses and marks)."""
    proto = (vs.protocol or "tcp").lower()
    fam = vs.ip_family or ("inet6" if vs.address and ":" in vs.address else "inet")
    if vs.fwmark is not None:
        return [ServiceKey(fam, "", "", 0, vs.fwmark)]
    if vs.group is None:
        return [ServiceKey(fam, proto, vs.address or "", vs.port)]
    group = next((g for g in config.virtual_server_groups if g.name == vs.group), None)
    keys: list[ServiceKey] = []
    if group is None:
        return keys
    for r in group.ranges:
        first, last = ipaddress.ip_address(r.address), ipaddress.ip_address(r.address_end)
        port = r.port or vs.port
        fam_r = "inet6" if first.version == 6 else "inet"
        n = int(last) - int(first)
        for i in range(max(0, n) + 1):
            keys.append(ServiceKey(fam_r, proto, str(first + i), port))
    for m in group.fwmarks:
        keys.append(ServiceKey(m.family or fam, "", "", 0, m.fwmark))
    return keys


def rs_key(vs: VirtualServer, rs: RealServer) -> str:
    return f"{vs_key(vs)}/{rs.address}:{rs.port}"


def rs_alive(vs: VirtualServer, rs: RealServer, health: dict[str, dict[str, Any]]) -> tuple[bool, int]:
    """(alive, weight) of a real server from the checker's last report (or alpha when none yet)."""
    h = health.get(rs_key(vs, rs))
    if h is None:
        return (not (rs.alpha or vs.alpha), rs.weight)
    weight = h.get("weight", rs.weight)
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
        weight = rs.weight  # a malformed payload must not program a nonsense weight
    return (h.get("health") == "up", weight)


class Planner:
    """Computes the desired state; remembers each virtual server's quorum state for hysteresis."""

    def __init__(self) -> None:
        self.quorum: dict[str, bool] = {}
        self._index_of: Config | None = None
        self._index: dict[str, list[VirtualServer]] = {}

    def plan(self, config: Config, health: dict[str, dict[str, Any]], only: set[str] | None = None) -> Planned:
        """The desired state of every virtual server, or only of those named in ``only`` (a health event
        moves one: planning 1,000 others would cost milliseconds for nothing)."""
        out = Planned()
        pools = {g.name: tuple(g.addresses) for g in config.local_address_groups}
        if self._index_of is not config:  # name -> virtual servers, once per configuration
            self._index_of = config
            self._index = {}
            for vs in config.virtual_servers:
                self._index.setdefault(vs_key(vs), []).append(vs)
        if only is None:
            chosen = [(vs_key(vs), vs) for vs in config.virtual_servers]
        else:
            chosen = [(name, vs) for name in sorted(only) for vs in self._index.get(name, [])]
        for name, vs in chosen:
            dests, quorum_up, live_weight = self._dests(vs, health)
            prev = self.quorum.get(name)
            if prev is not None and prev != quorum_up:
                out.events.append(QuorumEvent(name, quorum_up, live_weight,
                                              vs.quorum_up if quorum_up else vs.quorum_down))
            out.quorum[name] = quorum_up
            netmask = vs.persistence_granularity if vs.persistence_timeout else None
            svc_common: dict[str, Any] = dict(
                vs=name, source=vs.source, scheduler=vs.lb_algo, method=vs.lvs_method,
                flags=scheduler_flags(vs), persistence_timeout=vs.persistence_timeout,
                persistence_netmask=netmask,
                laddrs=pools.get(vs.laddr_group_name, ()) if vs.laddr_group_name else (),
                syn_proxy=vs.syn_proxy, est_timeout=vs.est_timeout, bind_dev=vs.vip_bind_dev,
                dests=tuple(sorted(dests)), sorry_active=any(d.sorry and d.weight > 0 for d in dests))
            conf = [(rs.address, rs.port, rs.weight) for rs in vs.real_servers]
            if vs.sorry_server is not None:
                conf.append((vs.sorry_server.address, vs.sorry_server.port, 0))  # in no slot until it serves
            for key in expand_keys(vs, config):
                dd = svc_common["dests"]
                cc = conf
                if key.fwmark == 0:
                    # A real server without a port takes the service's (a group entry may have its own).
                    dd = tuple(sorted(d if d.port else _with_port(d, key.port) for d in dd))
                    cc = [(a, p or key.port, w) for a, p, w in conf]
                out.services[key] = Service(key=key, **{**svc_common, "dests": dd},
                                            configured=tuple(sorted(set(cc))))
        if only is None:
            self.quorum = dict(out.quorum)
        else:
            self.quorum.update(out.quorum)
        return out

    def _dests(self, vs: VirtualServer, health: dict[str, dict[str, Any]]) -> tuple[list[Dest], bool, int]:
        state: list[tuple[RealServer, bool, int]] = [(rs, *rs_alive(vs, rs, health)) for rs in vs.real_servers]
        live_weight = sum(w for _, alive, w in state if alive)
        prev = self.quorum.get(vs_key(vs))
        if prev is None:
            quorum_up = live_weight >= vs.quorum
        elif prev:
            quorum_up = not live_weight < vs.quorum - vs.hysteresis
        else:
            quorum_up = live_weight >= vs.quorum + vs.hysteresis
        sorry = vs.sorry_server
        sorry_serving = sorry is not None and not quorum_up
        dests: list[Dest] = []
        for rs, alive, weight in state:
            method = rs.lvs_method or vs.lvs_method
            d = Dest(rs.address, rs.port, weight, method, rs.uthreshold, rs.lthreshold, rs.tun_type, rs.tun_port)
            if sorry_serving or not alive:
                if rs.inhibit_on_failure:
                    dests.append(_with_weight(d, 0))
                continue
            dests.append(d)
        if sorry is not None and (sorry_serving or sorry.inhibit):
            dests.append(Dest(sorry.address, sorry.port, 1 if sorry_serving else 0, sorry.lvs_method,
                              tun_type=sorry.tun_type, tun_port=sorry.tun_port, sorry=True))
        # The same address:port twice (a sorry server that is also a real server) is one kernel entry.
        unique: dict[tuple[str, int], Dest] = {}
        for d in dests:
            if (d.address, d.port) not in unique or d.weight > unique[(d.address, d.port)].weight:
                unique[(d.address, d.port)] = d
        return list(unique.values()), quorum_up, live_weight


def _with_weight(d: Dest, weight: int) -> Dest:
    return Dest(d.address, d.port, weight, d.method, d.uthreshold, d.lthreshold, d.tun_type, d.tun_port, d.sorry)


def _with_port(d: Dest, port: int) -> Dest:
    return Dest(d.address, port, d.weight, d.method, d.uthreshold, d.lthreshold, d.tun_type, d.tun_port, d.sorry)
