"""Fixtures for the checker tests: a namespace running the test servers, and a TLS certificate."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.netns import Namespace

ROOT = Path(__file__).resolve().parents[3]
PORTS = {"http": 8080, "tls": 8443, "smtp": 2525, "dns": 5353, "udp": 7777}


@dataclass
class Lab:
    ns: Namespace
    dir: Path
    addr: str

    def mode(self, service: str, value: str) -> None:
        (self.dir / f"{service}.mode").write_text(value)

    def requests(self) -> list[bytes]:
        p = self.dir / "requests.log"
        return [bytes.fromhex(x) for x in p.read_text().split()] if p.exists() else []


def make_cert(d: Path) -> tuple[Path, Path]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=rs.example",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key


def start_servers(ns: Namespace, d: Path, addr: str) -> None:
    cert, key = make_cert(d)
    args = [sys.executable, "-m", "tests.integration.checkerd.servers", "--dir", str(d), "--addr", addr,
            "--cert", str(cert), "--key", str(key), "--lifetime", "600"]
    for name, port in PORTS.items():
        args += [f"--{name}", str(port)]
    proc = ns.popen(args, stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
                    env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"test servers did not start: {line!r}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("the checker integration tests need root (network namespaces)")
    d = tmp_path_factory.mktemp("ck")
    with Namespace("ck") as ns:
        ns.add_dummy("dummy0")
        ns.add_address("dummy0", "192.0.2.10/24")
        start_servers(ns, d, "192.0.2.10")
        yield Lab(ns, d, "192.0.2.10")
