"""DNS_CHECK: a UDP query (type/name, RD set); up when an answer with the same id and rcode 0 comes back.

Messages are built and parsed with dnspython; anything that is not a DNS response to our query
(wrong id, not a response, garbage) is ignored until the read timeout, as keepalived does.
"""

from __future__ import annotations

import asyncio
import socket

import dns.exception
import dns.flags
import dns.message
import dns.rdatatype

from checkerd.checks.base import Check, Result, make_socket


class DnsCheck(Check):
    kind = "DNS_CHECK"

    async def run(self) -> Result:
        cfg = self.cfg
        assert cfg.connect_ip is not None
        pre = f"DNS_CHECK ({self.target.rs_text})"
        query = dns.message.make_query(cfg.dns_name or ".", dns.rdatatype.from_text(cfg.dns_type or "SOA"),
                                       use_edns=False)
        query.flags |= dns.flags.RD
        loop = asyncio.get_running_loop()
        try:
            sock = make_socket(cfg, socket.SOCK_DGRAM)
        except OSError as e:
            return Result.down(f"{pre} socket error: {e.strerror}")
        try:
            try:
                sock.connect((cfg.connect_ip, cfg.connect_port))
                await loop.sock_sendall(sock, query.to_wire())
            except OSError:
                return Result.down(f"{pre} failed to write socket.")
            try:
                async with asyncio.timeout(cfg.connect_timeout):
                    while True:
                        data = await loop.sock_recv(sock, 65535)
                        try:
                            reply = dns.message.from_wire(data)
                        except (dns.exception.DNSException, ValueError):
                            continue  # garbage: dropped, keep waiting for the real answer
                        if reply.id != query.id or not reply.flags & dns.flags.QR:
                            continue
                        if reply.rcode() != 0:
                            return Result.down(f"{pre} read error occurred. (rcode = {reply.rcode()})")
                        return Result.up()
            except TimeoutError:
                return Result.down(f"{pre} read timeout from socket")
            except OSError as e:
                return Result.down(f"{pre} failed to read socket; errno {e.errno} ({e.strerror})")
        finally:
            sock.close()
