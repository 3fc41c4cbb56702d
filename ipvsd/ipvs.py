"""The kernel IPVS backend over generic netlink (pyroute2's IPVS socket).

``reconcile`` dumps the kernel's services and real servers, compares them with the desired ones and
sends only the difference: a service that already matches is not touched (statistics and connections
kept), a changed scheduler/flags/timeout is a ``set`` of the service, a changed weight a ``set`` of the
destination. Ownership: the services this role created are recorded (``owned``, persisted by the
caller in the run dir), so after a crash the ones the new configuration no longer has are deleted,
while services someone else created are left alone unless ``lvs_flush``. global_defs' ``lvs_timeouts``
are the kernel's IPVS connection timeouts (SET_CONFIG): set on start and on a reload that changes them,
compared first with the kernel's (GET_CONFIG), values not given left as they are; not restored on stop
(as keepalived).

Speed: the changes of one reconcile go out in batches (up to :data:`BATCH` requests in one ``send``,
every one acknowledged separately, so one refused entry is reported and the rest still apply), and the
real servers of many services are read with batched dumps. Payloads are encoded by ``ipvsd.ipvs_wire``
(pyroute2's encoder is the bottleneck at 10,000 entries); pyroute2 keeps the socket, the sequence
numbers and the parsing of the answers. This is what makes 1,000 services x 10 real servers program
faster than ``ipvsadm -R`` (tests/perf/bench_ipvs.py).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from ipvsd import ipvs_wire as wire
from ipvsd.desired import FLAG_BITS, Dest, Service, ServiceKey

log = logging.getLogger("pykeepalived.ipvs")

PROTO = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}
PROTO_NAME = {v: k for k, v in PROTO.items()}
FWD = {"NAT": 0, "TUN": 2, "DR": 3}
FWD_NAME = {v: k for k, v in FWD.items()}
TUN_TYPE = {None: 0, "ipip": 0, "gue": 1, "gre": 2}
AF = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
BATCH = 128  # requests per send: their acks (36 bytes, or the request echoed on error) fit the receive buffer
DUMP_BATCH = 16  # dest dumps per send: ~2.5 kB each for 10 real servers


async def _batch(core: Any, prid: int, reqs: list[tuple[int, bytes]]) -> list[tuple[list[Any], Exception | None]]:
    """Send ``(flags, payload)`` requests in one buffer; return each one's answers and error, in order."""
    from pyroute2.netlink.exceptions import NetlinkError

    await core.setup_endpoint()
    pid = core.epid or os.getpid()
    seqs: list[int] = []
    data = []
    for flags, body in reqs:
        seq = core.addr_pool.alloc()
        core.msg_queue.ensure_tag(seq)
        seqs.append(seq)
        data.append(wire.frame(prid, flags, seq, pid, body))
    core.send(b"".join(data))
    out: list[tuple[list[Any], Exception | None]] = []
    for seq in seqs:
        got: list[Any] = []
        err: Exception | None = None
        try:
            async for msg in core.get(msg_seq=seq):
                got.append(msg)
        except (NetlinkError, OSError) as e:
            err = e
        finally:
            core.addr_pool.free(seq, ban=0xFF)
            core.msg_queue.free_tag(seq)
        out.append((got, err))
    return out


def ipvs_available() -> bool:
    """Whether the kernel offers IPVS: its generic netlink family resolves (loading the module if needed)."""
    try:
        from pyroute2 import IPVS

        with IPVS() as s:
            s.service("dump")
        return True
    except Exception:  # no family, no module, no permission: all mean "not here"
        return False


SYS_IPIP = "/sys/module/ipip"


def ipip_available(sys_module: str = SYS_IPIP) -> bool:
    """Whether the kernel has ipip support, for lb_kind TUN (ipip, the default tunnel type).

    ``/sys/module/ipip`` exists when ipip is loaded or built in (it has parameters), so it is the one
    place to look (``/proc/modules`` lists loadable modules only). When it is absent the kernel is given
    its chance to autoload the module without creating anything: looking up the interface ``tunl0``
    (an ``SIOCGIFINDEX`` ioctl) makes the kernel request ``netdev-tunl0``, an alias of ipip, whose
    loading only adds ipip's fallback device ``tunl0`` (down, no address). Creating a throwaway ipip link
    through rtnetlink would autoload it too, but changes the host's interfaces: not done.

    Note: the director's IPVS encapsulates TUN packets itself (ip_vs.ko does not depend on ipip.ko); the
    real servers need ipip to decapsulate. This check refuses a TUN configuration on a host whose kernel
    has no ipip at all, as the issue asks; it is not proof that the real servers have it."""
    if os.path.exists(sys_module):
        return True
    try:
        socket.if_nametoindex("tunl0")
    except OSError:
        pass  # no such device (yet): the module request, if any, has been made
    return os.path.exists(sys_module)


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


