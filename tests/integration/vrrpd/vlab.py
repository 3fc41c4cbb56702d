"""Helpers for the VRRP integration tests: routers (pykeepalived or Debian's keepalived) on a lab bridge,
a capture of the adverts on the bridge, and the role's own view (RUN/vrrp.data after SIGUSR1).

Every wait is bounded; processes are started through the lab namespaces, which kill them on close.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from tests.lab.netns import LabBridge, Namespace, wait_for

REPO = Path(__file__).resolve().parents[3]
FAST = "hb_interval=0.2,hb_timeout=3,start_grace=10,abort_grace=1"
KEEPALIVED = "/usr/sbin/keepalived"


def instance_conf(name: str = "VI_1", *, vrid: int = 51, prio: int = 100, adv: float = 0.2, version: int = 3,
                  vips: tuple[str, ...] = ("192.0.2.100/24",), state: str = "BACKUP", iface: str = "eth0",
                  extra: str = "") -> str:
    addrs = "\n".join(f"    {v}" for v in vips)
    return (f"vrrp_instance {name} {{\n  interface {iface}\n  state {state}\n  virtual_router_id {vrid}\n"
            f"  priority {prio}\n  advert_int {adv}\n  version {version}\n{extra}\n"
            f"  virtual_ipaddress {{\n{addrs}\n  }}\n}}\n")


def conf(*instances: str, router_id: str = "r", extra_global: str = "", head: str = "") -> str:
    return f"global_defs {{\n  router_id {router_id}\n{extra_global}}}\n{head}" + "".join(instances)


@dataclass
class Router:
    """pykeepalived in one host namespace (-n -l, its own run dir)."""

    ns: Namespace
    tmp: Path
    name: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dir = self.tmp / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "log"
        self.log_offset = 0
        self.run_dir = self.dir / "run"

    def start(self, text: str) -> Router:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cf = self.dir / "keepalived.conf"
        cf.write_text(text)
        env = {**os.environ, "PYKEEPALIVED_TUNABLES": FAST, "PYTHONPATH": str(REPO)}
        self.proc = self.ns.popen([sys.executable, "-m", "supervisor.cli", "-n", "-l", "-f", str(cf),
                                   "--run-dir", str(self.run_dir)], stdout=open(self.log_path, "ab"),
                                  stderr=subprocess.STDOUT, cwd=str(REPO), env=env)
        # signals before the supervisor's handlers are in place would kill it: wait until it is up
        wait_for(lambda: "Startup complete" in self.log() or (self.proc is not None and self.proc.poll() is not None),
                 15, interval=0.05, message=f"{self.name}: never started")
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.log()[-3000:]}"
        return self

    def reload(self, text: str) -> None:
        (self.dir / "keepalived.conf").write_text(text)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def log(self, whole: bool = False) -> str:
        """This run's log (since the last start), or every run's."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(0 if whole else self.log_offset)
            return f.read().decode(errors="replace")

    def vrrp_pid(self) -> int | None:
        if self.proc is None:
            return None
        try:
            # ip netns exec -> supervisor -> roles
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                if " ".join(p.cmdline()).startswith("pykeepalived: vrrp"):
                    return int(p.pid)
        except psutil.NoSuchProcess:
            return None
        return None

    def supervisor_pid(self) -> int | None:
        # `ip netns exec` execs the command: the Popen pid is the supervisor itself
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def data(self, timeout: float = 5.0) -> dict[str, Any]:
        """The role's dump (RUN/vrrp.data), freshly written."""
        path = self.run_dir / "vrrp.data"
        before = path.stat().st_mtime_ns if path.exists() else 0
        pid = self.supervisor_pid()
        assert pid is not None, "supervisor not running"
        os.kill(pid, signal.SIGUSR1)

        def fresh() -> dict[str, Any] | None:
            if not path.exists() or path.stat().st_mtime_ns == before:
                return None
            try:
                return json.loads(path.read_text())  # type: ignore[no-any-return]
            except ValueError:
                return None
        return wait_for(fresh, timeout, interval=0.05, message=f"{self.name}: no vrrp.data")

    def state(self, inst: str = "VI_1") -> str | None:
        d = self.data()
        return (d.get("instances", {}).get(inst) or {}).get("state")

    def wait_state(self, state: str, inst: str = "VI_1", timeout: float = 10.0) -> None:
        wait_for(lambda: self.state(inst) == state, timeout, interval=0.1,
                 message=f"{self.name}: {inst} never {state}; log:\n{self.log()[-3000:]}")

    def counters(self, inst: str = "VI_1") -> dict[str, int]:
        return dict(self.data()["instances"][inst]["counters"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill_all(self) -> None:
        """SIGKILL the supervisor and its roles (a crashed host: nothing is sent, VIPs stay)."""
        assert self.proc is not None
        # The roles first: once the supervisor is dead, PDEATHSIG would make a role stop gracefully
        # (priority 0) before its own SIGKILL arrives.
        procs: list[psutil.Process] = []
        try:
            procs = psutil.Process(self.proc.pid).children(recursive=True)[::-1]
        except psutil.NoSuchProcess:
            pass
        procs.append(psutil.Process(self.proc.pid))
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(10)

    def transitions(self, inst: str = "VI_1") -> list[str]:
        return re.findall(rf"\({re.escape(inst)}\) Entering (\w+) STATE", self.log())


@dataclass
class Keepalived:
    """Debian's keepalived 2.2.7 as a peer in a host namespace."""

    ns: Namespace
    tmp: Path
    name: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self, text: str) -> Keepalived:
        d = self.tmp / self.name
        d.mkdir(parents=True, exist_ok=True)
        (d / "keepalived.conf").write_text(text)
        self.log_path = d / "log"
        self.proc = self.ns.popen([KEEPALIVED, "-P", "-n", "-l", "-D", "-f", str(d / "keepalived.conf"),
                                   "-p", str(d / "ka.pid"), "-r", str(d / "ka-vrrp.pid")],
                                  stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def transitions(self, inst: str = "VI_1") -> list[str]:
        return re.findall(rf"\({re.escape(inst)}\) Entering (\w+) STATE", self.log())


ADV = re.compile(r"^(\d+\.\d+) IP6? (\S+) > (\S+): VRRPv(\d), Advertisement, vrid (\d+), prio (\d+)")


@dataclass
class Advert:
    ts: float
    src: str
    dst: str
    version: int
    vrid: int
    prio: int


class Capture:
    """tcpdump of VRRP on the lab bridge (in the bridge's namespace)."""

    def __init__(self, lab: LabBridge, tmp: Path) -> None:
        self.path = tmp / "capture.txt"
        self.out = open(self.path, "wb")
        self.proc = lab.bridge.popen(["tcpdump", "-i", "br0", "-n", "-tt", "-l", "-U",
                                      "ip proto 112 or ip6 proto 112"], stdout=self.out,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # tcpdump needs a moment before it captures

    def adverts(self) -> list[Advert]:
        out = []
        for line in self.path.read_text(errors="replace").splitlines():
            m = ADV.match(line)
            if m:
                out.append(Advert(float(m[1]), m[2], m[3], int(m[4]), int(m[5]), int(m[6])))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


def gap_after(adverts: list[Advert], old: str, new: str, after: float = 0.0) -> float:
    """Seconds between old's last advert (prio > 0) and new's first advert after it."""
    olds = [a.ts for a in adverts if a.src == old and a.prio > 0 and a.ts >= after]
    assert olds, f"no advert from {old}"
    last = max(olds)
    news = [a.ts for a in adverts if a.src == new and a.ts > last]
    assert news, f"no advert from {new} after {old}'s last"
    return min(news) - last
