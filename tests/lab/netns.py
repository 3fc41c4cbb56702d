"""Network-namespace lab for the test suite: throwaway namespaces, links, addresses and processes.

Every test that needs a network builds it here, in namespaces this module creates and always removes.
It shells out to iproute2's ``ip`` on purpose: the product talks netlink through pyroute2, so the tests
use a different tool as an independent witness of what the product did.

Safety rules this module enforces rather than merely documents:

* namespaces are named ``pka-<purpose>-<pid>-<n>`` so they never collide with another run or a person's
  namespaces, and :func:`leftover_namespaces` can find what a crashed run left behind;
* :meth:`Namespace.add_address` refuses anything outside the documentation/test ranges
  (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, fd00::/8) and there is no helper that touches the root
  namespace's addresses or routes;
* every command and every wait has a timeout, and :meth:`Namespace.close` kills whatever was started in
  the namespace before deleting it, also when the test failed.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

__all__ = [
    "ALLOWED_NETWORKS",
    "PREFIX",
    "Address",
    "LabBridge",
    "LabCommandError",
    "Namespace",
    "addresses",
    "ip",
    "lab_bridge",
    "leftover_namespaces",
    "list_namespaces",
    "namespace_exists",
    "wait_for",
]

PREFIX = "pka"
IP = "ip"
DEFAULT_TIMEOUT = 30.0

# The only addresses tests may assign (RFC 5737 documentation ranges and ULA space).
ALLOWED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("fd00::/8"),
)

T = TypeVar("T")
Cmd = Sequence[str] | str

_counter = itertools.count()


class LabCommandError(subprocess.CalledProcessError):
    """A lab command failed; unlike CalledProcessError, ``str()`` shows stderr, which is what you need."""

    def __str__(self) -> str:
        cmd = self.cmd if isinstance(self.cmd, str) else shlex.join(self.cmd)
        err = (self.stderr or "").strip() if isinstance(self.stderr, str) else ""
        return f"command {cmd!r} exited {self.returncode}" + (f": {err}" if err else "")


def _argv(cmd: Cmd) -> list[str]:
    # A string is a shell snippet (pipes, redirections); a sequence is an exact argv.
    return ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)


def _run(argv: Sequence[str], *, check: bool, timeout: float, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise LabCommandError(proc.returncode, list(argv), proc.stdout, proc.stderr)
    return proc


def ip(*args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` in the root namespace. Only namespace management (``ip netns …``) and ``ip -n NS …``
    belong here; never use it to change the root namespace's links, addresses or routes."""
    return _run([IP, *args], check=check, timeout=timeout)


def list_namespaces() -> list[str]:
    """Names of all network namespaces known to ``ip netns`` (any owner)."""
    out = ip("-j", "netns", "list", check=False).stdout.strip()
    if not out:
        return []
    return [entry["name"] for entry in json.loads(out)]


def namespace_exists(name: str) -> bool:
    return name in list_namespaces()


def leftover_namespaces(pid: int | None = None) -> list[str]:
    """Namespaces created by this module in process ``pid`` (default: this process) that still exist."""
    stem = f"-{os.getpid() if pid is None else pid}-"
    return [n for n in list_namespaces() if n.startswith(PREFIX + "-") and stem in n]


def _unique_name(purpose: str) -> str:
    # pid + counter keeps names unique across parallel pytest workers and within one run.
    clean = "".join(c if c.isalnum() else "-" for c in purpose)[:20] or "ns"
    return f"{PREFIX}-{clean}-{os.getpid()}-{next(_counter)}"


