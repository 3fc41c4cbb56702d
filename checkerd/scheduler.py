"""Per-checker loops and per-real-server health, with keepalived's timing rules.

Each checker is a :class:`CheckerRunner` on the reactor's timers (``checkerd.reactor``): a random warmup
(0 … warmup s), then one attempt, then the next one
``delay_loop`` s after the end of a conclusive attempt or ``delay_before_retry`` s after a failed one
that still has retries left (keepalived's tcp_epilog and friends). :class:`CheckerState` is that rule as
a pure state machine, unit-tested without sockets.

A real server is up when every one of its checkers is up; with no checker it is always up. A checker
starts up unless ``alpha`` is set; a checker resumed from the cache starts in the state the cache says
and as if it had run already, so a restart does not flap a server (no alpha, no "success" line).
Dynamic weights (misc_dynamic, FILE_CHECK) follow the last attempt that reported one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkerd.alert import Mailer, check_body
from checkerd.checks.base import Attempt, Check, Result, Target
from checkerd.reactor import Reactor, reactor
from checkerd.security import ScriptPolicy

if TYPE_CHECKING:
    from supervisor.config.model.checkers import Checker
    from supervisor.config.model.config import Config
    from supervisor.config.model.lvs import RealServer, SslConfig, VirtualServer
    from supervisor.config.model.vrrp import TrackFile

log = logging.getLogger("pykeepalived.checker")

# An attempt that outlives this (a bug, a stuck library call) is abandoned as a failure, never a hang.
GUARD_FACTOR = 4.0


@dataclass
class Step:
    delay: float  # seconds until the next attempt
    transition: str | None  # "up" | "down" | None (no state change to report)
    retries: int  # retries done before this conclusive attempt


@dataclass
class CheckerState:
    """keepalived's checker timing: is_up / has_run / retry_it, one attempt at a time."""

    retry: int
    delay_loop: float
    delay_before_retry: float
    is_up: bool = True
    has_run: bool = False
    retry_it: int = 0
    # HTTP_GET/SSL_GET: once down, retry the failed URL every max(delay_before_retry, delay_loop) and
    # stop counting retries (check_http.c epilog with a failed_url).
    http_style: bool = False

    def on_result(self, ok: bool) -> Step:
        if not ok and self.http_style and self.has_run and not self.is_up:
            return Step(max(self.delay_before_retry, self.delay_loop), None, 0)
        if ok or self.retry_it >= self.retry:
            delay, retries = self.delay_loop, self.retry_it
            self.retry_it = 0
            transition: str | None = None
            if ok and (not self.is_up or not self.has_run):
                transition = "up"
                self.is_up = True
            elif not ok and (self.is_up or not self.has_run):
                transition = "down"
                self.is_up = False
            self.has_run = True
            return Step(delay, transition, retries)
        self.retry_it += 1
        self.has_run = True
        return Step(self.delay_before_retry, None, 0)


def initial_state(cfg: Checker, resumed: bool | None) -> CheckerState:
    """``resumed``: the cached health of the real server (None: nothing cached, start afresh)."""
    st = CheckerState(retry=cfg.retry, delay_loop=cfg.delay_loop, delay_before_retry=cfg.delay_before_retry,
                      http_style=cfg.type in ("HTTP_GET", "SSL_GET"))
    if resumed is None:
        st.is_up = not cfg.alpha
    else:
        st.is_up, st.has_run = resumed, True
    return st


