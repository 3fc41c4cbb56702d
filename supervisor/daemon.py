"""The supervisor process: start the roles, keep them alive, route signals and commands, stop cleanly.

``run(opts)`` is called by ``supervisor.cli`` for everything but -t/--dump-toml. In order, before any
thread, loop or ZeroMQ context exists (so a fork here is safe):

1. logging; load and validate the configuration (problems are logged as ``FILE:LINE: message``);
2. enter the network namespace (-s or net_namespace), then re-validate against its interfaces;
3. create the run dir (0700), lock it and every pidfile (a second daemon refuses to start), stop
   orphaned roles a killed daemon may have left;
4. daemonize unless -n (the foreground process exits only once the daemon holds its pidfiles);
5. run startup_script; then ``Supervisor.run()``: bind the bus, spawn the roles the configuration
   needs, and serve. At the end: shutdown_script, pidfiles removed, exit code returned.

Inside ``Supervisor`` everything happens on one asyncio loop: signal handlers only enqueue; signals and
``pykeepalivectl`` requests go through one dispatcher (``handle_command``); child exits arrive through a
pidfd per child (no SIGCHLD, no ``waitpid(-1)`` stealing a script's status); bus messages (ready,
heartbeats, teardown progress) and a 0.1 s tick drive each role's state machine (``supervisor.child``).

Where things live (``--run-dir``, default /run/pykeepalived): ``pub``/``sub``/``ctl`` sockets,
``gen-N.toml`` configuration generations, ``pykeepalived.pid``, ``vrrp.pid``, ``checkers.pid``,
``ipvs.pid`` (unless -p/-r/-c/--ipvs_pid), ``pykeepalived.log`` (a daemonized process's log when
there is no syslog socket), and the USR1/USR2 dumps ``supervisor.data``,
``vrrp.data``, ``checker.data``, ``ipvs.data``, ``vrrp.stats`` (JSON).

Test hook: ``PYKEEPALIVED_TUNABLES="hb_interval=0.2,hb_timeout=1,backoff_scale=0.1,..."`` shortens the
supervision timings (``child.Tunables``); the real timings are covered by unit tests with a fake clock.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import os
import select
import shlex
import signal
import sys
import time
from typing import Any

from supervisor import log as logsetup
from supervisor import netns, notify_systemd
from supervisor.backoff import BackoffPolicy
from supervisor.bus import Envelope, Publisher
from supervisor.child import Child, Ev, State, Tunables
from supervisor.config.load import LoadResult, load_config
from supervisor.config.model.config import Config
from supervisor.exitcodes import ExitCode
from supervisor.options import DEFAULT_RUN_DIR, build_parser
from supervisor.osapi import RealOS
from supervisor.pidfile import AlreadyRunning, PidFile, orphan, read_pid
from supervisor.role import TITLES

log = logging.getLogger("pykeepalived.supervisor")

ROLES = ("vrrp", "checker", "ipvs")  # start order is checker first in keepalived; ours: ipvs consumes checker
START_ORDER = ("ipvs", "checker", "vrrp")
MODULES = {"vrrp": "vrrpd", "checker": "checkerd", "ipvs": "ipvsd"}
PIDFILE_NAMES = {"supervisor": "pykeepalived.pid", "vrrp": "vrrp.pid", "checker": "checkers.pid", "ipvs": "ipvs.pid"}
TUNABLES_ENV = "PYKEEPALIVED_TUNABLES"
FALLBACK_LOG = "pykeepalived.log"  # a daemon's log when there is no syslog socket
SCRIPT_KILL_GRACE = 2.0
TICK = 0.1  # how often the state machines look at their deadlines
STALL_LAG = 1.0  # a tick this late means the supervisor itself was stalled  # keepalived: SIGTERM, then SIGKILL 2 s later


# -- configuration -------------------------------------------------------------------------------------


def tunables(child_wait_time: float) -> Tunables:
    fields: dict[str, float] = {}
    scale = 1.0
    for item in os.environ.get(TUNABLES_ENV, "").split(","):
        key, _, value = item.partition("=")
        if not key.strip():
            continue
        try:
            if key.strip() == "backoff_scale":
                scale = float(value)
            else:
                fields[key.strip()] = float(value)
        except ValueError:
            continue
    names = {f.name for f in dataclasses.fields(Tunables)}
    fields = {k: v for k, v in fields.items() if k in names and k != "backoff"}
    fields.setdefault("child_wait_time", child_wait_time)
    return Tunables(**fields, backoff=BackoffPolicy(scale=scale))


def wanted_roles(config: Config, opts: argparse.Namespace) -> set[str]:
    """The roles this configuration needs, as -P/-C restrict them."""
    want: set[str] = set()
    if config.has_vrrp and not opts.check:
        want.add("vrrp")
    if config.has_checker and not opts.vrrp:
        want |= {"checker", "ipvs"}
    return want


def log_problems(result: LoadResult) -> None:
    errors = result.diag.errors
    for problem in result.diag:
        (log.error if problem in errors else log.warning)("%s", problem)


def usable(result: LoadResult, *, reload: bool) -> bool:
    """Whether to run ``result``'s configuration.

    Startup runs with what remains after plain errors, as keepalived does, and refuses only a fatal
    problem. A reload also refuses plain errors: a running configuration is never replaced by a
    damaged one. Script-security violations are reported but never refused, at startup or reload
    alike (keepalived still runs such a configuration), so that a configuration that started can also
    be reloaded.
    """
    from supervisor.config.diag import Severity

    if result.config is None:
        return False
    refused = {Severity.FATAL, Severity.ERROR} if reload else {Severity.FATAL}
    return not any(p.severity in refused for p in result.diag)


def run_script(what: str, script: str | None, timeout: float) -> None:
    """startup_script / shutdown_script: run without a shell, bounded by its timeout.

    Spawned like a role (posix_spawn, default signal dispositions and an empty mask: the supervisor
    blocks its own signals outside its loop), in its own session, with / as its directory. On timeout:
    SIGTERM, then SIGKILL after 2 s, as keepalived does.
    """
    if not script:
        return
    argv = shlex.split(script)
    if len(argv) == 1 and " " in argv[0]:
        argv = shlex.split(argv[0])  # written quoted as a whole: `shutdown_script "/bin/cmd arg"`
    log.info("Running %s %s", what, script)
    cwd = os.getcwd()
    try:
        os.chdir("/")
        pid = os.posix_spawnp(argv[0], argv, dict(os.environ), setsid=True, setsigmask=(),
                              setsigdef=_SIGNALS_TO_RESET,
                              file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)])
    except OSError as e:
        log.error("Cannot run %s %s: %s", what, argv[0], e.strerror or e)
        return
    finally:
        os.chdir(cwd)
    status = _wait_pid(pid, timeout)
    if status is None:
        log.error("%s timed out after %g s: terminating it", what, timeout)
        RealOS().kill(pid, signal.SIGTERM)
        status = _wait_pid(pid, SCRIPT_KILL_GRACE)
        if status is None:
            RealOS().kill(pid, signal.SIGKILL)
            status = _wait_pid(pid, None)
    rc = os.waitstatus_to_exitcode(status or 0)
    if rc != 0:
        log.warning("%s exited with status %d", what, rc)


_SIGNALS_TO_RESET = frozenset(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
_HANDLED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}


def _wait_pid(pid: int, timeout: float | None) -> int | None:
    """The wait status of our child ``pid``, or None if it is still running after ``timeout``."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        return os.waitpid(pid, 0)[1]
    finally:
        os.close(fd)


