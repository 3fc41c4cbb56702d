"""UDP_CHECK: send a payload; an ICMP unreachable means down, silence means up unless a reply is required.

With ``require_reply`` the reply must arrive within connect_timeout, be min_reply_length …
max_reply_length bytes long and start with the ``reply`` pattern (hex, ``x`` nibbles match anything).
"""

from __future__ import annotations

import asyncio
import os
import socket

from checkerd.checks.base import Check, Result, make_socket


def reply_matches(data: bytes, pattern: str) -> bool:
    """``pattern``: hex digits two per octet, ``x`` a wildcard nibble; compared with the reply's start."""
    if len(data) * 2 < len(pattern):
        return False
    want = pattern.lower()
    got = data.hex()
    return all(w == "x" or w == g for w, g in zip(want, got, strict=False))


class UdpCheck(Check):
    kind = "UDP_CHECK"

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.payload = bytes.fromhex(self.cfg.payload) if self.cfg.payload else None

    async def run(self) -> Result:
        cfg = self.cfg
        assert cfg.connect_ip is not None
        rs = self.target.rs_text
        loop = asyncio.get_running_loop()
        try:
            sock = make_socket(cfg, socket.SOCK_DGRAM)
        except OSError as e:
            return Result.down(f"UDP socket to {rs}: {e.strerror}")
        try:
            try:
                sock.connect((cfg.connect_ip, cfg.connect_port))
                await loop.sock_sendall(sock, self.payload if self.payload is not None else os.urandom(16))
                async with asyncio.timeout(cfg.connect_timeout):
                    data = await loop.sock_recv(sock, cfg.max_reply_length + 1)
            except TimeoutError:
                if cfg.require_reply:
                    return Result.down(f"UDP connection to {rs} failed: no reply")
                return Result.up()
            except OSError as e:
                return Result.down(f"UDP connection to {rs} failed: {e.strerror}")
            if cfg.require_reply:
                if not cfg.min_reply_length <= len(data) <= cfg.max_reply_length or (
                        cfg.reply and not reply_matches(data, cfg.reply)):
                    return Result.down(f"UDP check to {rs} reply data mismatch.")
            return Result.up()
        finally:
            sock.close()
