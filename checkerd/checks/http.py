"""HTTP_GET and SSL_GET: keepalived's request, its header rules, and a body streamed into MD5.

The response is read the way keepalived 2.2.7 reads it (check_http.c, lib/html.c), because genhash's
digest and the checker's verdict depend on those details:

* the request is ``GET <path> HTTP/1.<0|1>``, ``User-Agent: KeepAliveClient``, ``Connection: close``
  for 1.0C and 1.1, and ``Host:`` the virtualhost, else ``<ip>:<port>`` (``[ip]:port`` for IPv6);
* the header ends at the first CRLFCRLF and must fit in 4095 bytes (keepalived's buffer): a longer
  header is "no data received";
* the status code is the 3 digits after the first space, followed by a space (``HTTP/1.1 200\\r\\n``
  without a reason phrase is status 0, as in keepalived);
* ``Content-Length:`` is looked up case-sensitively; the digest covers the body truncated to it, and
  chunked bodies are hashed as they arrive on the wire, framing included (keepalived decodes nothing);
* the regex is matched against the body as it streams, with a window so a match may straddle reads.

Memory stays bounded whatever the server sends: the header is at most 4095 bytes, the body is never
kept (MD5 and the regex window only), and every read, plus the whole attempt, has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from checkerd.checks.base import (
    Check,
    ConnectError,
    RawAttempt,
    Result,
    Target,
    connect_error_text,
    connect_now,
    connect_socket,
    connect_state,
    make_raw_socket,
)
from checkerd.reactor import IN, OUT, Reactor, reactor

if TYPE_CHECKING:
    from supervisor.config.model.checkers import Checker, HttpUrl
    from supervisor.config.model.lvs import SslConfig

log = logging.getLogger("pykeepalived.checker")

MAX_BUFFER = 4096  # keepalived's MAX_BUFFER_LENGTH: reads and the header fit in MAX_BUFFER - 1 bytes
REGEX_WINDOW = 4096  # bytes of earlier body kept so a regex match may straddle two reads
STATUS_MIN, STATUS_MAX = 100, 599

DELIM_BEGIN = "-----------------------["
DELIM_END = "]-----------------------\n"
HTTP_HEADER_HEXA = f"{DELIM_BEGIN}    HTTP Header Buffer    {DELIM_END}"
HTTP_HEADER_ASCII = f"{DELIM_BEGIN} HTTP Header Ascii Buffer {DELIM_END}"
HTML_HEADER_HEXA = f"{DELIM_BEGIN}        HTML Buffer        {DELIM_END}"
HTML_HASH = f"{DELIM_BEGIN}    HTML hash resulting    {DELIM_END}"
HTML_HASH_FINAL = f"{DELIM_BEGIN} HTML hash final resulting {DELIM_END}"

_REGEX_FLAGS = {"caseless": re.IGNORECASE, "multiline": re.MULTILINE, "dotall": re.DOTALL,
                "extended": re.VERBOSE}


def hex_dump(data: bytes) -> str:
    """keepalived's dump_buffer: decimal offsets, 16 bytes a line, `` -`` after 8, an ASCII column."""
    out: list[str] = []
    n = len(data)
    total = n + (16 - n % 16) % 16
    for i in range(total):
        if i % 16 == 0:
            out.append(f"{i & 0xFFFF:04d} ")
        out.append(f" {data[i]:02x}" if i < n else "   ")
        if (i + 1) % 8 == 0:
            if (i + 1) % 16:
                out.append(" -")
            else:
                out.append("   ")
                out.append("".join(
                    (chr(data[j]) if 0x20 <= data[j] <= 0x7E else ".") if j < n else " "
                    for j in range(i - 15, i + 1)))
                out.append("\n")
    return "".join(out)


def build_request(path: str, address: str, port: int, vhost: str | None, protocol: str | None) -> bytes:
    """keepalived's request bytes for one URL (check_http.c request_template)."""
    proto = (protocol or "1.0").upper()
    minor = 1 if proto == "1.1" else 0
    close = "Connection: close\r\n" if proto in ("1.0C", "1.1") else ""
    if vhost:
        host = vhost
    elif ":" in address:
        host = f"[{address}]:{port}"
    else:
        host = f"{address}:{port}"
    return f"GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n".encode()


