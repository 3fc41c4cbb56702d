"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) for the VIPs of a new master.

GARP: a broadcast ARP request whose sender and target protocol addresses are both the VIP, sent on a
packet socket bound to the interface (as keepalived does, so switches and hosts update their tables).
Unsolicited NA (RFC 4861 §7.2.6): ICMPv6 type 136 to ff02::1 with the Override flag and the target
link-layer address option, hop limit 255, from the link-local address; the kernel fills the checksum.
"""

from __future__ import annotations

import logging
import socket
import struct

log = logging.getLogger("pykeepalived.vrrp")

ETH_P_ARP = 0x0806
ALL_NODES = "ff02::1"


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def arp_frame(mac: bytes, vip: str) -> bytes:
    ip = socket.inet_aton(vip)
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\xff" * 6 + ip
    return eth + arp


def na_message(mac: bytes, vip: str, router: bool = False) -> bytes:
    flags = 0x20000000 | (0x80000000 if router else 0)  # Override (+ Router)
    return (struct.pack("!BBHI", 136, 0, 0, flags) + socket.inet_pton(socket.AF_INET6, vip)
            + struct.pack("!BB", 2, 1) + mac)


class Garp:
    """Senders for one interface (sockets opened on first use and kept)."""

    def __init__(self, ifname: str, ifindex: int, mac: str) -> None:
        self.ifname, self.ifindex, self.mac = ifname, ifindex, mac_bytes(mac)
        self._arp: socket.socket | None = None
        self._icmp6: socket.socket | None = None
        self.sent = 0

    def send(self, vips: list[tuple[int, str]], src6: str | None = None) -> None:
        for family, vip in vips:
            try:
                if family == 4:
                    if self._arp is None:
                        self._arp = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
                        self._arp.bind((self.ifname, ETH_P_ARP))
                        self._arp.setblocking(False)
                    self._arp.send(arp_frame(self.mac, vip))
                else:
                    if self._icmp6 is None:
                        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                        s.setblocking(False)
                        if src6:
                            s.bind((src6, 0, 0, self.ifindex))
                        self._icmp6 = s
                    self._icmp6.sendto(na_message(self.mac, vip), (ALL_NODES, 0, 0, self.ifindex))
                self.sent += 1
            except OSError as e:
                log.warning("Cannot send gratuitous %s for %s on %s: %s", "ARP" if family == 4 else "NA", vip,
                            self.ifname, e.strerror)

    def close(self) -> None:
        for s in (self._arp, self._icmp6):
            if s is not None:
                s.close()
        self._arp = self._icmp6 = None
