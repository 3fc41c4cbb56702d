"""``pygenhash`` (and ``pykeepalived -T``): keepalived's genhash, the MD5 of a remote web page.

Same options, request bytes, output and exit codes as keepalived 2.2.7's genhash (check_genhash.c):
the lowercase MD5 of the body on stdout; a connection or read failure prints the checker's message
(``Connection failed``, ``Timeout HTTP read`` …) on stdout and still exits 0; a response without a
complete header prints ``no data received from remote webserver`` on stderr; a usage error prints the
usage on stderr and exits 1. ``-v`` adds keepalived's hex dumps and the response time.

Entry points: :func:`main` (``pygenhash``) and :func:`genhash_main` for ``pykeepalived -T``.
"""

from __future__ import annotations

import asyncio
import getopt
import ipaddress
import sys
import time
from typing import TextIO

from checkerd.checks.base import ConnectError, connect_socket
from checkerd.checks.http import (
    HTML_HASH,
    HTML_HASH_FINAL,
    HttpError,
    ResponseReader,
    build_request,
    fetch,
    hex_dump,
    make_ssl_context,
)
from supervisor.config.model.checkers import Checker

SHORT = "hvSIs:V:p:u:m:P:t:"
LONG = ["help", "verbose", "use-ssl", "use-sni", "server=", "use-virtualhost=", "port=", "url=", "fwmark=",
        "protocol=", "timeout="]
LONG_NAMES = {"-h": "help", "-v": "verbose", "-S": "use-ssl", "-I": "use-sni", "-s": "server",
              "-V": "use-virtualhost", "-p": "port", "-u": "url", "-m": "fwmark", "-P": "protocol", "-t": "timeout"}
NO_TIMEOUT = 4294.967295  # keepalived's UINT_MAX microseconds when -t is not given


def usage(prog: str, am_genhash: bool, err: TextIO) -> None:
    err.write(
        f"Usage: {prog}{'' if am_genhash else ' --genhash'} COMMAND [OPTIONS]\n"
        "Commands:\n"
        "   -s server-address -p port -u url\n"
        "   -S -s server-address -p port -u url\n"
        "   -h\n\n")
    err.write(
        "Options:\n"
        "Either long or short options are allowed.\n"
        "   --use-ssl         -S       Use SSL connection to remote server.\n"
        "   --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).\n"
        "   --server          -s       Use the specified remote server address.\n"
        "   --port            -p       Use the specified remote server port.\n"
        "   --url             -u       Use the specified remote server url.\n"
        "   --use-virtualhost -V       Use the specified virtualhost in GET query.\n"
        "   --verbose         -v       Use verbose mode output.\n"
        "   --help            -h       Display this short inlined help screen.\n"
        "   --fwmark          -m       Use the specified FW mark.\n"
        "   --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.\n"
        "                                1.0c means 1.0 with 'Connection: close'\n"
        "   --timeout         -t       Timeout in seconds\n")


class Options:
    server: str = ""
    port: int = 0
    url: str = ""
    ssl: bool = False
    sni: bool = False
    vhost: str | None = None
    verbose: bool = False
    fwmark: int = 0
    protocol: str = "1.0"
    timeout: float | None = None


def _unsigned(text: str) -> int | None:
    """strtoul after leading blanks, as keepalived reads -t and -m (no sign, digits only)."""
    t = text.lstrip(" \t")
    return int(t) if t.isdigit() else None


