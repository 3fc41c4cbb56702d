"""TCP_CHECK: the real server is up when a TCP connection to it completes within connect_timeout.

The usual path is :class:`TcpAttempt`: a non-blocking ``connect()`` watched by the reactor's epoll,
``SO_ERROR`` read when it is writable, the socket closed at once; its timeout is a reactor timer that
does nothing if the connect already ended. :meth:`TcpCheck.run` is the same check as a coroutine.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from checkerd.checks.base import (
    Check,
    ConnectError,
    RawAttempt,
    Result,
    connect_error_text,
    connect_now,
    connect_socket,
    connect_state,
    make_raw_socket,
)
from checkerd.reactor import OUT, Reactor, reactor


class TcpCheck(Check):
    kind = "TCP_CHECK"

    def failed(self, why: str) -> Result:
        word = "timeout" if why == "Timeout connecting" else "failed"
        return Result.down(f"TCP connection to {self.target.rs_text} {word}: {why}")

    async def run(self) -> Result:
        try:
            sock = await connect_socket(self.cfg)
        except ConnectError as e:
            return self.failed(str(e))
        sock.close()
        return Result.up()

    def attempt(self, done: Callable[[Result], None], r: Reactor | None = None) -> TcpAttempt:
        return TcpAttempt(self, r or reactor(), done)


class TcpAttempt(RawAttempt):
    __slots__ = ("check",)

    def __init__(self, check: TcpCheck, r: Reactor, done: Callable[[Result], None]) -> None:
        super().__init__(r, done)
        self.check = check

    def start(self) -> None:
        cfg = self.check.cfg
        try:
            s = make_raw_socket(cfg)
        except OSError as e:
            return self._end(self.check.failed(f"socket bind failed ({e.strerror})"))
        err = connect_now(s, self.check.address)
        if err is not None:
            s.close()
            return self._end(Result.up() if err == 0 else self.check.failed(connect_error_text(err)))
        self.sock = s
        self.r.register(s.fileno(), OUT, self._ready)
        self.r.call_later(cfg.connect_timeout, self._timeout)

    def _ready(self, events: int) -> None:
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._end(Result.up() if err == 0 else self.check.failed(connect_error_text(err)))

    def _timeout(self, _: object) -> None:
        if self.over or self.sock is None:
            return
        # A late loop may run this before the event of a connect that made it in time: ask first.
        err = connect_state(self.sock)
        if err is None:
            self._end(self.check.failed("Timeout connecting"))
        else:
            self._end(Result.up() if err == 0 else self.check.failed(connect_error_text(err)))
