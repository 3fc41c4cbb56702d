"""VRRP advertisement codec: build and check VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) packets.

Wire formats (all fields network order)::

    v2 (IPv4 only)                          v3 (IPv4 and IPv6)
    0: version(4) | type(4)                 0: version(4) | type(4)
    1: VRID                                 1: VRID
    2: priority                             2: priority
    3: count of addresses                   3: count of addresses
    4: auth type                            4: reserved(4) | max advert interval(12, centiseconds)
    5: advert interval (seconds)
    6: checksum(16)                         6: checksum(16)
    8: addresses (4 bytes each)             8: addresses (4 or 16 bytes each)
       authentication data (8 bytes)

The v2 checksum covers the VRRP message; the v3 checksum also covers the IP pseudo-header
{src, dst, 0, 112, length} (IPv6: {src, dst, length(32), 0, 112}), except with ``v3_checksum_as_v2``
(Cisco/Juniper compatibility), which keeps the v2 rule for IPv4.

Receiving is split in two: :func:`parse_ipv4` / :func:`parse_ipv6` take what a raw socket gives and return
the sender, destination, TTL/hop limit and VRRP bytes; :func:`check` validates those against one
instance's :class:`RxContext` in keepalived's order (length, TTL, version, auth type, password, v2
interval, type, checksum, multicast/unicast destination, address list). Nothing here raises on input:
a bad packet gives a :class:`Drop` with a stable reason key, which the role counts.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import struct
from dataclasses import dataclass, field

IPPROTO_VRRP = 112
VRRP_TYPE_ADVERT = 1
AUTH_NONE, AUTH_PASS, AUTH_AH = 0, 1, 2
AUTH_TYPES = {None: AUTH_NONE, "PASS": AUTH_PASS, "AH": AUTH_AH}
HEADER_LEN = 8
AUTH_LEN = 8
MCAST4 = "224.0.0.18"
MCAST6 = "ff02::12"

# Reason keys (stable: they are the names of the drop counters published by the role).
R_TRUNCATED = "truncated"  # shorter than an IP or VRRP header
R_IP_HEADER = "ip_header"  # not IPv4/112, bad IHL or total length
R_LENGTH = "packet_len_err"  # VRRP length does not match the address count
R_TTL = "ip_ttl_err"  # multicast TTL/hop limit not 255, or unicast outside [min_ttl, max_ttl]
R_UNICAST_SRC = "unicast_src_err"  # check_unicast_src: sender not among unicast_peer
R_VERSION = "version_err"
R_AUTH_TYPE = "auth_type_mismatch"
R_AUTH = "auth_failure"
R_INTERVAL = "advert_interval_err"
R_TYPE = "invalid_type"
R_CHECKSUM = "checksum_err"
R_DEST = "dest_mismatch"  # multicast packet on a unicast instance or the reverse
R_VRID = "unknown_vrid"  # no instance with this VRID on the socket
R_OWN = "own_packet"  # our own advert looped back
R_OWNER_IGNORE = "owner_ignore"  # owner_ignore_adverts
R_ADDR_LIST = "addr_list_err"  # counted, the advert still used (dropped in strict mode)
DROP_REASONS = (R_TRUNCATED, R_IP_HEADER, R_LENGTH, R_TTL, R_UNICAST_SRC, R_VERSION, R_AUTH_TYPE, R_AUTH,
                R_INTERVAL, R_TYPE, R_CHECKSUM, R_DEST, R_VRID, R_OWN, R_OWNER_IGNORE, R_ADDR_LIST)


class Drop(Exception):
    """A packet that fails a check; ``reason`` is one of the keys above."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def inet_csum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: 0 when ``data`` includes a correct checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(family: int, src: str, dst: str, length: int) -> bytes:
    if family == 4:
        return socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst) + struct.pack(
            "!BBH", 0, IPPROTO_VRRP, length)
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!I3xB", length, IPPROTO_VRRP))


def pass_bytes(auth_pass: str | None) -> bytes:
    """keepalived keeps the first 8 characters of auth_pass, NUL-padded."""
    return (auth_pass or "").encode()[:AUTH_LEN].ljust(AUTH_LEN, b"\0")


@dataclass(frozen=True, slots=True)
class Advert:
    version: int
    vrid: int
    priority: int
    interval_cs: int  # advert interval in centiseconds (v2: seconds x 100)
    addresses: tuple[str, ...] = ()
    auth_type: int = AUTH_NONE  # v2 only
    auth_data: bytes = b""  # v2 only, 8 bytes
    type: int = VRRP_TYPE_ADVERT
    checksum: int = 0
    naddr: int = -1  # the count field as received (-1: len(addresses))


