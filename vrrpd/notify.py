"""Running scripts without a shell and without blocking the loop: notify scripts, fifos, track scripts.

* Script lines are split into argv the way keepalived 2.x does (``supervisor.config.scripts``); a line
  with shell syntax that would be passed literally (``;``, ``|``, ``&&``, redirections, ``$``) gets a
  warning saying to use ``/bin/sh -c '...'``.
* ``notify_master`` / ``notify_backup`` / ``notify_fault`` / ``notify_stop`` run as written; ``notify``
  gets ``INSTANCE|GROUP NAME STATE PRIORITY`` appended (keepalived's arguments).
* ``notify_fifo`` / ``vrrp_notify_fifo`` get lines ``INSTANCE "NAME" STATE PRIORITY`` (``GROUP "NAME"
  STATE`` for sync groups); a fifo with no reader loses the line (never blocks).
* Every child is started with ``asyncio.create_subprocess_exec`` and reaped by a task with a time
  limit, so neither a slow script nor a full fifo ever holds up adverts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import pwd
import re
import shutil
import stat
from collections.abc import Sequence

from supervisor.config.scripts import split_command

log = logging.getLogger("pykeepalived.vrrp")

SHELL_SYNTAX = re.compile(r"(;|\|\||\||&&|>|<|\$\(|`|\$\{?[A-Za-z_])")
NOTIFY_TIMEOUT = 60.0


def shell_warning(cmdline: str) -> str | None:
    """The load-time warning for shell syntax that would be passed to the program literally."""
    argv = split_command(cmdline)
    if argv and os.path.basename(argv[0]) in ("sh", "bash", "dash") and "-c" in argv[1:2]:
        return None
    if any(SHELL_SYNTAX.search(a) for a in argv[1:]) or (argv and SHELL_SYNTAX.search(argv[0])):
        return (f"script '{cmdline}' contains shell syntax that is not interpreted (no shell is used); "
                f"use /bin/sh -c '...' if a shell is needed")
    return None


def user_ids(user: str | None) -> tuple[int, int] | None:
    if not user:
        return None
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


DEFAULT_SCRIPT_USER = "keepalived_script"


def insecure(program: str) -> bool:
    """keepalived's script security: the program, or a directory above it, can be changed by someone
    other than root (owned by another user, writable by others, or by a group other than root's; a sticky
    directory is fine)."""
    path = shutil.which(program) if "/" not in program else program
    if path is None:
        return False  # it will not run at all
    path = os.path.realpath(path)
    first = True
    while True:
        try:
            st = os.stat(path)
        except OSError:
            return True
        if st.st_uid != 0:
            return True
        # group-writable only counts when the group is not root's (keepalived 2.2.7 runs a root:root 0775 script)
        writable = st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != 0)
        if writable and (first or not st.st_mode & stat.S_ISVTX):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path, first = parent, False


class Runner:
    """Starts scripts and keeps track of the tasks that reap them.

    With enable_script_security, a script that non-root users could change is refused (logged once),
    and scripts run as script_user (default keepalived_script when that user exists)."""

    def __init__(self, script_user: str | None = None, security: bool = False) -> None:
        self.ids = user_ids(script_user or (DEFAULT_SCRIPT_USER if security else None))
        self.security = security
        self.refused: set[str] = set()
        self.tasks: set[asyncio.Task[int | None]] = set()
        self.started = 0
        self.failed = 0

    async def run(self, argv: Sequence[str], timeout: float, user: str | None = None) -> int | None:
        """Run ``argv`` to completion (killed after ``timeout``): its exit code, or None if it could not
        start, was refused or was killed."""
        if not argv:
            return None
        if self.security and insecure(argv[0]):
            if argv[0] not in self.refused:
                self.refused.add(argv[0])
                log.warning("SECURITY VIOLATION - script %s is writable by a non-root user: not run", argv[0])
            return None
        kw: dict[str, object] = {}
        ids = user_ids(user) if user else self.ids
        if ids is not None:
            kw.update(user=ids[0], group=ids[1], extra_groups=[])
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, start_new_session=True, **kw)  # type: ignore[arg-type]
        except OSError as e:
            self.failed += 1
            log.warning("Cannot run script %s: %s", argv[0] if argv else "?", e.strerror)
            return None
        self.started += 1
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            await proc.wait()
            return None
        except asyncio.CancelledError:
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, 9)
                except OSError:
                    pass
            raise

    def spawn(self, cmdline: str, extra: Sequence[str] = ()) -> None:
        """Fire and forget (reaped in the background)."""
        argv = [*split_command(cmdline), *extra]
        if not argv:
            return
        task = asyncio.get_running_loop().create_task(self.run(argv, NOTIFY_TIMEOUT))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self, wait: float = 2.0) -> None:
        if self.tasks:
            _, pending = await asyncio.wait(list(self.tasks), timeout=wait)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class Fifo:
    """A notify fifo (created if missing); writes never block."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lost = 0
        try:
            st = os.stat(path)
            if not stat.S_ISFIFO(st.st_mode):
                log.warning("notify fifo %s is not a fifo", path)
        except FileNotFoundError:
            try:
                os.mkfifo(path, 0o600)
            except OSError as e:
                log.warning("Cannot create notify fifo %s: %s", path, e.strerror)

    def write(self, line: str) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno not in (errno.ENXIO, errno.ENOENT):
                log.warning("notify fifo %s: %s", self.path, e.strerror)
            self.lost += 1
            return
        try:
            os.write(fd, (line + "\n").encode())
        except OSError:
            self.lost += 1
        finally:
            os.close(fd)


def fifo_line(kind: str, name: str, state: str, priority: int | None) -> str:
    return f'{kind} "{name}" {state}' + (f" {priority}" if priority is not None else "")
