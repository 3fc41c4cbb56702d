"""Raw VRRP sockets (IP protocol 112), one receive socket per (interface, family) shared by its instances.

keepalived's "sockpool": every instance on an interface and family shares one receive socket, and a
received packet is dispatched to the instance by VRID. Receive sockets are bound to the device
(SO_BINDTODEVICE) and join the multicast group(s) on it; they see unicast adverts to this host on that
device as well. Sending uses a second raw socket per (interface, family, source address), bound to the
source so the kernel writes it in the IP header (IPv4: TOS 0xc0, TTL/multicast TTL 255 or unicast_ttl;
IPv6: from the link-local address, hop limit 255). Multicast loopback is off: we never hear ourselves.

Nothing here raises on a bad packet: the reader counts a drop and goes on (see ``vrrpd.packet``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable

from vrrpd import packet as P

log = logging.getLogger("pykeepalived.vrrp")

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
RCVBUF = 1 << 20
MAX_PER_WAKEUP = 256  # bound one reader callback; the loop comes back for the rest

Dispatch = Callable[[P.Received], None]


def _mreqn(group: str, ifindex: int) -> bytes:
    return socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("@i", ifindex)


class RxSocket:
    """The receive socket of one interface and family; ``dispatch`` gets every parsed packet."""

    def __init__(self, ifname: str, ifindex: int, family: int, dispatch: Dispatch, counters: Counter[str]) -> None:
        self.ifname, self.ifindex, self.family = ifname, ifindex, family
        self.dispatch = dispatch
        self.counters = counters
        self.groups: set[str] = set()
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        self.sock = socket.socket(af, socket.SOCK_RAW, P.IPPROTO_VRRP)
        try:
            self.sock.setblocking(False)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            if family == 6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        except OSError:
            self.sock.close()
            raise

    def join(self, group: str) -> None:
        if group in self.groups:
            return
        if self.family == 4:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, _mreqn(group, self.ifindex))
        else:
            mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", self.ifindex)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        self.groups.add(group)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        try:
            if loop is not None:
                loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass
        self.sock.close()

    def _readable(self) -> None:
        for _ in range(MAX_PER_WAKEUP):
            try:
                if self.family == 4:
                    data = self.sock.recv(65535)
                    rx = P.parse_ipv4(data)
                else:
                    data, anc, _flags, addr = self.sock.recvmsg(65535, 256)
                    hop, dst = -1, ""
                    for level, kind, val in anc:
                        if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(val) >= 4:
                            hop = struct.unpack("@i", val[:4])[0]
                        elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(val) >= 16:
                            dst = socket.inet_ntop(socket.AF_INET6, val[:16])
                    rx = P.parse_ipv6(data, addr[0], dst, hop)
            except (BlockingIOError, InterruptedError):
                return
            except P.Drop as e:
                self.counters[e.reason] += 1
                continue
            except OSError as e:
                log.warning("VRRP socket on %s: %s", self.ifname, e.strerror)
                return
            try:
                self.dispatch(rx)
            except Exception:  # a bug in one packet's handling must not stop the socket
                self.counters["handler_error"] += 1
                log.exception("Error handling a VRRP packet on %s", self.ifname)


class TxSocket:
    """A send socket for one interface, family and source address."""

    def __init__(self, ifname: str, ifindex: int, family: int, src: str, ttl: int = 255) -> None:
        self.ifname, self.family, self.src = ifname, family, src
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        self.sock = socket.socket(af, socket.SOCK_RAW, P.IPPROTO_VRRP)
        try:
            self.sock.setblocking(False)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            if family == 4:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xC0)
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, _mreqn("0.0.0.0", ifindex))
                self.sock.bind((src, 0))
            else:
                self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, 0xC0)
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
                self.sock.bind((src, 0, 0, ifindex))
            self.ifindex = ifindex
            # We never read from it: a filter that matches nothing would be ideal; a tiny buffer will do.
        except OSError:
            self.sock.close()
            raise

    def send(self, msg: bytes, dst: str) -> bool:
        try:
            if self.family == 4:
                self.sock.sendto(msg, (dst, 0))
            else:
                self.sock.sendto(msg, (dst, 0, 0, self.ifindex))
            return True
        except OSError as e:
            log.warning("Cannot send a VRRP advert on %s to %s: %s", self.ifname, dst, e.strerror)
            return False

    def drain(self) -> None:
        # The raw socket also queues every VRRP packet it sees; empty it so it never grows.
        for _ in range(MAX_PER_WAKEUP):
            try:
                self.sock.recv(65535)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
