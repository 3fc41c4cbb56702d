"""lc / wlc / sed / nq on nftables: an announced approximation by re-weighting from conntrack counts.

nftables cannot pick "the server with the fewest connections" per packet. Instead, every
:data:`PERIOD` seconds the role counts, per real server, the established connections conntrack holds
towards it (pyroute2's conntrack dump, in the load balancer's namespace: the reply tuple's source is
the real server) and turns the counts into the weights of a weighted round-robin for the next period:
the new connections of one period "fill up" the least-loaded servers first (water-filling on
``connections / weight``), so a server with many long-lived connections gets none until the others
catch up. How close: exact at the period boundaries; within a period new connections are spread by
the weights computed at its start, so the imbalance is bounded by one period's arrivals. ``nq`` sends
to idle servers first, ``lc`` ignores weights, ``wlc``/``sed`` use them.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from dataclasses import replace
from typing import Any

from ipvsd.desired import Service

log = logging.getLogger("pykeepalived.ipvs")

PERIOD = 0.5  # seconds between re-weightings
SCHEDULERS = ("lc", "wlc", "sed", "nq")
SLOTS = 32  # new connections one period is planned for (the weights' resolution)
TCP_ESTABLISHED = 3


def fill(conns: list[int], weights: list[int], scheduler: str, slots: int = SLOTS) -> list[int]:
    """Weights for the next period: ``slots`` new connections poured onto the least-loaded servers.

    Level ``L`` is raised until ``sum(max(0, L*w_i - c_i)) == slots``; server i gets its share
    ``max(0, L*w_i - c_i)``. Equal loads give weights proportional to the configured ones (wrr)."""
    w = [1 if scheduler == "lc" else max(0, x) for x in weights]
    live = [i for i, x in enumerate(w) if x > 0]
    if not live:
        return [0] * len(w)
    if scheduler == "nq" and any(conns[i] == 0 for i in live):
        return [w[i] if i in live and conns[i] == 0 else 0 for i in range(len(w))]
    lo, hi = 0.0, (max(conns[i] for i in live) + slots) / min(w[i] for i in live) + 1
    for _ in range(50):  # bisection on the level: 50 halvings are far below one connection
        mid = (lo + hi) / 2
        if sum(max(0.0, mid * w[i] - conns[i]) for i in live) < slots:
            lo = mid
        else:
            hi = mid
    share = [max(0.0, hi * w[i] - conns[i]) if i in live else 0.0 for i in range(len(w))]
    out = [round(s) for s in share]
    if not any(out):
        out[max(live, key=lambda i: share[i])] = 1
    return out


def count_established(family: int = socket.AF_INET) -> Counter[tuple[str, int]]:
    """Established connections per (real server address, port), from the reply tuples."""
    from pyroute2 import Conntrack

    out: Counter[tuple[str, int]] = Counter()
    with Conntrack() as ct:
        for e in ct.dump_entries():
            pi = e.protoinfo
            if pi is not None and pi.state != TCP_ESTABLISHED:
                continue
            rep: Any = e.tuple_reply
            if rep is None or rep.saddr is None:
                continue
            out[(str(rep.saddr), int(rep.sport or 0))] += 1
    return out


def reweight(svc: Service, counts: Counter[tuple[str, int]]) -> Service:
    """The service with the live real servers' weights replaced by this period's fill-up weights."""
    live = [d for d in svc.dests if d.weight > 0]
    if len(live) < 2:
        return svc
    new = fill([counts.get((d.address, d.port), 0) for d in live], [d.weight for d in live], svc.scheduler)
    by = {(d.address, d.port): n for d, n in zip(live, new, strict=True)}
    dests = tuple(replace(d, weight=by[(d.address, d.port)]) if (d.address, d.port) in by else d
                  for d in svc.dests)
    if not any(d.weight > 0 for d in dests):
        return svc
    return replace(svc, dests=dests)
