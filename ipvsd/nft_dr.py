"""DR (direct routing) virtual servers on nftables: stateless L2 forwarding from the client-facing NIC's ingress.

Design (verified in /work/shared/notes/nftables/dr_netdev.nft): for every client-facing device D that
carries DR services, pykeepalived owns one table ``netdev pykeepalived_dr_<D>`` with one base chain
``ingress`` (``type filter hook ingress device D priority 0``: before the IP stack, so before any
``inet``/``ip`` table of firewalld, Docker or the operator). Each DR service is one rule::

    ip daddr VIP tcp dport PORT counter fwd ip to jhash ip saddr . tcp sport mod N map { 0 : RS1, ... } device R

``fwd ip to`` resolves the real server's L2 neighbour on R (the device the LB's route to the real server
leaves by; the real server must be directly connected, no gateway) and hands it the unchanged packet, as
IPVS's DR does. The VIP need not be on the LB; the real servers hold it on ``lo`` with
``arp_ignore=1``/``arp_announce=2`` (the operator's job, as with IPVS DR).

The client-facing device, documented rule: ``vip_bind_dev`` when the virtual server sets it; otherwise the
single interface holding an address whose prefix contains the VIP (the VIP itself, or the subnet it is
routed in). When neither gives exactly one device, the configuration is refused with FILE:LINE.

Limits (said here and refused with FILE:LINE otherwise, never approximated):

* scheduling is a per-flow hash only (``lb_algo sh`` or ``mh``; the hash is over client address and port):
  there is no connection table at the ingress hook, so rr/wrr/lc and persistence cannot be honoured;
  weights give each live real server weight/gcd hash slots;
* IPv4 address services over TCP/UDP/SCTP only (no fwmark, no IPv6); every real server (and a sorry
  server) must be DR; no syn_proxy, laddr pool or est_timeout;
* a membership change (health event) rewrites the service's rule in one atomic batch (the map is anonymous
  in the rule): new flows go only to live servers, but as N changes some established flows to servers that
  stayed up may rehash too (no connection table to pin them);
* statistics: the rule's packet/byte counter only (packets client -> LB, no per-real-server counts).

Reconciliation: every rule carries ``pka-dr:<digest of its device and text>``; a pass lists the tables named
``pykeepalived_dr_*`` (ours by name; every other table is never read or written), and a device whose
table already holds exactly the wanted rules is left alone (a restart sends nothing, counters kept). A
device whose rules differ gets its table re-created in one batch; a table of ours that no device needs
any more (configuration changed, or a crash left it) is deleted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from ipvsd.desired import Service, ServiceKey

log = logging.getLogger("pykeepalived.ipvs")

PREFIX = "pykeepalived_dr_"
SCHEDULERS = ("sh", "mh")


def is_dr(svc: Service) -> bool:
    return svc.method == "DR" or any(d.method == "DR" for d in svc.dests)


def dr_refuses(svc: Service) -> str | None:
    """Why a DR service cannot be served on nftables (None when it can)."""
    if svc.key.fwmark:
        return "lb_kind DR on nftables needs an address virtual server (no fwmark)"
    if svc.key.family != "inet":
        return "lb_kind DR on nftables is IPv4 only"
    if svc.key.protocol not in ("tcp", "udp", "sctp"):
        return f"protocol {svc.key.protocol} is not supported"
    if any(d.method != "DR" for d in svc.dests) or svc.method != "DR":
        return "lb_kind DR on nftables needs every real server (and the sorry server) to be DR"
    if svc.scheduler not in SCHEDULERS:
        return (f"lb_kind DR on nftables schedules by a per-flow hash only (no connection table at the ingress "
                f"hook): lb_algo {svc.scheduler} cannot be honoured, use sh or mh")
    if svc.persistence_timeout:
        return "lb_kind DR on nftables has no persistence (stateless per-flow hash)"
    if svc.syn_proxy or svc.laddrs or svc.est_timeout is not None:
        return "lb_kind DR on nftables takes no syn_proxy, laddr_group_name or est_timeout"
    return None


def table_name(dev: str) -> str:
    return PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", dev)


class Links:
    """What the kernel says about interfaces, routes (pyroute2); replaceable in tests."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self.ipr = IPRoute()

    def addrs(self) -> list[tuple[str, str]]:
        """(device, address/prefixlen) of every IPv4 address."""
        names = {m["index"]: str(m.get_attr("IFLA_IFNAME")) for m in self.ipr.get_links()}
        return [(names.get(m["index"], "?"), f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}")
                for m in self.ipr.get_addr(family=2)]

    def route_dev(self, dst: str) -> tuple[str | None, bool]:
        """The device the route to ``dst`` leaves by, and whether it goes through a gateway."""
        r = self.ipr.route("get", dst=dst)
        if not r:
            return None, False
        m = r[0]
        oif = m.get_attr("RTA_OIF")
        links = self.ipr.get_links(oif) if oif else []
        dev = str(links[0].get_attr("IFLA_IFNAME")) if links else None
        return dev, m.get_attr("RTA_GATEWAY") is not None

    def close(self) -> None:
        self.ipr.close()


