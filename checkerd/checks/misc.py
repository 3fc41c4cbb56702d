"""MISC_CHECK: a command run without a shell, killed at misc_timeout; exit 0 up, 1 down.

With ``misc_dynamic`` an exit code 2-255 means up with weight ``code - 2`` (keepalived). The command
runs without blocking the loop (asyncio subprocess), as ``user`` [``group``] when given, else as the
script user (checkerd.security, which also refuses an insecure script under enable_script_security), with its own
process group so a timeout kills whatever it started too (TERM, then KILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from typing import TYPE_CHECKING

from checkerd.checks.base import Check, Result, Target

if TYPE_CHECKING:
    from supervisor.config.model.checkers import Checker

KILL_GRACE = 1.0  # seconds between TERM and KILL of a timed-out script (keepalived waits too)


def split_command(line: str) -> list[str]:
    """misc_path as written (possibly quoted as a whole) → argv."""
    text = line.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


class MiscCheck(Check):
    kind = "MISC_CHECK"

    def __init__(self, cfg: Checker, target: Target) -> None:
        super().__init__(cfg, target)
        policy = target.scripts
        self.run_as = policy.run_as(cfg.user, cfg.group if cfg.user else None)
        refusal = policy.refusal("misc", self.argv, self.run_as)
        if refusal is not None:
            raise ValueError(refusal)  # the checker is not run at all (keepalived drops it too)

    def describe(self) -> str:
        return f"MISC_CHECK {self.script_name}".rstrip()

    @property
    def script_name(self) -> str:
        """The script as keepalived's log lines name it: its argv[0], whole (spaces included)."""
        argv = self.argv
        return argv[0] if argv else ""

    @property
    def argv(self) -> list[str]:
        return split_command(self.cfg.misc_path or "")

    async def run(self) -> Result:
        argv = self.argv
        if not argv:
            return Result.down("no misc_path")
        timeout = self.cfg.misc_timeout or self.cfg.delay_loop
        where = f"[{self.target.rs_text} VS {self.target.vs_text}] by [{self.script_name}]"
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
                **(self.run_as.kwargs if self.run_as is not None else {}))  # type: ignore[arg-type]
        except (OSError, KeyError, ValueError) as e:
            return Result.down(f"Misc check for {where} failed (cannot run it: {e})")
        try:
            async with asyncio.timeout(timeout):
                code = await proc.wait()
        except TimeoutError:
            await self._kill(proc)
            return Result.down(f"Misc check for {where} timed out")
        finally:
            if proc.returncode is None:
                await self._kill(proc)
        if code < 0:
            return Result.down(f"Misc check for {where} failed (due to signal {-code})")
        if code == 0:
            return Result.up()
        if self.cfg.misc_dynamic and code >= 2:
            return Result.up(weight=code - 2)
        return Result.down(f"Misc check for {where} failed (exit status {code})")

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                async with asyncio.timeout(wait):
                    await proc.wait()
                return
            except TimeoutError:
                continue
