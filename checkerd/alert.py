"""smtp_alert for real-server changes: keepalived's alert mail, sent without blocking the checkers.

When a real server with ``smtp_alert`` goes up or down and global_defs has ``smtp_server`` and at
least one ``notification_email``, one mail goes out: ``HELO <smtp_helo_name|localhost>``,
``MAIL FROM:<notification_email_from>``, one ``RCPT TO:<…>`` per address, then a message with
``Date``, ``From``, ``Subject: [<router_id>] Realserver <rs> of virtual server <vs> - UP|DOWN``,
``X-Mailer: Keepalived`` and ``To``, and a body saying which check changed (keepalived's
``=> TCP CHECK failed on service <=`` style) and why. Every step waits at most
``smtp_connect_timeout``; a failure is logged and dropped (keepalived does not retry either). Each
mail is its own task, and at most :data:`MAX_PENDING` are in flight: an unreachable mail server
during a mass failure cannot pile up sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.config.model.globals import GlobalDefs

log = logging.getLogger("pykeepalived.checker")

MAX_PENDING = 64


class SmtpError(Exception):
    pass


@dataclass
class Mailer:
    server: str
    port: int
    helo: str
    sender: str
    to: list[str]
    timeout: float
    router_id: str
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    sent: int = 0
    failed: int = 0

    @classmethod
    def of(cls, g: GlobalDefs) -> Mailer | None:
        """The mailer global_defs configures, or None when alerts cannot be sent."""
        if not g.smtp_server or not g.notification_email:
            return None
        return cls(g.smtp_server, g.smtp_port, g.smtp_helo_name or "localhost",
                   g.notification_email_from or f"keepalived@{socket.gethostname()}",
                   list(g.notification_email), g.smtp_connect_timeout, g.router_id or socket.gethostname())

    def message(self, subject: str, body: str) -> bytes:
        to = ",\r\n ".join(self.to)
        text = (f"Date: {email.utils.formatdate(localtime=True)}\r\nFrom: {self.sender}\r\n"
                f"Subject: {subject}\r\nX-Mailer: Keepalived\r\nTo: {to}\r\n\r\n{body}\r\n")
        # dot-stuffing: a body line starting with "." must not end the DATA section early
        return "\r\n".join("." + ln if ln.startswith(".") else ln for ln in text.split("\r\n")).encode()

    def alert_rs(self, rs_text: str, vs_text: str, up: bool, body: str) -> None:
        subject = f"[{self.router_id}] Realserver {rs_text} of virtual server {vs_text} - {'UP' if up else 'DOWN'}"
        self.send(subject, body)

    def send(self, subject: str, body: str) -> None:
        if len(self.tasks) >= MAX_PENDING:
            self.failed += 1
            log.warning("SMTP alert dropped (%d alerts already pending): %s", len(self.tasks), subject)
            return
        t = asyncio.get_running_loop().create_task(self._send(subject, body), name="smtp_alert")
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _send(self, subject: str, body: str) -> None:
        where = f"[{self.server}]:{self.port}"
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.server, self.port)
            log.info("Remote SMTP server %s connected.", where)

            async def step(line: bytes | None, want: int) -> None:
                assert writer is not None
                if line is not None:
                    writer.write(line)
                async with asyncio.timeout(self.timeout):
                    await writer.drain()
                    while True:  # multi-line replies: "250-…" lines, then "250 …"
                        reply = await reader.readline()
                        if not reply:
                            raise SmtpError("connection closed")
                        if reply[3:4] != b"-":
                            break
                if not reply[:3].isdigit() or int(reply[:3]) != want:
                    raise SmtpError(f"unexpected reply {reply[:60].decode(errors='replace').strip()!r}")

            await step(None, 220)
            await step(f"HELO {self.helo}\r\n".encode(), 250)
            await step(f"MAIL FROM:<{self.sender}>\r\n".encode(), 250)
            for rcpt in self.to:
                await step(f"RCPT TO:<{rcpt}>\r\n".encode(), 250)
            await step(b"DATA\r\n", 354)
            await step(self.message(subject, body) + b"\r\n.\r\n", 250)
            await step(b"QUIT\r\n", 221)
            self.sent += 1
            log.info("SMTP alert successfully sent.")
        except (OSError, TimeoutError, SmtpError) as e:
            self.failed += 1
            why = "timeout" if isinstance(e, TimeoutError) else str(e)
            log.warning("Error sending SMTP alert to %s: %s", where, why)
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1):
                        await writer.wait_closed()

    def stop(self) -> None:
        for t in self.tasks:
            t.cancel()


def check_body(kind: str, up: bool, reason: str) -> str:
    """keepalived's body line for a checker change (``=> TCP CHECK failed on service <=``) and why."""
    name = {"HTTP_GET": "HTTP CHECK", "SSL_GET": "HTTP CHECK"}.get(kind, kind.replace("_CHECK", " CHECK"))
    line = f"=> {name} {'succeed' if up else 'failed'} on service <="
    return f"{line}\r\n{reason}" if reason else line