def client_dev(svc: Service, addrs: list[tuple[str, str]]) -> str | None:
    """The documented rule: vip_bind_dev, else the one device holding an address whose prefix holds the VIP."""
    if svc.bind_dev:
        return svc.bind_dev
    vip = ipaddress.ip_address(svc.key.address)
    devs = {dev for dev, a in addrs if vip in ipaddress.ip_interface(a).network}
    return devs.pop() if len(devs) == 1 else None


def check(services: dict[ServiceKey, Service], links: Links | None = None) -> list[str]:
    """FILE:LINE errors for DR services whose devices cannot be determined."""
    dr = [s for s in services.values() if is_dr(s)]
    if not dr:
        return []
    own = links is None
    lk = links or Links()
    try:
        addrs = lk.addrs()
        errs = []
        for s in dr:
            if client_dev(s, addrs) is None:
                errs.append(f"{s.source}: lb_kind DR on nftables: cannot tell the client-facing device of "
                            f"{s.key.address} (set vip_bind_dev, or hold one address whose subnet contains it "
                            "on exactly one interface)")
            for a, _p, _w in s.configured:
                dev, via = lk.route_dev(a)
                if dev is None or via:
                    errs.append(f"{s.source}: lb_kind DR: real server {a} is not on a directly connected "
                                "network of this host (DR forwards at layer 2)")
        return errs
    finally:
        if own:
            lk.close()


def rule_text(svc: Service, rs_dev: Callable[[str], str | None]) -> str:
    """The service's rule (without its comment); a service without live servers drops its traffic."""
    from ipvsd.nft import hash_slots

    live = [d for d in svc.dests if d.weight > 0]
    slots = hash_slots([d.weight for d in live])
    p = svc.key.protocol
    match = f"ip daddr {svc.key.address} {p} dport {svc.key.port} counter"
    if not slots:
        return f"{match} drop"
    # One map per outgoing device: in the usual case all real servers sit behind one.
    devs = {rs_dev(d.address) for d in live}
    if len(devs) != 1 or None in devs:
        raise ValueError(f"{svc.source}: DR real servers must share one outgoing device, found {sorted(map(str, devs))}")
    elems = ", ".join(f"{i} : {live[s].address}" for i, s in enumerate(slots))
    return f"{match} fwd ip to jhash ip saddr . {p} sport mod {len(slots)} map {{ {elems} }} device \"{devs.pop()}\""


def _digest(text: str) -> str:
    return "pka-dr:" + hashlib.sha1(text.encode()).hexdigest()[:16]


