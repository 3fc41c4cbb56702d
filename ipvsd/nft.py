"""The nftables backend: NAT, FNAT with a local-address pool, syn_proxy, schedulers, persistence, IPv4 and IPv6.

pykeepalived owns exactly one table, ``inet pykeepalived`` (IPv4 and IPv6 services side by side), and
never reads or writes any other. Its base chains and their priorities (documented so it coexists with
firewalld, Docker or an operator's own tables; nftables runs every table's chains at a hook in
priority order):

=========  ========================  =========  ====================================================
chain      hook                      priority   job
=========  ========================  =========  ====================================================
pre        nat prerouting            -100       dispatch a new connection: jump to ``dispatch`` (the
                                                services' rules) or to a service's own chain
out        nat output                -100       the same for locally generated connections (the
                                                syn_proxy's own SYN towards the VIP goes this way)
pre_drop   nat prerouting            -99        drop a new connection to a service that has no live
out_drop   nat output                -99        real server (runs only when no NAT chain before it set up
                                                a binding), never let it reach a local service on the VIP
post       nat postrouting           100        FNAT: source-NAT to the local-address pool
raw_pre    filter prerouting         -300       syn_proxy: leave the client's SYNs untracked
ct_pre     filter prerouting         -150       est_timeout: attach the service's ct timeout object to
ct_out     filter output             -150       a new connection (the kernel takes it only on an entry
                                                conntrack (-200) has created and not yet confirmed: at
                                                raw priority there is no entry yet and it is ignored)
syn_in     filter input              0          syn_proxy: answer SYNs with cookies (local VIP)
syn_fwd    filter forward            0          the same for a VIP that is not a local address
=========  ========================  =========  ====================================================

Membership lives in map elements, rules never change after a service is created. A service's rule
(one per protocol, in the regular chain ``dispatch``; a persistent or fwmark-FNAT service, whose rules must run in
sequence, has its own chain ``svc_<id>`` instead) looks its real server up in a map keyed by the service
and a *slot*: ``numgen inc mod N`` for rr/wrr (and the announced approximations), ``jhash`` of the client
(or destination) for sh/dh/mh. N is fixed when the service is created, from the configured real
servers (see :func:`slot_count`); which real server each slot names is the map's data. A health
event (a real server down or up, a weight, quorum and the sorry server) is therefore one small batch
of element deletions and additions in the shared maps ``s4_tcp``, ``s6_udp``, … (address services,
one per family and protocol) or ``f4_tcp``, … (fwmark services). A service with persistence has its own
maps: slot -> real-server mark (``pm_<id>``), mark -> address (``pt_<id>_<proto>``) and the dynamic client -> mark
templates (``p_<id>_<timeout>``), which are flushed only when a real server leaves (clients pinned to
it reschedule; those pinned to others stay, as IPVS's templates do).

Every rule carries a comment ``pka:<id>:<index>:<digest of the rule text>``; comparing comments and
per-service element digests is how the reconciler knows what is already right, so a restart against a
table that matches changes nothing (no rule replaced, counters kept). What it compares against is its
record (:class:`Known`, the state file ``ipvs.nft.json`` + ``ipvs.nft.journal`` in the run dir), trusted
while the table's generation (map ``gen``, bumped in every batch) equals the recorded one; otherwise
the table is read back in full, once. Every change is one atomic batch. Writes go through libnftables (PyPI ``pip-nftables`` over Debian's
``libnftables1``) in nft's own syntax, reads in its JSON: libnftables 1.0.6's JSON input has no
dynamic-map ``update`` statement, which persistence needs, and a batch must be one buffer to stay
atomic. Maps are shared rather than one per service because libnftables loads every set of the table
before an element update: 1,000 per-service maps cost ~5 ms per update, one shared map ~1 ms.

When N slots cannot hold the live real servers' cycle exactly (e.g. 4 of 7 servers left, or weights a
checker changed), the slots are apportioned as closely as N allows and the log says so once per
virtual server, with the bound (each real server's share is off by less than 1/N).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ipvsd.desired import Service, ServiceKey

log = logging.getLogger("pykeepalived.ipvs")

TABLE = "pykeepalived"
FAMILY = "inet"
LEGACY = ("ip", TABLE)  # earlier versions' table (IPv4 only): ours by name, removed on the next full pass
BASE_CHAINS = {
    "pre": "type nat hook prerouting priority -100; policy accept;",
    "out": "type nat hook output priority -100; policy accept;",
    "dispatch": "",  # a regular chain: pre and out jump to it
    "pre_drop": "type nat hook prerouting priority -99; policy accept;",
    "out_drop": "type nat hook output priority -99; policy accept;",
    "post": "type nat hook postrouting priority 100; policy accept;",
    "raw_pre": "type filter hook prerouting priority -300; policy accept;",
    "ct_pre": "type filter hook prerouting priority -150; policy accept;",
    "ct_out": "type filter hook output priority -150; policy accept;",
    "syn_in": "type filter hook input priority 0; policy accept;",
    "syn_fwd": "type filter hook forward priority 0; policy accept;",
}
# Shared slot maps: (service identity . slot) -> real server. One per family and protocol: libnftables 1.0.6
# re-reads a map's ``typeof`` in the protocol context of a rule added later, so ``th dport`` (or another
# protocol's port) there makes every later rule naming the map fail ("conflicting protocols specified").
# The modulus in typeof only gives the type.
SHARED_MAPS = {
    **{f"s{f}_{p}": f"typeof {ip} daddr . {p} dport . numgen inc mod 1 : {ip} daddr . {p} dport;"
       for f, ip in (("4", "ip"), ("6", "ip6")) for p in ("tcp", "udp", "sctp")},
    **{f"f{f}_{p}": f"typeof meta mark . numgen inc mod 1 : {ip} daddr . {p} dport;"
       for f, ip in (("4", "ip"), ("6", "ip6")) for p in ("tcp", "udp")},
}
MAX_SLOTS = 1024  # a wrr cycle or hash table longer than this is scaled down (shares kept to ~0.1 %)
SLOT_BUDGET = 120  # slots a service may take so that losing any one real server still divides evenly
LC_SLOTS = 32  # lc/wlc/sed/nq: the re-weighting plans this many new connections per period (ipvsd.leastconn)
SYNPROXY = "synproxy mss 1460 wscale 7 timestamp sack-perm"
HASHED = ("sh", "dh", "mh")

Elem = tuple[Any, ...]


class NftError(Exception):
    pass


def svc_id(key: ServiceKey) -> str:
    if key.fwmark:
        return f"fwm_{key.fwmark}" + ("_6" if key.family == "inet6" else "")
    return f"{key.protocol}_{key.address.replace('.', '_').replace(':', '_')}_{key.port}"


def wrr_sequence(weights: list[int]) -> list[int]:
    """One cycle of IPVS's weighted round-robin (ip_vs_wrr.c's walk): indexes of servers in pick order."""
    ws = [w for w in weights]
    if not ws or max(ws) <= 0:
        return []
    g = 0
    for w in ws:
        g = math.gcd(g, w) if w > 0 else g
    mw = max(ws)
    total = sum(w for w in ws if w > 0) // g
    if total > MAX_SLOTS:  # scale so the cycle fits; every live server keeps at least one slot
        f = MAX_SLOTS / total
        ws = [max(1, round(w * f)) if w > 0 else 0 for w in ws]
        return wrr_sequence(ws)
    out: list[int] = []
    cw = mw
    # The current weight steps down by gcd from the maximum; each step picks every server at least that heavy.
    while cw > 0:
        out.extend(i for i, w in enumerate(ws) if w >= cw)
        cw -= g
    return out


def hash_slots(weights: list[int]) -> list[int]:
    """Slots for a hash scheduler: each server gets weight/gcd consecutive slots (shares = weights)."""
    g = 0
    for w in weights:
        g = math.gcd(g, w) if w > 0 else g
    if g == 0:
        return []
    counts = [w // g for w in weights]
    if sum(counts) > MAX_SLOTS:
        f = MAX_SLOTS / sum(counts)
        counts = [max(1, round(c * f)) if c else 0 for c in counts]
    return [i for i, c in enumerate(counts) for _ in range(c)]


def _cycle(scheduler: str, weights: list[int]) -> int:
    """Length of one exact scheduling cycle for these weights (0 when nobody is live)."""
    ws = [1 if scheduler == "rr" and w > 0 else w for w in weights]
    return len(hash_slots(ws)) if scheduler in HASHED else len(wrr_sequence(ws))


def _configured(svc: Service) -> dict[tuple[str, int], int]:
    """The configured real servers (and sorry server) -> weight, in a stable order."""
    by_addr: dict[tuple[str, int], int] = {}
    for a, p, w in svc.configured or tuple((d.address, d.port, d.weight) for d in svc.dests):
        by_addr[(a, p)] = max(w, by_addr.get((a, p), 0))
    return by_addr


def slot_count(svc: Service) -> int:
    """N, the service's fixed number of slots: a multiple of the cycle with every configured real server up,
    made also a multiple of each cycle with one of them down while that fits :data:`SLOT_BUDGET`; a
    larger all-up cycle is used as is (then losing a server is apportioned, and said so)."""
    return _slot_count(svc.scheduler, tuple(w for w in _configured(svc).values() if w > 0) or (1,))


@functools.lru_cache(maxsize=4096)
def _slot_count(scheduler: str, wt: tuple[int, ...]) -> int:
    from ipvsd import leastconn

    weights = list(wt)
    if scheduler in leastconn.SCHEDULERS:
        return max(LC_SLOTS, len(weights))
    n = _cycle(scheduler, weights)
    for i in range(len(weights)):
        c = _cycle(scheduler, weights[:i] + weights[i + 1:])
        if c and math.lcm(n, c) <= SLOT_BUDGET:
            n = math.lcm(n, c)
    return max(n, 1)


def _apportion(n: int, weights: list[int]) -> list[int]:
    """``n`` slots in proportion to ``weights`` (largest remainder), each live server getting one at least."""
    total = sum(weights)
    raw = [n * w / total for w in weights]
    counts = [max(1, int(r)) if w > 0 else 0 for r, w in zip(raw, weights, strict=True)]
    order = sorted(range(len(weights)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    k = 0
    while sum(counts) < n:
        if weights[order[k % len(order)]] > 0:
            counts[order[k % len(order)]] += 1
        k += 1
    while sum(counts) > n:  # only when n < number of live servers (slot_count prevents it)
        i = max(range(len(counts)), key=lambda j: counts[j])
        counts[i] -= 1
    return counts


def fill(n: int, scheduler: str, weights: list[int]) -> tuple[list[int], bool]:
    """Slot -> index of the live server in ``weights``, for ``n`` slots; and whether that is exact."""
    if not any(w > 0 for w in weights):
        return [], True
    ws = [1 if scheduler == "rr" and w > 0 else w for w in weights]
    if scheduler in HASHED:
        base = hash_slots(ws)
        if n % len(base) == 0:
            return [s for s in base for _ in range(n // len(base))], True
        counts = _apportion(n, ws)
        return [i for i, c in enumerate(counts) for _ in range(c)], False
    seq = wrr_sequence(ws)
    if n % len(seq) == 0:
        return seq * (n // len(seq)), True
    counts = _apportion(n, ws)
    seq = wrr_sequence(counts)  # the same interleaving over the apportioned counts: one cycle of n/g slots
    return seq * (n // len(seq)), False


def layout(n: int, scheduler: str, base_weights: list[int], weights: list[int]) -> tuple[list[int], bool]:
    """Slot -> server index for ``n`` slots when the servers' weights are ``weights`` (0: not live), derived
    from the layout of ``base_weights`` (every configured server up): each server keeps its base slots up
    to its new share and only the surplus slots change hands, to the servers furthest below theirs. A
    health event so moves ~n/k elements, not n, and the result depends on the live set alone (a restart
    computes the same). Also returns whether the shares are exact."""
    if not any(w > 0 for w in weights):
        return [], True
    base, _ = fill(n, scheduler, base_weights)
    ws = [1 if scheduler == "rr" and w > 0 else w for w in weights]
    target = _apportion(n, ws)
    exact = all(n * w % sum(ws) == 0 for w in ws)
    kept = [0] * len(ws)
    out: list[int | None] = []
    for i in base:
        if kept[i] < target[i]:
            kept[i] += 1
            out.append(i)
        else:
            out.append(None)
    deficit = [t - k for t, k in zip(target, kept, strict=True)]
    final: list[int] = []
    for o in out:
        if o is None:
            o = max(range(len(deficit)), key=lambda j: (deficit[j], -j))
            deficit[o] -= 1
        final.append(o)
    return final, exact


@functools.lru_cache(maxsize=8192)
def _layout(n: int, scheduler: str, base: tuple[int, ...], weights: tuple[int, ...]) -> tuple[list[int], bool]:
    """:func:`layout`, remembered: a health event's live set was usually seen before (down, then up)."""
    return layout(n, scheduler, list(base), list(weights))


