"""What every health check shares: its result, its target, and a socket made the keepalived way.

A check is one attempt (one connect, one request, one script run): ``await check.run()`` returns a
:class:`Result` and never raises for anything a remote server or a script does. The checks that run
by the thousand (TCP_CHECK, HTTP_GET) also have a callback-driven :class:`Attempt` on the reactor
(``checkerd.reactor``), which costs no task, no coroutine and no asyncio transport. Scheduling (warmup,
delay_loop, retries, alpha) is not a check's business: ``checkerd.scheduler`` does it, the same way
for every checker type, as keepalived's epilog functions do.

:func:`connect_socket` applies the common connection options of keepalived's ``conn_opts`` (bindto,
bind_port, bind_if, fwmark) and connects within ``connect_timeout``.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import functools
import ipaddress
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from checkerd.security import ScriptPolicy

if TYPE_CHECKING:
    from checkerd.reactor import Reactor
    from supervisor.config.model.checkers import Checker
    from supervisor.config.model.lvs import SslConfig
    from supervisor.config.model.vrrp import TrackFile

SO_MARK = 36  # socket.SO_MARK (Linux); not exported by every Python build
TCP_INFO = 11  # socket.TCP_INFO (Linux)
TCP_SYN_SENT = 2  # tcpi_state values (include/net/tcp_states.h)
_CONNECTED = (1, 8)  # TCP_ESTABLISHED, TCP_CLOSE_WAIT (connected, the server already sent its FIN)


@dataclass
class Result:
    """One attempt's outcome. ``reason`` says what failed, in keepalived's words where it has some."""

    ok: bool
    reason: str = ""
    weight: int | None = None  # a dynamic weight (misc_dynamic, FILE_CHECK); None: unchanged

    @classmethod
    def up(cls, weight: int | None = None) -> Result:
        return cls(True, "", weight)

    @classmethod
    def down(cls, reason: str, weight: int | None = None) -> Result:
        return cls(False, reason, weight)


@dataclass
class Target:
    """Where a checker belongs: its real server and virtual server, as keepalived names them."""

    rs_address: str
    rs_port: int
    protocol: str = "tcp"  # the virtual server's, lower case: FMT_RS shows it
    vs_text: str = ""  # VirtualServer.describe()
    ssl: SslConfig | None = None
    track_files: dict[str, TrackFile] = field(default_factory=dict)
    scripts: ScriptPolicy = field(default_factory=ScriptPolicy)  # who runs scripts, and whether to vet them

    @property
    def rs_text(self) -> str:
        """keepalived's FMT_RS: ``[192.0.2.2]:tcp:80``."""
        return f"[{self.rs_address}]:{self.protocol}:{self.rs_port}"


@functools.lru_cache(maxsize=1 << 16)  # parsed on every attempt otherwise: ipaddress is slow
def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


class ConnectError(Exception):
    """A connection attempt failed; ``str()`` is keepalived's wording (Timeout connecting, …)."""


def connect_error_text(err: int) -> str:
    """keepalived's words for a failed connect() with ``errno`` ``err``."""
    if err in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable"
    return "Connection failed" if err == errno.ECONNREFUSED else f"Error connecting ({os.strerror(err)})"


class Attempt(Protocol):
    """One attempt driven by callbacks on the reactor (the fast path of TCP_CHECK and HTTP_GET).

    ``start()`` may call the ``done`` callback it was built with before returning; after ``abort()``
    it is never called.
    """

    def start(self) -> None: ...

    def abort(self) -> None: ...