def extract_status_code(buf: bytes) -> int:
    """lib/html.c extract_status_code: 3 digits between the first space and the next one, else 0."""
    i = 0
    while i < len(buf) and buf[i] not in (0x20, 0x0D):
        i += 1
    if i >= len(buf) or buf[i] != 0x20:
        return 0
    i += 1
    if i + 3 >= len(buf) or buf[i] == 0x20 or buf[i + 3] != 0x20:
        return 0
    digits = buf[i:i + 3]
    return int(digits) if digits.isdigit() else 0


def extract_content_length(buf: bytes) -> int | None:
    """lib/html.c extract_content_length: case-sensitive, searched up to the first NUL; None: absent/bad."""
    nul = buf.find(b"\0")
    hay = buf if nul < 0 else buf[:nul]
    pos = hay.find(b"Content-Length:")
    if pos < 0:
        return None
    after = hay[pos + 15:]
    m = re.match(rb"[ \t\n\v\f\r]*([+-]?)(\d+)", after)
    end, value, negative = (m.end(), int(m.group(2)), m.group(1) == b"-") if m else (0, 0, False)
    if end < len(after) and after[end] not in (0x0D, 0x0A):
        return None
    return None if negative and value else value  # "-N" wraps to a huge size_t: no limit


def compile_regex(url: HttpUrl) -> re.Pattern[bytes] | None:
    if url.regex is None:
        return None
    flags = 0
    for opt in url.regex_options:
        flags |= _REGEX_FLAGS.get(opt, 0)
    return re.compile(url.regex.encode(), flags)


@dataclass
class ResponseReader:
    """Feeds the bytes of one response and keeps what keepalived keeps (no body)."""

    want_digest: bool = True
    regex: re.Pattern[bytes] | None = None
    regex_min_offset: int = 0
    regex_max_offset: int | None = None
    verbose: Callable[[str | bytes], None] | None = None
    header: bytes | None = None
    status: int = 0
    content_length: int | None = None
    rx_bytes: int = 0
    regex_matched: bool = False
    full: bool = False  # header buffer full without a header end: keepalived reads 0 bytes = EOF
    clean_eof: bool = True
    _buf: bytearray = field(default_factory=bytearray)
    _md5: hashlib._Hash = field(default_factory=hashlib.md5)
    _window: bytes = b""

    def read_size(self) -> int:
        return MAX_BUFFER - 1 - (len(self._buf) if self.header is None else 0)

    def _out(self, s: str | bytes) -> None:
        if self.verbose is not None:
            self.verbose(s)

    def _hash(self, data: bytes) -> None:
        """Hash the part of ``data`` (arriving after rx_bytes body bytes) within Content-Length."""
        if not self.want_digest or not data:
            return
        cl = self.content_length
        if cl is not None and cl <= self.rx_bytes:
            return
        n = len(data) if cl is None or cl >= self.rx_bytes + len(data) else cl - self.rx_bytes
        self._md5.update(data[:n])
        if self.verbose is not None:
            self._out(hex_dump(data[:n]))

    def _match(self, data: bytes) -> None:
        if self.regex is None or self.regex_matched or not data:
            return
        base = self.rx_bytes - len(self._window)  # body offset of the window's first byte
        hay = self._window + data
        start = max(0, self.regex_min_offset - base)
        m = self.regex.search(hay, start)
        if m is not None and (self.regex_max_offset is None or base + m.start() <= self.regex_max_offset):
            self.regex_matched = True
        self._window = hay[-REGEX_WINDOW:]

    def feed(self, chunk: bytes) -> None:
        if self.header is None:
            self._out(HTTP_HEADER_HEXA)
            self._buf += chunk
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) >= MAX_BUFFER - 1:
                    self.full = True
                return
            buf = bytes(self._buf)
            self._buf.clear()
            self.header = buf[:end + 4]
            self.status = extract_status_code(buf)
            self.content_length = extract_content_length(buf)
            if self.verbose is not None:
                self._out(hex_dump(self.header))
                self._out(HTTP_HEADER_ASCII)
                self._out(self.header + b"\n")
            body = buf[end + 4:]
            if body and self.want_digest and (self.content_length is None or self.content_length > 0):
                self._out(HTML_HEADER_HEXA)
            self._hash(body)
            self._match(body)
            self.rx_bytes = len(body)
        else:
            self._hash(chunk)
            self._match(chunk)
            self.rx_bytes += len(chunk)

    def digest(self) -> bytes:
        return self._md5.digest()


