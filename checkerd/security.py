"""Script security at run time for the checker's scripts (misc_path, notify_up, notify_down).

The config loader already gives keepalived's config-test verdict (supervisor.config.scripts); this is
the role's side, as keepalived's check_script_secure at start and reload:

* a script runs as its own ``user`` [``group``] when the checker names one, else as global_defs'
  ``script_user`` [``script_group``], else as ``keepalived_script`` when that user exists, else root;
* a script whose program cannot be found is never run ("... since not found/accessible");
* with ``enable_script_security``, a script is refused when someone other than root could change what
  runs: the program, or any directory above it, owned by a non-root user or writable by group/others
  (a sticky directory such as /tmp is no exception for the file itself). keepalived lets a non-root
  script user own its script; we refuse that too (stricter, never looser).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass

from supervisor.config.scripts import DEFAULT_SCRIPT_USER, resolve_program


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int

    @property
    def kwargs(self) -> dict[str, object]:
        """Keyword arguments for asyncio.create_subprocess_exec (nothing to change for root)."""
        if self.uid == 0 and self.gid == 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


ROOT = RunAs(0, 0)


def lookup(user: str | None, group: str | None) -> RunAs | None:
    """``user`` [``group``] as ids; None if the user (or group) does not exist."""
    if not user:
        return None
    try:
        pw = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    except KeyError:
        return None
    return RunAs(pw.pw_uid, gid)


def insecure(path: str) -> str | None:
    """Why ``path`` could be changed by someone other than root (None: it cannot)."""
    current = os.path.realpath(path)
    first = True
    while True:
        try:
            st = os.stat(current)
        except OSError as e:
            return f"cannot stat {current} ({e.strerror})"
        sticky_dir = stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_ISVTX) and not first
        if st.st_uid != 0:
            return f"{current} is owned by uid {st.st_uid}"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
            return f"{current} is writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'}"
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current, first = parent, False


@dataclass(frozen=True)
class ScriptPolicy:
    """global_defs' script settings, resolved once per configuration."""

    secure: bool = False
    default: RunAs = ROOT

    @classmethod
    def of(cls, script_user: str | None, script_group: str | None, enable_script_security: bool) -> ScriptPolicy:
        run_as = lookup(script_user, script_group) if script_user else lookup(DEFAULT_SCRIPT_USER, None)
        return cls(enable_script_security, run_as or ROOT)

    def run_as(self, user: str | None = None, group: str | None = None) -> RunAs | None:
        """Who runs a script with these per-script settings (None: that user does not exist)."""
        return lookup(user, group) if user else self.default

    def refusal(self, kind: str, argv: list[str], run_as: RunAs | None) -> str | None:
        """keepalived's log line for a script that must not run, or None if it may."""
        name = " ".join(argv)
        if not argv or resolve_program(argv[0]) is None:
            return f"Disabling {kind} script {name} since not found/accessible"
        if run_as is None:
            return f"Disabling {kind} script {name}: unknown user"
        if self.secure:
            why = insecure(resolve_program(argv[0]) or argv[0])
            if why is not None:
                return f"Disabling {kind} script {name} due to insecure ({why})"
        return None
