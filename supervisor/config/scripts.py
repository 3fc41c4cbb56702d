"""Script checks at load time: does the command exist, and may it run under script security?

keepalived 2.2.7 silently drops a script whose program does not exist (it is never run), and reports
a SECURITY VIOLATION (config-test code 6) when a script that would run as root exists but
enable_script_security is off, adding "There are insecure scripts." when one is writable by a
non-root user. With enable_script_security on, the default script user must exist (or script_user
must name one). Splitting follows keepalived 2.x: the first word of the command line is the program.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat

from supervisor.config.diag import NOWHERE, Diagnostics, Where
from supervisor.config.model.config import Config
from supervisor.config.parse.table import ScriptRef

DEFAULT_SCRIPT_USER = "keepalived_script"


def split_command(cmdline: str) -> list[str]:
    """argv of a script line, keepalived 2.x style: words, with single and double quotes grouping.

    A command line written as one quoted string (`script "killall -0 sshd"`) is the whole command,
    so a single word that contains blanks is split once more.
    """
    try:
        argv = shlex.split(cmdline, comments=False, posix=True)
        if len(argv) == 1 and any(c.isspace() for c in argv[0]):
            argv = shlex.split(argv[0], comments=False, posix=True)
    except ValueError:
        return cmdline.split()
    return argv


_SHELL_WORDS = {";", "|", "||", "&&", "&", ">", ">>", "<", "<<", ">&", "<&", "&>", ">|", ";;"}
_SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh"}


def shell_syntax(cmdline: str) -> str | None:
    """The first piece of shell syntax in a command line that no shell will interpret, if any.

    keepalived 2.x runs scripts without a shell, so `a; b`, pipes and redirections reach the program as
    arguments; an explicit `/bin/sh -c '...'` is the way to get them interpreted. Quoted text is an
    argument like any other (`grep -E 'a|b'` is fine).
    """
    argv = split_command(cmdline)
    if not argv or (os.path.basename(argv[0]) in _SHELLS and "-c" in argv[1:2]):
        return None
    try:
        as_written = shlex.split(cmdline)
    except ValueError:
        return None
    # `script "a; b"`: a single quoted string is the whole command line
    inner = as_written[0] if len(as_written) == 1 else cmdline
    lexer = shlex.shlex(inner, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return None
    for word in words[1:]:
        if word in _SHELL_WORDS or "$(" in word or "`" in word:
            return word
    return None


def resolve_program(program: str) -> str | None:
    if "/" in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program)


def _insecure(path: str) -> bool:
    """Writable by someone other than root, itself or through any directory above it."""
    current = os.path.realpath(path)
    while True:
        try:
            st = os.stat(current)
        except OSError:
            return False
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_uid != 0 or (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir):
            return True
        parent = os.path.dirname(current)
        if parent == current:
            return False
        current = parent


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def check_scripts(config: Config, scripts: list[ScriptRef], diag: Diagnostics, top: Where = NOWHERE) -> None:
    for ref in scripts:
        found = shell_syntax(ref.cmdline)
        if found is not None:
            diag.notice(
                ref.where,
                f"script {ref.cmdline} contains {found!r}, which no shell will interpret (scripts run without "
                f"a shell): use /bin/sh -c '...' if a shell is meant",
            )
    runnable: list[tuple[ScriptRef, str]] = []
    for ref in scripts:
        argv = split_command(ref.cmdline)
        if not argv:
            continue
        path = resolve_program(argv[0])
        if path is not None:
            runnable.append((ref, path))
    if not runnable:
        return
    g = config.global_defs
    if not g.enable_script_security:
        insecure = any(_insecure(path) for _, path in runnable)
        suffix = " There are insecure scripts." if insecure else ""
        diag.security(top, f"SECURITY VIOLATION - scripts are being executed but script_security not enabled.{suffix}")
        return
    if g.script_user is None and not _user_exists(DEFAULT_SCRIPT_USER):
        for ref, _ in runnable:
            if ref.user is None:
                diag.error(ref.where, f"Unable to set default user {DEFAULT_SCRIPT_USER} for script")
                return
