"""TCP_CHECK: the real server is up when a TCP connection to it completes within connect_timeout."""

from __future__ import annotations

from checkerd.checks.base import Check, ConnectError, Result, connect_socket


class TcpCheck(Check):
    kind = "TCP_CHECK"

    async def run(self) -> Result:
        try:
            sock = await connect_socket(self.cfg)
        except ConnectError as e:
            word = "timeout" if str(e) == "Timeout connecting" else "failed"
            return Result.down(f"TCP connection to {self.target.rs_text} {word}: {e}")
        sock.close()
        return Result.up()
