"""The per-role state machine: one ``Child`` per role, driven by events, acting through the OS facade.

The supervisor feeds each child events (start, stop, restart, ready, heartbeat, exit, tick) and the
child decides: spawn, signal, wait, respawn now or later, or ask the whole daemon to terminate. The
transitions are a table ``(State, Event) -> handler``; a pair missing from the table is ignored and
counted, so an unexpected event can never corrupt the state. Every transition is logged once with its
reason, in keepalived's words where keepalived has them.

Intent is explicit (circus issue #965): a stop or restart asked for by the operator or by a reload goes
through STOPPING, and the exit that follows is not a death: it neither feeds the backoff nor triggers
-R or the permanent-error rule. Only an exit the supervisor did not ask for is a death.

States::

    STOPPED ──start──▶ STARTING ──ready──▶ RUNNING
       ▲                  │  ╲               │  ╲ heartbeat missed: SIGABRT ▶ UNRESPONSIVE ─(grace)▶ SIGKILL
       │ exit             │   exit (death) ──┴──▶ respawn now (STARTING) / BACKOFF ─(delay)▶ STARTING
       └──── STOPPING ◀─stop/restart─┘           / FATAL (permanent code, or -R): daemon terminates
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum, auto
from typing import Protocol

from supervisor.backoff import Backoff, BackoffPolicy
from supervisor.exitcodes import PERMANENT, ExitCode
from supervisor.osapi import OSAPI

log = logging.getLogger("pykeepalived.supervisor")

# keepalived's names for its children in log lines ("VRRP child process(1234) died: Respawning").
DISPLAY = {"vrrp": "VRRP", "checker": "Healthcheck", "ipvs": "IPVS"}


class State(IntEnum):
    STOPPED = 0
    STARTING = 1  # spawned, has not yet reported that it loaded its configuration
    RUNNING = 2
    BACKOFF = 3  # died, waiting for its restart delay
    STOPPING = 4  # asked to stop (SIGTERM sent), waiting for the exit
    UNRESPONSIVE = 5  # missed its heartbeats, SIGABRT sent, SIGKILL follows
    FATAL = 6  # exited with a permanent error or died under -R: never restarted


class Ev(Enum):
    START = auto()
    STOP = auto()
    FORCE_STOP = auto()  # second TERM: no more waiting
    RESTART = auto()
    RELOAD = auto()  # a new generation was sent: heartbeat grace restarts
    READY = auto()
    HEARTBEAT = auto()
    EXIT = auto()
    TICK = auto()
    STALL = auto()  # the supervisor's own loop did not run for a while: heartbeats were not read


@dataclass(frozen=True, slots=True)
class Tunables:
    """Timings of supervision. Defaults are the product's; tests shorten them (see daemon.py)."""

    hb_interval: float = 1.0  # roles send a heartbeat this often
    hb_timeout: float = 5.0  # no heartbeat for this long: unresponsive
    start_grace: float = 60.0  # after a spawn or reload, heartbeats may pause this long (big configs)
    abort_grace: float = 3.0  # SIGABRT (for a traceback) then SIGKILL after this long
    child_wait_time: float = 5.0  # a stopping role that makes no progress this long is killed
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