def build(version: int, family: int, vrid: int, priority: int, interval_cs: int, addresses: tuple[str, ...] | list[str],
          *, src: str = "", dst: str = "", auth_type: int = AUTH_NONE, auth_pass: bytes = b"",
          checksum_as_v2: bool = False) -> bytes:
    """The VRRP message (without the IP header). v3 needs ``src``/``dst`` for the pseudo-header."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    addrs = b"".join(socket.inet_pton(af, a) for a in addresses)
    if version == 2:
        secs = max(1, min(255, round(interval_cs / 100)))
        head = struct.pack("!BBBBBBH", 0x20 | VRRP_TYPE_ADVERT, vrid, priority, len(addresses), auth_type, secs, 0)
        body = head + addrs + (auth_pass.ljust(AUTH_LEN, b"\0")[:AUTH_LEN] if auth_type == AUTH_PASS
                               else b"\0" * AUTH_LEN)
        csum = inet_csum(body)
    else:
        head = struct.pack("!BBBBHH", 0x30 | VRRP_TYPE_ADVERT, vrid, priority, len(addresses),
                           interval_cs & 0x0FFF, 0)
        body = head + addrs
        if family == 4 and checksum_as_v2:
            csum = inet_csum(body)
        else:
            csum = inet_csum(pseudo_header(family, src, dst, len(body)) + body)
    return body[:6] + struct.pack("!H", csum) + body[8:]


def rechecksum_v3(msg: bytes, family: int, src: str, dst: str, checksum_as_v2: bool = False) -> bytes:
    """``msg`` with its v3 checksum recomputed for another destination (unicast peers)."""
    body = msg[:6] + b"\0\0" + msg[8:]
    if family == 4 and checksum_as_v2:
        csum = inet_csum(body)
    else:
        csum = inet_csum(pseudo_header(family, src, dst, len(body)) + body)
    return body[:6] + struct.pack("!H", csum) + body[8:]


def decode(msg: bytes, family: int) -> Advert:
    """The fields of a VRRP message (no semantic checks beyond what is needed to read it)."""
    if len(msg) < HEADER_LEN:
        raise Drop(R_TRUNCATED, f"{len(msg)} bytes")
    vt, vrid, prio, naddr = msg[0], msg[1], msg[2], msg[3]
    version, typ = vt >> 4, vt & 0x0F
    csum = struct.unpack_from("!H", msg, 6)[0]
    alen = 4 if family == 4 else 16
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    if version == 2:
        auth_type, interval_cs = msg[4], msg[5] * 100
    else:
        auth_type, interval_cs = AUTH_NONE, struct.unpack_from("!H", msg, 4)[0] & 0x0FFF
    avail = max(0, (len(msg) - HEADER_LEN) // alen)
    n = min(naddr, avail)
    addrs = tuple(socket.inet_ntop(af, msg[HEADER_LEN + i * alen:HEADER_LEN + (i + 1) * alen]) for i in range(n))
    auth_data = b""
    if version == 2 and family == 4:
        end = HEADER_LEN + naddr * alen
        auth_data = msg[end:end + AUTH_LEN]
    return Advert(version=version, vrid=vrid, priority=prio, interval_cs=interval_cs, addresses=addrs,
                  auth_type=auth_type, auth_data=auth_data, type=typ, checksum=csum, naddr=naddr)


@dataclass(frozen=True, slots=True)
class Received:
    """One packet as a raw socket gave it: where from, where to, TTL/hop limit, and the VRRP bytes."""

    family: int
    src: str
    dst: str
    ttl: int
    msg: bytes

    @property
    def vrid(self) -> int:
        return self.msg[1] if len(self.msg) >= 2 else -1


def parse_ipv4(data: bytes) -> Received:
    """An IPv4 datagram from a raw IPPROTO_VRRP socket (the kernel includes the IP header)."""
    if len(data) < 20:
        raise Drop(R_TRUNCATED, f"{len(data)} bytes")
    vihl = data[0]
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or len(data) < ihl:
        raise Drop(R_IP_HEADER, "bad version or header length")
    tot_len = struct.unpack_from("!H", data, 2)[0]
    if tot_len < ihl or tot_len > len(data):
        raise Drop(R_IP_HEADER, f"total length {tot_len}, received {len(data)}")
    if data[9] != IPPROTO_VRRP:
        raise Drop(R_IP_HEADER, f"protocol {data[9]}")
    src = socket.inet_ntop(socket.AF_INET, data[12:16])
    dst = socket.inet_ntop(socket.AF_INET, data[16:20])
    # Ethernet padding beyond tot_len is ignored (the kernel normally trims it already).
    return Received(4, src, dst, data[8], bytes(data[ihl:tot_len]))


def parse_ipv6(data: bytes, src: str, dst: str, hoplimit: int) -> Received:
    """An IPv6 payload from a raw socket (no header: sender from recvmsg, the rest from ancillary data)."""
    if "%" in src:
        src = src.split("%", 1)[0]
    return Received(6, src, dst, hoplimit, bytes(data))


@dataclass(frozen=True)
class RxContext:
    """What one instance checks a received advert against."""

    version: int
    family: int
    vrid: int
    interval_cs: int
    vips: frozenset[str] = frozenset()
    auth_type: int = AUTH_NONE
    auth_pass: bytes = b""
    unicast: bool = False
    unicast_peers: dict[str, tuple[int, int]] = field(default_factory=dict)  # peer -> (min_ttl, max_ttl)
    check_unicast_src: bool = False
    checksum_as_v2: bool = False
    owner_ignore_adverts: bool = False
    own_addresses: frozenset[str] = frozenset()
    strict_addresses: bool = False  # vrrp_strict (without skip_check_adv_addr): a wrong address list drops


@dataclass(frozen=True, slots=True)
class Checked:
    advert: Advert
    src: str
    addr_list_ok: bool


def _is_multicast(addr: str) -> bool:
    # cheaper than ipaddress on the per-packet path (addresses here come from inet_ntop)
    if ":" in addr:
        return addr[:2].lower() == "ff"
    head = addr.split(".", 1)[0]
    return head.isdigit() and 224 <= int(head) <= 239


def check(rx: Received, ctx: RxContext) -> Checked:
    """Validate one received packet for one instance, in keepalived's order; raises :class:`Drop`."""
    msg = rx.msg
    if len(msg) < HEADER_LEN:
        raise Drop(R_TRUNCATED, f"{len(msg)} bytes")
    if rx.src in ctx.own_addresses:
        raise Drop(R_OWN)
    version = msg[0] >> 4
    alen = 4 if rx.family == 4 else 16
    # 1. Length: header + addresses (+ v2 IPv4 authentication data), by the packet's own count.
    expect = HEADER_LEN + msg[3] * alen + (AUTH_LEN if version == 2 and rx.family == 4 else 0)
    if len(msg) != expect:
        raise Drop(R_LENGTH, f"length {len(msg)}, expected {expect} for {msg[3]} addresses")
    # 2. TTL / hop limit: 255 for multicast; for unicast only checked when asked (peers' ranges).
    multicast = _is_multicast(rx.dst)
    if multicast:
        if rx.ttl != 255:
            raise Drop(R_TTL, f"TTL {rx.ttl}")
    elif ctx.check_unicast_src or any(r != (0, 255) for r in ctx.unicast_peers.values()):
        rng = ctx.unicast_peers.get(rx.src)
        if rng is None:
            raise Drop(R_UNICAST_SRC, f"{rx.src} is not a unicast peer")
        if not rng[0] <= rx.ttl <= rng[1]:
            raise Drop(R_TTL, f"TTL {rx.ttl} outside {rng[0]}-{rng[1]}")
    # 3. Version.
    if version != ctx.version:
        raise Drop(R_VERSION, f"version {version}")
    adv = decode(msg, rx.family)
    if version == 2:
        # 5. Authentication type, 6. password (constant time).
        if adv.auth_type != ctx.auth_type:
            raise Drop(R_AUTH_TYPE, f"auth type {adv.auth_type}")
        if ctx.auth_type == AUTH_PASS and not hmac.compare_digest(adv.auth_data, ctx.auth_pass):
            raise Drop(R_AUTH, "password mismatch")
        # 7. v2 interval must equal ours.
        if adv.interval_cs != ctx.interval_cs:
            raise Drop(R_INTERVAL, f"advert interval {adv.interval_cs // 100}s, ours {ctx.interval_cs // 100}s")
    # 8. Type.
    if adv.type != VRRP_TYPE_ADVERT:
        raise Drop(R_TYPE, f"type {adv.type}")
    # 10. Checksum.
    if version == 2 or (rx.family == 4 and ctx.checksum_as_v2):
        ok = inet_csum(msg) == 0
    else:
        ok = inet_csum(pseudo_header(rx.family, rx.src, rx.dst, len(msg)) + msg) == 0
    if not ok:
        raise Drop(R_CHECKSUM, f"checksum 0x{adv.checksum:04x}")
    # 11. Multicast packet on a unicast instance, or the reverse.
    if multicast == ctx.unicast:
        raise Drop(R_DEST, f"destination {rx.dst}")
    if ctx.owner_ignore_adverts:
        raise Drop(R_OWNER_IGNORE)
    # 13. Address list: counted when it differs, the advert is still used.
    addr_ok = adv.naddr == len(ctx.vips) and (frozenset(adv.addresses) == ctx.vips
                                              or frozenset(_canon(a) for a in adv.addresses) == ctx.vips)
    if not addr_ok and ctx.strict_addresses:
        raise Drop(R_ADDR_LIST, f"{adv.naddr} addresses, ours {len(ctx.vips)}")
    return Checked(adv, rx.src, addr_ok)


def _canon(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr
