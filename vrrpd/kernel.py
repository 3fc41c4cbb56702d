"""What the VRRP instances ask of the kernel beyond ``vrrpd.netlink``: source addresses and IPv6 VIPs.

* the advert source: the interface's primary IPv4 address, or its link-local IPv6 address once it is
  usable (not tentative: DAD finished), as keepalived waits for it;
* IPv6 VIPs are added with IFA_F_NODAD (a VIP moves between routers; duplicate detection would make
  it unusable for a second or more after every failover);
* the interface's MAC, for gratuitous ARP / unsolicited NA.
All through pyroute2 (never ``ip``); idempotent like ``vrrpd.netlink``.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from vrrpd.config import VipSpec
from vrrpd.netlink import Netlink, NetlinkFailure

IFA_F_NODAD = 0x02
IFA_F_SECONDARY = 0x01
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RT_SCOPE_LINK = 253


async def _collect(res: Any) -> list[Any]:
    """pyroute2 gives a list for "get" and an async iterator for "dump"."""
    if hasattr(res, "__aiter__"):
        return [m async for m in res]
    return list(res)


class Kernel(Netlink):
    async def source_address(self, ifindex: int, family: int) -> str | None:
        """IPv4: the primary address; IPv6: a usable link-local address. None if there is none yet."""
        assert self.ipr is not None
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        try:
            msgs = await _collect(await self.ipr.addr("dump", family=af, index=ifindex))
        except NetlinkError:
            return None
        for m in msgs:
            if int(m["index"]) != ifindex:
                continue
            addr = m.get("IFA_ADDRESS") or m.get("IFA_LOCAL")
            flags = int(m.get("IFA_FLAGS") or m["flags"])
            if family == 4 and not flags & IFA_F_SECONDARY and addr:
                return str(addr)
            if family == 6 and int(m["scope"]) == RT_SCOPE_LINK and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
                return str(addr)
        return None

    async def link_info(self, ifname: str) -> tuple[int, str, bool] | None:
        """(index, MAC, up and running) of a link, or None."""
        assert self.ipr is not None
        try:
            links = await _collect(await self.ipr.link("get", ifname=ifname))
        except NetlinkError:
            return None
        if not links:
            return None
        m = links[0]
        flags = int(m["flags"])
        return int(m["index"]), str(m.get("IFLA_ADDRESS") or "00:00:00:00:00:00"), (flags & 0x41) == 0x41

    async def add(self, vip: VipSpec) -> None:
        if vip.family == 4:
            await super().add(vip)
            return
        assert self.ipr is not None
        index = await self.ifindex(vip.dev)
        if index is None:
            raise NetlinkFailure(errno.ENODEV, f"interface {vip.dev} not found")
        try:
            await self.ipr.addr("add", index=index, address=vip.address, prefixlen=vip.prefixlen,
                                family=socket.AF_INET6, scope=vip.scope, flags=IFA_F_NODAD)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise NetlinkFailure(e.code, f"cannot add {vip}: {e}")


RT_TABLES = {"main": 254, "local": 255, "default": 253, "unspec": 0}
RT_TYPES = {"unicast": 1, "local": 2, "broadcast": 3, "anycast": 4, "multicast": 5, "blackhole": 6,
            "unreachable": 7, "prohibit": 8, "throw": 9, "nat": 10}
FR_ACTIONS = {"table": 1, "goto": 2, "nop": 3, "blackhole": 6, "unreachable": 7, "prohibit": 8}


def table_id(table: str | None) -> int:
    if table is None:
        return 254
    if table.isdigit():
        return int(table)
    if table in RT_TABLES:
        return RT_TABLES[table]
    try:
        with open("/etc/iproute2/rt_tables", encoding="utf-8") as f:
            for line in f:
                parts = line.split("#", 1)[0].split()
                if len(parts) == 2 and parts[1] == table and parts[0].isdigit():
                    return int(parts[0])
    except OSError:
        pass
    raise ValueError(f"unknown routing table {table}")


def _family_of(*addrs: str | None) -> int:
    return socket.AF_INET6 if any(a and ":" in a for a in addrs) else socket.AF_INET


class Routing:
    """virtual_routes / virtual_rules / static_* through pyroute2 (idempotent like the addresses)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def route(self, cmd: str, r: Any) -> None:
        ipr = self.kernel.ipr
        assert ipr is not None
        fam = _family_of(r.dest if r.dest != "default" else None, r.via, r.src)
        kw: dict[str, Any] = {"family": fam, "table": table_id(r.table)}
        if r.dest == "default":
            kw["dst"] = "::/0" if fam == socket.AF_INET6 else "0.0.0.0/0"
        else:
            kw["dst"] = r.dest if "/" in r.dest else f"{r.dest}/{128 if fam == socket.AF_INET6 else 32}"
        if r.via:
            kw["gateway"] = r.via
        if r.src:
            kw["prefsrc"] = r.src
        if r.metric is not None:
            kw["priority"] = r.metric
        if r.route_type:
            kw["type"] = RT_TYPES.get(r.route_type, 1)
        if r.dev:
            index = await self.kernel.ifindex(r.dev)
            if index is None:
                raise NetlinkFailure(errno.ENODEV, f"interface {r.dev} not found")
            kw["oif"] = index
        try:
            await ipr.route(cmd, **kw)
        except NetlinkError as e:
            if not ((cmd == "add" and e.code == errno.EEXIST) or (cmd == "del" and e.code in (errno.ESRCH, errno.ENOENT))):
                raise NetlinkFailure(e.code, f"cannot {cmd} route {r.dest}: {e}")

    async def rule(self, cmd: str, r: Any) -> None:
        ipr = self.kernel.ipr
        assert ipr is not None
        fam = _family_of(r.from_, r.to)
        kw: dict[str, Any] = {"family": fam, "table": table_id(r.table) if r.table else 254,
                              "action": FR_ACTIONS.get(r.action or "table", 1)}
        for key, val in (("src", r.from_), ("dst", r.to)):
            if val and val != "all":
                addr, _, plen = val.partition("/")
                kw[key] = addr
                kw[f"{key}_len"] = int(plen) if plen else (128 if fam == socket.AF_INET6 else 32)
        if r.priority is not None:
            kw["priority"] = r.priority
        if r.fwmark:
            mark, _, mask = r.fwmark.partition("/")
            kw["fwmark"] = int(mark, 0)
            if mask:
                kw["fwmask"] = int(mask, 0)
        if r.iif:
            kw["iifname"] = r.iif
        if r.oif:
            kw["oifname"] = r.oif
        try:
            await ipr.rule(cmd, **kw)
        except NetlinkError as e:
            if not ((cmd == "add" and e.code == errno.EEXIST) or (cmd == "del" and e.code in (errno.ESRCH, errno.ENOENT))):
                raise NetlinkFailure(e.code, f"cannot {cmd} rule: {e}")


