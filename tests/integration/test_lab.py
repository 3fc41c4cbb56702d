"""Tests of the lab helpers themselves (tests/lab/netns.py and the fixtures in tests/conftest.py).

The rest of the suite trusts these helpers to create networks and, above all, to leave nothing behind;
these tests check both, using ``ip`` and /proc as witnesses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.lab.netns import (
    LabBridge,
    LabCommandError,
    Namespace,
    addresses,
    lab_bridge,
    leftover_namespaces,
    namespace_exists,
    wait_for,
)

pytestmark = pytest.mark.root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- wait_for (no root needed) ----------------------------------------------------------------------------


def test_wait_for_returns_the_truthy_value() -> None:
    calls = iter([0, None, "", 42])
    assert wait_for(lambda: next(calls), timeout=5, interval=0.001) == 42


def test_wait_for_times_out_within_bounds() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="never"):
        wait_for(lambda: False, timeout=0.2, interval=0.05, message="never")
    assert 0.2 <= time.monotonic() - start < 2.0


def test_wait_for_rejects_bad_interval() -> None:
    with pytest.raises(ValueError):
        wait_for(lambda: True, timeout=1, interval=0)


# -- Namespace --------------------------------------------------------------------------------------------


def test_namespace_create_and_cleanup(require_root: None) -> None:
    with Namespace("lab") as ns:
        assert ns.name.startswith(f"pka-lab-{os.getpid()}-")
        assert namespace_exists(ns.name)
        assert ns.has_link("lo")
        assert "127.0.0.1/8" in ns.address_cidrs("lo", scope=None)
        assert ns.run(["true"]).returncode == 0
    assert not namespace_exists(ns.name)
    ns.close()  # idempotent


def test_namespace_removed_and_processes_killed_on_exception(require_root: None) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), Namespace("exc") as ns:
        name = ns.name
        proc = ns.popen(["sleep", "300"])
        pids.append(proc.pid)
        # A daemon that detaches from our process group is found by `ip netns pids` at close.
        detached = ns.run("setsid sleep 300 >/dev/null 2>&1 & echo $!").stdout.strip()
        pids.append(int(detached))
        wait_for(lambda: len(ns.pids()) >= 2, timeout=5)
        raise RuntimeError("boom")
    assert not namespace_exists(name)
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=5, message=f"survivors among {pids}")


def test_process_ignoring_sigterm_is_killed(require_root: None) -> None:
    ns = Namespace("term", kill_grace=0.5).create()
    try:
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(300)"
        proc = ns.popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        ns.close()
    assert proc.returncode == -signal.SIGKILL


def test_run_is_inside_the_namespace_and_reports_errors(netns: Namespace) -> None:
    netns.add_dummy("pkalabx0")
    assert "pkalabx0" in netns.run(["ip", "-o", "link", "show"]).stdout
    # ...and not in the root namespace, where this test must never create anything.
    assert subprocess.run(["ip", "link", "show", "pkalabx0"], capture_output=True).returncode != 0
    with pytest.raises(LabCommandError, match="exited 3: oops"):
        netns.run("echo oops >&2; exit 3")
    assert netns.run(["false"], check=False).returncode == 1
    with pytest.raises(subprocess.TimeoutExpired):
        netns.run(["sleep", "5"], timeout=0.3)


def test_stub_links_and_addresses(netns: Namespace) -> None:
    for i in range(4):
        netns.add_dummy(f"eth{i}")
    assert {f"eth{i}" for i in range(4)} <= set(netns.links())
    netns.add_address("eth1", "198.51.100.7/24")
    netns.add_address("eth1", "fd00:1::7/64")
    got = addresses(netns.name, "eth1")
    assert {a.cidr for a in got if a.scope == "global"} == {"198.51.100.7/24", "fd00:1::7/64"}
    assert [a.family for a in addresses(netns, "eth1", family="inet")] == ["inet"]
    assert all("tentative" not in a.flags for a in got if a.scope == "global")  # nodad: usable at once
    netns.del_address("eth1", "198.51.100.7/24")
    assert netns.address_cidrs("eth1") == {"fd00:1::7/64"}
    with pytest.raises(LabCommandError):
        addresses(netns, "nosuchdev")


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "192.168.1.1/24", "2001:db8::1/64", "8.8.8.8/32"])
def test_add_address_refuses_non_test_ranges(netns: Namespace, cidr: str) -> None:
    netns.add_dummy("eth0")
    with pytest.raises(ValueError, match="tests may only use"):
        netns.add_address("eth0", cidr)
    assert netns.address_cidrs("eth0") == set()


def test_netns_factory_makes_distinct_namespaces(netns_factory: Callable[..., Namespace]) -> None:
    a, b = netns_factory("a"), netns_factory("b")
    assert a.name != b.name and a.exists and b.exists


# -- bridge lab -------------------------------------------------------------------------------------------

_ECHO_SERVER = """
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7007))
s.listen()
s.settimeout(20)
for _ in range(2):
    c, _ = s.accept()
    c.sendall(c.recv(64).upper())
    c.close()
"""

_ECHO_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7007), timeout=5)
c.sendall(b"hello")
print(c.recv(64).decode())
"""


def _echo(lab: LabBridge, server: int, client: int, addr: str) -> str:
    def try_once() -> str:
        res = lab.hosts[client].run([sys.executable, "-c", _ECHO_CLIENT, addr], check=False, timeout=10)
        return res.stdout.strip()

    return wait_for(try_once, timeout=10, interval=0.1, message=f"no echo from {addr}")


def test_bridge_connectivity_v4_and_v6(lab_bridge: Callable[..., LabBridge]) -> None:
    """Two hosts reach each other through the bridge over IPv4 and IPv6 (TCP echo: no ping needed)."""
    lab = lab_bridge(3)
    assert len(lab.hosts) == 3 and lab.v4[2] == "192.0.2.3/24" and lab.v6[1] == "fd00::2/64"
    for i, host in enumerate(lab.hosts):
        assert host.address_cidrs("eth0") == {lab.v4[i], lab.v6[i]}
    assert {f"vb{i}" for i in range(3)} <= set(lab.bridge.links())
    for addr in (lab.ip4(1), lab.ip6(1)):
        srv = lab.hosts[1].popen([sys.executable, "-c", _ECHO_SERVER, addr])
        try:
            assert _echo(lab, 1, 0, addr) == "HELLO"
            assert _echo(lab, 1, 2, addr) == "HELLO"
            assert srv.wait(timeout=10) == 0
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait(timeout=5)


def test_lab_bridge_context_manager_leaves_nothing(require_root: None) -> None:
    with pytest.raises(KeyError), lab_bridge(2, purpose="gone") as lab:
        names = [lab.bridge.name, *(h.name for h in lab.hosts)]
        assert all(namespace_exists(n) for n in names)
        raise KeyError("fail inside the lab")
    assert not any(namespace_exists(n) for n in names)


def test_no_leftover_namespaces(require_root: None) -> None:
    """Runs last in this file: everything the tests above created in this process is gone."""
    assert leftover_namespaces() == []
