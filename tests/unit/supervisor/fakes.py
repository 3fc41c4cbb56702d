"""FakeOS: the OS facade for unit tests: scripted pids, recorded signals and a clock the test moves."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from supervisor.child import Child


def exit_status(code: int) -> int:
    """A wait status for a normal exit with ``code`` (as waitpid returns it)."""
    return (code & 0xFF) << 8


def signal_status(sig: int) -> int:
    return sig & 0x7F


@dataclass
class FakeOS:
    now: float = 1000.0
    next_pid: int = 100
    spawned: list[tuple[int, list[str]]] = field(default_factory=list)
    signals: list[tuple[int, int]] = field(default_factory=list)
    fail_spawn: bool = False

    def monotonic(self) -> float:
        return self.now

    def spawn(self, argv: list[str], env: dict[str, str]) -> int:
        if self.fail_spawn:
            raise FileNotFoundError(2, "No such file", argv[0])
        self.next_pid += 1
        self.spawned.append((self.next_pid, argv))
        return self.next_pid

    def kill(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))

    def advance(self, dt: float) -> None:
        self.now += dt

    def sent(self, sig: signal.Signals) -> list[int]:
        return [p for p, s in self.signals if s == sig]


@dataclass
class RecordingHooks:
    spawns: list[int] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)
    terminations: list[tuple[int, str]] = field(default_factory=list)

    def spawned(self, child: Child) -> None:
        assert child.pid is not None
        self.spawns.append(child.pid)

    def exited(self, child: Child, pid: int) -> None:
        self.exits.append(pid)

    def terminate(self, code: int, reason: str) -> None:
        self.terminations.append((code, reason))
