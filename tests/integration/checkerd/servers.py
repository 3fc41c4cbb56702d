"""Test servers for the checker tests, run inside a namespace: HTTP (+TLS), SMTP, DNS, UDP echo.

``python -m tests.integration.checkerd.servers --dir DIR --addr A [--http P] [--tls P --cert C --key K]
[--smtp P] [--dns P] [--udp P]`` prints ``ready`` once listening. Behaviour is chosen by the URL path
(HTTP) or by a mode file ``DIR/<service>.mode`` read at each request, so a test can take a server down
and back up without restarting it. Every HTTP request is appended, hex-encoded, to DIR/requests.log.
SMTP also takes mail (MAIL/RCPT/DATA) and appends each transcript to DIR/mail.log.
Every loop is bounded: the process exits by itself after --lifetime seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import sys

import dns.message
import dns.rcode

PATTERN = bytes(range(32, 127))


def body_of(n: int) -> bytes:
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


class Servers:
    def __init__(self, d: str) -> None:
        self.dir = d

    def mode(self, name: str, default: str = "ok") -> str:
        try:
            with open(os.path.join(self.dir, f"{name}.mode")) as f:
                return f.read().strip() or default
        except OSError:
            return default

    async def http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                req = await reader.readuntil(b"\r\n\r\n")
            with open(os.path.join(self.dir, "requests.log"), "a") as f:
                f.write(req.hex() + "\n")
            path = req.split(b" ")[1].decode()
            await self.respond(path, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, IndexError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def respond(self, path: str, w: asyncio.StreamWriter) -> None:
        parts = path.strip("/").split("/")
        kind, arg = parts[0], (parts[1] if len(parts) > 1 else "0")
        ok = b"HTTP/1.0 200 OK\r\nServer: t\r\n"
        if kind == "mode":
            m = self.mode("http")
            if m == "hang":
                await asyncio.sleep(60)
                return
            if m == "refuse":
                return
            status = 200 if m == "ok" else int(m) if m.isdigit() else 200
            body = b"hello world\n" if m != "other" else b"something else\n"
            w.write(b"HTTP/1.0 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
        elif kind == "cl":
            body = body_of(int(arg))
            w.write(ok + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        elif kind == "nocl":
            w.write(ok + b"\r\n" + body_of(int(arg)))
        elif kind == "clshort":  # Content-Length smaller than what is sent: the digest stops at it
            w.write(ok + b"Content-Length: %d\r\n\r\n" % int(arg) + body_of(int(arg) + 50))
        elif kind == "chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            body = body_of(int(arg))
            for i in range(0, len(body), 1000):
                c = body[i:i + 1000]
                w.write(b"%x\r\n%s\r\n" % (len(c), c))
                await w.drain()
            w.write(b"0\r\n\r\n")
        elif kind == "status":
            w.write(b"HTTP/1.0 %s Whatever\r\nContent-Length: 2\r\n\r\nok" % arg.encode())
        elif kind == "garbage":
            w.write(os.urandom(3000))
        elif kind == "noheaderend":
            for i in range(2000):  # a header that never ends: far more than keepalived's 4095 bytes
                w.write(b"X-Filler-%d: %s\r\n" % (i, b"y" * 40))
                await w.drain()
        elif kind == "hang":
            await asyncio.sleep(60)
        elif kind == "huge":  # 100 MB announced and sent
            n = 100 * 1024 * 1024
            w.write(ok + b"Content-Length: %d\r\n\r\n" % n)
            chunk = b"z" * 65536
            for _ in range(n // len(chunk)):
                w.write(chunk)
                await w.drain()
        elif kind == "endless":  # a body that never ends (bounded here by --lifetime)
            w.write(ok + b"\r\n")
            while True:
                w.write(b"z" * 1024)
                await w.drain()
                await asyncio.sleep(0.01)
        elif kind == "midclose":
            w.write(ok + b"Content-Length: 1000\r\n\r\n" + b"partial")
        await w.drain()

    async def smtp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            m = self.mode("smtp")
            if m == "hang":
                await asyncio.sleep(60)
                return
            writer.write(b"220-t.example ESMTP\r\n220 ready\r\n" if m == "ok" else b"554 go away\r\n")
            transcript = bytearray()
            async with asyncio.timeout(30):
                while line := await reader.readline():
                    transcript += line
                    cmd = line.split(b" ")[0].split(b":")[0].strip().upper()
                    if cmd == b"HELO":
                        writer.write(b"250-hello\r\n250 there\r\n")
                    elif cmd in (b"MAIL", b"RCPT"):
                        writer.write(b"250 ok\r\n")
                    elif cmd == b"DATA":  # a sink for smtp_alert: keep the message, say it is queued
                        writer.write(b"354 go on\r\n")
                        await writer.drain()
                        transcript += await reader.readuntil(b"\r\n.\r\n")
                        writer.write(b"250 queued\r\n")
                    elif cmd == b"QUIT":
                        writer.write(b"221 bye\r\n")
                        break
                    await writer.drain()
            if b"DATA" in transcript:
                with open(os.path.join(self.dir, "mail.log"), "ab") as f:
                    f.write(bytes(transcript) + b"\n=====\n")
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


class Dns(asyncio.DatagramProtocol):
    def __init__(self, s: Servers) -> None:
        self.s = s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        m = self.s.mode("dns")
        if m == "silent":
            return
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return
        r = dns.message.make_response(q)
        if m == "servfail":
            r.set_rcode(dns.rcode.SERVFAIL)
        self.t.sendto(r.to_wire(), addr)  # type: ignore[attr-defined]


class Echo(asyncio.DatagramProtocol):
    def __init__(self, s: Servers) -> None:
        self.s = s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        m = self.s.mode("udp")
        if m == "ok":
            self.t.sendto(data, addr)  # type: ignore[attr-defined]
        elif m == "other":
            self.t.sendto(b"\xff" * len(data), addr)  # type: ignore[attr-defined]


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--addr", default="127.0.0.1")
    for name in ("http", "tls", "smtp", "dns", "udp"):
        p.add_argument(f"--{name}", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--lifetime", type=float, default=300)
    a = p.parse_args()
    s = Servers(a.dir)
    loop = asyncio.get_running_loop()
    servers = []
    if a.http:
        servers.append(await asyncio.start_server(s.http, a.addr, a.http))
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        servers.append(await asyncio.start_server(s.http, a.addr, a.tls, ssl=ctx))
    if a.smtp:
        servers.append(await asyncio.start_server(s.smtp, a.addr, a.smtp))
    if a.dns:
        await loop.create_datagram_endpoint(lambda: Dns(s), local_addr=(a.addr, a.dns))
    if a.udp:
        await loop.create_datagram_endpoint(lambda: Echo(s), local_addr=(a.addr, a.udp))
    print("ready", flush=True)
    await asyncio.sleep(a.lifetime)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    sys.exit(0)
