"""Fixtures for the supervisor's integration tests: a whole pykeepalived running in a test namespace.

Each daemon runs in the foreground (-n -l, logging to a file) with its own --run-dir under tmp_path and
enters the test's namespace itself with -s, so the tests also cover -s. Supervision timings are
shortened through PYKEEPALIVED_TUNABLES (heartbeats every 0.2 s) except where a test measures the
real ones. Every wait is bounded; ``close()`` kills whatever is left, also when the test failed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest

from tests.lab.netns import Namespace, wait_for

REPO = Path(__file__).resolve().parents[3]
ROLE_TITLES = ("pykeepalived: vrrp", "pykeepalived: checker", "pykeepalived: ipvs")
FAST = "hb_interval=0.2,hb_timeout=3,start_grace=10,abort_grace=1"

VIP_A = "192.0.2.10/24"
VIP_B = "192.0.2.20/24"
BASE_ADDR = "192.0.2.1/24"  # veth0's own address, the VRRP advert source


def config_text(vips: tuple[str, ...] = (VIP_A,), *, vrrp: bool = True, lvs: bool = True,
                broken: bool = False, extra_global: str = "") -> str:
    parts = [f"global_defs {{\n    router_id pktest\n{extra_global}}}\n"]
    if vrrp:
        addrs = "\n".join(f"        {v}" for v in vips)
        parts.append(
            "vrrp_instance VI_1 {\n    state MASTER\n    interface veth0\n    virtual_router_id 51\n"
            f"    priority 150\n    advert_int 1\n    virtual_ipaddress {{\n{addrs}\n    }}\n}}\n")
    if lvs:
        parts.append(
            "virtual_server 192.0.2.10 80 {\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n"
            "    real_server 198.51.100.2 80 {\n        weight 1\n    }\n"
            "    real_server 198.51.100.3 80 {\n        weight 2\n    }\n}\n")
    if broken:
        parts.append("vrrp_instance VI_2 {\n    interface veth0\n    virtual_router_id 300\n"
                     "    virtual_ipaddress {\n        not-an-address\n    }\n")  # unclosed, bad VRID
    return "".join(parts)


@dataclass
class Daemon:
    ns: Namespace
    tmp: Path
    extra: list[str] = field(default_factory=list)
    tunables: str = FAST
    proc: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    env: dict[str, str] = field(default_factory=dict)
    foreground: bool = True

    def __post_init__(self) -> None:
        self.conf = self.tmp / "keepalived.conf"
        self.run_dir = self.tmp / "run"
        self.faults = self.tmp / "faults"
        self.faults.mkdir(exist_ok=True)
        self.log_path = self.tmp / "daemon.log"

    # -- control -----------------------------------------------------------------------------------

    def write_config(self, text: str) -> None:
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.conf)  # atomic: a HUP never sees half a file

    def start(self, *extra: str, wait: bool = True) -> Daemon:
        env = dict(os.environ, PYKEEPALIVED_TUNABLES=self.tunables, PYKEEPALIVED_FAULTS=str(self.faults))
        env.pop("NOTIFY_SOCKET", None)
        # A fork in a process with threads (a ZeroMQ context has some) is an error here (P2).
        env["PYTHONWARNINGS"] = "error::DeprecationWarning"
        env.update(self.env)
        self.mark()  # wait only for what this start logs
        fg = ["-n"] if self.foreground else []
        argv = [sys.executable, "-m", "supervisor.cli", *fg, "-l", "-G", "-f", str(self.conf),
                "--run-dir", str(self.run_dir), "-s", self.ns.name, *self.extra, *extra]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                         start_new_session=True)
        if wait:
            self.wait_log("Startup complete", timeout=15)
            if "-C" not in (*self.extra, *extra) and re.search(r"vrrp_instance VI_1 \{\n    state MASTER",
                                                               self.conf.read_text()):
                # Real VRRP (issue 4): an instance configured MASTER below priority 255 takes over one
                # advert interval after the start, as keepalived's does.
                self.wait_log(r"\(VI_1\) Entering MASTER STATE", timeout=5)
                # The state is logged before the addresses are added: wait for them too.
                wait_for(self.vips, timeout=5, message="MASTER without its VIPs")
        return self

    def ctl(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "supervisor.ctl", "--run-dir", str(self.run_dir), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=REPO)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 15) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def fault(self, role: str, what: str) -> None:
        (self.faults / f"{role}.{what}").touch()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        for p in self.all_titled():  # roles orphaned by a test that killed the supervisor
            try:
                p.kill()
            except psutil.Error:
                pass

    # -- observation -------------------------------------------------------------------------------

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def mark(self) -> None:
        """Later ``wait_log`` calls only look at what is logged from now on."""
        self.log_offset = len(self.log)

    def wait_log(self, pattern: str, timeout: float = 20, count: int = 1) -> str:
        rx = re.compile(pattern)

        def found() -> str | None:
            text = self.log[self.log_offset:]
            hits = rx.findall(text)
            if len(hits) >= count:
                return text
            if self.proc is not None and self.proc.poll() is not None and not hits:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging {pattern!r}:\n"
                                     f"{self.log[-4000:]}")
            return None

        try:
            return wait_for(found, timeout=timeout, message=f"{pattern!r} not logged")
        except TimeoutError as e:
            raise AssertionError(f"{e}; log tail:\n{self.log[-4000:]}") from None

    def all_titled(self) -> list[psutil.Process]:
        """Every live pykeepalived role process that runs in our namespace (also orphans)."""
        out = []
        mine = os.stat(f"/run/netns/{self.ns.name}").st_ino if os.path.exists(f"/run/netns/{self.ns.name}") else None
        for p in psutil.process_iter(["cmdline", "status"]):
            try:
                cmd = title(p.info["cmdline"])
                if not cmd.startswith("pykeepalived: ") or p.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                if mine is not None and os.stat(f"/proc/{p.pid}/ns/net").st_ino != mine:
                    continue
                out.append(p)
            except (psutil.Error, OSError):
                continue
        return out

    def titles(self) -> list[str]:
        """Titles of the supervisor and its live children."""
        assert self.proc is not None
        sup = psutil.Process(self.proc.pid)
        procs = [sup, *[c for c in sup.children() if c.status() != psutil.STATUS_ZOMBIE]]
        return sorted(title(p.cmdline()) for p in procs)

    def role_pids(self) -> dict[str, int]:
        assert self.proc is not None
        out = {}
        for c in psutil.Process(self.proc.pid).children():
            try:
                cmd = title(c.cmdline())
                if cmd in ROLE_TITLES and c.status() != psutil.STATUS_ZOMBIE:
                    out[cmd.split(": ")[1]] = c.pid
            except psutil.Error:
                continue
        return out

    def status(self) -> dict[str, Any]:
        import json

        r = self.ctl("status", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)  # type: ignore[no-any-return]

    def role_state(self, role: str) -> dict[str, Any]:
        return next(r for r in self.status()["roles"] if r["role"] == role)

    def wait_running(self, role: str, not_pid: int | None = None, timeout: float = 10) -> int:
        def ok() -> int | None:
            r = self.role_state(role)
            if r["state"] == "RUNNING" and r["pid"] and r["pid"] != not_pid:
                return int(r["pid"])
            return None

        return wait_for(ok, timeout=timeout, interval=0.05, message=f"{role} not RUNNING")

    def vips(self) -> set[str]:
        return self.ns.address_cidrs("veth0") - {BASE_ADDR}


@pytest.fixture
def ns(require_root: None) -> Iterator[Namespace]:
    with Namespace("sup") as n:
        n.add_veth("veth0", "veth1")
        # VRRP needs an IPv4 address on the interface (keepalived puts the instance in FAULT without one)
        n.add_address("veth0", BASE_ADDR)
        yield n


@pytest.fixture
def daemon(ns: Namespace, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(*extra: str, config: str | None = None, sub: str = "d", tunables: str = FAST) -> Daemon:
        where = tmp_path / sub if sub else tmp_path
        where.mkdir(exist_ok=True)
        d = Daemon(ns, where, list(extra), tunables)
        d.write_config(config if config is not None else config_text())
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in reversed(made):
            d.close()


def title(cmdline: list[str] | None) -> str:
    """The process title: setproctitle pads the rest of the old argv with empty strings."""
    return " ".join(a for a in cmdline or [] if a)


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def now() -> float:
    return time.monotonic()
