"""Locked pidfiles, as keepalived keeps them: the supervisor opens and locks every pidfile at start.

The lock (``flock``, held on the open file description, so it survives daemonizing and dies with the
process) is what says "a daemon is running", not the file's existence: a second daemon on the same
files fails to take the lock and refuses to start; a pidfile left by a daemon killed with -9 is
unlocked and simply taken over. The supervisor writes each role's pid into that role's pidfile when it
spawns it (keepalived's children write their own; the parent knowing the pid makes that unnecessary).

``orphans()`` uses psutil on the pids a stale pidfile names: a role whose supervisor was killed should
have died with it (PDEATHSIG), but if one survives (e.g. it was stopped), the new daemon must not run a
second copy beside it.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]


class AlreadyRunning(Exception):
    def __init__(self, path: str, pid: int | None) -> None:
        super().__init__(f"daemon is already running (pidfile {path} is locked" +
                         (f" by pid {pid})" if pid else ")"))
        self.path = path
        self.pid = pid


def read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


@dataclass
class PidFile:
    path: str
    fd: int | None = field(default=None, repr=False)

    def acquire(self) -> None:
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, mode=0o755, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.path, read_pid(self.path))
        self.fd = fd

    def write(self, pid: int | None) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        if pid is not None:
            os.pwrite(self.fd, f"{pid}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def orphan(pid: int | None, title: str) -> psutil.Process | None:
    """The process ``pid`` if it is still alive and is a pykeepalived process titled ``title``."""
    if not pid or pid == os.getpid():
        return None
    try:
        p = psutil.Process(pid)
        cmd = " ".join(p.cmdline())
    except (psutil.Error, OSError):
        return None
    return p if cmd.startswith(title) else None
