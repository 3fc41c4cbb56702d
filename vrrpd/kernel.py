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
