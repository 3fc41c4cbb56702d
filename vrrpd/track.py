"""Trackers: vrrp_script runners and the interface link-state monitor (netlink events via pyroute2).

A tracker has a status (good/bad). An instance combines its trackers keepalived's way (pure function
:func:`effect`): a bad tracker with weight 0 puts it in FAULT; otherwise weights move the priority,
within 1..254 (an address owner's 255 is never moved).

* ``ScriptTracker``: runs the script every ``interval`` (no shell, killed after ``timeout``), counts
  consecutive results; ``fall`` failures make it bad, ``rise`` successes make it good. It starts good
  unless ``init_fail``. One runner serves every instance that tracks the script.
* ``LinkMonitor``: the up/running state and index of every link, from an RTM_NEWLINK/DELLINK
  subscription, so an interface going down is seen at once (no polling).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from supervisor.config.scripts import split_command
from vrrpd.notify import Runner

log = logging.getLogger("pykeepalived.vrrp")

IFF_UP = 0x1
IFF_RUNNING = 0x40


@dataclass(frozen=True, slots=True)
class Track:
    """One tracked object as an instance sees it."""

    kind: str  # interface | script
    name: str
    weight: int
    reverse: bool = False


def effect(base: int, tracks: list[tuple[Track, bool | int]]) -> tuple[bool, int, list[str]]:
    """(fault?, effective priority, reasons) from the base priority and each tracker's status: good or
    not for interfaces and scripts, the integer read for a track_file."""
    fault: list[str] = []
    delta = 0
    for t, status in tracks:
        if t.kind == "file":
            # keepalived: the file's value times the weight moves the priority; weight 0 means any
            # non-zero value is a FAULT, and so does a change of -254 or less
            value = int(status)
            if t.weight == 0:
                if value != 0:
                    fault.append(f"file {t.name}")
                continue
            change = value * t.weight * (-1 if t.reverse else 1)
            if change <= -254:
                fault.append(f"file {t.name}")
            elif base != 255:
                delta += change
            continue
        good = bool(status)
        # keepalived's table: +w applies while up, -w while down; reverse flips the sign of the change
        # (and 'weight 0 reverse' means FAULT while up)
        if t.weight == 0:
            if good == t.reverse:
                fault.append(f"{t.kind} {t.name}")
            continue
        if base == 255:
            continue  # an owner's priority is never moved
        applies = good if t.weight > 0 else not good
        if applies:
            delta += -t.weight if t.reverse else t.weight
    prio = base if base == 255 else max(1, min(254, base + delta))
    return bool(fault), prio, fault


@dataclass
class FileTracker:
    """track_file: the integer in a file (0 if missing or unreadable), re-read when its mtime changes."""

    name: str
    path: str
    init_file: int | None = None
    init_overwrite: bool = False
    value: int = 0
    listeners: list[Callable[[FileTracker], None]] = field(default_factory=list)
    _stamp: tuple[float, int] | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        if self.init_file is not None and (self.init_overwrite or not os.path.exists(self.path)):
            try:
                with open(self.path, "w", encoding="ascii") as f:
                    f.write(f"{self.init_file}\n")
            except OSError as e:
                log.warning("track_file %s: cannot create %s: %s", self.name, self.path, e.strerror)
        self.read()

    def read(self) -> bool:
        """Re-read if the file changed; True if the value changed."""
        try:
            st = os.stat(self.path)
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and self._stamp is not None:
            return False
        self._stamp = stamp
        value = 0
        if stamp is not None:
            try:
                with open(self.path, encoding="ascii", errors="replace") as f:
                    word = f.read(64).split()
                value = int(word[0]) if word else 0
            except (OSError, ValueError):
                value = 0
        changed, self.value = value != self.value, value
        return changed

    def start(self, interval: float = 0.2) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(interval))

    async def _loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.read():
                log.info("Track file %s now has value %d", self.name, self.value)
                for cb in list(self.listeners):
                    cb(self)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


@dataclass
class ScriptTracker:
    name: str
    cmdline: str
    interval: float = 1.0
    timeout: float | None = None
    rise: int = 1
    fall: int = 1
    init_fail: bool = False
    user: str | None = None
    good: bool = True
    runs: int = 0
    listeners: list[Callable[[ScriptTracker], None]] = field(default_factory=list)
    _ok_run: int = 0
    _bad_run: int = 0
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.good = not self.init_fail
        self.argv = split_command(self.cmdline)

    def start(self, runner: Runner) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(runner))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def record(self, ok: bool) -> bool:
        """Feed one result; True if the status changed."""
        self.runs += 1
        if ok:
            self._ok_run, self._bad_run = self._ok_run + 1, 0
            if not self.good and self._ok_run >= self.rise:
                self.good = True
                return True
        else:
            self._bad_run, self._ok_run = self._bad_run + 1, 0
            if self.good and self._bad_run >= self.fall:
                self.good = False
                return True
        return False

    async def _loop(self, runner: Runner) -> None:
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while True:
            rc = await runner.run(self.argv, self.timeout or self.interval, self.user)
            if self.record(rc == 0):
                log.info("Script `%s` now returning %s", self.name, "success" if self.good else "failure")
                for cb in list(self.listeners):
                    cb(self)
            nxt += self.interval
            now = loop.time()
            if nxt < now:
                nxt = now
            await asyncio.sleep(nxt - now)


@dataclass
class Link:
    name: str
    index: int
    up: bool
    mac: str


class LinkMonitor:
    """Link states from netlink events; ``listeners`` get (Link or None, name) on every change."""

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self.listeners: list[Callable[[str], None]] = []
        self._ipr: Any = None
        self._task: asyncio.Task[None] | None = None
        self.events = 0
        self.started = time.monotonic()

    def _update(self, msg: Any) -> None:
        name = msg.get("ifname")  # a pyroute2 ifinfmsg
        if not name:
            return
        old = self.links.get(name)
        if msg.get("event") == "RTM_DELLINK":
            self.links.pop(name, None)
        else:
            flags = int(msg["flags"])
            self.links[name] = Link(name, int(msg["index"]), (flags & (IFF_UP | IFF_RUNNING)) == (IFF_UP | IFF_RUNNING),
                                    str(msg.get("address") or "00:00:00:00:00:00"))
        new = self.links.get(name)
        if (old is None) != (new is None) or (old and new and (old.up, old.index) != (new.up, new.index)):
            self.events += 1
            for cb in list(self.listeners):
                cb(name)

    async def start(self) -> None:
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.rtnl import RTMGRP_LINK

        ipr = AsyncIPRoute()
        await ipr.bind(groups=RTMGRP_LINK)
        self._ipr = ipr
        async for msg in await ipr.link("dump"):
            self._update(msg)
        self._task = asyncio.get_running_loop().create_task(self._reader(ipr))

    async def _reader(self, ipr: Any) -> None:
        while True:
            try:
                async for msg in ipr.get():
                    self._update(msg)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a netlink hiccup must not stop link tracking
                log.warning("Link monitor: %s", e)
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
