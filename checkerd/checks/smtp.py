"""SMTP_CHECK: a 220 greeting, ``HELO <helo_name>`` answered by 250, then QUIT (check_smtp.c)."""

from __future__ import annotations

import asyncio
import contextlib

from checkerd.checks.base import Check, ConnectError, Result, connect_socket
from supervisor.config.model.checkers import SMTP_DEFAULT_HELO

MAX_REPLY = 4096  # bytes of one reply kept at most: a server that babbles is down, not a memory hog


async def read_reply(reader: asyncio.StreamReader, timeout: float) -> int:
    """The code of one (possibly multi-line) SMTP reply; 0 for something that is not SMTP."""
    total = 0
    async with asyncio.timeout(timeout):
        while True:
            line = await reader.readline()
            total += len(line)
            if not line or total > MAX_REPLY or len(line) < 4 or not line[:3].isdigit():
                return 0
            if line[3:4] != b"-":
                return int(line[:3])


class SmtpCheck(Check):
    kind = "SMTP_CHECK"

    async def run(self) -> Result:
        rs = self.target.rs_text
        try:
            sock = await connect_socket(self.cfg)
        except ConnectError as e:
            return Result.down(f"SMTP connection to {rs}: {e}")
        t = self.cfg.connect_timeout
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_REPLY)
        try:
            code = await read_reply(reader, t)
            if code != 220:
                return Result.down(f"SMTP server {rs} greeting: bad reply {code}")
            writer.write(f"HELO {self.cfg.helo_name or SMTP_DEFAULT_HELO}\r\n".encode())
            code = await read_reply(reader, t)
            if code != 250:
                return Result.down(f"SMTP server {rs} HELO: bad reply {code}")
            writer.write(b"QUIT\r\n")
            return Result.up()
        except TimeoutError:
            return Result.down(f"Timeout reading data from SMTP server {rs}")
        except (OSError, ValueError, asyncio.LimitOverrunError) as e:
            return Result.down(f"SMTP server {rs}: read error ({e})")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    await writer.wait_closed()