# -- the supervisor -----------------------------------------------------------------------------------


class Supervisor:
    def __init__(self, opts: argparse.Namespace, config: Config, run_dir: str, pidfiles: dict[str, PidFile],
                 config_path: str) -> None:
        self.opts = opts
        self.config = config
        self.run_dir = run_dir
        self.pidfiles = pidfiles
        self.config_path = config_path
        self.os = RealOS()
        self.tun = tunables(config.child_wait_time)
        self.gen = 0
        self.gen_path = ""
        self.pub = Publisher("supervisor")
        self.commands: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[Any] | None]] = asyncio.Queue()
        self.children: dict[str, Child] = {}
        self.pidfds: dict[int, int] = {}
        self.stopping = False
        self.exit_code = int(ExitCode.OK)
        self.startup_done = False
        self.reloading = False
        self.reload_queued = False
        self.reload_target: int | None = None  # set once the new generation is out
        self.reload_started = 0.0
        self.reloads = 0
        self.reload_answer: asyncio.Future[str] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.started = time.time()
        self.stopped = asyncio.Event()
        for role in ROLES:
            self.children[role] = Child(
                role, self.os, argv=functools.partial(self._argv, role), env=self._env, hooks=self,
                tunables=self.tun, dont_respawn=opts.dont_respawn)

    # -- spawning ----------------------------------------------------------------------------------

    def _argv(self, role: str) -> list[str]:
        o = self.opts
        argv = [sys.executable, "-m", MODULES[role], "--run-dir", self.run_dir, "--config", self.gen_path,
                "--generation", str(self.gen), "--parent-pid", str(os.getpid()),
                "--log-detail", str(o.log_detail), "--log-facility", o.log_facility]
        if (role == "vrrp" and o.dont_release_vrrp) or (role == "ipvs" and o.dont_release_ipvs):
            argv.append("--dont-release")
        if o.log_console:
            argv.append("--log-console")
        if o.no_syslog:
            argv.append("--no-syslog")
        return argv

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYKEEPALIVED_HB_INTERVAL"] = str(self.tun.hb_interval)
        env.pop("NOTIFY_SOCKET", None)  # only the supervisor speaks to systemd
        return env

    # Hooks called by the state machines.
    def spawned(self, child: Child) -> None:
        assert child.pid is not None
        pid = child.pid
        self.pidfiles[child.role].write(pid)
        try:
            fd = os.pidfd_open(pid)
        except OSError as e:  # cannot happen for our own unreaped child; reap by polling if it does
            log.error("pidfd_open(%d) failed: %s", pid, e)
            return
        self.pidfds[pid] = fd
        asyncio.get_running_loop().add_reader(fd, self._reap, child.role, pid)

    def exited(self, child: Child, pid: int) -> None:
        fd = self.pidfds.pop(pid, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
        self.pidfiles[child.role].write(None)

    def terminate(self, code: int, reason: str) -> None:
        log.error("Terminating: %s", reason)
        if self.exit_code == int(ExitCode.OK):
            self.exit_code = code
        self.commands.put_nowait(("stop", {}, None))

    def _reap(self, role: str, pid: int) -> None:
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            wpid, status = pid, 0
        if wpid == 0:
            return  # not exited yet (circus #1036: (0, 0) is "still running", not an exit)
        self.children[role].handle(Ev.EXIT, status=status, pid=pid)
        self._check_progress()

    # -- bus ---------------------------------------------------------------------------------------

    def on_message(self, env: Envelope) -> None:
        role = env.src
        child = self.children.get(role)
        if child is None:
            return
        if env.topic == f"role.{role}" and env.kind == "state" and env.data.get("state") == "ready":
            child.handle(Ev.READY, gen=env.gen, pid=env.pid)
            self._check_progress()
        elif env.kind == "heartbeat":
            progress = env.data.get("progress")
            child.handle(Ev.HEARTBEAT, pid=env.pid, progress=progress if isinstance(progress, int) else None)
            # A lost "ready" (published before the broker's subscription reached the role) is
            # recovered by the next heartbeat, which carries the generation the role runs.
            if child.state is State.STARTING and env.gen > 0 and not env.data.get("stopping"):
                child.handle(Ev.READY, gen=env.gen, pid=env.pid)
                self._check_progress()

    def publish_generation(self) -> None:
        self.pub.gen = self.gen
        self.broker.publish(self.pub.make("cfg.generation", "state", {"gen": self.gen, "path": self.gen_path}))

    def write_generation(self, config: Config) -> None:
        from supervisor.config.toml_io import to_toml

        gen = self.gen + 1
        path = os.path.join(self.run_dir, f"gen-{gen}.toml")
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(to_toml(config))
        os.replace(tmp, path)
        self.gen, self.gen_path, self.config = gen, path, config
        # Keep the previous generation: a role started just before this one may still be reading it.
        old = os.path.join(self.run_dir, f"gen-{gen - 2}.toml")
        if os.path.exists(old):
            os.unlink(old)

    # -- the dispatcher ----------------------------------------------------------------------------

    def _on_signal(self, sig: signal.Signals) -> None:
        name = {signal.SIGTERM: "stop", signal.SIGINT: "stop", signal.SIGHUP: "reload",
                signal.SIGUSR1: "data", signal.SIGUSR2: "stats"}[sig]
        self.commands.put_nowait((name, {"signal": sig.name}, None))

    async def request(self, req: dict[str, Any]) -> Any:
        """A control request from the ROUTER: queued to the dispatcher, answered when it has run."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        cmd = str(req.get("cmd"))
        self.commands.put_nowait((cmd, req, fut))
        return await fut

    async def _dispatch(self) -> None:
        from supervisor.control import handle_command

        while True:
            cmd, args, fut = await self.commands.get()
            try:
                result = await handle_command(self, cmd, args)
                if isinstance(result, asyncio.Future):
                    # Answered later (a reload answers once the roles have applied it); the
                    # dispatcher goes on with the next command meanwhile.
                    if fut is not None:
                        result.add_done_callback(functools.partial(_chain, fut))
                elif fut is not None and not fut.done():
                    fut.set_result(result)
            except Exception as e:
                if fut is not None and not fut.done():
                    fut.set_exception(e)
                else:
                    log.exception("Error handling %s", cmd)

    # -- commands (called by control.handle_command) -----------------------------------------------

    def begin_stop(self, why: str) -> None:
        if self.stopping:
            log.warning("Second stop request (%s): killing the roles now", why)
            for c in self.children.values():
                c.handle(Ev.FORCE_STOP)
            return
        self.stopping = True
        log.info("Stopping (%s)", why)
        notify_systemd.notify("STOPPING=1")
        for role in reversed(START_ORDER):
            self.children[role].handle(Ev.STOP)
        self._check_progress()

    def begin_reload(self, why: str) -> str | asyncio.Future[str]:
        """Start a reload; the answer (a future for ``pykeepalivectl reload``) comes when it is done.

        The configuration is parsed in a worker thread so that the loop keeps reading heartbeats (a
        big configuration must not make healthy roles look unresponsive) and keeps answering
        commands; the result comes back through the dispatcher as ``reload-apply``.
        """
        if self.stopping:
            return "stopping: reload ignored"
        if self.reloading:
            self.reload_queued = True
            log.info("Reload requested (%s) while reloading: queued", why)
            return "queued"
        log.info("Reloading (%s)", why)
        notify_systemd.notify("RELOADING=1", "STATUS=Reloading")
        self.reloading = True
        self.reload_target = None
        self.reload_started = time.monotonic()
        self.reload_answer = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._parse_for_reload())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return self.reload_answer

    async def _parse_for_reload(self) -> None:
        result: LoadResult | Exception
        try:
            result = await asyncio.to_thread(load_config, self.config_path, config_id=self.opts.config_id)
        except Exception as e:  # a bug in the parser must not leave the reload hanging
            log.exception("Reload failed: error reading %s", self.config_path)
            result = e
        self.commands.put_nowait(("reload-apply", {"result": result}, None))

    def apply_reload(self, result: object) -> None:
        if not isinstance(result, LoadResult):
            self._reload_finished(False, "failed: could not read the configuration (see the log)")
            return
        if self.stopping:
            self._reload_finished(False, "stopping: reload abandoned")
            return
        log_problems(result)
        if not usable(result, reload=True) or result.config is None:
            log.error("Reload failed: %s has errors; keeping the running configuration (generation %d)",
                      self.config_path, self.gen)
            self._reload_finished(False, "failed: configuration errors (see the log)")
            return
        new = result.config
        for field, label in (("net_namespace", "net_namespace"), ("instance", "instance")):
            if getattr(new, field) != getattr(self.config, field):
                log.error("Reload failed: %s changed from %r to %r - please restart", label,
                          getattr(self.config, field), getattr(new, field))
                self._reload_finished(False, f"failed: {label} changed, needs a restart")
                return
        self.write_generation(new)
        self.reload_target = self.gen
        self.publish_generation()
        want = wanted_roles(new, self.opts)
        for role in START_ORDER:
            c = self.children[role]
            if role in want:
                if c.state is State.STOPPED:
                    c.handle(Ev.START)
                elif c.state is State.STOPPING:
                    c.handle(Ev.RESTART)  # an earlier reload stopped it: start it again once it is gone
                else:
                    c.handle(Ev.RELOAD)
            elif c.state not in (State.STOPPED, State.FATAL):
                log.info("%s role no longer configured: stopping it", role)
                c.handle(Ev.STOP)
                self.broker.cache.drop_sender(role)
        self._check_progress()

    def _reload_finished(self, ok: bool, answer: str = "") -> None:
        self.reloading = False
        self.reload_target = None
        if ok:
            self.reloads += 1
            log.info("Reload complete (generation %d, %.2f s)", self.gen, time.monotonic() - self.reload_started)
            answer = f"reloaded: configuration generation {self.gen}"
        notify_systemd.notify("READY=1", f"STATUS=Running, configuration generation {self.gen}")
        if self.reload_answer is not None and not self.reload_answer.done():
            self.reload_answer.set_result(answer)
        self.reload_answer = None
        if self.reload_queued:
            self.reload_queued = False
            self.commands.put_nowait(("reload", {"why": "queued"}, None))

    def restart_role(self, role: str) -> str:
        c = self.children[role]
        if c.state in (State.STOPPED, State.FATAL) and role not in wanted_roles(self.config, self.opts):
            return f"{role} is not configured"
        c.handle(Ev.RESTART)
        return f"restarting {role}"

    def forward_signal(self, sig: signal.Signals, roles: tuple[str, ...]) -> None:
        for role in roles:
            c = self.children[role]
            if c.pid is not None:
                self.os.kill(c.pid, sig)

    def _check_progress(self) -> None:
        """Startup/reload completion and the end of a stop, after any state change."""
        want = wanted_roles(self.config, self.opts)
        if self.stopping:
            if all(not c.alive for c in self.children.values()):
                self.stopped.set()
            return
        settled = all(
            self.children[r].state in (State.BACKOFF, State.FATAL)
            or (self.children[r].state is State.RUNNING and self.children[r].gen >= self.gen)
            for r in want
        )
        if not self.startup_done and settled:
            self.startup_done = True
            log.info("Startup complete")
            notify_systemd.notify("READY=1", f"STATUS=Running, configuration generation {self.gen}",
                                  f"MAINPID={os.getpid()}")
        elif self.reloading and settled and self.reload_target is not None and self.gen >= self.reload_target:
            self._reload_finished(ok=True)

    async def _ticker(self) -> None:
        last = self.os.monotonic()
        while True:
            await asyncio.sleep(TICK)
            try:
                now = self.os.monotonic()
                lag = now - last - TICK
                last = now
                if lag > STALL_LAG:
                    log.warning("Supervisor loop stalled for %.1f s: extending heartbeat deadlines", lag)
                    for c in self.children.values():
                        c.handle(Ev.STALL, lag=lag)
                for c in self.children.values():
                    c.handle(Ev.TICK)
                self._check_progress()
            except Exception:  # a bug here must not stop supervision for good: log it and go on
                log.exception("Error in the supervision tick")

    # -- main --------------------------------------------------------------------------------------

    async def run(self) -> int:
        from supervisor.broker import Broker

        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_log_loop_exception)
        self.broker = Broker(self.run_dir, self.on_message, self.request)
        self.broker.bind()
        self.broker.start()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            loop.add_signal_handler(sig, self._on_signal, sig)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        # Signals that arrived during start-up were held (see _run); they are delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        self.write_generation(self.config)
        self.publish_generation()
        want = wanted_roles(self.config, self.opts)
        if not want:
            log.warning("Warning - pykeepalived has no configuration to run")
        for role in START_ORDER:
            if role in want:
                self.children[role].handle(Ev.START)
        tasks = [asyncio.create_task(self._dispatch()), asyncio.create_task(self._ticker())]
        self._check_progress()
        try:
            await self.stopped.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for fd in self.pidfds.values():
                loop.remove_reader(fd)
                os.close(fd)
            await self.broker.close()
        return self.exit_code

    def status(self) -> dict[str, Any]:
        from supervisor.control import status

        return status(self)


def _chain(target: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    if not target.done():
        if source.cancelled():
            target.cancel()
        elif source.exception() is not None:
            target.set_exception(source.exception())  # type: ignore[arg-type]
        else:
            target.set_result(source.result())


def _log_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    log.error("Unexpected error in the supervisor loop: %s", context.get("message"),
              exc_info=exc if isinstance(exc, BaseException) else None)


# -- process set-up ------------------------------------------------------------------------------------


def _pidfile_paths(opts: argparse.Namespace, run_dir: str) -> dict[str, str]:
    given = {"supervisor": opts.pid_file, "vrrp": opts.vrrp_pid_file, "checker": opts.checkers_pid_file,
             "ipvs": opts.ipvs_pid_file}
    return {r: os.path.abspath(given[r] or os.path.join(run_dir, PIDFILE_NAMES[r])) for r in PIDFILE_NAMES}


def _stop_orphans(paths: dict[str, str]) -> None:
    """Roles of a killed daemon that are still alive (pids from the stale pidfiles)."""
    found = []
    for role in ROLES:
        p = orphan(read_pid(paths[role]), TITLES[role])
        if p is not None:
            log.warning("Found orphaned %s process %d from a previous run: stopping it", role, p.pid)
            p.terminate()
            p.resume()  # a stopped process would never act on the TERM
            found.append(p)
    if found:
        import psutil  # type: ignore[import-untyped]

        _, alive = psutil.wait_procs(found, timeout=10)
        for p in alive:
            p.kill()


def _daemonize(run_dir: str) -> int | None:
    """Double fork. Returns None in the daemon; in the original process, the exit code to return.

    The original process waits until the daemon has written its pidfile (or failed), so that an init
    script that reads the pidfile right after ``pykeepalived`` returns finds it.
    """
    r, w = os.pipe()
    if os.fork() > 0:
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read(1)
        return 0 if data == b"1" else int(ExitCode.FATAL)
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    # The terminal or pipe we were started from must be let go (an init script's caller waits for its
    # end). Without syslog, stderr is the log's fallback: it goes to a file in the run dir instead.
    out = devnull
    if not logsetup.syslog_available():
        out = os.open(os.path.join(run_dir, FALLBACK_LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    if out != devnull:
        os.close(out)
    os.close(devnull)
    os.environ["_PYKEEPALIVED_READY_FD"] = str(w)
    return None


def _tell_parent_ready() -> None:
    fd = os.environ.pop("_PYKEEPALIVED_READY_FD", None)
    if fd is not None:
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass


def run(opts: argparse.Namespace) -> int:
    logsetup.setup("supervisor", console=opts.log_console,
                   detail=opts.log_detail, facility=opts.log_facility, syslog=not opts.no_syslog)
    try:
        return _run(opts)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
    except Exception:
        log.exception("Unexpected exception in the supervisor")
        return int(ExitCode.PROGRAM_ERROR)


def _run(opts: argparse.Namespace) -> int:
    # Until the loop's handlers are installed, the signals we handle are held pending, not acted on by
    # their default action (a TERM during the startup script must still stop the daemon cleanly).
    signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
    config_path = os.path.abspath(opts.config_file)
    first = load_config(config_path, config_id=opts.config_id, check_host=False)
    if first.config is None:
        log_problems(first)
        log.error("Cannot start: no usable configuration in %s", config_path)
        return int(ExitCode.NO_CONFIG if not os.path.exists(config_path) else ExitCode.CONFIG)
    ns = opts.namespace or first.config.net_namespace
    if ns:
        try:
            netns.enter(ns)
        except netns.NetnsError as e:
            log.error("%s", e)
            return int(ExitCode.FATAL)
        log.info("Running in network namespace %s", ns)
    result = load_config(config_path, config_id=opts.config_id)  # now against the namespace's interfaces
    log_problems(result)
    if not usable(result, reload=False) or result.config is None:
        log.error("Cannot start: %s has fatal errors", config_path)
        return int(ExitCode.CONFIG)
    config = result.config
    if opts.dump_conf:
        from supervisor.config.dump import dump_text

        for line in dump_text(config).splitlines():
            log.info("%s", line)

    run_dir = os.path.abspath(opts.run_dir or DEFAULT_RUN_DIR)
    if not opts.run_dir and (config.instance or ns):
        run_dir = os.path.join(DEFAULT_RUN_DIR, config.instance or ns or "")
    try:
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        os.chmod(run_dir, 0o700)
    except OSError as e:
        log.error("Cannot create the run dir %s: %s", run_dir, e.strerror)
        return int(ExitCode.MISSING_PERMISSION if isinstance(e, PermissionError) else ExitCode.FATAL)
    paths = _pidfile_paths(opts, run_dir)
    pidfiles = {r: PidFile(p) for r, p in paths.items()}
    lock = PidFile(os.path.join(run_dir, "lock"))
    try:
        lock.acquire()
        for pf in pidfiles.values():
            pf.acquire()
    except AlreadyRunning as e:
        log.error("%s", e)
        print(f"pykeepalived: {e}", file=sys.stderr)
        return int(ExitCode.FATAL)
    except OSError as e:
        log.error("Cannot open pidfile: %s", e)
        return int(ExitCode.MISSING_PERMISSION if isinstance(e, PermissionError) else ExitCode.FATAL)
    _stop_orphans(paths)

    if not opts.dont_fork:
        code = _daemonize(run_dir)
        if code is not None:
            return code
    try:
        from setproctitle import setproctitle

        setproctitle(TITLES["supervisor"])
    except ImportError:
        pass
    pidfiles["supervisor"].write(os.getpid())
    for role in ROLES:
        pidfiles[role].write(None)
    _tell_parent_ready()
    log.info("Starting pykeepalived (pid %d, run dir %s)", os.getpid(), run_dir)
    gd = config.global_defs
    run_script("startup_script", gd.startup_script, gd.startup_script_timeout)

    sup = Supervisor(opts, config, run_dir, pidfiles, config_path)
    code = asyncio.run(sup.run())
    signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)  # the loop's handlers are gone: hold them again

    gd = sup.config.global_defs
    run_script("shutdown_script", gd.shutdown_script, gd.shutdown_script_timeout)
    for name in os.listdir(run_dir):
        if name.startswith("gen-") and name.endswith(".toml"):
            try:
                os.unlink(os.path.join(run_dir, name))
            except OSError:
                pass
    for pf in pidfiles.values():
        pf.release()
    lock.release()
    log.info("Stopped pykeepalived (exit code %d)", code)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the daemon without the config-test front end (``python -m supervisor.daemon``)."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
