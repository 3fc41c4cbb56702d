"""PING_CHECK: one ICMP or ICMPv6 echo, answered within connect_timeout.

An unprivileged datagram ICMP socket is used when ``net.ipv4.ping_group_range`` allows it (the kernel
then matches replies to our socket); otherwise a raw socket (root), filtering replies by identifier,
sequence and source.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

from checkerd.checks.base import Check, Result, family_of

_seq = 0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class PingCheck(Check):
    kind = "PING_CHECK"

    async def run(self) -> Result:
        global _seq
        cfg = self.cfg
        assert cfg.connect_ip is not None
        rs = self.target.rs_text
        fam = family_of(cfg.connect_ip)
        v6 = fam == socket.AF_INET6
        proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
        req_type, rep_type = (128, 129) if v6 else (8, 0)
        _seq = (_seq + 1) & 0xFFFF
        ident = os.getpid() & 0xFFFF
        raw = False
        try:
            sock = socket.socket(fam, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
        except OSError:
            try:
                sock = socket.socket(fam, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
                raw = True
            except OSError as e:
                return Result.down(f"PING_CHECK to {rs}: cannot open an ICMP socket ({e.strerror})")
        try:
            if cfg.bind_if:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, cfg.bind_if.encode())
            if cfg.bindto:
                sock.bind((cfg.bindto, 0))
            payload = struct.pack("!d", time.time()) + b"pykeepalived"
            hdr = struct.pack("!BBHHH", req_type, 0, 0, ident, _seq)
            csum = 0 if v6 else checksum(hdr + payload)  # the kernel sums ICMPv6 (and DGRAM v4 fills id)
            pkt = struct.pack("!BBHHH", req_type, 0, csum, ident, _seq) + payload
            loop = asyncio.get_running_loop()
            await loop.sock_sendto(sock, pkt, (cfg.connect_ip, 0))
            async with asyncio.timeout(cfg.connect_timeout):
                while True:
                    data, addr = await loop.sock_recvfrom(sock, 2048)
                    if raw and not v6:
                        data = data[(data[0] & 0x0F) * 4:]  # raw IPv4 sockets include the IP header
                    if len(data) < 8 or data[0] != rep_type:
                        continue
                    _, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
                    if rseq != _seq or (raw and (rid != ident or addr[0] != cfg.connect_ip)):
                        continue
                    return Result.up()
        except TimeoutError:
            return Result.down(f"PING_CHECK to {rs}: no echo reply")
        except OSError as e:
            return Result.down(f"PING_CHECK to {rs}: {e.strerror}")
        finally:
            sock.close()