class DrPlane:
    """Reconciles the ``netdev pykeepalived_dr_*`` tables to the DR services."""

    def __init__(self, nft: Any, links_factory: Callable[[], Links] = Links) -> None:
        self.nft = nft  # a libnftables handle with JSON output (shared with the inet backend)
        self.links_factory = links_factory
        self.batches = 0

    def _cmd(self, text: str) -> str:
        rc, out, err = self.nft.cmd(text)
        if rc != 0:
            from ipvsd.nft import NftError

            raise NftError(err.strip() or f"nft rc {rc}")
        return str(out)

    def wanted(self, services: dict[ServiceKey, Service]) -> dict[str, tuple[str, list[str]]]:
        """table name -> (device, rule texts with their comments), in key order."""
        if not services:
            return {}
        lk = self.links_factory()
        try:
            addrs = lk.addrs()
            cache: dict[str, str | None] = {}

            def rs_dev(a: str) -> str | None:
                if a not in cache:
                    cache[a] = lk.route_dev(a)[0]
                return cache[a]

            out: dict[str, tuple[str, list[str]]] = {}
            for key in sorted(services):
                svc = services[key]
                dev = client_dev(svc, addrs)
                if dev is None:
                    log.error("%s: DR: no client-facing device for %s; not programmed", svc.source, key.address)
                    continue
                text = rule_text(svc, rs_dev)
                # the digest covers the hooked device too: libnftables 1.0.6 does not list a chain's device
                out.setdefault(table_name(dev), (dev, []))[1].append(f'{text} comment "{_digest(dev + "|" + text)}"')
            return out
        finally:
            lk.close()

    def actual(self) -> dict[str, tuple[str | None, list[str]]]:
        """Our tables: name -> (hooked device, rule comments in order)."""
        out: dict[str, tuple[str | None, list[str]]] = {}
        data = json.loads(self._cmd("list tables netdev") or "{}")
        for item in data.get("nftables", []):
            t = item.get("table")
            if not t or not str(t.get("name", "")).startswith(PREFIX):
                continue
            name = t["name"]
            listing = json.loads(self._cmd(f"list table netdev {name}") or "{}")
            dev: str | None = None
            comments: list[str] = []
            for it in listing.get("nftables", []):
                if "chain" in it and it["chain"].get("name") == "ingress":
                    d = it["chain"].get("dev")
                    dev = d if isinstance(d, str) else (d[0] if d else None)
                elif "rule" in it:
                    comments.append(str(it["rule"].get("comment", "")))
            out[name] = (dev, comments)
        return out

    def reconcile(self, services: dict[ServiceKey, Service]) -> int:
        want = self.wanted(services)
        have = self.actual()
        cmds: list[str] = []
        for name in sorted(set(have) - set(want)):
            cmds.append(f"delete table netdev {name}")
        for name, (dev, rules) in sorted(want.items()):
            hdev, hcomments = have.get(name, (None, []))
            if name in have and hdev in (None, dev) and hcomments == [_comment(r) for r in rules]:
                continue
            if name in have:
                cmds.append(f"delete table netdev {name}")
            cmds.append(f"add table netdev {name}")
            cmds.append(f"add chain netdev {name} ingress {{ type filter hook ingress device \"{dev}\" "
                        "priority 0; policy accept; }")
            cmds.extend(f"add rule netdev {name} ingress {r}" for r in rules)
        if cmds:
            self._cmd("\n".join(cmds) + "\n")
            self.batches += 1
            log.info("nftables DR: committed %d commands in one batch", len(cmds))
        return len(cmds)

    def counters(self) -> dict[str, int]:
        """Packets per DR rule comment (the only statistic the design has)."""
        out: dict[str, int] = {}
        for name in self.actual():
            listing = json.loads(self._cmd(f"list table netdev {name}") or "{}")
            for it in listing.get("nftables", []):
                r = it.get("rule")
                if r:
                    for e in r.get("expr", []):
                        if "counter" in e:
                            out[str(r.get("comment", ""))] = int(e["counter"].get("packets", 0))
        return out


def _comment(rule: str) -> str:
    m = re.search(r'comment "([^"]*)"$', rule)
    return m.group(1) if m else ""
