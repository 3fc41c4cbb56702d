"""The load-balancer lab: client -> LB -> three real servers, each in its own namespace.

client (203.0.113.2) --veth-- LB (c0 203.0.113.1, VIP 203.0.113.10) ; LB br0 198.51.100.1 plus the FNAT
pool 198.51.100.201-202 --veths-- rs1..rs3 (198.51.100.11-13, default route via the LB, serving :8080).
IPv6 alongside: client fd00:1::2, LB fd00:1::1 and VIP6 fd00:1::10, br0 fd00:2::1, rs1..rs3 fd00:2::11-13.
Built once per module (namespaces are cheap but the servers take a moment); everything is removed after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netns import Namespace, wait_for

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
PY = sys.executable
VIP = "203.0.113.10"
RS = ["198.51.100.11", "198.51.100.12", "198.51.100.13"]
POOL = ["198.51.100.201", "198.51.100.202"]
VIP6 = "fd00:1::10"
RS6 = ["fd00:2::11", "fd00:2::12", "fd00:2::13"]


@dataclass
class Driver:
    proc: subprocess.Popen[str]

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"driver died (rc={self.proc.poll()})"
        return dict(json.loads(line))

    def config(self, text: str) -> dict[str, Any]:
        r = self.call("config", text=text)
        assert r["ok"], r
        return r

    def health(self, vs: str, rs: str, up: bool) -> dict[str, Any]:
        return self.call("health", key=f"{vs}/{rs}", data={"health": "up" if up else "down"})


@dataclass
class LbLab:
    client: Namespace
    lb: Namespace
    rs: list[Namespace]
    run_dir: Path
    drivers: list[Driver] = field(default_factory=list)

    def driver(self) -> Driver:
        proc = self.lb.popen([PY, "-m", "tests.integration.ipvsd.driver", "--run-dir", str(self.run_dir)],
                             cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        d = Driver(proc)
        self.drivers.append(d)
        return d

    def requests(self, port: int, count: int, *extra: str, timeout: float = 60, host: str = VIP) -> list[str]:
        out = self.client.run([PY, str(HERE / "client.py"), host, str(port), str(count), *extra], timeout=timeout)
        return list(json.loads(out.stdout))

    def nft(self, *args: str) -> str:
        return self.lb.run(["nft", *args]).stdout


@pytest.fixture(scope="module")
def lab(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LbLab]:
    with ExitStack() as stack:
        client = stack.enter_context(Namespace("lbc"))
        lb = stack.enter_context(Namespace("lb"))
        rss = [stack.enter_context(Namespace(f"rs{i + 1}")) for i in range(3)]
        lb.add_veth("c0", "eth0", peer_ns=client)
        lb.add_address("c0", "203.0.113.1/24")
        lb.add_address("c0", f"{VIP}/32")
        client.add_address("eth0", "203.0.113.2/24")
        client.ip("route", "add", "default", "via", "203.0.113.1")
        lb.add_address("c0", "fd00:1::1/64")
        lb.add_address("c0", f"{VIP6}/128")
        client.add_address("eth0", "fd00:1::2/64")
        client.ip("-6", "route", "add", "default", "via", "fd00:1::1")
        lb.add_bridge("br0")
        lb.add_address("br0", "198.51.100.1/24")
        lb.add_address("br0", "fd00:2::1/64")
        for a in POOL:
            lb.add_address("br0", f"{a}/24")
        servers = []
        for i, ns in enumerate(rss):
            lb.add_veth(f"r{i + 1}", "eth0", peer_ns=ns)
            lb.set_master(f"r{i + 1}", "br0")
            ns.add_address("eth0", f"{RS[i]}/24")
            ns.ip("route", "add", "default", "via", "198.51.100.1")
            ns.add_address("eth0", f"{RS6[i]}/64")
            ns.ip("-6", "route", "add", "default", "via", "fd00:2::1")
            servers.append(ns.popen([PY, str(HERE / "rsserver.py"), f"rs{i + 1}", "8080"],
                                    stdout=subprocess.PIPE, text=True))
        for p in servers:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        run_dir = tmp_path_factory.mktemp("ipvsd-run")
        # The LB answers ARP for the pool addresses on br0 already (they are its own).
        wait_for(lambda: client.run(["ping", "-c1", "-W1", "203.0.113.1"], check=False).returncode == 0,
                 timeout=5, message="client reaches the LB")
        yield LbLab(client, lb, rss, run_dir)
