"""``pykeepalived -t`` / ``-d`` / ``--dump-toml`` as an operator runs them: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = """
vrrp_instance VI_1 {
    interface lo
    virtual_router_id 51
    virtual_ipaddress { 192.0.2.10/24 }
}
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_config_test_ok(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD)
    r = run("-t", "-f", str(conf))
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "")


def test_config_test_error_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD.replace("virtual_router_id 51", "virtual_router_id 51\n    priority 0"))
    r = run("-t", "-f", str(conf))
    assert r.returncode == 5
    assert r.stderr == f"{conf}:5: priority: value 0 out of range [1, 255]\n"
    assert "Traceback" not in r.stderr


def test_missing_file_cannot_run(tmp_path: Path) -> None:
    r = run("-t", "-f", str(tmp_path / "nope.conf"))
    assert r.returncode == 4
    assert "nope.conf:0: Configuration file" in r.stderr


def test_dump_conf_and_toml(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD)
    r = run("-t", "-d", "-f", str(conf))
    assert r.returncode == 0 and "VrrpInstance VI_1" in r.stdout and "priority = 100" in r.stdout
    t = run("--dump-toml", "-f", str(conf))
    assert t.returncode == 0 and "[[vrrp_instances]]" in t.stdout
    toml_file = tmp_path / "k.toml"
    toml_file.write_text(t.stdout)
    again = run("-t", "-d", "-f", str(toml_file))
    assert (again.returncode, again.stdout) == (0, r.stdout)


def test_dump_toml_exits_zero_with_host_warnings(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD.replace("interface lo", "interface pka-nonexistent0"))
    r = run("--dump-toml", "-f", str(conf))
    assert r.returncode == 0
    assert "doesn't exist" in r.stderr


def test_genhash_mode_must_come_first() -> None:
    r = run("-T", "-h")
    assert r.returncode == 1
    assert "Usage: pykeepalived --genhash" in r.stdout + r.stderr


def test_config_test_looks_at_the_interfaces_of_the_namespace(tmp_path: Path) -> None:
    """-s: interfaces are checked where the daemon would run (root only: it makes a namespace)."""
    import os

    from tests.lab.netns import Namespace

    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to create a network namespace")
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD.replace("interface lo", "interface eth7"))
    with Namespace("cli") as ns:
        assert run("-t", "-f", str(conf), "-s", ns.name).returncode == 5
        ns.add_dummy("eth7")
        assert run("-t", "-f", str(conf), "-s", ns.name).returncode == 0
    assert run("-t", "-f", str(conf), "-s", "pka-no-such-ns").returncode == 4