def make_ssl_context(conf: SslConfig | None) -> ssl.SSLContext:
    """The client context for SSL_GET: keepalived verifies no peer certificate, so neither do we."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if conf is not None:
        if conf.ca:
            ctx.load_verify_locations(conf.ca)
        if conf.certificate:
            ctx.load_cert_chain(conf.certificate, conf.key, conf.password)
    return ctx


class HttpError(Exception):
    """A failed exchange; ``str()`` is keepalived's wording (Timeout HTTP read, …)."""


async def fetch(sock: socket.socket, request: bytes, reader_state: ResponseReader, read_timeout: float | None, *,
                tls: ssl.SSLContext | None = None, sni: str | None = None,
                deadline: float | None = None) -> None:
    """Send ``request`` on the connected ``sock`` and feed the response into ``reader_state`` until EOF.

    Raises HttpError on a timeout, a TLS failure or a read error; takes ownership of ``sock``.
    """
    loop = asyncio.get_running_loop()
    proto = "SSL" if tls is not None else "HTTP"
    try:
        try:
            async with asyncio.timeout(read_timeout):
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=tls, server_hostname=(sni or "") if tls is not None else None,
                    ssl_handshake_timeout=read_timeout if tls is not None else None, limit=MAX_BUFFER)
        except (TimeoutError, ssl.SSLError, OSError) as e:
            sock.close()
            if isinstance(e, TimeoutError):
                raise HttpError("Timeout connecting")
            raise HttpError("SSL handshake/communication error connecting to")
    except BaseException:
        sock.close()
        raise
    try:
        try:
            writer.write(request)
            async with asyncio.timeout(read_timeout):
                await writer.drain()
        except TimeoutError:
            raise HttpError("Timeout WEB write")
        except OSError:
            raise HttpError("Cannot send get request to")
        first = True
        while True:
            timeout = read_timeout
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise HttpError(f"Timeout {proto} read (response not complete in time)")
                timeout = left if timeout is None else min(timeout, left)
            try:
                async with asyncio.timeout(timeout):
                    chunk = await reader.read(reader_state.read_size())
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    raise HttpError(f"Timeout {proto} read (response not complete in time)")
                raise HttpError("Timeout WEB read" if first else f"Timeout {proto} read")
            except ssl.SSLError:
                # keepalived treats any TLS read error like the end of the stream (ssl_read_thread):
                # what was read so far is judged, without the verbose digest dump of a clean end.
                reader_state.clean_eof = False
                return
            except OSError:
                raise HttpError("Read error with")
            first = False
            if not chunk:
                return
            reader_state.feed(chunk)
            if reader_state.full:
                return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.5):
                await writer.wait_closed()


def vhost_for(cfg: Checker, url: HttpUrl) -> str | None:
    return url.virtualhost or cfg.virtualhost