def vmac_address(vrid: int, family: int) -> str:
    """The RFC's virtual MAC: 00:00:5e:00:01:VRID (IPv4), 00:00:5e:00:02:VRID (IPv6)."""
    return f"00:00:5e:00:0{1 if family == 4 else 2}:{vrid:02x}"


async def ensure_vmac(kernel: Kernel, name: str, base: str, mac: str, link_local: str | None = None) -> int:
    """A private macvlan ``name`` on ``base`` with ``mac``, up; returns its index (created if missing).

    As keepalived sets on its VMACs: arp_ignore=1 and arp_filter=1 (only the VMAC answers for the VIPs
    it holds), accept_local=1 and rp_filter=0 (our adverts come back through the base interface).

    IPv6 (``link_local``: the base's link-local address): the VMAC must not make its own link-local
    address from the shared virtual MAC (every router would get the same one), so address generation is
    off and the base's link-local address is put on it instead (nodad), as keepalived does; adverts and
    unsolicited NAs then leave from the VMAC with the router's own source."""
    ipr = kernel.ipr
    assert ipr is not None
    index = await kernel.ifindex(name)
    if index is None:
        base_index = await kernel.ifindex(base)
        if base_index is None:
            raise NetlinkFailure(errno.ENODEV, f"interface {base} not found")
        try:
            await ipr.link("add", ifname=name, kind="macvlan", link=base_index, macvlan_mode="private",
                           address=mac)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise NetlinkFailure(e.code, f"cannot create VMAC {name}: {e}")
        index = await kernel.ifindex(name)
        if index is None:
            raise NetlinkFailure(errno.ENODEV, f"VMAC {name} vanished")
    for key, value in (("arp_ignore", "1"), ("arp_filter", "1"), ("accept_local", "1"), ("rp_filter", "0")):
        try:
            with open(f"/proc/sys/net/ipv4/conf/{name}/{key}", "w", encoding="ascii") as f:
                f.write(value)
        except OSError:
            pass  # best effort, as keepalived
    if link_local is not None:
        try:  # before the link goes up, or the kernel has already made fe80::200:5eff:fe00:2xx
            with open(f"/proc/sys/net/ipv6/conf/{name}/addr_gen_mode", "w", encoding="ascii") as f:
                f.write("1")
        except OSError:
            pass
    await ipr.link("set", index=index, state="up")
    if link_local is not None:
        try:
            await ipr.addr("add", index=index, address=link_local.split("%", 1)[0], prefixlen=64,
                           family=socket.AF_INET6, scope=RT_SCOPE_LINK, flags=IFA_F_NODAD)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise NetlinkFailure(e.code, f"cannot add {link_local} to {name}: {e}")
    return index


def set_sysctls(ifname: str, values: dict[str, str]) -> dict[str, str]:
    """Write net.ipv4.conf.<ifname>.<key> values (best effort); returns the previous ones."""
    old: dict[str, str] = {}
    for key, value in values.items():
        path = f"/proc/sys/net/ipv4/conf/{ifname}/{key}"
        try:
            with open(path, encoding="ascii") as f:
                old[key] = f.read().strip()
            with open(path, "w", encoding="ascii") as f:
                f.write(value)
        except OSError:
            pass
    return old


async def delete_link(kernel: Kernel, name: str) -> None:
    ipr = kernel.ipr
    assert ipr is not None
    index = await kernel.ifindex(name)
    if index is None:
        return
    try:
        await ipr.link("del", index=index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise NetlinkFailure(e.code, f"cannot delete {name}: {e}")
