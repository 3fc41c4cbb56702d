"""Accept mode (RFC 5798 §6.1): with ``no_accept`` (the default in vrrp_strict mode), a master that is
not the address owner must not accept packets addressed to the VIPs it holds.

Done as keepalived does with nftables, through libnftables' Python binding (never the ``nft`` program):
a table ``inet pykeepalived_vrrp`` with sets ``vips4``/``vips6`` and an input chain dropping packets to
them (IPv6 neighbour discovery excepted, so the VIP can still be resolved). Instances add their VIPs
to the sets when they add the addresses and remove them when they drop them; the table goes on stop.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

log = logging.getLogger("pykeepalived.vrrp")

TABLE = "pykeepalived_vrrp"
SETUP = f"""
table inet {TABLE} {{
    set vips4 {{ type ipv4_addr; }}
    set vips6 {{ type ipv6_addr; }}
    chain input {{
        type filter hook input priority filter - 1; policy accept;
        ip daddr @vips4 drop
        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept
        ip6 daddr @vips6 drop
    }}
}}
"""


class AcceptFilter:
    def __init__(self) -> None:
        self.nft: Any = None
        self.failed = False
        self.members: set[str] = set()

    def _cmd(self, text: str) -> bool:
        if self.failed:
            return False
        if self.nft is None:
            try:
                import nftables  # loads libnftables at import: only when no_accept is used

                self.nft = nftables.Nftables()
                rc, _out, err = self.nft.cmd(f"delete table inet {TABLE}")  # a predecessor's leftovers
                rc, _out, err = self.nft.cmd(SETUP)
                if rc != 0:
                    raise OSError(err.strip())
            except (ImportError, OSError) as e:
                log.error("Cannot set up no_accept filtering with nftables: %s", e)
                self.failed = True
                return False
        rc, _out, err = self.nft.cmd(text)
        if rc != 0:
            log.warning("nftables: %s", err.strip())
        return rc == 0

    def block(self, addresses: list[str]) -> None:
        new = [a for a in addresses if a not in self.members]
        if new and self._cmd("\n".join(self._element("add", a) for a in new)):
            self.members.update(new)

    def unblock(self, addresses: list[str]) -> None:
        gone = [a for a in addresses if a in self.members]
        if gone:
            self._cmd("\n".join(self._element("delete", a) for a in gone))
            self.members.difference_update(gone)

    @staticmethod
    def _element(op: str, addr: str) -> str:
        s = "vips6" if ipaddress.ip_address(addr).version == 6 else "vips4"
        return f"{op} element inet {TABLE} {s} {{ {addr} }}"

    def close(self) -> None:
        if self.nft is not None and not self.failed:
            self.nft.cmd(f"delete table inet {TABLE}")
        self.nft = None
        self.members.clear()
