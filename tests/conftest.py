"""Suite-wide pytest fixtures: root check, the keepalived oracle binary and network-namespace labs.

The fixtures are thin wrappers over ``tests/lab/netns.py`` so that non-pytest code (benchmarks, ad-hoc
scripts) can use the same lab. Every namespace a fixture creates is removed at teardown, also when the
test fails; ``netns``-based fixtures skip (not fail) when not root, because only CI and lab machines are.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.lab.netns import LabBridge, Namespace
from tests.lab.netns import lab_bridge as _lab_bridge

# Where Debian's package puts it; .ci installs keepalived, so absence is a broken setup, not a skip.
KEEPALIVED_DEFAULT = "/usr/sbin/keepalived"


@pytest.fixture(scope="session")
def require_root() -> None:
    """Skip the test unless running as root (namespaces, links and raw sockets need it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")


@pytest.fixture(scope="session")
def keepalived_bin() -> Path:
    """Path of Debian's keepalived 2.2.7, the oracle and VRRP peer. Fails (does not skip) if missing."""
    found = shutil.which("keepalived") or (KEEPALIVED_DEFAULT if os.access(KEEPALIVED_DEFAULT, os.X_OK) else None)
    if found is None:
        pytest.fail(
            "keepalived not found (looked in PATH and /usr/sbin): install Debian's package "
            "(`apt-get install keepalived`, as .ci does); the oracle and peer tests need it",
            pytrace=False,
        )
    return Path(found)


@pytest.fixture
def netns(require_root: None) -> Iterator[Namespace]:
    """One fresh namespace (``lo`` up), deleted with everything running in it after the test."""
    with Namespace("t") as ns:
        yield ns


@pytest.fixture
def netns_factory(require_root: None) -> Iterator[Callable[..., Namespace]]:
    """``make(purpose="t") -> Namespace``: as many created namespaces as the test needs, all removed after."""
    made: list[Namespace] = []

    def make(purpose: str = "t") -> Namespace:
        ns = Namespace(purpose)
        made.append(ns)
        return ns.create()

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for ns in reversed(made):
            try:
                ns.close()
            except Exception as exc:  # keep closing the others; report the first failure afterwards
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def lab_bridge(require_root: None) -> Iterator[Callable[..., LabBridge]]:
    """``make(hosts=2, purpose="lab") -> LabBridge``: a bridge namespace with ``hosts`` host namespaces on
    it (``eth0`` = 192.0.2.(i+1)/24 and fd00::(i+1)/64 on host i), all removed after the test."""
    with ExitStack() as stack:

        def make(hosts: int = 2, purpose: str = "lab") -> LabBridge:
            return stack.enter_context(_lab_bridge(hosts, purpose=purpose))

        yield make