async def _sequential(core: Any, prid: int, reqs: list[tuple[int, bytes]]) -> list[tuple[list[Any], Exception | None]]:
    """Like :func:`_batch`, one request at a time (dumps cannot overlap on a socket), in one loop pass."""
    out: list[tuple[list[Any], Exception | None]] = []
    for req in reqs:
        out.extend(await _batch(core, prid, [req]))
    return out


def _key_wire(key: ServiceKey) -> bytes:
    if key.fwmark:
        return wire.service_key(AF[key.family], fwmark=key.fwmark)
    return wire.service_key(AF[key.family], PROTO[key.protocol], key.address, key.port)


def _svc_wire(svc: Service) -> bytes:
    key = svc.key
    if key.family == "inet":
        mask: str | None = _netmask(svc)
    else:
        mask = svc.persistence_netmask if svc.persistence_netmask and svc.persistence_netmask.isdigit() else "128"
    return wire.service_full(_key_wire(key), svc.scheduler, _flags(svc), svc.persistence_timeout, mask)


def _dest_family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _dest_wire(d: Dest) -> bytes:
    return wire.dest(_dest_family(d.address), d.address, d.port, fwd=FWD.get(d.method, 0), weight=d.weight,
                     uthresh=d.uthreshold, lthresh=d.lthreshold, tun_type=TUN_TYPE.get(d.tun_type, 0),
                     tun_port=d.tun_port)


