"""The kernel IPVS backend over generic netlink (pyroute2's IPVS API).

``reconcile`` dumps the kernel's services and real servers, compares them with the desired ones and
sends only the difference: a service that already matches is not touched (statistics and connections
kept), a changed scheduler/flags/timeout is a ``set`` of the service, a changed weight a ``set`` of the
destination. Ownership: the services this role created are recorded (``owned``, persisted by the
caller in the run dir), so after a crash the ones the new configuration no longer has are deleted,
while services someone else created are left alone unless ``lvs_flush``.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from ipvsd.desired import FLAG_BITS, Dest, Service, ServiceKey

log = logging.getLogger("pykeepalived.ipvs")

PROTO = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}
PROTO_NAME = {v: k for k, v in PROTO.items()}
FWD = {"NAT": 0, "TUN": 2, "DR": 3}
FWD_NAME = {v: k for k, v in FWD.items()}
TUN_TYPE = {None: 0, "ipip": 0, "gue": 1, "gre": 2}
AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}


def ipvs_available() -> bool:
    """Whether the kernel offers IPVS: its generic netlink family resolves (loading the module if needed)."""
    try:
        from pyroute2 import IPVS

        with IPVS() as s:
            s.service("dump")
        return True
    except Exception:  # no family, no module, no permission: all mean "not here"
        return False


@dataclass(frozen=True)
class KService:
    """A service as read back from the kernel (the fields we program)."""

    key: ServiceKey
    scheduler: str
    flags: int
    timeout: int
    netmask: str


def _flags(svc: Service) -> int:
    f = sum(FLAG_BITS[x] for x in svc.flags if x in FLAG_BITS)
    if svc.persistence_timeout:
        f |= FLAG_BITS["persistent"]
    return f


def _netmask(svc: Service) -> str:
    if svc.persistence_netmask and "." in svc.persistence_netmask:
        return svc.persistence_netmask
    return "255.255.255.255"


def _attr(obj: Any, name: str) -> Any:
    return obj.get(name)


class IpvsBackend:
    name = "ipvs"

    def __init__(self, owned: set[ServiceKey] | None = None, flush: bool = False) -> None:
        from pyroute2 import IPVS

        self.sock = IPVS()
        self.owned: set[ServiceKey] = set(owned or ())
        self.flush_foreign = flush  # lvs_flush: the first reconcile also removes services we did not create
        self.ops = 0  # netlink changes sent (tests: a restart without change sends none)
        self.programmed: dict[ServiceKey, Service] = {}
        self.errors: list[str] = []

    def close(self) -> None:
        self.sock.close()

    # -- reading -----------------------------------------------------------------------------------

    def _svc_obj(self, key: ServiceKey, svc: Service | None = None) -> Any:
        from pyroute2 import IPVSService

        kw: dict[str, Any] = {"af": AF[key.family]}
        if key.fwmark:
            kw["fwmark"] = key.fwmark
        else:
            kw.update(addr=key.address, port=key.port, protocol=PROTO[key.protocol])
        if svc is not None:
            kw.update(sched_name=svc.scheduler, timeout=svc.persistence_timeout,
                      flags={"flags": _flags(svc), "mask": 0xFFFF})
            if key.family == "inet":
                kw["netmask"] = _netmask(svc)
        elif key.family == "inet":
            kw["netmask"] = "255.255.255.255"
        return IPVSService(**kw)

    def _parse(self, m: Any) -> KService:
        a = m.get("IPVS_CMD_ATTR_SERVICE")
        fam = "inet6" if a.get("IPVS_SVC_ATTR_AF") == socket.AF_INET6 else "inet"
        fwmark = a.get("IPVS_SVC_ATTR_FWMARK") or 0
        if fwmark:
            key = ServiceKey(fam, "", "", 0, fwmark)
        else:
            key = ServiceKey(fam, PROTO_NAME.get(a.get("IPVS_SVC_ATTR_PROTOCOL"), "?"),
                             str(a.get("IPVS_SVC_ATTR_ADDR")), int(a.get("IPVS_SVC_ATTR_PORT")))
        fl = a.get("IPVS_SVC_ATTR_FLAGS")
        flags = int(fl.get("flags", 0)) if fl is not None else 0
        return KService(key, str(a.get("IPVS_SVC_ATTR_SCHED_NAME")), flags & 0xFFFF,
                        int(a.get("IPVS_SVC_ATTR_TIMEOUT") or 0), str(a.get("IPVS_SVC_ATTR_NETMASK") or ""))

    def _dests(self, key: ServiceKey) -> dict[tuple[str, int], dict[str, int]]:
        dests: dict[tuple[str, int], dict[str, int]] = {}
        for dm in self.sock.dest("dump", service=self._svc_obj(key)):
            d = dm.get("IPVS_CMD_ATTR_DEST")
            stats = d.get("IPVS_DEST_ATTR_STATS64") or d.get("IPVS_DEST_ATTR_STATS")
            dests[(str(d.get("IPVS_DEST_ATTR_ADDR")), int(d.get("IPVS_DEST_ATTR_PORT")))] = {
                "weight": int(d.get("IPVS_DEST_ATTR_WEIGHT")),
                "fwd": int(d.get("IPVS_DEST_ATTR_FWD_METHOD")) & 0x7,
                "u": int(d.get("IPVS_DEST_ATTR_U_THRESH") or 0),
                "l": int(d.get("IPVS_DEST_ATTR_L_THRESH") or 0),
                "active": int(d.get("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0),
                "inactive": int(d.get("IPVS_DEST_ATTR_INACT_CONNS") or 0),
                "conns": int(stats.get("IPVS_STATS_ATTR_CONNS") or 0) if stats is not None else 0,
            }
        return dests

    def read(self, only: set[ServiceKey] | None = None
             ) -> dict[ServiceKey, tuple[KService, dict[tuple[str, int], dict[str, int]]]]:
        """The kernel's services and their real servers (all, or only the keys in ``only``)."""
        from pyroute2.netlink.exceptions import NetlinkError

        out: dict[ServiceKey, tuple[KService, dict[tuple[str, int], dict[str, int]]]] = {}
        if only is None:
            services = [self._parse(m) for m in self.sock.service("dump")]
        else:
            services = []
            for key in sorted(only):
                try:
                    services.extend(self._parse(m) for m in self.sock.service("get", service=self._svc_obj(key)))
                except NetlinkError:  # ESRCH/ENOENT: not in the kernel
                    continue
        for ks in services:
            out[ks.key] = (ks, self._dests(ks.key))
        return out

    # -- writing -----------------------------------------------------------------------------------

    def _dest_obj(self, d: Dest) -> Any:
        from pyroute2 import IPVSDest

        return IPVSDest(addr=d.address, port=d.port, fwd_method=FWD.get(d.method, 0), weight=d.weight,
                        u_thresh=d.uthreshold, l_thresh=d.lthreshold,
                        tun_type=TUN_TYPE.get(d.tun_type, 0), tun_port=d.tun_port)

    def _do(self, what: str, fn: Any, *args: Any, **kw: Any) -> None:
        self.ops += 1
        log.debug("IPVS: %s", what)
        try:
            fn(*args, **kw)
        except Exception as e:  # one refused entry must not stop the others (keepalived logs and goes on)
            self.errors.append(f"{what}: {e}")
            log.error("IPVS: cannot %s: %s", what, e)

    def reconcile(self, services: dict[ServiceKey, Service], only: set[ServiceKey] | None = None) -> int:
        """Bring the kernel to ``services``; with ``only``, look at (and change) just those keys (a health
        event touches one service: reading the whole table for it would cost milliseconds per thousand)."""
        before = self.ops
        actual = self.read(only)
        if only is not None:
            services = {k: v for k, v in services.items() if k in only}
        for key, (_ks, _dests) in sorted(actual.items()):
            if key in services:
                continue
            if key in self.owned or self.flush_foreign:
                log.info("Removing service %s", key)
                self._do(f"del service {key}", self.sock.service, "del", service=self._svc_obj(key))
        self.flush_foreign = False
        for key, svc in sorted(services.items()):
            have = actual.get(key)
            want_flags, want_mask = _flags(svc), _netmask(svc) if key.family == "inet" else ""
            if have is None:
                log.info("Adding service %s (%s)", key, svc.scheduler)
                self._do(f"add service {key}", self.sock.service, "add", service=self._svc_obj(key, svc))
                have_dests: dict[tuple[str, int], dict[str, int]] = {}
            else:
                ks, have_dests = have
                # The kernel sets HASHED (0x2) on every service in its table: never a difference.
                if (ks.scheduler, ks.flags & 0xFD, ks.timeout) != (svc.scheduler, want_flags & 0xFD,
                                                                   svc.persistence_timeout) \
                        or (want_mask and ks.netmask and ks.netmask != want_mask):
                    log.info("Changing service %s", key)
                    self._do(f"set service {key}", self.sock.service, "set", service=self._svc_obj(key, svc))
            want = {(d.address, d.port): d for d in svc.dests}
            for dk in sorted(set(have_dests) - set(want)):
                from pyroute2 import IPVSDest

                log.info("Removing real server [%s]:%d from %s", dk[0], dk[1], key)
                self._do(f"del dest {dk}", self.sock.dest, "del", service=self._svc_obj(key),
                         dest=IPVSDest(addr=dk[0], port=dk[1]))
            for dk, d in sorted(want.items()):
                cur = have_dests.get(dk)
                if cur is None:
                    log.info("Adding real server [%s]:%d to %s (weight %d)", d.address, d.port, key, d.weight)
                    self._do(f"add dest {dk}", self.sock.dest, "add", service=self._svc_obj(key),
                             dest=self._dest_obj(d))
                elif (cur["weight"], cur["fwd"], cur["u"], cur["l"]) != (d.weight, FWD.get(d.method, 0),
                                                                       d.uthreshold, d.lthreshold):
                    log.info("Setting real server [%s]:%d of %s to weight %d", d.address, d.port, key, d.weight)
                    self._do(f"set dest {dk}", self.sock.dest, "set", service=self._svc_obj(key),
                             dest=self._dest_obj(d))
            self.owned.add(key)
        if only is None:
            self.owned = set(services)
            self.programmed = dict(services)
        else:
            self.owned -= only - set(services)
            for k in only:
                self.programmed.pop(k, None)
            self.programmed.update(services)
        return self.ops - before

    def clear(self, flush_all: bool = False) -> int:
        before = self.ops
        for key in sorted(self.read()):
            if key in self.owned or flush_all:
                self._do(f"del service {key}", self.sock.service, "del", service=self._svc_obj(key))
        self.owned = set()
        self.programmed = {}
        return self.ops - before

    def stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, (_ks, dests) in self.read().items():
            if key in self.programmed:
                out[str(key)] = {
                    "conns": sum(d["conns"] for d in dests.values()),
                    "active": sum(d["active"] for d in dests.values()),
                    "inactive": sum(d["inactive"] for d in dests.values()),
                }
        return out