class HttpCheck(Check):
    """HTTP_GET: every URL in turn, in one attempt; the first failing URL makes the attempt fail."""

    kind = "HTTP_GET"

    def __init__(self, cfg: Checker, target: Target) -> None:
        super().__init__(cfg, target)
        self.tls = make_ssl_context(target.ssl) if cfg.type == "SSL_GET" else None
        if cfg.type == "SSL_GET":
            self.kind = "SSL_GET"
        self.regexes = [compile_regex(u) for u in cfg.urls]
        self.len_mismatch: dict[int, int] = {}
        assert cfg.connect_ip is not None
        self.requests = [build_request(u.path, cfg.connect_ip, cfg.connect_port, vhost_for(cfg, u),
                                       cfg.http_protocol) for u in cfg.urls]

    def attempt(self, done: Callable[[Result], None], r: Reactor | None = None) -> HttpAttempt | None:
        return None if self.tls is not None else HttpAttempt(self, r or reactor(), done)

    def budget(self) -> float:
        """Whole-URL bound (keepalived has none: a server that trickles bytes forever would hang it)."""
        return self.cfg.connect_timeout + max(self.cfg.delay_loop, self.cfg.connect_timeout)

    def reader(self, i: int) -> ResponseReader:
        url = self.cfg.urls[i]
        return ResponseReader(want_digest=url.digest is not None, regex=self.regexes[i],
                              regex_min_offset=url.regex_min_offset, regex_max_offset=url.regex_max_offset)

    async def run(self) -> Result:
        for i, url in enumerate(self.cfg.urls):
            res = await self.run_url(i, url)
            if not res.ok:
                return res
        return Result.up()

    async def run_url(self, i: int, url: HttpUrl) -> Result:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.budget()
        try:
            sock = await connect_socket(cfg)
        except ConnectError as e:
            return Result.down(f"{e} to {self.target.rs_text}")
        vhost = vhost_for(cfg, url)
        state = self.reader(i)
        sni = (cfg.sni_name or vhost) if cfg.enable_sni else None
        try:
            await fetch(sock, self.requests[i], state, cfg.connect_timeout, tls=self.tls, sni=sni, deadline=deadline)
        except HttpError as e:
            return self.failed(str(e), url)
        return self.judge(i, state)

    def failed(self, why: str, url: HttpUrl) -> Result:
        return Result.down(f"{why} server {self.target.rs_text} url({url.path})")

    def judge(self, i: int, state: ResponseReader) -> Result:
        """The verdict on a complete response to URL ``i`` (status, digest, regex), as keepalived's."""
        url = self.cfg.urls[i]
        if state.header is None:
            why = " (header larger than 4095 bytes)" if state.full else ""
            return Result.down(f"Read, no data received from {self.target.rs_text}{why} url({url.path})")
        if not (STATUS_MIN <= state.status <= STATUS_MAX and url.accepts(state.status)):
            return Result.down(f"HTTP status code error to {self.target.rs_text} url({url.path}): "
                               f"status {state.status}")
        cl = state.content_length
        if cl is not None and cl != state.rx_bytes:
            if self.len_mismatch.get(i) != cl - state.rx_bytes:
                self.len_mismatch[i] = cl - state.rx_bytes
                log.info("http_check for RS %s VS %s url %s%s: content_length (%d) does not match received bytes (%d)",
                         self.target.rs_text, self.target.vs_text, url.virtualhost or "", url.path, cl, state.rx_bytes)
        elif self.len_mismatch:
            self.len_mismatch.pop(i, None)
        if url.digest is not None and state.digest().hex() != url.digest.lower():
            return Result.down(f"MD5 digest error to {self.target.rs_text} url({url.path}): "
                               f"got {state.digest().hex()}")
        if url.regex is not None and state.regex_matched == url.regex_no_match:
            return Result.down(f"Regex match failed {self.target.rs_text} url({url.path})")
        return Result.up()


READS_PER_WAKEUP = 16  # recv() calls per readiness event: a flooding server cannot hog the loop