class CheckerRunner:
    """One checker's loop on the reactor; ``on_change(runner, step, result)`` is called after a conclusive
    attempt that changes something: a transition, a new reason or weight, or a failure to log.

    No task and no sleeping coroutine per checker: the next attempt is a reactor timer, and the checks
    that have a callback-driven :class:`~checkerd.checks.base.Attempt` (TCP_CHECK, HTTP_GET) run without
    any coroutine. The others run ``check.run()`` in a task, bounded by a guard timeout.
    """

    __slots__ = (
        "attempts",
        "cancelled",
        "check",
        "due",
        "gen",
        "inflight",
        "late",
        "on_change",
        "owner",
        "r",
        "reason",
        "state",
        "task",
        "warmup",
        "weight",
    )

    def __init__(self, check: Check, state: CheckerState, on_change: Callable[[CheckerRunner, Step, Result], None],
                 warmup: float = 0.0) -> None:
        self.check = check
        self.state = state
        self.on_change = on_change
        self.warmup = warmup
        self.reason = ""
        self.weight: int | None = None
        self.attempts = 0
        self.owner: RsHealth | None = None
        self.task: asyncio.Task[None] | None = None  # the running coroutine attempt, if any
        self.inflight: Attempt | None = None  # the running callback attempt, if any
        self.gen = 0  # bumped by cancel(): timers armed before it find a stale generation
        self.cancelled = False
        self.r: Reactor | None = None  # set by start()
        self.due = 0.0  # loop time the next (or current) attempt is meant to start at
        self.late = 0.0  # how late the loop started the current attempt

    @property
    def started(self) -> bool:
        return self.gen > 0

    def start(self) -> None:
        self.gen += 1
        self.r = reactor()
        delay = random.uniform(0, self.warmup) if self.warmup > 0 else 0.0
        self.due = self.r.time() + delay
        self.r.call_at(self.due, self._wake, self.gen)

    def cancel(self) -> None:
        self.cancelled = True
        self.gen += 1
        if self.inflight is not None:
            self.inflight.abort()
            self.inflight = None
        if self.task is not None:
            self.task.cancel()

    def _wake(self, gen: int) -> None:
        if gen != self.gen or self.cancelled:
            return
        if self.r is not None:
            self.late = max(0.0, self.r.time() - self.due)
        attempt = self.check.attempt(self._done, self.r)
        if attempt is not None:
            self.inflight = attempt
            try:
                attempt.start()
            except Exception as e:  # a bug in a check must cost one verdict, never the role
                log.exception("%s: unexpected error", self.check.describe())
                attempt.abort()
                self._done(Result.down(f"internal error: {e!r}"))
            return
        self.task = asyncio.get_running_loop().create_task(self._run(gen), name=self.check.describe())

    async def _run(self, gen: int) -> None:
        res = await self.attempt()
        if gen == self.gen:
            self.task = None
            self._done(res)

    async def attempt(self) -> Result:
        cfg = self.check.cfg
        guard = GUARD_FACTOR * (cfg.connect_timeout + max(cfg.delay_loop, cfg.misc_timeout or 0.0)) + 1.0
        try:
            async with asyncio.timeout(guard):
                return await self.check.run()
        except TimeoutError:
            return Result.down(f"{self.check.kind} attempt did not finish within {guard:.0f} s")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in a check must cost one verdict, never the role
            log.exception("%s: unexpected error", self.check.describe())
            return Result.down(f"internal error: {e!r}")

    def _done(self, res: Result) -> None:
        if self.cancelled:
            return
        self.inflight = None
        self.attempts += 1
        state = self.state
        step = state.on_result(res.ok)
        reason = "" if res.ok else res.reason
        changed = step.transition is not None or reason != self.reason
        self.reason = reason
        if res.weight is not None and res.weight != self.weight:
            self.weight = res.weight
            changed = True
        if changed or (not res.ok and self.check.cfg.log_all_failures):
            self.on_change(self, step, res)
        # The next attempt comes step.delay after this one ended, as in keepalived, but measured from
        # where this one was due rather than where a busy loop let it start: otherwise the checkers
        # a late loop served together would stay bunched forever, and bunches only grow.
        r = self.r or reactor()
        now = r.time()
        self.due = now - self.late + step.delay
        if state.retry_it and state.is_up and not res.ok:
            # A retry of a checker still up: its failure is the down verdict (the latency keepalived's
            # bound is about), so it must not queue behind a backlog of routine checks.
            r.call_urgent(max(self.due, now), self._wake, self.gen)
        else:
            r.call_routine(max(self.due, now), self._wake, self.gen)


# -- real servers ------------------------------------------------------------------------------------

def vs_key(vs: VirtualServer) -> str:
    """The virtual server's part of the bus key (``checker.rs.<vs_key>/<ip>:<port>``)."""
    if vs.fwmark is not None:
        return f"fwmark:{vs.fwmark}"
    if vs.group is not None:
        return f"group:{vs.group}"
    return f"{vs.address}:{vs.port}"