class Hooks(Protocol):
    def spawned(self, child: Child) -> None: ...

    def exited(self, child: Child, pid: int) -> None: ...

    def terminate(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ExitInfo:
    pid: int
    code: int | None  # exit code, or None if killed by a signal
    signal: int | None

    @classmethod
    def from_status(cls, pid: int, status: int) -> ExitInfo:
        rc = os.waitstatus_to_exitcode(status)
        return cls(pid, rc, None) if rc >= 0 else cls(pid, None, -rc)

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        try:
            return f"exit code {self.code} ({ExitCode(self.code or 0).name})"
        except ValueError:
            return f"exit code {self.code}"


@dataclass
class Child:
    role: str
    os: OSAPI
    argv: Callable[[], list[str]]  # called at each spawn: the generation may have changed
    env: Callable[[], dict[str, str]]
    hooks: Hooks
    tunables: Tunables = field(default_factory=Tunables)
    dont_respawn: bool = False  # -R

    state: State = State.STOPPED
    pid: int | None = None
    started_at: float = 0.0
    restarts: int = 0  # respawns after deaths
    deaths: int = 0
    gen: int = 0  # generation the role last reported as loaded
    respawn_at: float = 0.0
    hb_deadline: float = 0.0
    grace_until: float = 0.0
    stop_deadline: float = 0.0
    kill_at: float = 0.0
    killed: bool = False
    progress: int = -1
    restart_after_stop: bool = False
    last_exit: ExitInfo | None = None
    transitions: int = 0
    ignored: Counter[tuple[State, Ev]] = field(default_factory=Counter)
    backoff: Backoff = field(init=False)

    def __post_init__(self) -> None:
        self.backoff = Backoff(self.tunables.backoff)

    @property
    def display(self) -> str:
        return DISPLAY.get(self.role, self.role)

    # -- the table ---------------------------------------------------------------------------------

    def handle(self, ev: Ev, *, status: int | None = None, gen: int = 0, progress: int | None = None,
               pid: int | None = None, lag: float = 0.0) -> None:
        handler = _TABLE.get((self.state, ev))
        if handler is None:
            self.ignored[(self.state, ev)] += 1
            return
        if pid is not None and pid != self.pid and ev in (Ev.EXIT, Ev.READY, Ev.HEARTBEAT):
            # A message or exit of an earlier process of this role (e.g. the last heartbeat of one that
            # was just restarted): it says nothing about the current one.
            self.ignored[(self.state, ev)] += 1
            return
        handler(self, status=status, gen=gen, progress=progress, lag=lag)

    def _to(self, state: State, reason: str) -> None:
        if state is not self.state:
            log.debug("%s child: %s -> %s (%s)", self.display, self.state.name, state.name, reason)
            self.state = state
            self.transitions += 1

    # -- actions -----------------------------------------------------------------------------------

    def _spawn(self, reason: str) -> None:
        now = self.os.monotonic()
        self.killed = False
        self.progress = -1
        self.restart_after_stop = False
        try:
            pid = self.os.spawn(self.argv(), self.env())
        except OSError as e:
            log.error("Unable to start %s child process: %s", self.display, e)
            self.pid = None
            self.started_at = now
            self._death(ExitInfo(0, int(ExitCode.FATAL), None), spawn_failed=True)
            return
        self.pid = pid
        self.started_at = now
        self.grace_until = now + self.tunables.start_grace
        self.hb_deadline = self.grace_until
        log.info("Starting %s child process, pid=%d (%s)", self.display, pid, reason)
        self._to(State.STARTING, reason)
        self.hooks.spawned(self)

    def _signal(self, sig: signal.Signals) -> None:
        if self.pid is not None:
            self.os.kill(self.pid, sig)

    def _begin_stop(self, restart: bool) -> None:
        self.restart_after_stop = restart
        self.stop_deadline = self.os.monotonic() + self.tunables.child_wait_time
        self._signal(signal.SIGTERM)
        self._to(State.STOPPING, "restart requested" if restart else "stop requested")

    def _death(self, info: ExitInfo, spawn_failed: bool = False) -> None:
        """An exit the supervisor did not ask for."""
        now = self.os.monotonic()
        uptime = now - self.started_at
        self.last_exit = info
        self.deaths += 1
        name = f"{self.display} child process({info.pid})"
        if info.code is not None and info.code in PERMANENT and not spawn_failed:
            log.error("%s exited with permanent error %s. Terminating", name, ExitCode(info.code).name)
            self._to(State.FATAL, info.describe())
            self.hooks.terminate(info.code, f"{self.role} exited with {info.describe()}")
            return
        if self.dont_respawn:
            log.critical("%s died: Exiting (%s)", name, info.describe())
            self._to(State.FATAL, info.describe())
            # keepalived raises SIGTERM and exits 0 here; we exit FATAL so an init system sees that the
            # daemon stopped because a role died, not because it was told to.
            self.hooks.terminate(int(ExitCode.FATAL), f"{self.role} died under --dont-respawn")
            return
        delay = self.backoff.on_death(uptime)
        self.restarts += 1
        if delay <= 0:
            log.warning("%s died: Respawning (%s after %.1f s)", name, info.describe(), uptime)
            self._spawn(f"respawn after {info.describe()}")
        else:
            log.warning("%s died: Respawning in %g s (%s after %.1f s; death %d of a crash loop)",
                        name, delay, info.describe(), uptime, self.backoff.streak)
            self.respawn_at = now + delay
            self._to(State.BACKOFF, f"delay {delay:g} s")

    # -- handlers ----------------------------------------------------------------------------------

    def _on_start(self, **_: object) -> None:
        self._spawn("configured")

    def _on_stop_idle(self, **_: object) -> None:
        self._to(State.STOPPED, "stop requested")

    def _on_stop_live(self, **_: object) -> None:
        self._begin_stop(restart=False)

    def _on_restart_live(self, **_: object) -> None:
        log.info("Restarting %s child process(%s) on request", self.display, self.pid)
        self._begin_stop(restart=True)

    def _on_restart_idle(self, **_: object) -> None:
        self._spawn("restart requested")

    def _on_restart_stopping(self, **_: object) -> None:
        self.restart_after_stop = True

    def _on_force_stop(self, **_: object) -> None:
        if self.state is not State.STOPPING:
            self._begin_stop(restart=False)
        self.restart_after_stop = False
        if not self.killed:
            self.killed = True
            self._signal(signal.SIGKILL)

    def _on_ready(self, *, gen: int = 0, **_: object) -> None:
        self.gen = max(self.gen, gen)
        now = self.os.monotonic()
        self.hb_deadline = max(self.grace_until, now + self.tunables.hb_timeout)
        if self.state is State.STARTING:
            log.info("%s child process(%s) ready (configuration generation %d)", self.display, self.pid, gen)
            self._to(State.RUNNING, "ready")

    def _on_reload(self, **_: object) -> None:
        self.grace_until = self.os.monotonic() + self.tunables.start_grace
        self.hb_deadline = max(self.hb_deadline, self.grace_until)

    def _on_heartbeat(self, **_: object) -> None:
        now = self.os.monotonic()
        self.hb_deadline = max(self.grace_until, now + self.tunables.hb_timeout)

    def _on_stall(self, *, lag: float = 0.0, **_: object) -> None:
        # Heartbeats that arrived while the supervisor was not looking are not missing ones.
        self.hb_deadline += lag

    def _on_heartbeat_stopping(self, *, progress: int | None = None, **_: object) -> None:
        # Only progress buys time: a role that heartbeats but removes nothing is stuck (issue #1173's
        # residue came from a fixed wait; ours waits as long as the teardown moves).
        if progress is not None and progress != self.progress:
            self.progress = progress
            self.stop_deadline = self.os.monotonic() + self.tunables.child_wait_time

    def _on_tick_live(self, **_: object) -> None:
        now = self.os.monotonic()
        if now >= self.hb_deadline:
            log.error("%s child process(%s) is not answering heartbeats: sending SIGABRT", self.display,
                      self.pid)
            self._signal(signal.SIGABRT)
            self.kill_at = now + self.tunables.abort_grace
            self._to(State.UNRESPONSIVE, "heartbeat missed")

    def _on_tick_unresponsive(self, **_: object) -> None:
        if not self.killed and self.os.monotonic() >= self.kill_at:
            log.error("%s child process(%s) failed to die - forcing termination", self.display, self.pid)
            self.killed = True
            self._signal(signal.SIGKILL)

    def _on_tick_stopping(self, **_: object) -> None:
        if not self.killed and self.os.monotonic() >= self.stop_deadline:
            log.error("%s child process(%s) failed to die - forcing termination", self.display, self.pid)
            self.killed = True
            self._signal(signal.SIGKILL)

    def _on_tick_backoff(self, **_: object) -> None:
        if self.os.monotonic() >= self.respawn_at:
            self._spawn("restart delay elapsed")

    def _on_exit_death(self, *, status: int | None = None, **_: object) -> None:
        info = ExitInfo.from_status(self.pid or 0, status or 0)
        self.hooks.exited(self, info.pid)
        self.pid = None
        self._death(info)

    def _on_exit_stopping(self, *, status: int | None = None, **_: object) -> None:
        info = ExitInfo.from_status(self.pid or 0, status or 0)
        self.last_exit = info
        self.hooks.exited(self, info.pid)
        self.pid = None
        if self.restart_after_stop:
            self._spawn("restart requested")
        else:
            log.info("%s child process(%d) stopped (%s)", self.display, info.pid, info.describe())
            self._to(State.STOPPED, info.describe())

    # -- queries -----------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def next_deadline(self) -> float | None:
        """When the next TICK can change something (the runtime sleeps until then)."""
        s = self.state
        if s in (State.STARTING, State.RUNNING):
            return self.hb_deadline
        if s is State.UNRESPONSIVE:
            return None if self.killed else self.kill_at
        if s is State.STOPPING:
            return None if self.killed else self.stop_deadline
        if s is State.BACKOFF:
            return self.respawn_at
        return None


S, E, C = State, Ev, Child
_LIVE = (S.STARTING, S.RUNNING, S.UNRESPONSIVE)
_TABLE: dict[tuple[State, Ev], Callable[..., None]] = {
    (S.STOPPED, E.START): C._on_start,
    (S.STOPPED, E.RESTART): C._on_restart_idle,
    (S.BACKOFF, E.STOP): C._on_stop_idle,
    (S.BACKOFF, E.FORCE_STOP): C._on_stop_idle,
    (S.BACKOFF, E.RESTART): C._on_restart_idle,
    (S.BACKOFF, E.TICK): C._on_tick_backoff,
    **{(s, E.STOP): C._on_stop_live for s in _LIVE},
    **{(s, E.FORCE_STOP): C._on_force_stop for s in (*_LIVE, S.STOPPING)},
    **{(s, E.EXIT): C._on_exit_death for s in _LIVE},
    (S.STARTING, E.RESTART): C._on_restart_live,
    (S.RUNNING, E.RESTART): C._on_restart_live,
    (S.STOPPING, E.RESTART): C._on_restart_stopping,
    (S.STARTING, E.READY): C._on_ready,
    (S.RUNNING, E.READY): C._on_ready,
    (S.STARTING, E.RELOAD): C._on_reload,
    (S.RUNNING, E.RELOAD): C._on_reload,
    (S.STARTING, E.HEARTBEAT): C._on_heartbeat,
    (S.RUNNING, E.HEARTBEAT): C._on_heartbeat,
    (S.STOPPING, E.HEARTBEAT): C._on_heartbeat_stopping,
    (S.STARTING, E.STALL): C._on_stall,
    (S.RUNNING, E.STALL): C._on_stall,
    (S.STARTING, E.TICK): C._on_tick_live,
    (S.RUNNING, E.TICK): C._on_tick_live,
    (S.UNRESPONSIVE, E.TICK): C._on_tick_unresponsive,
    (S.STOPPING, E.TICK): C._on_tick_stopping,
    (S.STOPPING, E.EXIT): C._on_exit_stopping,
}