def _v6(svc: Service) -> bool:
    return svc.key.family == "inet6"


def _sched_expr(svc: Service, n: int) -> str:
    """The slot of a new connection: ``numgen``, or a ``jhash`` for the hash schedulers."""
    ip = "ip6" if _v6(svc) else "ip"
    sched = svc.scheduler
    if sched in HASHED:
        if sched == "dh":
            key = f"{ip} daddr"
        elif "flag-2" in svc.flags and svc.key.protocol in ("tcp", "udp"):  # sh-port / mh-port
            key = f"{ip} saddr . {svc.key.protocol} sport"
        else:
            key = f"{ip} saddr"
        return f"jhash {key} mod {n} seed 0x0"
    return f"numgen inc mod {n}"


def _match(key: ServiceKey) -> str:
    if key.fwmark:
        return f"meta nfproto {'ipv6' if key.family == 'inet6' else 'ipv4'} meta mark {key.fwmark:#x}"
    ip = "ip6" if key.family == "inet6" else "ip"
    return f"{ip} daddr {key.address} {key.protocol} dport {key.port}"


def _protos(key: ServiceKey) -> list[str]:
    return [key.protocol] if not key.fwmark else ["tcp", "udp"]


@functools.lru_cache(maxsize=65536)
def _addr(a: str) -> str:
    return str(ipaddress.ip_address(a))


