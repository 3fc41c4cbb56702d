"""Logging for every process: syslog with one ident per role, the console with -l, never a crash.

Idents follow keepalived's (``Keepalived``, ``Keepalived_vrrp`` …): ``pykeepalived``,
``pykeepalived_vrrp``, ``pykeepalived_checker``, ``pykeepalived_ipvs``. The syslog handler connects to
/dev/log lazily and, when there is no syslog socket (containers, early boot) or it goes away, writes
the line to stderr instead: a log line is never dropped and logging never raises.
"""

from __future__ import annotations

import logging
import logging.handlers
import socket
import sys

IDENTS = {
    "supervisor": "pykeepalived",
    "vrrp": "pykeepalived_vrrp",
    "checker": "pykeepalived_checker",
    "ipvs": "pykeepalived_ipvs",
}
SYSLOG_PATH = "/dev/log"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 1}


def _facility(name: str) -> int:
    if name.isdigit():
        return logging.handlers.SysLogHandler.LOG_LOCAL0 + int(name)  # keepalived: -S 3 is local3
    return logging.handlers.SysLogHandler.facility_names.get(name, logging.handlers.SysLogHandler.LOG_DAEMON)


class SafeSyslogHandler(logging.Handler):
    """RFC 3164 datagrams to /dev/log; stderr when that is impossible."""

    def __init__(self, ident: str, facility: int, fallback: logging.Handler | None) -> None:
        super().__init__()
        self.ident = ident
        self.facility = facility
        self.fallback = fallback
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket | None:
        if self.sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(SYSLOG_PATH)
            except OSError:
                s.close()
                return None
            self.sock = s
        return self.sock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            prio = _PRIORITY.get(record.levelno, 6)
            line = f"<{self.facility << 3 | prio}>{self.ident}[{record.process}]: {msg}".encode(errors="replace")
            for _ in range(2):
                s = self._connect()
                if s is None:
                    break
                try:
                    s.send(line)
                    return
                except OSError:
                    self.sock = None
                    s.close()
            if self.fallback is not None:  # None: the console handler already has the line
                self.fallback.handle(record)
        except Exception:  # logging must never take a role down
            pass

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        super().close()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    def handleError(self, record: logging.LogRecord) -> None:
        pass  # stderr closed or full: nothing better to do, and no traceback


def setup(role: str, *, console: bool, detail: int = 0, facility: str = "daemon", syslog: bool = True) -> None:
    ident = IDENTS.get(role, f"pykeepalived_{role}")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG if detail else logging.INFO)
    stderr = _StderrHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(f"%(asctime)s {ident}[%(process)d]: %(message)s"))
    if console:
        root.addHandler(stderr)
    if syslog:
        sl = SafeSyslogHandler(ident, _facility(facility), None if console else stderr)
        sl.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(sl)
    elif not console:
        root.addHandler(stderr)


def syslog_available() -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(SYSLOG_PATH)
        return True
    except OSError:
        return False
    finally:
        s.close()
