"""Entering the configured network namespace (-s NAME or net_namespace) before anything else starts.

The supervisor switches itself, before it creates threads, sockets or children; every role then
inherits the namespace through fork+exec, so no role needs to know about it. Uses pyroute2's setns
with flags=0: its default (O_CREAT) would silently create a missing namespace, where keepalived fails.
"""

from __future__ import annotations

import os

NETNS_RUN_DIR = "/var/run/netns"


class NetnsError(Exception):
    pass


def enter(name: str) -> None:
    from pyroute2 import netns  # imported here: the common case (no namespace) never loads it

    if "/" in name or name in ("", ".", ".."):
        raise NetnsError(f"invalid network namespace name {name!r}")
    path = os.path.join(NETNS_RUN_DIR, name)
    if not os.path.exists(path):
        raise NetnsError(f"network namespace {name} does not exist ({path})")
    try:
        netns.setns(name, flags=0)
    except OSError as e:
        raise NetnsError(f"cannot enter network namespace {name}: {e.strerror or e}")
