"""Which data plane programs each service, and what a data plane must offer (the Backend protocol).

``global_defs { lb_backend auto|ipvs|nftables }`` (pykeepalived's own keyword, default ``auto``):

* ``auto``: kernel IPVS when the kernel offers it (the IPVS generic netlink family resolves, which also
  loads the module on a stock kernel), nftables otherwise; a virtual server asking for FNAT,
  ``laddr_group_name`` or ``syn_proxy`` goes to nftables in any case (mainline IPVS has none of them);
* ``ipvs``: everything on IPVS; a virtual server IPVS cannot do is an error;
* ``nftables``: everything on nftables; a virtual server nftables cannot do is an error.

A request a backend cannot honour is an error at start with FILE:LINE and the reason, never a silent
approximation. The announced approximations, logged once per virtual server: lc/wlc/sed/nq on
nftables re-weight a weighted round-robin from conntrack's connection counts every 0.5 s
(``ipvsd.leastconn``); lblc/lblcr/fo/ovf/twos are served as weighted round-robin. DR on nftables
(``ipvsd.nft_dr``: netdev ingress ``fwd``) takes lb_algo sh or mh only (a per-flow hash; no connection
table there), IPv4 address services, no persistence; anything else is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ipvsd.desired import Service, ServiceKey

NFT_EXACT = ("rr", "wrr", "sh", "dh", "mh")
NFT_APPROX = ("lc", "wlc", "sed", "nq", "lblc", "lblcr", "fo", "ovf", "twos")
NFT_CONNTRACK = ("lc", "wlc", "sed", "nq")


class Backend(Protocol):
    name: str

    def reconcile(self, services: dict[ServiceKey, Service]) -> int:
        """Make the data plane hold exactly ``services`` (of this backend); return the changes made."""
        ...

    def stats(self) -> dict[str, dict[str, int]]: ...

    def clear(self) -> int:
        """Remove everything this backend programmed."""
        ...


@dataclass
class Choice:
    backend: dict[ServiceKey, str] = field(default_factory=dict)  # "ipvs" | "nftables"
    errors: list[str] = field(default_factory=list)  # "FILE:LINE: message"
    notices: list[str] = field(default_factory=list)


def needs_nftables(svc: Service) -> str | None:
    """Why a service cannot be on mainline IPVS (None when it can)."""
    if svc.method == "FNAT" or any(d.method == "FNAT" for d in svc.dests):
        return "lb_kind FNAT"
    if svc.laddrs:
        return "laddr_group_name"
    if svc.syn_proxy:
        return "syn_proxy"
    if svc.est_timeout is not None:
        return "est_timeout"
    return None


def nftables_refuses(svc: Service) -> str | None:
    """Why the nftables backend cannot serve a service (None when it can)."""
    from ipvsd.nft_dr import dr_refuses, is_dr

    if is_dr(svc):
        return dr_refuses(svc)
    for d in svc.dests:
        if d.method == "TUN":
            return "lb_kind TUN needs kernel IPVS (ipip tunnels are not built by the nftables backend)"
    if svc.key.fwmark == 0 and svc.key.protocol not in ("tcp", "udp", "sctp"):
        return f"protocol {svc.key.protocol} is not supported"
    if svc.est_timeout is not None and svc.key.fwmark == 0 and svc.key.protocol != "tcp":
        # the ct timeout policy names TCP's established state; on another protocol it would do nothing
        return "est_timeout needs protocol TCP (it is the established-state timeout)"
    if svc.syn_proxy and svc.key.protocol != "tcp":
        return "syn_proxy needs protocol TCP"
    if svc.key.fwmark and any(d.port == 0 for d in svc.dests):
        return "a fwmark service on nftables needs a port on every real server"
    return None


def choose(services: Iterable[Service], setting: str, ipvs_available: bool) -> Choice:
    out = Choice()
    approx_said: set[str] = set()
    for svc in services:
        why_nft = needs_nftables(svc)
        if setting == "ipvs" or (setting == "auto" and ipvs_available and why_nft is None):
            if why_nft is not None:
                out.errors.append(f"{svc.source}: {why_nft} is not available on kernel IPVS "
                                  f"(lb_backend ipvs); use lb_backend auto or nftables")
                continue
            if not ipvs_available:
                out.errors.append(f"{svc.source}: lb_backend ipvs, but this kernel offers no IPVS")
                continue
            out.backend[svc.key] = "ipvs"
            continue
        why_not = nftables_refuses(svc)
        if why_not is not None:
            extra = f" (needed for {why_nft})" if why_nft else ""
            out.errors.append(f"{svc.source}: nftables backend{extra}: {why_not}")
            continue
        if svc.scheduler in NFT_APPROX and svc.vs not in approx_said:
            approx_said.add(svc.vs)
            if svc.scheduler in NFT_CONNTRACK:
                out.notices.append(
                    f"{svc.source}: lb_algo {svc.scheduler} on nftables is an approximation: every 0.5 s the "
                    "established connections conntrack counts per real server re-weight a weighted round-robin "
                    "(least-loaded first); exact at each re-weighting, off by at most one period's new "
                    "connections in between")
            else:
                out.notices.append(f"{svc.source}: lb_algo {svc.scheduler} on nftables is served as weighted "
                                   "round-robin (nftables has no per-server connection count); use rr/wrr/sh/dh/mh "
                                   "for exact behaviour")
        out.backend[svc.key] = "nftables"
    return out
