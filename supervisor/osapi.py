"""The OS facade: the few process primitives the supervisor's state machines use.

Everything that forks, signals or reads a clock goes through an ``OSAPI`` so that the per-child state
machine (``supervisor.child``) runs unchanged against ``RealOS`` in the daemon and against a fake in
unit tests (``tests/unit/supervisor/fakes.py``), as supervisord's ``options.py`` does.

``RealOS.spawn`` uses ``os.posix_spawn`` (fork+exec in one call, done by the C library): the
supervisor holds a ZeroMQ context (which owns I/O threads) and an asyncio loop, and no Python code may
run between a fork and an exec in such a process. Signal dispositions and the mask are reset to the
defaults in the child; every fd the supervisor opened is close-on-exec (Python's and libzmq's
default), so a role starts with only stdin, stdout and stderr.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Protocol


class OSAPI(Protocol):
    def monotonic(self) -> float: ...

    def spawn(self, argv: list[str], env: dict[str, str]) -> int:
        """Start ``argv`` in a new process; return its pid. Raises OSError if it cannot start."""
        ...

    def kill(self, pid: int, sig: int) -> None:
        """Send ``sig`` to ``pid``; a process that is already gone is not an error."""
        ...


_ALL_SIGNALS = frozenset(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}


class RealOS:
    def monotonic(self) -> float:
        return time.monotonic()

    def spawn(self, argv: list[str], env: dict[str, str]) -> int:
        return os.posix_spawn(
            argv[0],
            argv,
            env,
            setsigdef=_ALL_SIGNALS,  # handlers installed in the parent must not leak into the child
            setsigmask=(),
        )

    def kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