def _laddr_expr(laddrs: tuple[str, ...], v6: bool) -> str:
    addrs = sorted({ipaddress.ip_address(a) for a in laddrs if (":" in a) == v6}, key=int)
    if len(addrs) == 1:
        return str(addrs[0])
    if int(addrs[-1]) - int(addrs[0]) == len(addrs) - 1:
        return f"{addrs[0]}-{addrs[-1]}"  # nf_nat picks an address by hash and a free port: no lockstep with rr
    ip = "ip6" if v6 else "ip"
    values = ", ".join(f"{i} : {a}" for i, a in enumerate(addrs))
    return f"jhash {ip} saddr mod {len(addrs)} seed 0x0 map {{ {values} }}"


@dataclass
class Rendered:
    """A service as nft objects: its own chains (ordered rule texts), one rule each in some base chains,
    its own maps (name -> definition), the elements it puts in maps, and its ct timeout objects."""

    own: dict[str, list[str]] = field(default_factory=dict)
    base: dict[str, list[str]] = field(default_factory=dict)
    maps: dict[str, str] = field(default_factory=dict)
    elems: dict[str, dict[Elem, Elem]] = field(default_factory=dict)
    timeouts: dict[str, str] = field(default_factory=dict)
    dynamic: str | None = None  # the persistence map (its elements are the data path's, not ours)
    exact: bool = True  # False: the live servers' cycle does not divide N (announced once)
    slots: int = 0
    ident: Elem = ()  # the service's part of its keys in the shared slot maps

    _summary: list[Any] | None = None

    def summary(self) -> list[Any]:
        """What the state file records of the service's elements: a digest of all of them, and how many
        slots it holds in each shared map (its keys there are ``ident . 0`` … ``ident . count-1``)."""
        if self._summary is None:
            # render() builds elements in a deterministic order: their repr is a faithful fingerprint
            digest = hashlib.sha1(repr(sorted(self.elems.items())).encode())
            counts = {m: len(e) for m, e in self.elems.items() if m in SHARED_MAPS}
            self._summary = [digest.hexdigest()[:16], counts, list(self.ident)]
        return self._summary

    def static(self) -> tuple[Any, ...]:
        """Everything but map elements: what a health event must never change."""
        return (self.own, self.base, self.maps, self.timeouts, self.dynamic)


def render(svc: Service, phase: int = 0) -> Rendered:
    """``phase``: the slot the service's ``numgen`` counter is at; the slots are rotated so that the cycle
    starts there (lc/wlc/sed/nq: a period's plan front-loads the least-loaded servers, and the counter
    lives on across element updates)."""
    sid = svc_id(svc.key)
    v6 = _v6(svc)
    ip = "ip6" if v6 else "ip"
    r = Rendered()
    n = slot_count(svc)
    r.slots = n
    live = [d for d in svc.dests if d.weight > 0]
    from ipvsd import leastconn

    if svc.scheduler in leastconn.SCHEDULERS:  # re-planned every period: a fresh cycle, rotated to the counter
        slots, r.exact = fill(n, svc.scheduler, [d.weight for d in live])
    else:
        conf = _configured(svc)
        names = list(conf)
        for d in live:
            if (d.address, d.port) not in conf:  # not configured (cannot happen from the planner): append
                names.append((d.address, d.port))
        now = {(d.address, d.port): d.weight for d in live}
        base = [conf.get(k, 0) for k in names]
        if not any(base):
            base = [1] * len(names)
        idx, r.exact = _layout(n, svc.scheduler, tuple(base), tuple(now.get(k, 0) for k in names))
        pos = {(d.address, d.port): i for i, d in enumerate(live)}
        slots = [pos[names[i]] for i in idx]
    if phase % n and slots:
        k = phase % n
        slots = slots[n - k:] + slots[:n - k]  # slot k holds the cycle's first pick
    chain = f"svc_{sid}"
    rules: list[str] = []
    fnat = svc.method == "FNAT" and bool(svc.laddrs)
    if fnat and svc.key.fwmark:
        # postrouting cannot tell this service's connections by their tuple: the connection carries the mark
        rules.append(f"ct mark set {svc.key.fwmark:#x}")
    if svc.persistence_timeout:
        mask = ""
        nm = svc.persistence_netmask
        if nm and not v6 and "." in nm:
            mask = f" & {nm}"
        elif nm and v6 and nm.isdigit() and int(nm) < 128:  # IPv6 granularity is a prefix length
            mask = f" & {ipaddress.IPv6Network(f'::/{int(nm)}').netmask}"
        marks = _marks(svc)
        pm = f"pm_{sid}"
        pmap = f"p_{sid}_{svc.persistence_timeout}"
        r.maps[pm] = "typeof numgen inc mod 1 : meta mark;"
        r.maps[pmap] = f"typeof {ip} saddr : meta mark; flags dynamic,timeout; timeout {svc.persistence_timeout}s;"
        r.dynamic = pmap
        r.elems[pm] = {(s,): (marks[(live[i].address, live[i].port)],) for s, i in enumerate(slots)}
        rules.append(f"meta mark set {_sched_expr(svc, n)} map @{pm}")
        # Adds client -> scheduled server when absent; when present only re-arms the timeout.
        rules.append(f"update @{pmap} {{ {ip} saddr{mask} : meta mark }}")
        for proto in _protos(svc.key):
            pt = f"pt_{sid}_{proto}"
            r.maps[pt] = f"typeof meta mark : {ip} daddr . {proto} dport;"
            r.elems[pt] = {(marks[(d.address, d.port)],): (_addr(d.address), d.port) for d in live}
            rules.append(f"meta l4proto {proto} meta mark set {ip} saddr{mask} map @{pmap} "
                         f"dnat {ip} to meta mark map @{pt}")
    else:
        fam = "6" if v6 else "4"
        ident: Elem
        for proto in _protos(svc.key):
            if svc.key.fwmark:
                smap, ident, keyexpr = f"f{fam}_{proto}", (svc.key.fwmark,), "meta mark"
            else:
                smap, keyexpr = f"s{fam}_{proto}", f"{ip} daddr . {proto} dport"
                ident = (_addr(svc.key.address), svc.key.port)
            r.ident = ident
            targets = [(_addr(d.address), d.port) for d in live]
            r.elems[smap] = {(*ident, s): targets[i] for s, i in enumerate(slots)}
            rules.append(f"meta l4proto {proto} dnat {ip} to {keyexpr} . {_sched_expr(svc, n)} map @{smap}")
    m = _match(svc.key)
    if svc.persistence_timeout or (fnat and svc.key.fwmark):
        # rules that must run in sequence: the service's own chain
        rules.append("drop")  # no live server: refuse, never fall through to a local service on the VIP
        r.own[chain] = rules
        r.base["pre"] = [f"{m} counter jump {chain}"]
        r.base["out"] = [f"{m} jump {chain}"]
    else:
        # One independent rule per protocol in the shared chain ``dispatch`` (pre and out jump to it): no
        # chain per service, since every batch costs libnftables and the kernel ~1 ms per 1,000 chains of
        # the table (rules cost nothing); and one rule, not one per hook, since each element added to a map
        # costs the kernel a check per rule bound to it.
        # A connection no rule DNATed (no live server) reaches pre_drop/out_drop: nf_nat runs a later NAT
        # chain of the hook only while no binding was set up, so those see exactly the undispatched ones.
        r.base["dispatch"] = [f"{m} counter {x}" for x in rules]
        r.base["pre_drop"] = [f"{m} drop"]
        r.base["out_drop"] = [f"{m} drop"]
    if fnat:
        pool = _laddr_expr(svc.laddrs, v6)
        if svc.key.fwmark:
            r.base["post"] = [f"meta nfproto {'ipv6' if v6 else 'ipv4'} ct mark {svc.key.fwmark:#x} "
                              f"ct status dnat snat {ip} to {pool}"]
        else:
            # inet tables need the family first: ct original's port has no type without it
            r.base["post"] = [f"meta nfproto {'ipv6' if v6 else 'ipv4'} ct original {ip} daddr {svc.key.address} ct original protocol {svc.key.protocol} "
                              f"ct original proto-dst {svc.key.port} snat {ip} to {pool}"]
    raw: list[str] = []
    if svc.est_timeout is not None:
        to = f"to_{sid}_{svc.est_timeout}"
        r.timeouts[to] = (f"protocol tcp; l3proto {ip}; policy = {{ established: {svc.est_timeout} }};")
        tcp = " meta l4proto tcp" if svc.key.fwmark else ""
        r.base["ct_pre"] = [f"{m}{tcp} ct state new ct timeout set \"{to}\""]
        r.base["ct_out"] = [f"{m}{tcp} ct state new ct timeout set \"{to}\""]
    if svc.syn_proxy:
        syn = f"syn_{sid}"
        r.own[syn] = [f"ct state invalid,untracked {SYNPROXY}", "ct state invalid drop"]
        raw.append(f"{m} tcp flags & (fin|syn|rst|ack) == syn notrack")
        r.base["syn_in"] = [f"{m} jump {syn}"]
        r.base["syn_fwd"] = [f"{m} jump {syn}"]
    if raw:
        r.base["raw_pre"] = raw
    return r


