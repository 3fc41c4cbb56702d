"""What every role process does around its own work: the common child lifecycle.

A role is started by the supervisor as ``python -m vrrpd|checkerd|ipvsd --run-dir DIR --config FILE
--generation N --parent-pid PID [...]`` (fork+exec: a clean interpreter, no inherited ZeroMQ context,
loop, thread or netlink socket). ``main()`` then, in this order:

1. sets the process title (``pykeepalived: vrrp``), sets PR_SET_PDEATHSIG=SIGTERM and re-checks
   ``getppid()`` against ``--parent-pid`` (the supervisor may have died before the prctl);
2. sets up logging (syslog ident per role) and faulthandler (SIGABRT from the supervisor's heartbeat
   watch dumps every thread's traceback to stderr);
3. only now creates the asyncio loop and the ZeroMQ context, connects to the broker, subscribes,
   takes a snapshot of the cache (``supervisor.cache``), loads its configuration generation, starts
   the role, and says it is ready;
4. runs one dispatcher: signals (installed with ``loop.add_signal_handler`` and doing nothing but
   enqueue), new generations from the bus and the heartbeat ticker all go through one queue;
5. on TERM/INT (or when the supervisor is gone) tears down what it owns, reporting progress in its
   heartbeats so the supervisor keeps waiting while the teardown moves, and exits 0.

Exit codes (``supervisor.exitcodes``): ``RoleExit(code)`` from a role ends the process with that code
(CONFIG for a generation it cannot load, MISSING_PERMISSION for EPERM); any other exception is a bug,
logged with its traceback, and exits PROGRAM_ERROR, which the supervisor respawns.

Test hook (never set in production): with ``PYKEEPALIVED_FAULTS=DIR`` in the environment, a role that
finds ``DIR/<role>.raise``, ``DIR/<role>.hang`` or ``DIR/<role>.exit<N>`` at a heartbeat removes it and raises an exception, blocks its loop
or exits with N (as a ``RoleExit``); ``DIR/<role>.slowstop`` / ``.stuckstop`` found at stop make the teardown
take 4 s with progress / hang without progress. Tests make a live role fail on cue this way.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import faulthandler
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from supervisor import log as logsetup
from supervisor.bus import (
    CTL_NAME,
    PUB_NAME,
    SUB_NAME,
    Envelope,
    Publisher,
    Rejects,
    endpoint,
    enter_run_dir,
    split_bseq,
)
from supervisor.cache import Mirror
from supervisor.exitcodes import PERMANENT, ExitCode
from supervisor.jsonfile import write_json

if TYPE_CHECKING:
    from supervisor.config.model.config import Config

PR_SET_PDEATHSIG = 1
TITLES = {r: f"pykeepalived: {r}" for r in ("supervisor", "vrrp", "checker", "ipvs")}
WELCOME = b"welcome"
HB_INTERVAL_ENV = "PYKEEPALIVED_HB_INTERVAL"
FAULTS_ENV = "PYKEEPALIVED_FAULTS"
REPUBLISH_EVERY = 30  # heartbeats between full state re-publications

log = logging.getLogger("pykeepalived.role")


class RoleExit(Exception):
    """Raised by a role to end its process with ``code`` (after logging ``message``)."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class RoleImpl(Protocol):
    name: str
    subscriptions: tuple[str, ...]  # topic prefixes it follows, besides cfg.

    async def start(self, rt: Runtime, config: Config, gen: int) -> None: ...

    async def apply(self, config: Config, gen: int) -> None:
        """Move to a new generation, changing only what differs."""
        ...

    async def stop(self, release: bool, progress: Callable[[int], None]) -> None:
        """Tear down (unless ``release`` is False: -V/-I), calling ``progress(n)`` as it goes."""
        ...

    def on_state(self, env: Envelope) -> None:
        """A followed state key changed (after the snapshot)."""
        ...

    def republish(self) -> None:
        """Publish every state key again (a periodic repair for messages lost before a subscription)."""
        ...

    def dump(self) -> dict[str, Any]: ...

    def stats(self) -> dict[str, Any] | None: ...


