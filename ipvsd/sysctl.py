"""Kernel settings the data plane needs: set only when needed, logged, restored on stop.

* ``net.ipv4.ip_forward=1`` when a NAT or FNAT service exists (the load balancer forwards);
* ``net.netfilter.nf_conntrack_tcp_loose=0`` when a syn_proxy service exists (the client's cookie ACK
  must be ``ct state invalid`` for the synproxy to see it, not picked up mid-stream).

The DR real servers' ``arp_ignore``/``arp_announce`` are the operator's. Each setting is written only
when its value differs, the original value is remembered (also in the role's state file, so a
respawned role restores what the first one found), and ``restore()`` puts the originals back.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("pykeepalived.ipvs")

PROC = "/proc/sys"


def _path(name: str) -> str:
    return os.path.join(PROC, *name.split("."))


def read(name: str) -> str | None:
    try:
        with open(_path(name), encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def write(name: str, value: str) -> bool:
    try:
        with open(_path(name), "w", encoding="ascii") as f:
            f.write(value)
        return True
    except OSError as e:
        log.error("Cannot set %s=%s: %s", name, value, e.strerror)
        return False


class Sysctls:
    """Wanted settings -> writes; remembers originals for ``restore``."""

    def __init__(self, saved: dict[str, str] | None = None) -> None:
        self.saved: dict[str, str] = dict(saved or {})  # name -> value before we first changed it

    def want(self, wanted: dict[str, str]) -> None:
        for name, value in sorted(wanted.items()):
            cur = read(name)
            if cur is None:
                if name.startswith("net.netfilter."):
                    continue  # conntrack not loaded yet: nftables' first NAT rule loads it, next pass sets it
                log.warning("Cannot read %s", name)
                continue
            if cur != value and write(name, value):
                self.saved.setdefault(name, cur)
                log.info("Set %s=%s (was %s) for the load balancer", name, value, cur)
        for name in sorted(set(self.saved) - set(wanted)):
            self._restore(name)

    def _restore(self, name: str) -> None:
        value = self.saved.pop(name)
        if read(name) != value and write(name, value):
            log.info("Restored %s=%s", name, value)

    def restore(self) -> None:
        for name in sorted(self.saved):
            self._restore(name)