def _marks(svc: Service) -> dict[tuple[str, int], int]:
    """A stable mark per real server of a persistent service (its rank among the configured ones), so that
    a server coming back does not renumber the others and void their clients' templates."""
    names = sorted({(a, p) for a, p, _ in svc.configured} | {(d.address, d.port) for d in svc.dests})
    return {k: i + 1 for i, k in enumerate(names)}


def _tag(sid: str, text: str, index: int = 0) -> str:
    return f"pka:{sid}:{index}:{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _q(s: str) -> str:
    return json.dumps(s)


def _atom(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            return v
    return v


def _elem_of(v: Any) -> Elem:
    """A key or value from nft's JSON (``{"concat": [...]}`` or a scalar) as a tuple of plain values."""
    if isinstance(v, dict) and "concat" in v:
        return tuple(_atom(x) for x in v["concat"])
    if isinstance(v, dict) and "elem" in v:
        return _elem_of(v["elem"].get("val"))
    return (_atom(v),)


def _text(e: Elem) -> str:
    return " . ".join(str(x) for x in e)


@dataclass
class Actual:
    exists: bool = False
    chains: set[str] = field(default_factory=set)
    maps: set[str] = field(default_factory=set)
    rules: dict[str, list[tuple[int | None, str]]] = field(default_factory=dict)  # chain -> [(handle, comment)]
    counters: dict[str, int] = field(default_factory=dict)  # comment of a pre rule -> packets
    elems: dict[str, dict[Elem, Elem]] = field(default_factory=dict)  # static maps' contents
    timeouts: set[str] = field(default_factory=set)
    legacy: bool = False  # an ``ip pykeepalived`` table of an earlier version is there
    gen_handle: int | None = None  # the gen map's handle


@dataclass
class Wanted:
    own: dict[str, list[str]] = field(default_factory=dict)  # chain -> rules with their comments
    base: dict[str, dict[str, str]] = field(default_factory=lambda: {c: {} for c in BASE_CHAINS})
    maps: dict[str, str] = field(default_factory=dict)
    elems: dict[str, dict[Elem, Elem]] = field(default_factory=lambda: {m: {} for m in SHARED_MAPS})
    timeouts: dict[str, str] = field(default_factory=dict)
    dynamic: dict[str, str] = field(default_factory=dict)  # persistence map -> its service chain


def elem_cmds(name: str, have: dict[Elem, Elem], want: dict[Elem, Elem]) -> list[str]:
    """Element deletions then additions that turn map ``name``'s ``have`` into ``want``."""
    t = f"{FAMILY} {TABLE}"
    gone = [k for k, v in have.items() if want.get(k) != v]
    new = [(k, v) for k, v in want.items() if have.get(k) != v]
    cmds: list[str] = []
    for i in range(0, len(gone), 512):
        cmds.append(f"delete element {t} {name} {{ {', '.join(_text(k) for k in gone[i:i + 512])} }}")
    for i in range(0, len(new), 512):
        part = ", ".join(f"{_text(k)} : {_text(v)}" for k, v in new[i:i + 512])
        cmds.append(f"add element {t} {name} {{ {part} }}")
    return cmds


GEN_MAP = "gen"  # one element, 0 -> the generation of the table's content: bumped in every batch we commit
GEN_SPEC = "typeof meta mark : meta mark;"
STATE_FILE = "ipvs.nft.json"
JOURNAL = "ipvs.nft.journal"
JOURNAL_MAX = 5000  # health events between two rewrites of the state file


@dataclass
class Known:
    """What this backend programmed, as the state file in the run dir records it. It describes the kernel
    exactly when the table's generation (map ``gen``) is the one recorded: every batch bumps the generation
    in the same transaction, and the record is written right after the commit, so a crash in between shows
    as a generation mismatch (then the table is read in full, once)."""

    gen: int = 0
    chains: set[str] = field(default_factory=set)
    maps: set[str] = field(default_factory=set)
    timeouts: set[str] = field(default_factory=set)
    rules: dict[str, list[tuple[int | None, str]]] = field(default_factory=dict)  # None: handle not learnt yet
    svcs: dict[str, list[Any]] = field(default_factory=dict)  # sid -> Rendered.summary()
    mark: int | None = None  # the gen map's handle: the table's last allocated handle

    def to_json(self) -> dict[str, Any]:
        return {"gen": self.gen, "chains": sorted(self.chains), "maps": sorted(self.maps),
                "timeouts": sorted(self.timeouts), "rules": {c: [list(x) for x in r] for c, r in self.rules.items()},
                "svcs": self.svcs, "mark": self.mark}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Known:
        return cls(int(d["gen"]), set(d["chains"]), set(d["maps"]), set(d["timeouts"]),
                   {str(c): [(None if h is None else int(h), str(m)) for h, m in r] for c, r in d["rules"].items()},
                   {str(k): list(v) for k, v in d["svcs"].items()}, None if d.get("mark") is None else int(d["mark"]))


class NftBackend:
    """Reconciles the ``inet pykeepalived`` table to a set of services (one atomic batch per change).

    A full pass diffs against :class:`Known` (what we programmed, verified by the table's generation and
    its list of chains and maps: a few milliseconds) instead of reading back every map element (seconds at
    90,000 slots); the whole table is read only when there is no record, the record is behind the kernel
    (a crash between commit and write), a rule must be deleted whose handle was never learnt, or a batch
    failed. Services are rendered once per (service, numgen phase) and the renders kept, so a reload or a
    health event renders only what changed."""

    name = "nftables"

    def __init__(self, state_dir: str | None = None) -> None:
        import nftables  # the binding loads libnftables.so.1 at import: only when this backend is used

        self.nft = nftables.Nftables()
        self.nft.set_json_output(True)
        self.nft.set_handle_output(True)
        self.state_dir = state_dir
        self.batches = 0  # committed transactions (tests: a restart without change commits none)
        self.full_reads = 0  # whole-table reads (tests: a restart against a matching table needs none)
        self.listings = 0  # terse listings for rule handles the record did not have
        self.programmed: dict[ServiceKey, Service] = {}
        self.said_inexact: set[str] = set()
        self.phase: dict[ServiceKey, int] = {}  # lc/wlc/sed/nq: numgen position the slots were rotated to
        self.known: Known | None = None
        self._loaded = False
        self._stale = False  # a batch failed: do not trust the record until the table was read again
        self._renders: dict[tuple[Service, int], Rendered] = {}
        self._prog_render: dict[ServiceKey, Rendered] = {}  # the render each programmed service went in with
        self._journal_lines = 0

    # -- kernel access -----------------------------------------------------------------------------

    def _cmd(self, text: str) -> str:
        rc, out, err = self.nft.cmd(text)
        if rc != 0:
            raise NftError(err.strip() or f"libnftables returned {rc}")
        return str(out)

    def read(self) -> Actual:
        self.full_reads = getattr(self, "full_reads", 0) + 1
        act = Actual()
        self.nft.set_json_output(True)
        act.legacy = self.nft.cmd(f"list table {LEGACY[0]} {LEGACY[1]}")[0] == 0
        rc, out, err = self.nft.cmd(f"list table {FAMILY} {TABLE}")
        if rc != 0:
            if "No such file" in err or "does not exist" in err:
                return act
            raise NftError(err.strip())
        act.exists = True
        for obj in json.loads(out).get("nftables", []):
            if "chain" in obj:
                act.chains.add(obj["chain"]["name"])
            elif "map" in obj:
                m = obj["map"]
                act.maps.add(m["name"])
                if m["name"] == GEN_MAP:
                    act.gen_handle = int(m.get("handle", 0)) or None
                if "dynamic" not in m.get("flags", []):
                    act.elems[m["name"]] = {_elem_of(k): _elem_of(v) for k, v in m.get("elem", [])}
            elif "ct timeout" in obj:
                act.timeouts.add(obj["ct timeout"]["name"])
            elif "rule" in obj:
                rule = obj["rule"]
                comment = str(rule.get("comment", ""))
                act.rules.setdefault(rule["chain"], []).append((int(rule["handle"]), comment))
                if rule["chain"] in ("pre", "dispatch"):
                    for e in rule.get("expr", []):
                        if isinstance(e, dict) and "counter" in e and isinstance(e["counter"], dict):
                            act.counters[comment] = int(e["counter"].get("packets", 0))
        return act

    def _list_handles(self) -> dict[tuple[str, str], int]:
        """(chain, comment) -> handle of each of our rules, from a terse text listing (no element printed;
        libnftables 1.0.6 still fetches them: echoing a batch instead costs as much, every time)."""
        self.listings = getattr(self, "listings", 0) + 1
        self.nft.set_json_output(False)
        self.nft.set_terse_output(True)
        try:
            rc, out, _err = self.nft.cmd(f"list table {FAMILY} {TABLE}")
        finally:
            self.nft.set_terse_output(False)
            self.nft.set_json_output(True)
        return _handles(out) if rc == 0 else {}

    def _read_gen(self) -> int | None:
        """The table's generation (None: no table or no generation)."""
        return self._read_gen_map()[0]

    def _read_gen_map(self) -> tuple[int | None, int | None]:
        """The table's generation and the ``gen`` map's handle (the last one the table allocated)."""
        self.nft.set_json_output(True)
        rc, out, _err = self.nft.cmd(f"list map {FAMILY} {TABLE} {GEN_MAP}")
        if rc != 0:
            return None, None
        gen = handle = None
        for obj in json.loads(out).get("nftables", []):
            m = obj.get("map", {})
            if "handle" in m:
                handle = int(m["handle"])
            for k, v in m.get("elem", []):
                if k == 0 and isinstance(v, int):
                    gen = v
        return gen, handle

    def _list_names(self, what: str) -> set[str] | None:
        """Names of our chains or maps (``list chains|maps inet``: no rule, no element is fetched)."""
        self.nft.set_terse_output(True)
        try:
            rc, out, _err = self.nft.cmd(f"list {what}s {FAMILY}")
        finally:
            self.nft.set_terse_output(False)
        if rc != 0:
            return None
        return {o[what]["name"] for o in json.loads(out).get("nftables", [])
                if what in o and o[what].get("table") == TABLE}

    # -- the record of what we programmed ----------------------------------------------------------

    def _path(self, name: str) -> str | None:
        d: str | None = getattr(self, "state_dir", None)
        return os.path.join(d, name) if d else None

    def _load_known(self) -> Known | None:
        """The state file, with the health events journalled since it was written."""
        p, j = self._path(STATE_FILE), self._path(JOURNAL)
        if p is None or j is None:
            return None
        known: Known
        try:
            with open(p, encoding="utf-8") as f:
                known = Known.from_json(json.load(f))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        try:
            with open(j, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        break  # a torn last line: the batch it describes shows as a generation mismatch
                    if int(rec["g"]) == known.gen + 1:
                        known.svcs.update(rec["s"])
                        known.gen += 1
        except (OSError, KeyError, TypeError, ValueError):
            pass
        return known

    def _save_known(self) -> None:
        p, j = self._path(STATE_FILE), self._path(JOURNAL)
        if p is None or j is None:
            return
        if self.known is None:
            for q in (p, j):
                try:
                    os.unlink(q)
                except FileNotFoundError:
                    pass
            return
        tmp = p + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.known.to_json(), f, separators=(",", ":"))
        os.replace(tmp, p)
        with open(j, "w", encoding="utf-8"):
            pass  # the state file now holds what the journal said
        self._journal_lines = 0

    def _journal(self, svcs: dict[str, list[Any]]) -> None:
        """A health event's record: one appended line (the state file is rewritten every JOURNAL_MAX)."""
        j = self._path(JOURNAL)
        if j is None or self.known is None:
            return
        self._journal_lines += 1
        if self._journal_lines >= JOURNAL_MAX:
            self._save_known()
            return
        with open(j, "a", encoding="utf-8") as f:
            f.write(json.dumps({"g": self.known.gen, "s": svcs}, separators=(",", ":")) + "\n")

    def _verified(self) -> Known | None:
        """The record, when the kernel still matches it (generation, chains, maps); else None."""
        if not getattr(self, "_loaded", True):
            self._loaded = True
            self.known = self._load_known()
        known = getattr(self, "known", None)
        if known is None or getattr(self, "_stale", False):
            return None
        if self._read_gen() != known.gen:
            return None
        if self._list_names("chain") != known.chains or self._list_names("map") != known.maps:
            return None
        return known

    # -- reconcile ---------------------------------------------------------------------------------

    def wanted(self, services: dict[ServiceKey, Service]) -> Wanted:
        """Everything but elements (those are diffed per service, or in :meth:`plan` from a full read)."""
        w = Wanted()
        for key in sorted(services):
            sid = svc_id(key)
            r = self._render(services[key])
            for chain, rules in r.own.items():
                w.own[chain] = [f"{text} comment {_q(_tag(sid, text, i))}" for i, text in enumerate(rules)]
            for chain, rules in r.base.items():
                for i, text in enumerate(rules):
                    w.base[chain][_tag(sid, text, i)] = text
            w.maps.update(r.maps)
            w.timeouts.update(r.timeouts)
            if r.dynamic is not None:
                w.dynamic[r.dynamic] = f"svc_{sid}"
        for hook in ("pre", "out"):
            w.base[hook][_tag("dispatch", "jump dispatch")] = "jump dispatch"
        return w

    def _render(self, svc: Service, phase: int | None = None) -> Rendered:
        ph = self.phase.get(svc.key, 0) if phase is None else phase
        cache = self.__dict__.setdefault("_renders", {})
        r: Rendered | None = cache.get((svc, ph))
        if r is None:
            r = render(svc, ph)
            if len(cache) > 16384:  # a bound, not a policy: renders are cheap to redo
                cache.clear()
            cache[(svc, ph)] = r
        if not r.exact and svc.vs not in self.said_inexact:
            self.said_inexact.add(svc.vs)
            log.warning("%s: lb_algo %s on nftables: the %d live real servers' cycle does not fit the service's "
                        "%d slots; each real server's share is within 1/%d of its weight's (announced once)",
                        svc.source, svc.scheduler, len(svc.live_dests()), r.slots, r.slots)
        return r

    def plan(self, services: dict[ServiceKey, Service], act: Actual, known: Known | None = None) -> list[str]:
        """The nft commands that turn the table into ``services`` (empty when it already matches): ``act``
        is what a full read found, or (with ``known``) what the record says, elements then being diffed
        service by service from their summaries. Raises KeyError when a rule must go whose handle the
        record does not know."""
        t = f"{FAMILY} {TABLE}"
        legacy = [f"delete table {LEGACY[0]} {LEGACY[1]}"] if act.legacy else []
        if not services:
            return ([f"delete table {t}"] if act.exists else []) + legacy
        w = self.wanted(services)
        cmds: list[str] = list(legacy)
        if not act.exists:
            cmds.append(f"add table {t}")
        for chain, spec in BASE_CHAINS.items():
            if chain not in act.chains:
                cmds.append(f"add chain {t} {chain} {{ {spec} }}" if spec else f"add chain {t} {chain}")
        for name, spec in SHARED_MAPS.items():
            if name not in act.maps:
                cmds.append(f"add map {t} {name} {{ {spec} }}")
        # Base-chain rules: a set keyed by comment; order between services does not matter.
        for chain in BASE_CHAINS:
            for handle, comment in act.rules.get(chain, []):
                if comment not in w.base[chain]:
                    if handle is None:
                        raise KeyError(comment)
                    cmds.append(f"delete rule {t} {chain} handle {handle}")
        changed: set[str] = set()
        for chain in sorted(act.chains - set(BASE_CHAINS)):
            have = [c for _, c in act.rules.get(chain, [])]
            want = [_comment_of(x) for x in w.own.get(chain, [])]
            if chain not in w.own or have != want:
                cmds.append(f"flush chain {t} {chain}")
                changed.add(chain)
        for chain in sorted(act.chains - set(BASE_CHAINS) - set(w.own)):
            cmds.append(f"delete chain {t} {chain}")
        for name in sorted(act.maps - set(w.maps) - set(SHARED_MAPS) - {GEN_MAP}):
            cmds.append(f"delete map {t} {name}")
        for name in sorted(act.timeouts - set(w.timeouts)):
            cmds.append(f"delete ct timeout {t} {name}")
        for name, spec in sorted(w.timeouts.items()):
            if name not in act.timeouts:
                cmds.append(f"add ct timeout {t} {name} {{ {spec} }}")
        flushed: set[str] = set()
        for name, spec in sorted(w.maps.items()):
            if name not in act.maps:
                cmds.append(f"add map {t} {name} {{ {spec} }}")
            elif name in w.dynamic and w.dynamic[name] in changed:
                cmds.append(f"flush map {t} {name}")  # the service was redefined: its templates are void
                flushed.add(name)
        for chain in sorted(w.own):
            if chain not in act.chains:
                cmds.append(f"add chain {t} {chain}")
                changed.add(chain)
        for chain in sorted(w.own):
            if chain in changed:
                cmds.extend(f"add rule {t} {chain} {rule}" for rule in w.own[chain])
        have_base = {chain: {c for _, c in act.rules.get(chain, [])} for chain in BASE_CHAINS}
        for chain, by_comment in w.base.items():
            for comment, text in sorted(by_comment.items()):
                if comment not in have_base[chain]:
                    cmds.append(f"add rule {t} {chain} {text} comment {_q(comment)}")
        # Elements last: the kernel checks every element of a map each time a rule binds to it, so rules
        # added after 90,000 slots would cost minutes; added before, each binding finds the map empty.
        if known is not None:
            cmds.extend(self._elem_plan(services, known, act.maps, flushed))
            return cmds
        welems: dict[str, dict[Elem, Elem]] = {m: {} for m in SHARED_MAPS}
        for key in services:
            for name, els in self._render(services[key]).elems.items():
                welems.setdefault(name, {}).update(els)
        for name in sorted(set(welems) | (set(act.elems) & (set(w.maps) | set(SHARED_MAPS)))):
            if name in w.dynamic:
                continue
            cmds.extend(elem_cmds(name, act.elems.get(name, {}) if name in act.maps else {}, welems.get(name, {})))
        return cmds

    def _elem_plan(self, services: dict[ServiceKey, Service], known: Known, have_maps: set[str],
                   flushed: set[str]) -> list[str]:
        """Element updates, service by service: nothing for a service whose summary is the recorded one; the
        difference from its programmed render when this process has it; otherwise (after a restart) its
        recorded slots deleted and the new ones added, in the same batch."""
        t = f"{FAMILY} {TABLE}"
        prog = self.__dict__.setdefault("_prog_render", {})
        by_sid = {svc_id(k): k for k in services}
        cmds: list[str] = []
        for sid in sorted(set(known.svcs) - set(by_sid)):  # services that go: their slots in the shared maps
            _digest, counts, ident = known.svcs[sid]
            for name, n in sorted(counts.items()):
                if n and name in have_maps:
                    cmds.extend(elem_cmds(name, {(*ident, s): () for s in range(n)}, {}))
        for sid, key in sorted(by_sid.items()):
            r = self._render(services[key])
            rec = known.svcs.get(sid)
            if rec is not None and rec[0] == r.summary()[0]:
                continue
            old = prog.get(key)
            if rec is not None and old is not None and old.summary()[0] == rec[0]:
                for name in sorted(set(old.elems) | set(r.elems)):
                    if name in SHARED_MAPS or (name in r.elems and name in have_maps):
                        cmds.extend(elem_cmds(name, old.elems.get(name, {}), r.elems.get(name, {})))
                    elif name in r.elems:  # its map is created in this batch
                        cmds.extend(elem_cmds(name, {}, r.elems[name]))
                    # else: the map goes in this batch, its elements with it
                continue
            if rec is not None:
                _digest, counts, ident = rec
                for name, n in sorted(counts.items()):
                    if n:
                        cmds.extend(elem_cmds(name, {(*ident, s): () for s in range(n)}, {}))
            for name, els in sorted(r.elems.items()):
                if name not in SHARED_MAPS and name in have_maps:
                    cmds.append(f"flush map {t} {name}")
                cmds.extend(elem_cmds(name, {}, els))
            if r.dynamic is not None and r.dynamic in have_maps and r.dynamic not in flushed:
                cmds.append(f"flush map {t} {r.dynamic}")  # which servers its templates name is unknown
        return cmds

    def _after(self, services: dict[ServiceKey, Service], act: Actual, gen: int,
               learnt: dict[tuple[str, str], int], mark: int | None) -> None:
        """The record once a full pass committed: what ``services`` render to, with the handles known."""
        prog = self.__dict__.setdefault("_prog_render", {})
        prog.clear()
        if not services:
            self.known = None
            return
        w = self.wanted(services)
        handles = {(c, m): h for c, rules in act.rules.items() for h, m in rules}
        handles.update(learnt)
        k = Known(gen=gen, chains=set(BASE_CHAINS) | set(w.own), maps=set(SHARED_MAPS) | {GEN_MAP} | set(w.maps),
                  timeouts=set(w.timeouts), mark=mark)
        for chain, by_comment in w.base.items():
            k.rules[chain] = [(handles.get((chain, c)), c) for c in sorted(by_comment)]
        for chain, rules in w.own.items():
            k.rules[chain] = [(None, _comment_of(x)) for x in rules]
        for key, svc in services.items():
            r = self._render(svc)
            prog[key] = r
            k.svcs[svc_id(key)] = r.summary()
        self.known = k

    def _new_gen_cmds(self, gen: int, have: bool) -> list[str]:
        """A full pass ends by re-creating the gen map: its handle is then the batch's last allocation."""
        t = f"{FAMILY} {TABLE}"
        return ([f"delete map {t} {GEN_MAP}"] if have else []) + [
            f"add map {t} {GEN_MAP} {{ {GEN_SPEC} }}", f"add element {t} {GEN_MAP} {{ 0 : {gen} }}"]

    def _gen_cmds(self, gen: int) -> list[str]:
        t = f"{FAMILY} {TABLE}"
        return [f"flush map {t} {GEN_MAP}", f"add element {t} {GEN_MAP} {{ 0 : {gen} }}"]

    def _dr(self) -> Any:
        # DR services live in their own netdev tables (ipvsd.nft_dr); made on first use so fakes stay simple
        dr = self.__dict__.get("dr_plane")
        if dr is None:
            from ipvsd.nft_dr import DrPlane

            dr = self.dr_plane = DrPlane(self.nft)
        return dr

    def reconcile(self, services: dict[ServiceKey, Service]) -> int:
        from ipvsd.nft_dr import is_dr

        dr = {k: s for k, s in services.items() if is_dr(s)}
        n_dr = self._dr().reconcile(dr)
        if dr:
            services = {k: s for k, s in services.items() if k not in dr}
        n = self._reconcile_inet(services)
        self.programmed.update(dr)
        return n + n_dr

    def _reconcile_inet(self, services: dict[ServiceKey, Service]) -> int:
        self.__dict__.setdefault("_loaded", True)
        known = self._verified()
        cmds: list[str] | None = None
        act: Actual
        if known is not None:
            act = Actual(exists=True, chains=set(known.chains), maps=set(known.maps), timeouts=set(known.timeouts),
                         rules={c: list(r) for c, r in known.rules.items()}, legacy=False)
            try:
                cmds = self.plan(services, act, known)
            except KeyError:
                # a rule must go whose handle we never learnt (rules added since the last listing): a terse
                # listing has them (~1.5 s at 90,000 slots, half a full read, and only when needed)
                listed = self._list_handles()
                act.rules = {c: [(listed.get((c, m)) if h is None else h, m) for h, m in r]
                             for c, r in act.rules.items()}
                try:
                    cmds = self.plan(services, act, known)
                except KeyError:  # not there either: the table is not what we recorded
                    cmds = None
        if cmds is None or known is None:
            act = self.read()
            gen_now = self._read_gen() if act.exists else None
            known = Known(gen=gen_now or 0, mark=act.gen_handle if act.exists else 0)
            cmds = self.plan(services, act)
        gen = (known.gen + 1) & 0x7FFFFFFF
        learnt: dict[tuple[str, str], int] = {}
        mark = known.mark
        if cmds:
            if services:
                cmds.extend(self._new_gen_cmds(gen, GEN_MAP in act.maps))
            try:
                self._cmd("\n".join(cmds) + "\n")
            except NftError:
                self._stale = True
                raise
            self.batches += 1
            log.debug("nftables: committed %d commands in one batch", len(cmds))
            if services:
                learnt, mark = self._learn(cmds, known.mark)
        else:
            gen = known.gen
        self._stale = False
        self._after(services, act, gen, learnt, mark)
        self._save_known()
        self.programmed = dict(services)
        return len(cmds)

    def _learn(self, cmds: list[str], before: int | None) -> tuple[dict[tuple[str, str], int], int | None]:
        """The handles the batch gave its new rules, without listing them (listing any rule makes libnftables
        1.0.6 fetch every map element, ~1.5 s at 90,000 slots; so does echoing the batch). The kernel hands a
        table's handles out one by one, in message order, to each chain, set, object and rule it creates;
        the batch ended by re-creating the gen map, whose handle is the last one. When the count of what
        the batch created matches that handle exactly, each rule's handle follows; otherwise (or after a
        rule with an anonymous set, whose place in the sequence we do not rely on) it stays unknown and a
        later removal lists the table for it."""
        _gen, last = self._read_gen_map()
        if before is None or last is None:
            return {}, last
        t = f"{FAMILY} {TABLE} "
        h = before
        out: dict[tuple[str, str], int] = {}
        for c in cmds:
            if c.startswith(("add chain " + t, "add map " + t, "add ct timeout " + t)):
                h += 1
            elif c.startswith("add rule " + t):
                anon = c.count("{") - c.count("update @")  # an anonymous set or map (the laddr pool's)
                h += anon + 1
                if anon == 0:
                    out[(c.split()[4], _comment_of(c))] = h
        if h != last:
            log.debug("nftables: %d handles expected, the table allocated %d; rule handles left unknown",
                      h - before, last - before)
            return {}, last
        return out, last

    def health_cmds(self, old: Service, new: Service, old_phase: int = 0) -> list[str] | None:
        """The element updates that move ``old`` to ``new`` (None when more than elements would change)."""
        ro, rn = self._render(old, old_phase), self._render(new)
        if ro.static() != rn.static():
            return None
        cmds: list[str] = []
        for name in sorted(set(ro.elems) | set(rn.elems)):
            cmds.extend(elem_cmds(name, ro.elems.get(name, {}), rn.elems.get(name, {})))
        pts = [m for m in ro.elems if m.startswith("pt_")]
        if rn.dynamic is not None and any(set(ro.elems[m]) - set(rn.elems.get(m, {})) for m in pts):
            # a real server left: templates naming it are void (which ones is not worth a listing)
            cmds.append(f"flush map {FAMILY} {TABLE} {rn.dynamic}")
        return cmds

    def dispatch_counts(self) -> dict[ServiceKey, int]:
        """New connections each programmed service has dispatched (its ``pre`` rules' packet counters)."""
        self.nft.set_json_output(True)
        objs: list[Any] = []
        for chain in ("pre", "dispatch"):
            rc, out, _err = self.nft.cmd(f"list chain {FAMILY} {TABLE} {chain}")
            if rc == 0:
                objs.extend(json.loads(out).get("nftables", []))
        by_sid: dict[str, int] = {}
        for o in objs:
            rule = o.get("rule")
            if not rule:
                continue
            sid = str(rule.get("comment", "")).split(":")[1:2]
            for e in rule.get("expr", []):
                if sid and isinstance(e, dict) and isinstance(e.get("counter"), dict):  # a rule per protocol
                    by_sid[sid[0]] = by_sid.get(sid[0], 0) + int(e["counter"].get("packets", 0))
        return {k: by_sid[svc_id(k)] for k in self.programmed if svc_id(k) in by_sid}

    def reconcile_some(self, services: dict[ServiceKey, Service], keys: set[ServiceKey],
                       phase: dict[ServiceKey, int] | None = None) -> int:
        """A health event: only ``keys`` moved. When none of them changes beyond map elements (real servers,
        weights, sorry server), send those element updates as one batch without reading the table;
        otherwise fall back to the full reconcile. ``phase``: new numgen positions (lc re-weighting)."""
        from ipvsd.nft_dr import is_dr

        dr_keys = {k for k in keys if (k in services and is_dr(services[k]))
                   or (k in self.programmed and is_dr(self.programmed[k]))}
        n_dr = 0
        if dr_keys:
            # a DR service's membership is its rule in its device's netdev table: that table is re-checked
            n_dr = self._dr().reconcile({k: s for k, s in services.items() if is_dr(s)})
            for key in dr_keys:
                if key in services:
                    self.programmed[key] = services[key]
                else:
                    self.programmed.pop(key, None)
            keys = keys - dr_keys
            if not keys:
                return n_dr
        cmds: list[str] = []
        old_phase = dict(self.phase)
        if phase:
            self.phase.update(phase)
        known = self.known
        if known is None:
            return self.reconcile(services)
        renders: dict[ServiceKey, Rendered] = {}
        for key in sorted(keys):
            old, new = self.programmed.get(key), services.get(key)
            if old is None or new is None:
                return self.reconcile(services)
            part = self.health_cmds(old, new, old_phase.get(key, 0))
            if part is None:
                return self.reconcile(services)
            renders[key] = self._render(new)
            cmds.extend(part)
        if cmds:
            gen = (known.gen + 1) & 0x7FFFFFFF
            try:
                self._cmd("\n".join(cmds + self._gen_cmds(gen)) + "\n")
            except NftError as e:  # the table was changed behind our back: read it and start over
                log.warning("nftables: %s; reconciling the whole table", e)
                self._stale = True
                return self.reconcile(services)
            self.batches += 1
            known.gen = gen
            summaries = {svc_id(k): r.summary() for k, r in renders.items()}
            known.svcs.update(summaries)
            self._prog_render.update(renders)
            self._journal(summaries)
        for key in keys:
            if key in services:
                self.programmed[key] = services[key]
            else:
                self.programmed.pop(key, None)
        return len(cmds)

    def clear(self) -> int:
        n = self.reconcile({})
        self.programmed = {}
        return n

    def stats(self) -> dict[str, dict[str, int]]:
        """New connections per service (the dispatch rule's packet counter: the nat hook sees first packets)."""
        counts = self.dispatch_counts()
        return {str(key): {"conns": counts.get(key, 0)} for key in self.programmed}


_CHAIN_RE = re.compile(r"\s*chain (\S+) \{")
_HANDLE_RE = re.compile(r'comment "(pka:[^"]*)" # handle (\d+)$')


def _handles(text: str) -> dict[tuple[str, str], int]:
    """(chain, comment) -> handle from an ``nft -a`` table listing."""
    out: dict[tuple[str, str], int] = {}
    chain = ""
    for line in text.splitlines():
        if m := _CHAIN_RE.match(line):
            chain = m.group(1)
        elif h := _HANDLE_RE.search(line):
            out[(chain, h.group(1))] = int(h.group(2))
    return out


def _comment_of(rule: str) -> str:
    return str(json.loads(rule.rsplit(" comment ", 1)[1]))


def render_table(services: dict[ServiceKey, Service]) -> dict[str, Any]:
    """For dumps and tests: every service's rule texts."""
    return {str(k): {"own": r.own, "base": r.base} for k, r in ((k, render(s)) for k, s in sorted(services.items()))}
