"""smtp_alert: mail a state change to notification_email through smtp_server, never blocking the loop.

A minimal SMTP client on asyncio streams (HELO, MAIL FROM, RCPT TO, DATA, QUIT), bounded by
smtp_connect_timeout for every step; a failure is logged and the alert is lost (as keepalived's is).
Alerts go out one at a time from a small queue so a slow server never piles up connections.
Subject and body follow keepalived's wording ("[router_id] VRRP Instance VI_1 - Entering MASTER
state", "=> VRRP Instance is now owning VRRP VIPs <=").
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field
from email.utils import formatdate

log = logging.getLogger("pykeepalived.vrrp")

BODIES = {"MASTER": "=> VRRP Instance is now owning VRRP VIPs <=",
          "BACKUP": "=> VRRP Instance is nolonger owning VRRP VIPs <=",
          "FAULT": "=> VRRP Instance is in FAULT state <=",
          "STOP": "=> VRRP Instance stopped <="}
QUEUE_MAX = 100


@dataclass
class Mailer:
    server: str
    port: int = 25
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    router_id: str = ""
    helo: str = ""
    timeout: float = 30.0
    sent: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(QUEUE_MAX)
        self.task: asyncio.Task[None] | None = None
        self.router_id = self.router_id or socket.gethostname()
        self.sender = self.sender or f"keepalived@{self.router_id}"

    def alert(self, instance: str, state: str, kind: str = "VRRP Instance") -> None:
        subject = f"[{self.router_id}] {kind} {instance} - Entering {state} state"
        try:
            self.queue.put_nowait((subject, BODIES.get(state, "")))
        except asyncio.QueueFull:
            self.failed += 1
            return
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while not self.queue.empty():
            subject, body = self.queue.get_nowait()
            try:
                await asyncio.wait_for(self._send(subject, body), self.timeout)
                self.sent += 1
            except (OSError, TimeoutError, ValueError) as e:
                self.failed += 1
                log.warning("Error sending SMTP alert to %s:%d: %s", self.server, self.port, e or "timeout")

    async def _send(self, subject: str, body: str) -> None:
        reader, writer = await asyncio.open_connection(self.server, self.port)
        try:
            async def expect(code: str) -> None:
                while True:
                    line = (await reader.readline()).decode(errors="replace")
                    if not line:
                        raise ValueError("connection closed by the SMTP server")
                    if len(line) < 4 or line[3] != "-":
                        break
                if not line.startswith(code):
                    raise ValueError(f"SMTP server said: {line.strip()}")

            async def cmd(text: str, code: str) -> None:
                writer.write(text.encode() + b"\r\n")
                await writer.drain()
                await expect(code)

            await expect("220")
            await cmd(f"HELO {self.helo or self.router_id}", "250")
            await cmd(f"MAIL FROM:<{self.sender}>", "250")
            for rcpt in self.recipients:
                await cmd(f"RCPT TO:<{rcpt}>", "250")
            await cmd("DATA", "354")
            headers = [f"From: {self.sender}", f"Subject: {subject}", "X-Mailer: Keepalived",
                       f"To: {', '.join(self.recipients)}", f"Date: {formatdate(time.time(), localtime=True)}"]
            text = "\r\n".join([*headers, "", body, ""]).replace("\r\n.", "\r\n..")
            await cmd(text + "\r\n.", "250")
            writer.write(b"QUIT\r\n")
            await writer.drain()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
