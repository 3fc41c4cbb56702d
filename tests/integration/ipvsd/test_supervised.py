"""The ipvs role under the real supervisor (``python -m supervisor.cli -n -l -f CONF --run-dir DIR -s NS``)
in the load balancer's namespace: kill -9 of the role during traffic loses no request and leaves the
nftables table exactly as it was (``nft -j list table`` without counters is the witness); TERM removes
the table, -I keeps it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ipvsd.conftest import HERE, POOL, PY, RS, VIP, LbLab
from tests.integration.supervisor.conftest import Daemon
from tests.lab.netns import wait_for

pytestmark = pytest.mark.root

CONF = ("local_address_group pool {\n" + "".join(f"    {a}\n" for a in POOL) + "}\n"
        f"virtual_server {VIP} 80 {{\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n"
        "    laddr_group_name pool\n" + "".join(f"    real_server {a} 8080 {{\n    }}\n" for a in RS) + "}\n")


def table(lab: LbLab) -> Any:
    """Our table as JSON, counters zeroed (traffic moves them; everything else must stay)."""
    r = lab.lb.run(["nft", "-j", "list", "table", "inet", "pykeepalived"], check=False)
    if r.returncode != 0:
        return None
    text = json.dumps(json.loads(r.stdout)["nftables"][1:])  # [0] is the metainfo
    for key in ("packets", "bytes"):
        text = re.sub(rf'"{key}": \d+', f'"{key}": 0', text)
    return json.loads(text)


@pytest.fixture
def sup(lab: LbLab, tmp_path: Path):  # type: ignore[no-untyped-def]
    made: list[Daemon] = []

    def make(*extra: str) -> Daemon:
        where = tmp_path / f"d{len(made)}"
        where.mkdir()
        d = Daemon(lab.lb, where, list(extra))
        d.write_config(CONF)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
    lab.lb.run(["nft", "delete", "table", "inet", "pykeepalived"], check=False)


def test_kill_9_of_the_role_during_traffic_under_the_supervisor(lab: LbLab, sup) -> None:  # type: ignore[no-untyped-def]
    d = sup().start()
    before = wait_for(lambda: table(lab), timeout=10, message="table programmed")
    old = d.role_pids()["ipvs"]
    client = lab.client.popen([PY, str(HERE / "client.py"), VIP, "80", "100000", "--duration", "3.0"],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)  # traffic is flowing when the role dies
    os.kill(old, signal.SIGKILL)
    d.wait_running("ipvs", not_pid=old, timeout=15)
    out, _ = client.communicate(timeout=30)
    answers = json.loads(out)
    assert len(answers) > 30 and not [a for a in answers if a.startswith("ERR")], answers[-5:]
    assert {a.split()[1] for a in answers} <= set(POOL)
    assert table(lab) == before
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert table(lab) is None  # TERM: our table goes


def test_dont_release_ipvs_keeps_the_table(lab: LbLab, sup) -> None:  # type: ignore[no-untyped-def]
    d = sup("-I").start()
    before = wait_for(lambda: table(lab), timeout=10, message="table programmed")
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    assert table(lab) == before
    assert not lab.requests(80, 3)[0].startswith("ERR")  # still serving without pykeepalived
