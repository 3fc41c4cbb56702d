"""The checker role under the real supervisor (``python -m supervisor.cli -n -l -f CONF --run-dir DIR
-s NS``): real servers are python http.servers in the namespace; killing one shows it down with the
reason in ``pykeepalivectl status --json`` within keepalived's timing, restarting it brings it back up.
(The ipvs role programs its nftables table in that namespace meanwhile; the fixture removes it.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.checkerd.conftest import Lab
from tests.integration.supervisor.conftest import Daemon

pytestmark = pytest.mark.root

A = "192.0.2.10"
PORTS = (8181, 8182)
# delay_loop 1, connect_timeout 1, retry 1, delay_before_retry 0.5: a dead server (refused at once) is
# down within delay_loop + retry x delay_before_retry = 1.5 s of its death.
CONF = ("virtual_server 203.0.113.5 80 {\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n"
        + "".join(f"    real_server {A} {p} {{\n        HTTP_GET {{\n            url {{\n                path /\n"
                  "                status_code 200\n            }\n            connect_timeout 1\n            retry 1\n"
                  "            delay_before_retry 0.5\n            warmup 0\n        }\n    }\n" for p in PORTS)
        + "}\n")


def http_server(lab: Lab, port: int) -> subprocess.Popen[bytes]:
    p = lab.ns.popen([sys.executable, "-m", "http.server", "--bind", A, "--directory", str(lab.dir), str(port)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and f"{A}:{port}" not in lab.ns.run(["ss", "-ltnH"]).stdout:
        time.sleep(0.05)
    return p


def real_servers(d: Daemon) -> dict[str, Any]:
    r = d.ctl("status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def find_rs(status: Any, port: int) -> dict[str, Any] | None:
    """The checker's entry for our real server, wherever status puts it."""
    hit: list[dict[str, Any]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("rs") == f"{A}:{port}" and "health" in x:
                hit.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(status)
    return hit[0] if hit else None


def wait_health(d: Daemon, port: int, health: str, timeout: float) -> tuple[float, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = find_rs(real_servers(d), port)
        if last is not None and last["health"] == health:
            return time.monotonic(), last
        time.sleep(0.05)
    raise AssertionError(f"{A}:{port} not {health} within {timeout} s: {last}\n{d.log[-3000:]}")


def test_kill_a_real_server_then_restart_it(lab: Lab, tmp_path: Path) -> None:
    servers = {p: http_server(lab, p) for p in PORTS}
    d = Daemon(lab.ns, tmp_path)
    d.write_config(CONF)
    try:
        d.start()
        for p in PORTS:
            wait_health(d, p, "up", 10)
        servers[PORTS[0]].terminate()
        servers[PORTS[0]].wait(timeout=10)
        t0 = time.monotonic()
        t, rs = wait_health(d, PORTS[0], "down", 5)
        assert t - t0 <= 1 + 0.5 + 0.5, t - t0  # the bound, plus the status polling and the bus hop
        assert rs["failed"] == f"HTTP_GET {A}:{PORTS[0]}" and "Connection failed" in rs["reason"], rs
        assert find_rs(real_servers(d), PORTS[1])["health"] == "up"  # type: ignore[index]
        servers[PORTS[0]] = http_server(lab, PORTS[0])
        t0 = time.monotonic()
        t, rs = wait_health(d, PORTS[0], "up", 5)
        # once down, HTTP_GET retries every max(delay_before_retry, delay_loop) = 1 s
        assert t - t0 <= 1 + 0.5, t - t0
        assert rs["reason"] == ""
        assert f"Removing service [{A}]:tcp:{PORTS[0]} from VS [203.0.113.5]:tcp:80" in d.log
        assert f"Adding service [{A}]:tcp:{PORTS[0]} to VS [203.0.113.5]:tcp:80" in d.log
    finally:
        d.close()
        for p in servers.values():
            p.terminate()
            p.wait(timeout=10)
        lab.ns.run(["nft", "delete", "table", "inet", "pykeepalived"], check=False)