def parse(argv: list[str], err: TextIO) -> Options | None:
    """keepalived's command line; None after printing the reason (the caller prints the usage)."""
    if len(argv) <= 1:
        return None
    o = Options()
    try:
        opts, rest = getopt.gnu_getopt(argv[1:], SHORT, LONG)
    except getopt.GetoptError as e:
        opt = e.opt
        if "requires argument" in e.msg:
            err.write(f"Missing parameter for option -{opt}\n" if len(opt) == 1 else
                      f"Missing parameter for option --{opt}\n")
        elif len(opt) == 1:
            err.write(f"Unknown option -{opt}\n")
        else:
            err.write(f"Unknown option --{opt}\n")
        return None
    seen: set[str] = set()
    bad = False
    for name, value in opts:
        key = LONG_NAMES.get(name, name.lstrip("-"))
        seen.add(key)
        if key == "help":
            bad = True
        elif key == "verbose":
            o.verbose = True
        elif key == "use-ssl":
            o.ssl = True
        elif key == "use-sni":
            o.sni = True
        elif key == "server":
            try:
                o.server = str(ipaddress.ip_address(value.split("%")[0]))
            except ValueError:
                err.write(f"server should be an IP, not {value}\n")
                return None
        elif key == "use-virtualhost":
            o.vhost = value
        elif key == "port":
            if not value.lstrip("+-").isdigit() or not 0 < int(value) <= 65535:
                err.write(f"invalid port number '{value}'\n")
                return None
            o.port = int(value)
        elif key == "url":
            o.url = value
        elif key == "fwmark":
            mark = _unsigned(value)
            if mark is None:
                err.write(f"invalid fwmark '{value}'\n")
                return None
            o.fwmark = mark
        elif key == "protocol":
            if value not in ("1.0", "1.0c", "1.0C", "1.1"):
                err.write(f"invalid HTTP protocol version '{value}'\n")
                return None
            o.protocol = value.upper()
        elif key == "timeout":
            t = _unsigned(value)
            if t is None:
                err.write(f"invalid timeout '{value}'\n")
                return None
            o.timeout = float(t)
    if bad:
        return None
    if rest:
        err.write("Unexpected argument(s): " + " ".join(rest) + "\n")
        return None
    if not {"server", "port", "url"} <= seen:
        return None
    return o


class Output:
    """stdout as keepalived's printf sees it: text and raw bytes, in order."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, s: str | bytes) -> None:
        if isinstance(s, bytes):
            self.out.flush()
            buf = getattr(self.out, "buffer", None)
            if buf is not None:
                buf.write(s)
                buf.flush()
            else:
                self.out.write(s.decode("latin-1"))
        else:
            self.out.write(s)


async def run(o: Options, out: TextIO, err: TextIO) -> None:
    w = Output(out)
    cfg = Checker(type="SSL_GET" if o.ssl else "HTTP_GET", connect_ip=o.server, connect_port=o.port,
                  fwmark=o.fwmark, connect_timeout=o.timeout if o.timeout is not None else NO_TIMEOUT)
    try:
        sock = await connect_socket(cfg)
    except ConnectError as e:
        msg = str(e)
        w("HTTP_CHECK - network unreachable\n" if msg == "network unreachable" else
          f"{msg if msg in ('Timeout connecting', 'Connection failed') else 'Error connecting'}\n")
        return
    state = ResponseReader(want_digest=True, verbose=w if o.verbose else None)
    request = build_request(o.url, o.server, o.port, o.vhost, o.protocol)
    tls = make_ssl_context(None) if o.ssl else None
    try:
        await fetch(sock, request, state, cfg.connect_timeout, tls=tls, sni=o.vhost if o.sni else None)
    except HttpError as e:
        w(f"{e}\n")
        return
    digest = state.digest()
    if o.verbose and state.clean_eof:
        w("\n" + HTML_HASH + hex_dump(digest) + HTML_HASH_FINAL)
    if state.header is None:
        out.flush()
        err.write("no data received from remote webserver\n")
        err.flush()
    else:
        w(digest.hex() + "\n")


def genhash_main(argv: list[str], am_genhash: bool = False) -> int:
    """Run genhash with ``argv`` (argv[0] is the program name as shown in the usage); returns the exit code.

    ``pykeepalived -T ...`` calls ``genhash_main(["pykeepalived", *args_after_T])``.
    """
    out, err = sys.stdout, sys.stderr
    o = parse(argv, err)
    prog = argv[0] if argv else "genhash"
    if o is None:
        usage(prog, am_genhash, err)
        return 1
    start = time.monotonic_ns()
    try:
        asyncio.run(run(o, out, err))
    except KeyboardInterrupt:
        pass
    if o.verbose:
        out.write(f"\nGlobal response time for [{o.url}] = {(time.monotonic_ns() - start) // 1000} usecs\n")
    out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script ``pygenhash``."""
    args = sys.argv if argv is None else argv
    return genhash_main(list(args), am_genhash=True)


if __name__ == "__main__":
    sys.exit(main())