class IpvsBackend:
    name = "ipvs"

    def __init__(self, owned: set[ServiceKey] | None = None, flush: bool = False) -> None:
        from pyroute2 import IPVS

        self.sock = IPVS()
        self.owned: set[ServiceKey] = set(owned or ())
        self.flush_foreign = flush  # lvs_flush: the first reconcile also removes services we did not create
        self.ops = 0  # netlink changes sent (tests: a restart without change sends none)
        self.sends = 0  # batches sent
        self.programmed: dict[ServiceKey, Service] = {}
        self.errors: list[str] = []
        self.pending: list[tuple[str, int, bytes]] = []  # (what, netlink flags, payload)

    def close(self) -> None:
        self.sock.close()

    def _run_batch(self, reqs: list[tuple[int, bytes]]) -> list[tuple[list[Any], Exception | None]]:
        self.sends += 1
        return list(self.sock._run_with_cleanup(_batch, self.sock.asyncore, self.sock.prid, reqs))

    # -- reading -----------------------------------------------------------------------------------

    def _svc_obj(self, key: ServiceKey) -> Any:
        from pyroute2 import IPVSService

        kw: dict[str, Any] = {"af": AF[key.family]}
        if key.fwmark:
            kw["fwmark"] = key.fwmark
        else:
            kw.update(addr=key.address, port=key.port, protocol=PROTO[key.protocol])
        if key.family == "inet":
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

    def _dests_many(self, keys: list[ServiceKey]) -> dict[ServiceKey, dict[tuple[str, int], dict[str, int]]]:
        """Real servers of many services: one dump each (the kernel runs one dump at a time per socket),
        all inside one pass of pyroute2's event loop, answers decoded by ``ipvs_wire.parse_dest``."""
        reqs = [(wire.FLAGS_DUMP, wire.payload(wire.CMD_GET_DEST, _key_wire(k))) for k in keys]
        self.sends += 1
        res = self.sock._run_with_cleanup(_sequential, self.sock.asyncore, self.sock.prid, reqs)
        out: dict[ServiceKey, dict[tuple[str, int], dict[str, int]]] = {}
        for key, (msgs, err) in zip(keys, res, strict=True):
            if err is not None:
                log.debug("IPVS: cannot list the real servers of %s: %s", key, err)
                out[key] = {}
                continue
            found = (wire.parse_dest(m.data, m.offset) for m in msgs)
            out[key] = dict(x for x in found if x is not None)
        return out

    def read(self, only: set[ServiceKey] | None = None
             ) -> dict[ServiceKey, tuple[KService, dict[tuple[str, int], dict[str, int]]]]:
        """The kernel's services and their real servers (all, or only the keys in ``only``)."""
        from pyroute2.netlink.exceptions import NetlinkError

        if only is None:
            services = [self._parse(m) for m in self.sock.service("dump")]
        else:
            services = []
            for key in sorted(only):
                try:
                    services.extend(self._parse(m) for m in self.sock.service("get", service=self._svc_obj(key)))
                except NetlinkError:  # ESRCH/ENOENT: not in the kernel
                    continue
        dests = self._dests_many([ks.key for ks in services])
        return {ks.key: (ks, dests[ks.key]) for ks in services}

    # -- writing -----------------------------------------------------------------------------------

    def _do(self, what: str, flags: int, body: bytes) -> None:
        self.ops += 1
        log.debug("IPVS: %s", what)
        self.pending.append((what, flags, body))

    def _flush(self) -> None:
        """Send the queued changes in order; a refused one is logged and the others still apply
        (keepalived logs and goes on)."""
        pending, self.pending = self.pending, []
        for i in range(0, len(pending), BATCH):
            chunk = pending[i:i + BATCH]
            res = self._run_batch([(flags, body) for _, flags, body in chunk])
            for (what, _, _), (_, err) in zip(chunk, res, strict=True):
                if err is not None:
                    code = getattr(err, "code", None) or getattr(err, "errno", None)
                    text = os.strerror(code) if isinstance(code, int) and code in errno.errorcode else str(err)
                    self.errors.append(f"{what}: {text}")
                    log.error("IPVS: cannot %s: %s", what, text)

    def _del_service(self, key: ServiceKey) -> None:
        self._do(f"del service {key}", wire.FLAGS_REQ, wire.payload(wire.CMD_DEL_SERVICE, _key_wire(key)))

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
                self._del_service(key)
        self.flush_foreign = False
        for key, svc in sorted(services.items()):
            have = actual.get(key)
            want_flags, want_mask = _flags(svc), _netmask(svc) if key.family == "inet" else ""
            kw = _key_wire(key)
            if have is None:
                log.info("Adding service %s (%s)", key, svc.scheduler)
                self._do(f"add service {key}", wire.FLAGS_CREATE, wire.payload(wire.CMD_NEW_SERVICE, _svc_wire(svc)))
                have_dests: dict[tuple[str, int], dict[str, int]] = {}
            else:
                ks, have_dests = have
                # The kernel sets HASHED (0x2) on every service in its table: never a difference.
                if (ks.scheduler, ks.flags & 0xFD, ks.timeout) != (svc.scheduler, want_flags & 0xFD,
                                                                   svc.persistence_timeout) \
                        or (want_mask and ks.netmask and ks.netmask != want_mask):
                    log.info("Changing service %s", key)
                    self._do(f"set service {key}", wire.FLAGS_REQ, wire.payload(wire.CMD_SET_SERVICE, _svc_wire(svc)))
            want = {(d.address, d.port): d for d in svc.dests}
            for dk in sorted(set(have_dests) - set(want)):
                log.info("Removing real server [%s]:%d from %s", dk[0], dk[1], key)
                self._do(f"del dest {dk}", wire.FLAGS_REQ, wire.payload(
                    wire.CMD_DEL_DEST, kw, wire.dest(_dest_family(dk[0]), dk[0], dk[1], key_only=True)))
            for dk, d in sorted(want.items()):
                cur = have_dests.get(dk)
                if cur is None:
                    log.info("Adding real server [%s]:%d to %s (weight %d)", d.address, d.port, key, d.weight)
                    self._do(f"add dest {dk}", wire.FLAGS_CREATE, wire.payload(wire.CMD_NEW_DEST, kw, _dest_wire(d)))
                elif (cur["weight"], cur["fwd"], cur["u"], cur["l"]) != (d.weight, FWD.get(d.method, 0),
                                                                       d.uthreshold, d.lthreshold):
                    log.info("Setting real server [%s]:%d of %s to weight %d", d.address, d.port, key, d.weight)
                    self._do(f"set dest {dk}", wire.FLAGS_REQ, wire.payload(wire.CMD_SET_DEST, kw, _dest_wire(d)))
            self.owned.add(key)
        self._flush()
        if only is None:
            self.owned = set(services)
            self.programmed = dict(services)
        else:
            self.owned -= only - set(services)
            for k in only:
                self.programmed.pop(k, None)
            self.programmed.update(services)
        return self.ops - before

    def timeouts(self) -> tuple[int, int, int] | None:
        """The kernel's IPVS connection timeouts (tcp, tcpfin, udp), as ``ipvsadm -L --timeout`` shows them."""
        res = self._run_batch([(wire.FLAGS_REQ, wire.config(wire.CMD_GET_CONFIG))])
        msgs, err = res[0]
        if err is not None:
            log.debug("IPVS: cannot read the timeouts: %s", err)
            return None
        for m in msgs:
            got = wire.parse_config(m.data, m.offset)
            if got is not None:
                return got
        return None

    def set_timeouts(self, tcp: int | None, tcpfin: int | None, udp: int | None) -> int:
        """global_defs' lvs_timeouts: set the values given, only when the kernel holds others (a restart
        against a kernel that already has them sends nothing); values not given stay as they are."""
        want = (tcp, tcpfin, udp)
        if all(v is None for v in want):
            return 0
        have = self.timeouts()
        if have is not None and all(w is None or w == h for w, h in zip(want, have, strict=True)):
            return 0
        before = self.ops
        log.info("Setting IPVS connection timeouts: tcp %s tcpfin %s udp %s",
                 *("unchanged" if v is None else str(v) for v in want))
        self._do("set timeouts", wire.FLAGS_REQ, wire.config(wire.CMD_SET_CONFIG, tcp, tcpfin, udp))
        self._flush()
        return self.ops - before

    def clear(self, flush_all: bool = False) -> int:
        before = self.ops
        for key in sorted(self._parse(m).key for m in self.sock.service("dump")):
            if key in self.owned or flush_all:
                self._del_service(key)
        self._flush()
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