def role_parser(role: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {role}d", description=f"pykeepalived {role} role (started by "
                                "the supervisor, not by hand)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--config", required=True, help="the TOML of a configuration generation")
    p.add_argument("--generation", type=int, required=True)
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--dont-release", action="store_true", help="-V for vrrp, -I for ipvs")
    p.add_argument("--log-console", action="store_true")
    p.add_argument("--log-detail", type=int, default=0)
    p.add_argument("--log-facility", default="daemon")
    p.add_argument("--no-syslog", action="store_true")
    return p


def set_pdeathsig(sig: int = signal.SIGTERM) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def load_generation(path: str) -> Config:
    """The configuration generation the supervisor validated and wrote for us (raises ValueError)."""
    from supervisor.config.diag import Diagnostics
    from supervisor.config.toml_io import from_toml

    with open(path, encoding="utf-8") as f:
        text = f.read()
    diag = Diagnostics()
    config = from_toml(text, diag, path)
    if config is None:
        raise ValueError("; ".join(str(p) for p in diag.errors) or "unreadable")
    return config


def main(impl: RoleImpl, argv: list[str] | None = None) -> int:
    args = role_parser(impl.name).parse_args(argv)
    try:
        from setproctitle import setproctitle

        setproctitle(TITLES[impl.name])
    except ImportError:  # a title is for operators; the role works without one
        pass
    set_pdeathsig()
    if os.getppid() != args.parent_pid:
        return int(ExitCode.OK)  # the supervisor died before the prctl: nothing started, nothing to undo
    logsetup.setup(impl.name, console=args.log_console, detail=args.log_detail, facility=args.log_facility,
                   syslog=not args.no_syslog)
    faulthandler.enable()
    try:
        return asyncio.run(Runtime(impl, args).run())
    except RoleExit as e:
        log.error("%s", e)
        return int(e.code)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
    except Exception:
        log.exception("Unexpected exception in the %s role: exiting with PROGRAM_ERROR", impl.name)
        return int(ExitCode.PROGRAM_ERROR)


@dataclass
class Runtime:
    impl: RoleImpl
    args: argparse.Namespace
    pub: Publisher = field(init=False)
    mirror: Mirror = field(default_factory=Mirror)
    rejects: Rejects = field(default_factory=Rejects)
    gen: int = 0
    config_path: str = ""
    progress_count: int = 0
    stopping: bool = False
    started_impl: bool = False

    def __post_init__(self) -> None:
        self.pub = Publisher(self.impl.name)
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.hb_interval = float(os.environ.get(HB_INTERVAL_ENV, "1.0"))
        self.started = time.monotonic()

    # -- bus ---------------------------------------------------------------------------------------

    def publish(self, topic: str, kind: str, data: dict[str, Any] | None = None) -> None:
        try:
            self.pub_sock.send_multipart(self.pub.make(topic, kind, data).to_wire(), flags=_NOBLOCK)
        except Exception as e:  # a full or closed socket loses one message, never the role
            log.debug("publish %s failed: %s", topic, e)

    def progress(self, n: int) -> None:
        self.progress_count = n
        self.publish(f"hb.{self.impl.name}", "heartbeat", {"progress": n, "stopping": True})

    async def _connect(self) -> None:
        import zmq
        import zmq.asyncio

        run_dir = self.args.run_dir
        enter_run_dir(run_dir)
        self.ctx = zmq.asyncio.Context()
        self.pub_sock = self.ctx.socket(zmq.PUB)
        self.pub_sock.setsockopt(zmq.LINGER, 1000)
        self.pub_sock.connect(endpoint(run_dir, PUB_NAME))
        self.sub_sock = self.ctx.socket(zmq.SUB)
        self.sub_sock.setsockopt(zmq.LINGER, 0)
        for prefix in (WELCOME.decode(), "cfg.", *self.impl.subscriptions):
            self.sub_sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.sub_sock.connect(endpoint(run_dir, SUB_NAME))
        self.ctl_sock = self.ctx.socket(zmq.DEALER)
        self.ctl_sock.setsockopt(zmq.LINGER, 0)
        self.ctl_sock.connect(endpoint(run_dir, CTL_NAME))
        # Clone pattern: wait until our subscription is in place (the broker's welcome message), then
        # take the snapshot; updates that arrive meanwhile are buffered by the mirror.
        try:
            await asyncio.wait_for(self._await_welcome(), timeout=5.0)
        except TimeoutError:
            log.warning("No welcome from the bus broker; continuing without it")
        await self._snapshot()

    async def _await_welcome(self) -> None:
        while True:
            frames = await self.sub_sock.recv_multipart()
            if frames and frames[0] == WELCOME:
                return
            self._on_bus(frames)

    async def _snapshot(self) -> None:
        prefixes = ["cfg.", *self.impl.subscriptions]
        for attempt in range(5):
            await self.ctl_sock.send_multipart([b"", json.dumps({"v": 1, "cmd": "snapshot", "prefixes": prefixes}).encode()])
            try:
                frames = await asyncio.wait_for(self.ctl_sock.recv_multipart(), timeout=2.0)
                reply = json.loads(frames[-1])
                items = []
                for b, raw in reply["result"]["items"]:
                    env = self.rejects.decode([raw["topic"].encode(), json.dumps(raw).encode()])
                    if env is not None:
                        items.append((int(b), env))
                self.mirror.on_snapshot(int(reply["result"]["bseq"]), items)
                return
            except (TimeoutError, ValueError, KeyError, TypeError, IndexError) as e:
                log.warning("Snapshot from the supervisor failed (attempt %d): %s", attempt + 1, e)
        log.warning("Running without a snapshot of the bus state")
        self.mirror.on_snapshot(0, [])

    def _on_bus(self, frames: list[bytes]) -> None:
        if frames and frames[0] == WELCOME:
            return
        env = self.rejects.decode(frames)
        if env is None:
            return
        if self.mirror.on_update(split_bseq(frames), env):
            self._changed(env)

    def _changed(self, env: Envelope) -> None:
        if env.topic == "cfg.generation":
            gen, path = int(env.data.get("gen", 0)), str(env.data.get("path", ""))
            if gen > self.gen and path:
                self.queue.put_nowait(("generation", (gen, path)))
        elif not self.stopping:
            self.impl.on_state(env)

    async def _reader(self) -> None:
        while True:
            frames = await self.sub_sock.recv_multipart()
            self._on_bus(frames)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        name = self.impl.name
        expected = time.monotonic() + self.hb_interval
        beats = 0
        while True:
            await asyncio.sleep(max(0.0, expected - time.monotonic()))
            lag = max(0.0, time.monotonic() - expected)
            expected = time.monotonic() + self.hb_interval
            if os.getppid() != self.args.parent_pid:
                self.queue.put_nowait(("parent-gone", None))
            self._faults()
            self.publish(f"hb.{name}", "heartbeat", {"gen": self.gen, "loop_lag_ms": round(lag * 1000, 1),
                                                     "progress": self.progress_count, "stopping": self.stopping})
            beats += 1
            if not self.stopping and beats % REPUBLISH_EVERY == 0:
                self._ready()
                self.impl.republish()

    def _faults(self) -> None:
        d = os.environ.get(FAULTS_ENV)
        if not d:
            return
        for entry in os.listdir(d) if os.path.isdir(d) else []:
            role, _, what = entry.partition(".")
            if role != self.impl.name or what in ("slowstop", "stuckstop"):  # those are read at stop
                continue
            os.unlink(os.path.join(d, entry))
            if what == "raise":
                self.queue.put_nowait(("fault", None))
            elif what == "hang":
                time.sleep(3600)  # the loop stops: heartbeats stop, the supervisor must notice
            elif what.startswith("exit") and what[4:].isdigit():
                self.queue.put_nowait(("exit", int(what[4:])))

    def _ready(self) -> None:
        self.publish(f"role.{self.impl.name}", "state", {"state": "ready", "gen": self.gen, "pid": os.getpid()})

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            loop.add_signal_handler(sig, self.queue.put_nowait, ("signal", sig))
        await self._connect()
        tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._heartbeat())]
        try:
            return await self._supervise(tasks)
        except RoleExit as e:
            if e.code in PERMANENT and self.started_impl and not self.stopping:
                # The whole daemon stops after a permanent error: leave nothing behind, as on TERM.
                # (A crash, respawned, keeps its addresses: one bug must not cost a failover.)
                log.error("%s", e)
                await self._stop("permanent error")
            raise
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.ctx.destroy(linger=500)

    async def _supervise(self, tasks: list[asyncio.Task[None]]) -> int:
        """Run the dispatcher; a bug in a background task (bus reader, heartbeat) ends the role too,
        as PROGRAM_ERROR, instead of leaving it half-alive (e.g. deaf to the bus but heartbeating)."""
        dispatch = asyncio.create_task(self._dispatch())
        try:
            done, _ = await asyncio.wait({dispatch, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            if dispatch in done:
                return dispatch.result()
            for t in done:
                t.result()
            raise RuntimeError("a background task of the role ended")
        finally:
            dispatch.cancel()
            await asyncio.gather(dispatch, return_exceptions=True)

    async def _load(self, path: str, gen: int) -> Config:
        try:
            return load_generation(path)
        except OSError as e:
            raise RoleExit(ExitCode.CONFIG, f"Cannot read configuration generation {gen} ({path}): {e.strerror}")
        except ValueError as e:
            raise RoleExit(ExitCode.CONFIG, f"Configuration generation {gen} ({path}) is invalid: {e}")

    async def _dispatch(self) -> int:
        impl = self.impl
        # The generation on our command line, unless the snapshot already holds a newer one.
        path, gen = self.args.config, self.args.generation
        cached = self.mirror.state.get("cfg.generation")
        if cached is not None and int(cached.data.get("gen", 0)) > gen:
            gen, path = int(cached.data["gen"]), str(cached.data["path"])
        config = await self._load(path, gen)
        self.pub.gen = self.gen = gen
        self.config_path = path
        self.started_impl = True
        await impl.start(self, config, gen)
        self._ready()
        for env in list(self.mirror.state.values()):
            if env.topic != "cfg.generation":
                impl.on_state(env)
        while True:
            what, arg = await self.queue.get()
            if what == "signal":
                sig = signal.Signals(arg)
                if sig in (signal.SIGTERM, signal.SIGINT):
                    return await self._stop(f"{sig.name} received")
                if sig is signal.SIGHUP:
                    # The supervisor reloads us over the bus; a stray HUP re-applies what we run.
                    config = await self._load(self.config_path, self.gen)
                    await impl.apply(config, self.gen)
                    self._ready()
                elif sig is signal.SIGUSR1:
                    self._write_file(f"{impl.name}.data", impl.dump())
                elif sig is signal.SIGUSR2:
                    stats = impl.stats()
                    if stats is not None:
                        self._write_file(f"{impl.name}.stats", stats)
            elif what == "generation":
                new_gen, new_path = arg
                if new_gen <= self.gen:
                    continue
                config = await self._load(new_path, new_gen)
                log.info("Reloading: configuration generation %d", new_gen)
                await impl.apply(config, new_gen)
                self.pub.gen = self.gen = new_gen
                self.config_path = new_path
                self._ready()
            elif what == "parent-gone":
                return await self._stop("the supervisor is gone")
            elif what == "fault":
                raise RuntimeError("fault injected by the test hook")
            elif what == "exit":
                raise RoleExit(ExitCode(arg), f"Exiting with {ExitCode(arg).name} (test hook)")

    def _fault_file(self, what: str) -> bool:
        d = os.environ.get(FAULTS_ENV)
        path = os.path.join(d, f"{self.impl.name}.{what}") if d else ""
        if path and os.path.exists(path):
            os.unlink(path)
            return True
        return False

    async def _stop(self, why: str) -> int:
        log.info("Stopping (%s)", why)
        self.stopping = True
        self.publish(f"role.{self.impl.name}", "state", {"state": "stopping", "gen": self.gen, "pid": os.getpid()})
        if self._fault_file("slowstop"):  # test hook: a long teardown that keeps progressing
            for n in range(1, 11):
                await asyncio.sleep(0.4)
                self.progress(n)
        if self._fault_file("stuckstop"):  # test hook: a teardown that stops progressing
            await asyncio.sleep(3600)
        await self.impl.stop(not self.args.dont_release, self.progress)
        self.publish(f"role.{self.impl.name}", "delete")
        log.info("Stopped")
        return int(ExitCode.OK)

    def _write_file(self, name: str, data: dict[str, Any]) -> None:
        path = os.path.join(self.args.run_dir, name)
        try:
            write_json(path, data)
            log.info("Wrote %s", path)
        except OSError as e:
            log.error("Cannot write %s: %s", path, e.strerror)


_NOBLOCK = 1  # zmq.NOBLOCK, without importing zmq at module load (roles import it after the prctl)


def run_role(impl: RoleImpl) -> None:
    """Entry point for ``<role>/__main__.py``."""
    sys.exit(main(impl))
