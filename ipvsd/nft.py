"""The nftables backend: NAT, FNAT with a local-address pool, syn_proxy, schedulers and persistence.

pykeepalived owns exactly one table, ``ip pykeepalived``, and never reads or writes any other. Its
base chains and their priorities (documented so it coexists with firewalld, Docker or an operator's
own tables; nftables runs every table's chains at a hook in priority order):

=========  ========================  =========  ====================================================
chain      hook                      priority   job
=========  ========================  =========  ====================================================
pre        nat prerouting            -100       dispatch a new connection to its service chain
out        nat output                -100       the same for locally generated connections (the
                                                syn_proxy's own SYN towards the VIP goes this way)
post       nat postrouting           100        FNAT: source-NAT to the local-address pool
raw_pre    filter prerouting         -300       syn_proxy: leave the client's SYNs untracked
syn_in     filter input              0          syn_proxy: answer SYNs with cookies (local VIP)
syn_fwd    filter forward            0          the same for a VIP that is not a local address
=========  ========================  =========  ====================================================

Each service owns a regular chain ``svc_<id>`` (its scheduler as a single ``dnat`` rule, or three
rules with persistence) and, with syn_proxy, ``syn_<id>``; the base chains hold one rule per service.
Every rule carries a comment ``pka:<id>:<digest of the rule text>``: reading the table back and
comparing comments is how the reconciler knows what is already right, so a restart against a table
that matches changes nothing (no rule replaced, counters kept). Every change is one atomic batch.

Writes go through libnftables (PyPI ``pip-nftables`` over Debian's ``libnftables1``) in nft's own
syntax, reads in its JSON: libnftables 1.0.6's JSON input has no dynamic-map ``update`` statement,
which persistence needs, and a batch must be one buffer to stay atomic.

Scheduling in the data path: rr and wrr are ``numgen inc`` over slots (wrr slots follow IPVS's
interleaving), sh/dh/mh a ``jhash`` of the client (or destination) address over weighted slots; a
real server's share is its number of slots. A health change rewrites the service's own chain in one
batch (the slot count is part of the rule); nothing else in the table moves.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from ipvsd.desired import Dest, Service, ServiceKey

log = logging.getLogger("pykeepalived.ipvs")

TABLE = "pykeepalived"
FAMILY = "ip"
BASE_CHAINS = {
    "pre": "type nat hook prerouting priority -100; policy accept;",
    "out": "type nat hook output priority -100; policy accept;",
    "post": "type nat hook postrouting priority 100; policy accept;",
    "raw_pre": "type filter hook prerouting priority -300; policy accept;",
    "syn_in": "type filter hook input priority 0; policy accept;",
    "syn_fwd": "type filter hook forward priority 0; policy accept;",
}
MAX_SLOTS = 1024  # a wrr cycle or hash table longer than this is scaled down (shares kept to ~0.1 %)
SYNPROXY = "synproxy mss 1460 wscale 7 timestamp sack-perm"


class NftError(Exception):
    pass


def svc_id(key: ServiceKey) -> str:
    if key.fwmark:
        return f"fwm_{key.fwmark}"
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


def _slot_map(slots: list[int], value: list[str]) -> str:
    """``{ 0-2 : v0, 3 : v1 }``: consecutive slots with the same value become one interval."""
    parts: list[str] = []
    start = 0
    for i in range(1, len(slots) + 1):
        if i == len(slots) or slots[i] != slots[start]:
            rng = f"{start}" if i - 1 == start else f"{start}-{i - 1}"
            parts.append(f"{rng} : {value[slots[start]]}")
            start = i
    return "{ " + ", ".join(parts) + " }"


def _sched_expr(svc: Service, live: list[Dest], values: list[str]) -> str:
    """An expression that evaluates to one of ``values`` (one per live server) per new connection."""
    weights = [d.weight for d in live]
    sched = svc.scheduler
    if sched in ("sh", "dh", "mh"):
        slots = hash_slots(weights)
        if sched == "dh":
            key = "ip daddr"
        elif "flag-2" in svc.flags and svc.key.protocol in ("tcp", "udp"):  # sh-port / mh-port
            key = f"ip saddr . {svc.key.protocol} sport"
        else:
            key = "ip saddr"
        return f"jhash {key} mod {len(slots)} seed 0x0 map {_slot_map(slots, values)}"
    if sched == "rr":
        slots = list(range(len(live)))
    else:  # wrr, and the announced approximation of lc/wlc/sed/nq/... (see ipvsd.backend)
        slots = wrr_sequence(weights)
    return f"numgen inc mod {len(slots)} map {_slot_map(slots, values)}"


def _match(key: ServiceKey) -> str:
    if key.fwmark:
        return f"meta mark {key.fwmark:#x}"
    return f"ip daddr {key.address} {key.protocol} dport {key.port}"


def _protos(key: ServiceKey) -> list[str]:
    return [key.protocol] if not key.fwmark else ["tcp", "udp"]


def _laddr_expr(laddrs: tuple[str, ...]) -> str:
    addrs = sorted({ipaddress.IPv4Address(a) for a in laddrs})
    if len(addrs) == 1:
        return str(addrs[0])
    if int(addrs[-1]) - int(addrs[0]) == len(addrs) - 1:
        return f"{addrs[0]}-{addrs[-1]}"  # nf_nat picks an address by hash and a free port: no lockstep with rr
    values = [str(a) for a in addrs]
    return f"jhash ip saddr mod {len(values)} seed 0x0 map {_slot_map(list(range(len(values))), values)}"


@dataclass
class Rendered:
    """A service as nft rule texts: its own chains (ordered) and one rule each in some base chains."""

    own: dict[str, list[str]] = field(default_factory=dict)
    base: dict[str, list[str]] = field(default_factory=dict)
    persist_map: tuple[str, str] | None = None  # (name, definition)


def render(svc: Service) -> Rendered:
    sid = svc_id(svc.key)
    r = Rendered()
    live = [d for d in svc.dests if d.weight > 0]
    chain = f"svc_{sid}"
    rules: list[str] = []
    if not live:
        rules.append("drop")  # no server: refuse, never fall through to a local service on the VIP
    elif svc.persistence_timeout:
        mask = f" & {svc.persistence_netmask}" if svc.persistence_netmask and "." in svc.persistence_netmask else ""
        pmap = f"p_{sid}_{svc.persistence_timeout}"
        r.persist_map = (pmap, f"typeof ip saddr : meta mark; flags dynamic,timeout; "
                               f"timeout {svc.persistence_timeout}s;")
        marks = [f"{i + 1:#x}" for i in range(len(live))]
        targets = [f"{d.address} . {d.port}" for d in live]
        rules.append(f"meta mark set {_sched_expr(svc, live, marks)}")
        # Adds client -> scheduled server when absent; when present only re-arms the timeout.
        rules.append(f"update @{pmap} {{ ip saddr{mask} : meta mark }}")
        for proto in _protos(svc.key):
            rules.append(f"meta l4proto {proto} meta mark set ip saddr{mask} map @{pmap} "
                         f"dnat ip to meta mark map {{ {', '.join(f'{m} : {t}' for m, t in zip(marks, targets, strict=True))} }}")
        rules.append("drop")
    else:
        for proto in _protos(svc.key):
            if len(live) == 1:
                target = f"dnat ip to {live[0].address}:{live[0].port}"
            else:
                target = f"dnat ip to {_sched_expr(svc, live, [f'{d.address} . {d.port}' for d in live])}"
            rules.append(f"meta l4proto {proto} {target}")
        rules.append("drop")
    r.own[chain] = rules
    m = _match(svc.key)
    r.base["pre"] = [f"{m} counter jump {chain}"]
    r.base["out"] = [f"{m} jump {chain}"]
    if svc.method == "FNAT" and svc.laddrs and not svc.key.fwmark:
        r.base["post"] = [f"ct original ip daddr {svc.key.address} ct original protocol {svc.key.protocol} "
                          f"ct original proto-dst {svc.key.port} snat ip to {_laddr_expr(svc.laddrs)}"]
    if svc.syn_proxy:
        syn = f"syn_{sid}"
        r.own[syn] = [f"ct state invalid,untracked {SYNPROXY}", "ct state invalid drop"]
        r.base["raw_pre"] = [f"{m} tcp flags & (fin|syn|rst|ack) == syn notrack"]
        r.base["syn_in"] = [f"{m} jump {syn}"]
        r.base["syn_fwd"] = [f"{m} jump {syn}"]
    return r


def _tag(sid: str, text: str, index: int = 0) -> str:
    return f"pka:{sid}:{index}:{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _q(s: str) -> str:
    return json.dumps(s)


@dataclass
class Actual:
    exists: bool = False
    chains: set[str] = field(default_factory=set)
    maps: set[str] = field(default_factory=set)
    rules: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # chain -> [(handle, comment)]
    counters: dict[str, int] = field(default_factory=dict)  # comment of a pre rule -> packets


class NftBackend:
    """Reconciles the ``ip pykeepalived`` table to a set of services (one atomic batch per change)."""

    name = "nftables"

    def __init__(self) -> None:
        import nftables  # the binding loads libnftables.so.1 at import: only when this backend is used

        self.nft = nftables.Nftables()
        self.nft.set_json_output(True)
        self.nft.set_handle_output(True)
        self.batches = 0  # committed transactions (tests: a restart without change commits none)
        self.programmed: dict[ServiceKey, Service] = {}
        # chain -> rule comments as last committed by us (we are the table's only writer): a health event
        # rewrites a chain without listing it first (a listing makes libnftables load the whole table)
        self.known: dict[str, list[str]] = {}

    # -- kernel access -----------------------------------------------------------------------------

    def _cmd(self, text: str) -> str:
        rc, out, err = self.nft.cmd(text)
        if rc != 0:
            raise NftError(err.strip() or f"libnftables returned {rc}")
        return str(out)

    def read(self) -> Actual:
        act = Actual()
        self.nft.set_json_output(True)
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
                act.maps.add(obj["map"]["name"])
            elif "rule" in obj:
                rule = obj["rule"]
                comment = str(rule.get("comment", ""))
                act.rules.setdefault(rule["chain"], []).append((int(rule["handle"]), comment))
                if rule["chain"] == "pre":
                    for e in rule.get("expr", []):
                        if isinstance(e, dict) and "counter" in e and isinstance(e["counter"], dict):
                            act.counters[comment] = int(e["counter"].get("packets", 0))
        return act

    # -- reconcile ---------------------------------------------------------------------------------

    def plan(self, services: dict[ServiceKey, Service], act: Actual) -> list[str]:
        """The nft commands that turn ``act`` into ``services`` (empty when the table already matches)."""
        t = f"{FAMILY} {TABLE}"
        if not services:
            return [f"delete table {t}"] if act.exists else []
        want_own: dict[str, list[str]] = {}
        want_base: dict[str, dict[str, str]] = {c: {} for c in BASE_CHAINS}  # chain -> comment -> rule
        want_maps: dict[str, str] = {}
        for key in sorted(services):
            sid = svc_id(key)
            r = render(services[key])
            for chain, rules in r.own.items():
                want_own[chain] = [f"{text} comment {_q(_tag(sid, text, i))}" for i, text in enumerate(rules)]
            for chain, rules in r.base.items():
                for i, text in enumerate(rules):
                    want_base[chain][_tag(sid, text, i)] = text
            if r.persist_map is not None:
                want_maps[r.persist_map[0]] = r.persist_map[1]
        cmds: list[str] = []
        self._want_own = {c: [_comment_of(x) for x in rules] for c, rules in want_own.items()}
        if not act.exists:
            cmds.append(f"add table {t}")
        for chain, spec in BASE_CHAINS.items():
            if chain not in act.chains:
                cmds.append(f"add chain {t} {chain} {{ {spec} }}")
        # Base-chain rules: a set keyed by comment; order between services does not matter.
        for chain in BASE_CHAINS:
            for handle, comment in act.rules.get(chain, []):
                if comment not in want_base[chain]:
                    cmds.append(f"delete rule {t} {chain} handle {handle}")
        changed: list[str] = []
        for chain in sorted(act.chains - set(BASE_CHAINS)):
            have = [c for _, c in act.rules.get(chain, [])]
            want = [_comment_of(x) for x in want_own.get(chain, [])]
            if chain not in want_own:
                cmds.append(f"flush chain {t} {chain}")
            elif have != want:
                cmds.append(f"flush chain {t} {chain}")
                changed.append(chain)
        for chain in sorted(act.chains - set(BASE_CHAINS) - set(want_own)):
            cmds.append(f"delete chain {t} {chain}")
        for m in sorted(act.maps - set(want_maps)):
            cmds.append(f"delete map {t} {m}")
        for m, spec in sorted(want_maps.items()):
            if m not in act.maps:
                cmds.append(f"add map {t} {m} {{ {spec} }}")
            elif f"svc_{m[2:].rsplit('_', 1)[0]}" in changed:
                cmds.append(f"flush map {t} {m}")  # servers renumbered: old client->server entries are void
        for chain in sorted(want_own):
            if chain not in act.chains:
                cmds.append(f"add chain {t} {chain}")
                changed.append(chain)
            if chain in changed:
                cmds.extend(f"add rule {t} {chain} {rule}" for rule in want_own[chain])
        have_base = {chain: {c for _, c in act.rules.get(chain, [])} for chain in BASE_CHAINS}
        for chain, by_comment in want_base.items():
            for comment, text in sorted(by_comment.items()):
                if comment not in have_base[chain]:
                    cmds.append(f"add rule {t} {chain} {text} comment {_q(comment)}")
        return cmds

    _want_own: dict[str, list[str]] = {}

    def reconcile(self, services: dict[ServiceKey, Service]) -> int:
        self.known = {}
        cmds = self.plan(services, self.read())
        if cmds:
            self._cmd("\n".join(cmds) + "\n")
            self.batches += 1
            log.debug("nftables: committed %d commands in one batch", len(cmds))
        self.programmed = dict(services)
        self.known = dict(self._want_own) if services else {}
        return len(cmds)

    def reconcile_some(self, services: dict[ServiceKey, Service], keys: set[ServiceKey]) -> int:
        """A health event: only ``keys`` moved. When each keeps its base-chain rules and persistence map
        (real servers changed, not the service), read and rewrite just their own chains, one batch;
        otherwise fall back to the full reconcile. Listing 1,000 services to move one costs ~100 ms."""
        t = f"{FAMILY} {TABLE}"
        cmds: list[str] = []
        written: dict[str, list[str]] = {}
        for key in sorted(keys):
            old, new = self.programmed.get(key), services.get(key)
            if old is None or new is None:
                return self.reconcile(services)
            ro, rn = render(old), render(new)
            if ro.base != rn.base or ro.persist_map != rn.persist_map or set(ro.own) != set(rn.own):
                return self.reconcile(services)
            sid = svc_id(key)
            for chain, rules in rn.own.items():
                want = [(text, _tag(sid, text, i)) for i, text in enumerate(rules)]
                have = self.known.get(chain)
                if have is None:
                    have = self._chain_comments(chain)
                if have is None:  # someone removed it: the full pass rebuilds what is missing
                    return self.reconcile(services)
                if have == [c for _, c in want]:
                    continue
                written[chain] = [c for _, c in want]
                cmds.append(f"flush chain {t} {chain}")
                cmds.extend(f"add rule {t} {chain} {text} comment {_q(c)}" for text, c in want)
                if rn.persist_map is not None and chain.startswith("svc_"):
                    cmds.append(f"flush map {t} {rn.persist_map[0]}")  # servers renumbered
        if cmds:
            try:
                self._cmd("\n".join(cmds) + "\n")
            except NftError as e:  # the table was changed behind our back: read it and start over
                log.warning("nftables: %s; reconciling the whole table", e)
                return self.reconcile(services)
            self.batches += 1
            self.known.update(written)
        for key in keys:
            if key in services:
                self.programmed[key] = services[key]
            else:
                self.programmed.pop(key, None)
        return len(cmds)

    def _chain_comments(self, chain: str) -> list[str] | None:
        rc, out, _err = self.nft.cmd(f"list chain {FAMILY} {TABLE} {chain}")
        if rc != 0:
            return None
        return [str(o["rule"].get("comment", "")) for o in json.loads(out).get("nftables", []) if "rule" in o]

    def clear(self) -> int:
        n = self.reconcile({})
        self.programmed = {}
        return n

    def stats(self) -> dict[str, dict[str, int]]:
        """New connections per service (the dispatch rule's packet counter: the nat hook sees first packets)."""
        act = self.read()
        out: dict[str, dict[str, int]] = {}
        for key in self.programmed:
            sid = svc_id(key)
            n = sum(v for c, v in act.counters.items() if c.startswith(f"pka:{sid}:"))
            out[str(key)] = {"conns": n}
        return out


def _comment_of(rule: str) -> str:
    return json.loads(rule.rsplit(" comment ", 1)[1])


def render_table(services: dict[ServiceKey, Service]) -> dict[str, Any]:
    """For dumps and tests: every service's rule texts."""
    return {str(k): {"own": r.own, "base": r.base} for k, r in ((k, render(s)) for k, s in sorted(services.items()))}