class RawAttempt:
    """What the raw-socket attempts share: the socket registered with the reactor, and ending once.

    ``_end`` closes the socket and reports the result, at most once; after ``abort()`` nothing is
    reported.
    """

    __slots__ = ("done", "over", "r", "sock")

    def __init__(self, r: Reactor, done: Callable[[Result], None]) -> None:
        self.r = r
        self.done = done
        self.sock: _socket.socket | None = None
        self.over = False

    def abort(self) -> None:
        self.over = True
        self._close()

    def _close(self) -> None:
        if self.sock is not None:
            self.r.forget(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _end(self, res: Result) -> None:
        self._close()
        if not self.over:
            self.over = True
            self.done(res)


def make_socket(cfg: Checker, kind: socket.SocketKind, proto: int = 0) -> socket.socket:
    """A non-blocking socket towards ``cfg.connect_ip`` with bindto/bind_port/bind_if/fwmark applied."""
    s = socket.socket(family_of(_ip(cfg)), kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
    return _apply_options(cfg, s)


def make_raw_socket(cfg: Checker) -> _socket.socket:
    """:func:`make_socket` for TCP without the Python ``socket.socket`` wrapper, for the reactor's attempts
    (the wrapper's constructor alone is a tenth of a TCP_CHECK's CPU)."""
    s = _socket.socket(family_of(_ip(cfg)), socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    return _apply_options(cfg, s)


def connect_now(s: _socket.socket, address: tuple[str, int]) -> int | None:
    """Start a non-blocking connect: 0 if connected already, an errno if failed, None if pending.

    To a local or very near server the kernel often completes the handshake (or the refusal) before
    connect() returns, although it reports EINPROGRESS: asking then costs two cheap syscalls and saves
    a trip through epoll and the loop, the largest part of a TCP_CHECK's own CPU.
    """
    try:
        err = s.connect_ex(address)
    except OSError as e:  # an address the kernel rejects outright
        return e.errno or errno.EINVAL
    if err != errno.EINPROGRESS:
        return err
    return connect_state(s)


def connect_state(s: _socket.socket) -> int | None:
    """Where a non-blocking connect stands: 0 connected, an errno if it failed, None if still pending.

    One ``TCP_INFO`` read tells established from pending (its first byte is the TCP state); only a
    connection that is neither needs ``SO_ERROR`` for its errno. Fewer syscalls per check matter at
    thousands of checks a second, and far more where syscalls are dear (User-Mode Linux, seccomp).
    """
    try:
        state = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 1)[0]
    except OSError:
        state = -1  # not TCP after all: ask the portable way
    if state in _CONNECTED:
        return 0
    if state == TCP_SYN_SENT:
        return None
    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        return err
    try:
        s.getpeername()
    except OSError:
        return None if state == -1 else errno.ECONNRESET  # closed without an error left to read
    return 0


def _ip(cfg: Checker) -> str:
    assert cfg.connect_ip is not None
    return cfg.connect_ip


_S = TypeVar("_S", bound=_socket.socket)


def _apply_options(cfg: Checker, s: _S) -> _S:
    try:
        if cfg.fwmark:
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, cfg.fwmark)
        if cfg.bind_if:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, cfg.bind_if.encode())
        if cfg.bindto or cfg.bind_port:
            fam = family_of(_ip(cfg))
            s.bind((cfg.bindto or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), cfg.bind_port))
    except BaseException:
        s.close()
        raise
    return s


async def connect_socket(cfg: Checker, timeout: float | None = None) -> socket.socket:
    """A connected non-blocking TCP socket, or :class:`ConnectError` with keepalived's reason."""
    assert cfg.connect_ip is not None
    try:
        s = make_socket(cfg, socket.SOCK_STREAM)
    except OSError as e:
        raise ConnectError(f"socket bind failed ({e.strerror})")
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(cfg.connect_timeout if timeout is None else timeout):
            await loop.sock_connect(s, (cfg.connect_ip, cfg.connect_port))
    except TimeoutError:
        s.close()
        raise ConnectError("Timeout connecting")
    except OSError as e:
        s.close()
        raise ConnectError(connect_error_text(e.errno or 0))
    except BaseException:
        s.close()
        raise
    return s


class Check(ABC):
    """One checker of one real server."""

    kind = "CHECK"

    def __init__(self, cfg: Checker, target: Target) -> None:
        self.cfg = cfg
        self.target = target
        self.address = (cfg.connect_ip or target.rs_address, cfg.connect_port or target.rs_port)

    @abstractmethod
    async def run(self) -> Result:
        """One attempt. Must not raise for anything the remote side or a script does."""

    def attempt(self, done: Callable[[Result], None], r: Reactor | None = None) -> Attempt | None:
        """A callback-driven attempt on reactor ``r`` (the running loop's by default) reporting to
        ``done``, or None: this check only has :meth:`run`."""
        return None

    def describe(self) -> str:
        """Which check, for the bus's ``failed`` key and logs: ``TCP_CHECK [192.0.2.2]:80``."""
        if self.cfg.connect_ip is None:
            return self.kind
        host = f"[{self.cfg.connect_ip}]" if ":" in self.cfg.connect_ip else self.cfg.connect_ip
        return f"{self.kind} {host}:{self.cfg.connect_port}"