class HttpAttempt(RawAttempt):
    """One HTTP_GET attempt on a raw non-blocking socket: connect, send, read to EOF, URL after URL.

    Same verdicts and wordings as :meth:`HttpCheck.run_url` (which serves SSL_GET). One reactor timer
    at a time watches the current phase's deadline (connect/write/read: connect_timeout since the last
    progress) and the URL's overall budget; a timer that finds the deadline moved re-arms itself.
    """

    __slots__ = ("check", "deadline", "i", "io_deadline", "phase", "sent", "state", "token")

    def __init__(self, check: HttpCheck, r: Reactor, done: Callable[[Result], None]) -> None:
        super().__init__(r, done)
        self.check = check
        self.i = -1
        self.state: ResponseReader | None = None
        self.phase = "connect"
        self.sent = 0
        self.io_deadline = self.deadline = 0.0
        self.token = 0

    def start(self) -> None:
        self._url(0)

    def _url(self, i: int) -> None:
        check = self.check
        cfg = check.cfg
        if i >= len(cfg.urls):
            return self._end(Result.up())
        self.i, self.sent, self.phase = i, 0, "connect"
        self.token += 1
        self.state = check.reader(i)
        now = self.r.time()
        self.deadline = now + check.budget()
        self.io_deadline = now + cfg.connect_timeout
        try:
            s = make_raw_socket(cfg)
        except OSError as e:
            return self._end(Result.down(f"socket bind failed ({e.strerror}) to {check.target.rs_text}"))
        err = connect_now(s, self.check.address)
        if err:
            s.close()
            return self._end(Result.down(f"{connect_error_text(err)} to {check.target.rs_text}"))
        self.sock = s
        self.r.call_at(min(self.io_deadline, self.deadline), self._timer, self.token)
        if err == 0:
            self.r.register(s.fileno(), OUT, self._writable)  # for a request that does not fit at once
            self._send()
        else:
            self.r.register(s.fileno(), OUT, self._connected)

    def _timer(self, token: int) -> None:
        if self.over or token != self.token:
            return
        now = self.r.time()
        if now >= min(self.io_deadline, self.deadline) and self.sock is not None:
            # A loop that ran late may run this timer before the socket events that beat the
            # deadline: look at the socket first, and only then call it a timeout.
            if self.phase == "connect":
                if connect_state(self.sock) is not None:
                    self._connected(0)
            elif self.phase in ("first", "read"):
                self._readable(0)
            if self.over or token != self.token:
                return
            now = self.r.time()
        url = self.check.cfg.urls[self.i]
        if now >= self.deadline and self.phase != "connect":
            return self._end(self.check.failed("Timeout HTTP read (response not complete in time)", url))
        if now >= self.io_deadline or now >= self.deadline:
            if self.phase == "connect":
                return self._end(Result.down(f"Timeout connecting to {self.check.target.rs_text}"))
            why = {"write": "Timeout WEB write", "first": "Timeout WEB read"}.get(self.phase, "Timeout HTTP read")
            return self._end(self.check.failed(why, url))
        self.r.call_at(min(self.io_deadline, self.deadline), self._timer, token)

    def _connected(self, events: int) -> None:
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return self._end(Result.down(f"{connect_error_text(err)} to {self.check.target.rs_text}"))
        self.r.modify(self.sock.fileno(), OUT, self._writable)
        self._send()

    def _writable(self, events: int) -> None:
        self._send()

    def _send(self) -> None:
        sock = self.sock
        assert sock is not None
        self.phase = "write"
        req = self.check.requests[self.i]
        try:
            self.sent += sock.send(req[self.sent:] if self.sent else req)
        except BlockingIOError:
            return
        except OSError:
            return self._end(self.check.failed("Cannot send get request to", self.check.cfg.urls[self.i]))
        self.io_deadline = self.r.time() + self.check.cfg.connect_timeout
        if self.sent >= len(req):
            self.phase = "first"
            self.r.modify(sock.fileno(), IN, self._readable)

    def _readable(self, events: int) -> None:
        sock, state = self.sock, self.state
        assert sock is not None and state is not None
        got = False
        for _ in range(READS_PER_WAKEUP):
            try:
                chunk = sock.recv(state.read_size())
            except BlockingIOError:
                break
            except OSError:
                return self._end(self.check.failed("Read error with", self.check.cfg.urls[self.i]))
            if not chunk:
                return self._complete()
            self.phase, got = "read", True
            state.feed(chunk)
            if state.full:
                return self._complete()
        if got:  # the read timeout counts from the last progress
            self.io_deadline = self.r.time() + self.check.cfg.connect_timeout

    def _complete(self) -> None:
        assert self.state is not None
        self._close()
        res = self.check.judge(self.i, self.state)
        if not res.ok:
            return self._end(res)
        self._url(self.i + 1)


def now_us() -> int:
    return time.monotonic_ns() // 1000
