"""packaging/: the systemd unit verifies, and the init script drives a real daemon (root, namespace)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.supervisor.conftest import REPO, VIP_A, VIP_B, Daemon, config_text, gone
from tests.lab.netns import wait_for

pytestmark = [pytest.mark.root]

@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    text = (REPO / "packaging/pykeepalived.service").read_text()
    assert "Type=notify" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text
    # Point it at this checkout's venv; man pages come with the packaging issue.
    text = text.replace("/opt/pykeepalived/bin", str(REPO / ".venv/bin"))
    text = "\n".join(line for line in text.splitlines() if not line.startswith("Documentation=man:"))
    unit = tmp_path / "pykeepalived.service"
    unit.write_text(text + "\n")
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_init_script_start_status_reload_stop(daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    d = daemon()  # only for its namespace, config and run dir; the init script starts the daemon
    default = tmp_path / "default"
    default.write_text(f'DAEMON_ARGS="-G -f {d.conf} --run-dir {d.run_dir} -s {d.ns.name}"\n')
    script = (REPO / "packaging/pykeepalived.init").read_text()
    script = (script.replace("/opt/pykeepalived/bin", str(REPO / ".venv/bin"))
              .replace("RUN_DIR=/run/pykeepalived", f"RUN_DIR={d.run_dir}")
              .replace("/etc/default/$NAME", str(default)))
    init = tmp_path / "pykeepalived.init"
    init.write_text(script)
    init.chmod(0o755)

    def service(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(init), action], capture_output=True, text=True, timeout=60, cwd="/")

    pid = 0
    try:
        assert service("start").returncode == 0
        pid = int((d.run_dir / "pykeepalived.pid").read_text())
        wait_for(lambda: d.vips() == {VIP_A}, timeout=10)
        assert service("status").returncode == 0
        d.write_config(config_text((VIP_B,)))
        assert service("reload").returncode == 0
        wait_for(lambda: d.vips() == {VIP_B}, timeout=10)
        d.write_config(config_text(broken=True))
        assert service("reload").returncode == 0  # the daemon refuses it itself and keeps running
        log = d.run_dir / "pykeepalived.log"  # no syslog here: the daemon's fallback log
        wait_for(lambda: "Reload failed" in log.read_text(), timeout=10)
        assert d.vips() == {VIP_B}
        d.write_config(config_text((VIP_A,)))
        assert service("restart").returncode == 0
        assert gone([pid])
        pid = int((d.run_dir / "pykeepalived.pid").read_text())
        wait_for(lambda: d.vips() == {VIP_A}, timeout=10)
        assert service("stop").returncode == 0
        assert gone([pid]) and d.vips() == set()
        assert service("status").returncode != 0
    finally:
        if pid:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