def _check_test_address(cidr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    iface = ipaddress.ip_interface(cidr)
    if not any(iface.ip in net for net in ALLOWED_NETWORKS):
        allowed = ", ".join(str(n) for n in ALLOWED_NETWORKS)
        raise ValueError(f"{cidr}: tests may only use addresses from {allowed}")
    return iface


@dataclass(frozen=True)
class Address:
    """One entry of ``ip -j addr``'s ``addr_info``."""

    family: str  # "inet" or "inet6"
    local: str
    prefixlen: int
    scope: str
    label: str | None = None
    flags: frozenset[str] = frozenset()  # boolean keys ip reported as true: secondary, tentative, nodad, …

    @property
    def cidr(self) -> str:
        return f"{self.local}/{self.prefixlen}"

    @classmethod
    def from_json(cls, info: dict[str, Any]) -> Address:
        return cls(
            family=info["family"],
            local=info["local"],
            prefixlen=int(info["prefixlen"]),
            scope=info.get("scope", ""),
            label=info.get("label"),
            flags=frozenset(k for k, v in info.items() if v is True),
        )


def addresses(namespace: str | Namespace, dev: str | None = None, family: str | None = None) -> list[Address]:
    """Addresses inside ``namespace`` (of ``dev``, or of every link), as ``ip -j addr`` reports them.

    ``family`` is "inet" or "inet6" to filter. Raises LabCommandError when ``dev`` does not exist.
    """
    name = namespace.name if isinstance(namespace, Namespace) else namespace
    argv = ["-n", name, "-j", "addr", "show"]
    if dev is not None:
        argv += ["dev", dev]
    out = ip(*argv).stdout.strip()
    result: list[Address] = []
    for link in json.loads(out) if out else []:
        for info in link.get("addr_info", []):
            # Entries without "local" are ip's lifetime-only fragments; they are not addresses.
            if "local" in info and (family is None or info.get("family") == family):
                result.append(Address.from_json(info))
    return result


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; raise TimeoutError after
    ``timeout`` seconds. The predicate is always called at least once and once more at the deadline, so a
    slow machine does not fail a condition that became true during the last sleep."""
    if timeout < 0 or interval <= 0:
        raise ValueError("timeout must be >= 0 and interval > 0")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(message or f"condition not met within {timeout:g} s: {predicate!r}")
        time.sleep(min(interval, remaining))


def _kill_pids(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class Namespace:
    """A network namespace that exists between ``create()`` (or ``with``) and ``close()``.

    Use as ``with Namespace("vrrp") as ns: ns.run([...])``. ``close()`` terminates what ``popen`` started
    (process group TERM, then KILL after ``kill_grace`` s), then kills any other process still inside the
    namespace (daemons that forked away, e.g. keepalived's children), then deletes the namespace.
    """

    purpose: str = "test"
    kill_grace: float = 3.0
    name: str = field(init=False)
    _procs: list[subprocess.Popen[Any]] = field(init=False, default_factory=list, repr=False)
    _created: bool = field(init=False, default=False, repr=False)
    _stub_peers: Iterator[int] = field(init=False, default_factory=itertools.count, repr=False)

    def __post_init__(self) -> None:
        self.name = _unique_name(self.purpose)

    # -- lifecycle -------------------------------------------------------------------------------------

    def create(self) -> Namespace:
        ip("netns", "add", self.name)
        self._created = True
        try:
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Namespace:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill what runs in the namespace and delete it. Idempotent; never raises for a missing namespace."""
        if not self._created:
            return
        try:
            self._stop_procs()
            self._kill_remaining()
        finally:
            ip("netns", "del", self.name, check=False)
            self._created = False

    def _stop_procs(self) -> None:
        live = [p for p in self._procs if p.poll() is None]
        for p in live:
            # start_new_session=True in popen() made pid the process-group id: signal the whole group so a
            # shell wrapper's children go too.
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.kill_grace
        for p in live:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        self._procs.clear()

    def _kill_remaining(self) -> None:
        # Anything still in our uniquely named namespace was started through it (a daemon that forked or
        # called setsid). TERM first so keepalived-style daemons can clean up, then KILL.
        pids = self.pids()
        if not pids:
            return
        _kill_pids(pids, signal.SIGTERM)
        try:
            wait_for(lambda: not self.pids(), timeout=self.kill_grace, interval=0.05)
        except TimeoutError:
            _kill_pids(self.pids(), signal.SIGKILL)
            wait_for(lambda: not self.pids(), timeout=5, interval=0.05,
                     message=f"processes survive SIGKILL in {self.name}")

    @property
    def exists(self) -> bool:
        return namespace_exists(self.name)

    def pids(self) -> list[int]:
        """Pids of all processes whose network namespace is this one."""
        out = ip("netns", "pids", self.name, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    # -- running things --------------------------------------------------------------------------------

    def _exec_argv(self, cmd: Cmd) -> list[str]:
        return [IP, "netns", "exec", self.name, *_argv(cmd)]

    def run(
        self,
        cmd: Cmd,
        *,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace and wait for it (text mode, stdout/stderr captured).

        A ``str`` is run by ``sh -c``; a sequence is the exact argv. Raises LabCommandError when ``check``
        and the exit code is not 0, and subprocess.TimeoutExpired (after killing it) past ``timeout``.
        """
        return _run(self._exec_argv(cmd), check=check, timeout=timeout, input=input)

    def popen(self, cmd: Cmd, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace without waiting; ``close()`` will stop it.

        Keyword arguments go to subprocess.Popen (stdout, stderr, text, env, …). The process gets its own
        session so that close() can signal its whole process group.
        """
        kwargs.setdefault("start_new_session", True)
        if not self._created:
            raise RuntimeError(f"namespace {self.name} is not created")
        proc: subprocess.Popen[Any] = subprocess.Popen(self._exec_argv(cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def ip(self, *args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """``ip -n NAME ARGS``: iproute2 switches namespace itself, cheaper than ``ip netns exec``."""
        return ip("-n", self.name, *args, check=check, timeout=timeout)

    def ip_json(self, *args: str) -> Any:
        """``ip -n NAME -j ARGS`` parsed from JSON (``[]`` for empty output)."""
        out = self.ip("-j", *args).stdout.strip()
        return json.loads(out) if out else []

    # -- links -----------------------------------------------------------------------------------------

    def links(self) -> list[str]:
        return [link["ifname"] for link in self.ip_json("link", "show")]

    def has_link(self, name: str) -> bool:
        return name in self.links()

    def link_up(self, name: str) -> None:
        self.ip("link", "set", name, "up")

    def link_down(self, name: str) -> None:
        self.ip("link", "set", name, "down")

    def add_dummy(self, name: str, *, up: bool = True) -> str:
        """Add a link called ``name`` that nothing is attached to.

        A dummy link when the kernel has the driver; some CI kernels lack it ("Unknown device type"), and
        then a veth pair whose other end ``pkpN`` stays in this namespace stands in: same ethernet-like
        behaviour for anything that only needs the interface to exist and be up. Returns ``name``.
        """
        res = self.ip("link", "add", name, "type", "dummy", check=False)
        if res.returncode != 0:
            if "Unknown device type" not in res.stderr and "not supported" not in res.stderr.lower():
                raise LabCommandError(res.returncode, res.args, res.stdout, res.stderr)
            peer = f"pkp{next(self._stub_peers)}"
            self.ip("link", "add", name, "type", "veth", "peer", "name", peer)
            if up:
                self.link_up(peer)
        if up:
            self.link_up(name)
        return name

    def add_veth(self, name: str, peer: str, *, peer_ns: Namespace | None = None, up: bool = True) -> tuple[str, str]:
        """Add a veth pair ``name`` (here) <-> ``peer`` (in ``peer_ns``, default here)."""
        argv = ["link", "add", name, "type", "veth", "peer", "name", peer]
        if peer_ns is not None:
            argv += ["netns", peer_ns.name]
        self.ip(*argv)
        if up:
            self.link_up(name)
            (peer_ns or self).link_up(peer)
        return name, peer

    def add_bridge(self, name: str = "br0", *, up: bool = True) -> str:
        # Multicast snooping off: VRRP adverts (224.0.0.18, ff02::12) and anything else multicast must
        # reach every port without IGMP/MLD joins being seen first.
        self.ip("link", "add", name, "type", "bridge", "mcast_snooping", "0")
        if up:
            self.link_up(name)
        return name

    def set_master(self, link: str, bridge: str) -> None:
        self.ip("link", "set", link, "master", bridge)

    # -- addresses -------------------------------------------------------------------------------------

    def add_address(self, dev: str, cidr: str, *, nodad: bool | None = None) -> None:
        """Assign ``cidr`` (e.g. "192.0.2.1/24") to ``dev``; only test ranges are accepted.

        IPv6 addresses get ``nodad`` by default so they are usable at once instead of after ~1-2 s of
        duplicate address detection (tests must not depend on DAD timing).
        """
        iface = _check_test_address(cidr)
        argv = ["addr", "add", str(iface), "dev", dev]
        if nodad if nodad is not None else iface.version == 6:
            argv.append("nodad")
        self.ip(*argv)

    def del_address(self, dev: str, cidr: str) -> None:
        self.ip("addr", "del", str(_check_test_address(cidr)), "dev", dev)

    def addresses(self, dev: str | None = None, family: str | None = None) -> list[Address]:
        return addresses(self, dev, family)

    def address_cidrs(self, dev: str | None = None, family: str | None = None, scope: str | None = "global") -> set[str]:
        """The ``addr/prefixlen`` strings on ``dev`` (global scope by default: link-local fe80:: noise and
        127.0.0.1 are rarely what a test is about)."""
        return {a.cidr for a in addresses(self, dev, family) if scope is None or a.scope == scope}


@dataclass
class LabBridge:
    """A switch and hosts: ``bridge`` holds ``br0``; host i has ``eth0`` with ``v4[i]`` and ``v6[i]``."""

    bridge: Namespace
    hosts: list[Namespace]
    v4: list[str]
    v6: list[str]
    bridge_name: str = "br0"
    host_if: str = "eth0"

    def ip4(self, i: int) -> str:
        """Host i's IPv4 address without prefix length."""
        return self.v4[i].split("/")[0]

    def ip6(self, i: int) -> str:
        return self.v6[i].split("/")[0]


@contextmanager
def lab_bridge(hosts: int = 2, *, purpose: str = "lab", host_if: str = "eth0") -> Iterator[LabBridge]:
    """A bridge namespace plus ``hosts`` host namespaces, each connected by a veth pair.

    Host i (0-based) gets 192.0.2.(i+1)/24 and fd00::(i+1)/64 on ``host_if``; the bridge side of its cable
    is ``vb<i>`` in the bridge namespace. Everything is removed on exit, also on exception.
    """
    if not 1 <= hosts <= 200:
        raise ValueError("hosts must be between 1 and 200")
    with ExitStack() as stack:
        br = stack.enter_context(Namespace(f"{purpose}-br"))
        br.add_bridge("br0")
        members: list[Namespace] = []
        v4: list[str] = []
        v6: list[str] = []
        for i in range(hosts):
            host = stack.enter_context(Namespace(f"{purpose}-h{i}"))
            br.add_veth(f"vb{i}", host_if, peer_ns=host)
            br.set_master(f"vb{i}", "br0")
            v4.append(f"192.0.2.{i + 1}/24")
            v6.append(f"fd00::{i + 1:x}/64")
            host.add_address(host_if, v4[-1])
            host.add_address(host_if, v6[-1])
            members.append(host)
        yield LabBridge(bridge=br, hosts=members, v4=v4, v6=v6, host_if=host_if)