def _plain(obj: object) -> object:
    """A checker's configuration without its source locations: what "unchanged" compares on reload."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return tuple((f.name, _plain(getattr(obj, f.name))) for f in dataclasses.fields(obj) if f.name != "source")
    if isinstance(obj, list):
        return tuple(_plain(x) for x in obj)
    return obj


def _up_line(check: Check, url: str | None = None) -> str:
    rs = check.target.rs_text
    k = check.kind
    if k == "TCP_CHECK":
        return f"TCP connection to {rs} success."
    if k in ("HTTP_GET", "SSL_GET"):
        return f"Remote Web server {rs} succeed on service."
    if k == "MISC_CHECK":
        # keepalived names the script by its argv[0], the same as in the failure lines (misc.py)
        return f"Misc check for [{rs} VS {check.target.vs_text}] by [{getattr(check, 'script_name', '')}] succeeded."
    if k == "UDP_CHECK":
        return f"UDP connection to {rs} success."
    return f"{k} on service {rs} success."


def _down_line(check: Check, retries: int) -> str:
    k = "HTTP_CHECK" if check.kind in ("HTTP_GET", "SSL_GET") else check.kind
    after = f" after {retries} retries" if retries else ""
    return f"{k} on service {check.target.rs_text} failed{after}."


@dataclass
class RsHealth:
    """One real server of one virtual server, and the runners of its checkers."""

    key: str
    vs: VirtualServer
    rs: RealServer
    runners: list[CheckerRunner] = field(default_factory=list)
    alive: bool = True
    weight: int = 1
    failed: str = ""
    reason: str = ""

    def data(self) -> dict[str, Any]:
        return {"vs": vs_key(self.vs), "rs": f"{self.rs.address}:{self.rs.port}",
                "health": "up" if self.alive else "down", "weight": self.weight,
                "checkers": len(self.runners), "reason": self.reason, "failed": self.failed,
                "dynamic_weight": self.weight != self.rs.weight}

    def evaluate(self) -> None:
        down = [r for r in self.runners if not r.state.is_up]
        self.alive = not down
        self.failed = down[0].check.describe() if down else ""
        self.reason = down[0].reason if down else ""
        weight = self.rs.weight
        for r in self.runners:
            if r.weight is not None:
                weight = r.weight
        self.weight = weight


def target_of(vs: VirtualServer, rs: RealServer, ssl: SslConfig | None = None,
              track: dict[str, TrackFile] | None = None, scripts: ScriptPolicy | None = None) -> Target:
    return Target(rs.address, rs.port, (vs.protocol or "tcp").lower(), vs.describe(), ssl, track or {},
                  scripts or ScriptPolicy())


class HealthManager:
    """All real servers of a configuration, their checker loops, log lines, notify scripts and publishing.

    ``publish(key, data)`` receives every change of a real server (``data`` None: it is gone).
    ``resume`` maps keys to the cached payloads of a previous run (the restart case).
    """

    def __init__(self, publish: Callable[[str, dict[str, Any] | None], None]) -> None:
        self.publish = publish
        self.servers: dict[str, RsHealth] = {}
        self.published: dict[str, dict[str, Any]] = {}
        self._scripts: set[asyncio.Task[None]] = set()
        self.policy = ScriptPolicy()
        self.mailer: Mailer | None = None

    def apply(self, config: Config, resume: dict[str, dict[str, Any]] | None = None) -> None:
        """Start, keep (unchanged checkers keep their state and timers) or stop checkers for ``config``."""
        from checkerd.checks import make_check

        track = {t.name: t for t in config.track_files}
        g = config.global_defs
        self.policy = ScriptPolicy.of(g.script_user, g.script_group, g.enable_script_security)
        self.mailer = Mailer.of(g)
        new: dict[str, RsHealth] = {}
        for vs in config.virtual_servers:
            for rs in vs.real_servers:
                key = f"{vs_key(vs)}/{rs.address}:{rs.port}"
                old = self.servers.pop(key, None)
                h = RsHealth(key, vs, rs, alive=old.alive if old else True, weight=rs.weight)
                spare = list(old.runners) if old else []
                cached = (resume or {}).get(key)
                resumed: bool | None = None
                if old is not None:
                    resumed = old.alive
                elif cached is not None:
                    resumed = cached.get("health") == "up"
                for cfg in rs.checkers:
                    match = next((r for r in spare if _plain(r.check.cfg) == _plain(cfg)), None)
                    if match is not None:
                        spare.remove(match)
                        match.owner = h
                        h.runners.append(match)
                        continue
                    target = target_of(vs, rs, config.ssl, track, self.policy)
                    try:
                        check = make_check(cfg, target, rs.weight)
                    except ValueError as e:
                        log.error("%s: %s", cfg.source, e)
                        continue
                    runner = CheckerRunner(check, initial_state(cfg, resumed), self._on_change,
                                           warmup=cfg.warmup)
                    runner.owner = h
                    h.runners.append(runner)
                for r in spare:
                    r.cancel()
                h.evaluate()
                if old is None and cached is None and h.alive:
                    log.info("Adding service %s to VS %s", target_of(vs, rs).rs_text, vs.describe())
                new[key] = h
        for key, h in self.servers.items():
            for r in h.runners:
                r.cancel()
            self.published.pop(key, None)
            self.publish(key, None)
        self.servers = new
        for h in new.values():
            for r in h.runners:
                if not r.started:
                    r.start()
            self._publish(h)
        # The configuration and these objects live until the next reload: out of the cyclic GC's
        # sight, a full collection no longer walks them all and stalls every checker (>100 ms at
        # 12,000 real servers). Refcounting still frees them once a reload drops them.
        gc.collect()
        gc.freeze()

    def _publish(self, h: RsHealth) -> None:
        data = h.data()
        if self.published.get(h.key) != data:
            self.published[h.key] = data
            self.publish(h.key, data)

    def _on_change(self, runner: CheckerRunner, step: Step, res: Result) -> None:
        h = runner.owner
        if h is None or self.servers.get(h.key) is not h:
            return
        check = runner.check
        if not res.ok and ((runner.check.cfg.log_all_failures and runner.state.is_up) or step.transition):
            log.info("%s", res.reason)
        if step.transition == "up":
            log.info("%s", _up_line(check))
        elif step.transition == "down":
            log.info("%s", _down_line(check, step.retries))
        was = h.alive
        h.evaluate()
        if h.alive != was:
            rs_text = check.target.rs_text
            if h.alive:
                log.info("%s service %s %s VS %s", "Enabling" if h.rs.inhibit_on_failure else "Adding",
                         rs_text, "of" if h.rs.inhibit_on_failure else "to", h.vs.describe())
            else:
                log.info("%s service %s %s VS %s", "Disabling" if h.rs.inhibit_on_failure else "Removing",
                         rs_text, "of" if h.rs.inhibit_on_failure else "from", h.vs.describe())
            script = h.rs.notify_up if h.alive else h.rs.notify_down
            if script:
                self._run_script(script)
            if self.mailer is not None and h.rs.smtp_alert:
                self.mailer.alert_rs(rs_text, h.vs.describe(), h.alive, check_body(check.kind, h.alive, h.reason))
        self._publish(h)

    def _run_script(self, line: str) -> None:
        from checkerd.checks.misc import split_command

        argv = split_command(line)
        refusal = self.policy.refusal("notify", argv, self.policy.default)
        if refusal is not None:
            log.warning("%s", refusal)
            return
        kwargs = self.policy.default.kwargs

        async def run() -> None:
            try:
                proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                            start_new_session=True, **kwargs)  # type: ignore[arg-type]
                async with asyncio.timeout(SCRIPT_TIMEOUT):
                    await proc.wait()
            except TimeoutError:
                log.warning("notify script %s timed out", argv[0])
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            except OSError as e:
                log.warning("Cannot run notify script %s: %s", argv[0], e.strerror)

        if argv:
            t = asyncio.get_running_loop().create_task(run())
            self._scripts.add(t)
            t.add_done_callback(self._scripts.discard)

    def stop(self) -> None:
        if self.mailer is not None:
            self.mailer.stop()
        for h in self.servers.values():
            for r in h.runners:
                r.cancel()

    def dump(self) -> dict[str, Any]:
        return {k: {**h.data(), "checks": [{"check": r.check.describe(), "up": r.state.is_up,
                                             "reason": r.reason, "attempts": r.attempts,
                                             "retry_it": r.state.retry_it} for r in h.runners]}
                for k, h in self.servers.items()}


SCRIPT_TIMEOUT = 30.0  # seconds a notify_up/notify_down script may run before it is killed
