"""Differential config test: ``pykeepalived -t`` must give keepalived 2.2.7's exit code on every sample.

Both binaries run with the same arguments (``-t -f SAMPLE -i high``) in the same network namespace, which
holds ``lo`` and ``eth0``..``eth3`` and nothing else, so every host-dependent check (which interfaces
exist, which scripts exist and how they are owned) sees the same host. ``-i high`` is passed to both for
every sample: without it the config-id is the machine's hostname, which would make
``keepalived.conf.conditional_conf`` host-dependent. ORACLE.md in this directory records what 2.2.7
says for each sample and why.

The one intended difference, the fork samples (``alibaba_*``, ``dpvs_*``): 2.2.7 rejects their fork
keywords (local_address_group, laddr_group_name, lb_kind FNAT, syn_proxy, dpdk_interface, nb_sock_retry,
nat_mask, …) with code 5, while pykeepalived implements or knowingly accepts them. The rule checked:

* the host is first made to satisfy the sample: every interface the sample names (``interface``,
  ``dpdk_interface``, and the device after an address in a DPVS ``local_address_group``) is created in
  a separate namespace of its own;
* then ``pykeepalived -t`` must exit 0, **or** exit non-zero with every stderr line being a
  host-dependent problem (an interface that does not exist, a script that is missing or insecure).
  A deprecation, an unknown keyword, an invalid value or a security violation fails the test: accepting
  the fork configs means accepting them cleanly (notices that do not change the code are fine).

This file is named so that pytest does not collect it until ``pykeepalived -t`` lands; rename it to
``test_differential.py`` then. Nothing in it is skipped or expected to fail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.netns import Namespace

pytestmark = [pytest.mark.root, pytest.mark.keepalived]

REPO = Path(__file__).resolve().parents[3]
PYKEEPALIVED = REPO / ".venv" / "bin" / "pykeepalived"
# The samples live in the shared reference tree, not in this repository (they are keepalived's files);
# PKA_SAMPLES_DIR points elsewhere when the tree is mounted somewhere else.
SAMPLES_DIR = Path(os.environ.get("PKA_SAMPLES_DIR", "/work/shared/reference/samples"))
CONFIG_ID = "high"
TIMEOUT = 60.0
FORK_PREFIXES = ("alibaba_", "dpvs_")
HOST_IFACES = ("eth0", "eth1", "eth2", "eth3")

# What counts as host-dependent in pykeepalived's output (its lines are "FILE:LINE: [warning: ]message").
HOST_DEPENDENT = re.compile(
    r"interface \S+ .*doesn't exist"
    r"|Non-existent interface specified in configuration"
    r"|script .*(?:not found|does not exist|not executable|insecure|unsafe)",
    re.IGNORECASE,
)


def _samples() -> list[str]:
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_file() and not p.name.endswith(".sh"))


SAMPLES = _samples()
PLAIN = [s for s in SAMPLES if not s.startswith(FORK_PREFIXES)]
FORKS = [s for s in SAMPLES if s.startswith(FORK_PREFIXES)]


@dataclass(frozen=True)
class Outcome:
    code: int
    stderr: str

    def show(self, who: str) -> str:
        return f"--- {who}: exit {self.code}\n{self.stderr.rstrip() or '(no stderr)'}"


def config_test(ns: Namespace, binary: Path, sample: Path) -> Outcome:
    """Run ``BINARY -t -f SAMPLE -i high`` inside ``ns``."""
    res = ns.run([str(binary), "-t", "-f", str(sample), "-i", CONFIG_ID], check=False, timeout=TIMEOUT)
    return Outcome(res.returncode, res.stderr)


def named_interfaces(text: str) -> set[str]:
    """Interfaces a fork sample refers to, found by a deliberately simple scan of its text."""
    names: set[str] = set()
    for raw in text.splitlines():
        line = re.split(r"[#!]", raw, maxsplit=1)[0].split()
        if len(line) >= 2 and line[0] in ("interface", "dpdk_interface", "vip_bind_dev"):
            names.add(line[1])
        # DPVS local_address_group entries: "IP DEVICE"
        elif len(line) == 2 and re.fullmatch(r"[0-9.:a-fA-F]+(?:-\d+)?", line[0]) and re.fullmatch(r"[A-Za-z][\w.-]*", line[1]):
            names.add(line[1])
    return {n for n in names if len(n) <= 15}


@pytest.fixture(scope="module")
def host_ns(require_root: None) -> Iterator[Namespace]:
    """The host both binaries see: lo and eth0..eth3, all up."""
    with Namespace("difft") as ns:
        for name in HOST_IFACES:
            ns.add_dummy(name)
        yield ns


@pytest.fixture(scope="module")
def pykeepalived_bin() -> Path:
    if not os.access(PYKEEPALIVED, os.X_OK):
        pytest.fail(f"{PYKEEPALIVED} missing: run `bash packaging/setup-dev.sh` to install the console script",
                    pytrace=False)
    return PYKEEPALIVED


def test_samples_present() -> None:
    assert len(PLAIN) >= 20 and len(FORKS) >= 4, f"samples not found in {SAMPLES_DIR} (set PKA_SAMPLES_DIR)"


@pytest.mark.parametrize("sample", PLAIN)
def test_same_exit_code_as_keepalived(
    sample: str, host_ns: Namespace, keepalived_bin: Path, pykeepalived_bin: Path
) -> None:
    path = SAMPLES_DIR / sample
    want = config_test(host_ns, keepalived_bin, path)
    got = config_test(host_ns, pykeepalived_bin, path)
    assert got.code == want.code, f"{sample}\n{want.show('keepalived 2.2.7')}\n{got.show('pykeepalived')}"


@pytest.mark.parametrize("sample", FORKS)
def test_fork_sample_accepted(
    sample: str, require_root: None, keepalived_bin: Path, pykeepalived_bin: Path
) -> None:
    path = SAMPLES_DIR / sample
    with Namespace("diffk") as ns:
        for name in sorted(set(HOST_IFACES) | named_interfaces(path.read_text(errors="replace"))):
            ns.add_dummy(name)
        want = config_test(ns, keepalived_bin, path)
        got = config_test(ns, pykeepalived_bin, path)
    # The oracle itself must still reject the fork keywords, or this test no longer tests the difference.
    assert want.code == 5, f"{sample}: keepalived 2.2.7 no longer rejects it?\n{want.show('keepalived 2.2.7')}"
    if got.code == 0:
        return
    # Host-dependent problems rank as "cannot run" (4) or plain errors (5); 6 (security) or anything else
    # (1 = a traceback, say) is never acceptable here.
    assert got.code in (4, 5), f"{sample}\n{got.show('pykeepalived')}"
    blocking = [ln for ln in got.stderr.splitlines() if ln.strip() and not HOST_DEPENDENT.search(ln)]
    assert not blocking, (
        f"{sample}: pykeepalived must accept fork configs; non-host-dependent problems:\n"
        + "\n".join(blocking)
        + f"\n{got.show('pykeepalived')}"
    )


def test_named_interfaces_scan() -> None:
    text = "vrrp_instance V {\n  interface dpdk0.kni  # kni\n  dpdk_interface dpdk0\n}\n" \
           "local_address_group g {\n  192.168.100.200 dpdk1\n  10.0.0.1-20\n}\n"
    assert named_interfaces(text) == {"dpdk0.kni", "dpdk0", "dpdk1"}


def test_host_namespace_is_only_the_four_stubs(host_ns: Namespace) -> None:
    # Extra links would change what both binaries see; veth stand-ins (pkpN) are allowed.
    extra = {n for n in host_ns.links() if n not in (*HOST_IFACES, "lo") and not n.startswith("pkp")}
    assert extra == set()
