"""The VRRP role's netlink: adding and removing virtual addresses through pyroute2 (never ``ip``).

Idempotent in keepalived's way: adding an address that is already there (EEXIST, e.g. left by a
crashed predecessor or kept with -V) and removing one that is gone (EADDRNOTAVAIL, ENODEV) succeed.
The socket is created inside the role's own loop (never inherited across a fork).
"""

from __future__ import annotations

import errno
import logging
import socket

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vrrpd.config import VipSpec

log = logging.getLogger("pykeepalived.vrrp")


class NetlinkFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Netlink:
    def __init__(self) -> None:
        self.ipr: AsyncIPRoute | None = None

    async def open(self) -> None:
        self.ipr = AsyncIPRoute()
        await self.ipr.setup_endpoint()

    def close(self) -> None:
        if self.ipr is not None:
            self.ipr.close()
            self.ipr = None

    async def ifindex(self, name: str) -> int | None:
        assert self.ipr is not None
        try:
            found = await self.ipr.link_lookup(ifname=name)
        except NetlinkError:
            return None
        return int(found[0]) if found else None

    async def _addr(self, cmd: str, vip: VipSpec) -> None:
        assert self.ipr is not None
        index = await self.ifindex(vip.dev)
        if index is None:
            raise NetlinkFailure(errno.ENODEV, f"interface {vip.dev} not found")
        kw: dict[str, object] = {"index": index, "address": vip.address, "prefixlen": vip.prefixlen,
                                 "family": socket.AF_INET if vip.family == 4 else socket.AF_INET6}
        if cmd == "add":
            kw["scope"] = vip.scope
            if vip.label and vip.family == 4:
                kw["label"] = vip.label
        await self.ipr.addr(cmd, **kw)

    async def add(self, vip: VipSpec) -> None:
        try:
            await self._addr("add", vip)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise NetlinkFailure(e.code, f"cannot add {vip}: {e}")

    async def delete(self, vip: VipSpec) -> None:
        try:
            await self._addr("del", vip)
        except NetlinkFailure as e:
            if e.code != errno.ENODEV:
                raise
        except NetlinkError as e:
            if e.code not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ESRCH):
                raise NetlinkFailure(e.code, f"cannot remove {vip}: {e}")
