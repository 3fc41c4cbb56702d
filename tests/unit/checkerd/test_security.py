"""Script security at run time: who runs checker scripts, and insecure or missing ones refused."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkerd.scheduler import HealthManager
from checkerd.security import ROOT, ScriptPolicy, insecure
from supervisor.config.load import load_text


def script(d: Path, mode: int = 0o755, body: str = "exit 0") -> Path:
    p = d / "chk.sh"
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(mode)
    return p


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A root-owned 0755 directory that another user can traverse (pytest's tmp_path is 0700)."""
    if os.geteuid() != 0:
        pytest.fail("script security tests need root (files owned by root vs by another user)")
    d = Path(tempfile.mkdtemp(prefix="pyka-sec-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_insecure_rules(root_dir: Path) -> None:
    p = script(root_dir)
    assert insecure(str(p)) is None
    p.chmod(0o757)
    assert "writable by others" in (insecure(str(p)) or "")
    p.chmod(0o775)
    assert "writable by its group" in (insecure(str(p)) or "")
    p.chmod(0o755)
    os.chown(p, 65534, 65534)
    assert "owned by uid 65534" in (insecure(str(p)) or "")
    os.chown(p, 0, 0)
    root_dir.chmod(0o777)  # a directory above it that others can write: they could swap the script
    assert "writable by others" in (insecure(str(p)) or "")


def test_policy_refusals_and_users(root_dir: Path) -> None:
    p = script(root_dir, 0o757)
    loose, strict = ScriptPolicy(), ScriptPolicy(secure=True)
    assert loose.refusal("misc", [str(p)], ROOT) is None
    why = strict.refusal("misc", [str(p), "a"], ROOT)
    assert why is not None and why.startswith(f"Disabling misc script {p} a due to insecure")
    assert strict.refusal("misc", ["/nonexistent/x"], ROOT) == "Disabling misc script /nonexistent/x since not found/accessible"
    assert ScriptPolicy.of("nobody", None, True).default.uid == 65534
    assert ScriptPolicy.of(None, None, False).default == ROOT  # no keepalived_script user here
    assert strict.run_as("no-such-user-xyz") is None


def test_role_drops_an_insecure_misc_check_and_refuses_an_insecure_notify(root_dir: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    bad = script(root_dir, 0o757, f"touch {root_dir}/ran")
    conf = ("global_defs {\n enable_script_security\n script_user nobody\n}\n"
            "virtual_server 203.0.113.1 80 {\n protocol TCP\n real_server 127.0.0.1 1 {\n"
            f" notify_down {bad}\n MISC_CHECK {{\n misc_path {bad}\n }}\n }}\n}}\n")
    r = load_text(conf)
    assert r.config is not None, [str(x) for x in r.diag]

    async def go() -> int:
        m = HealthManager(lambda k, d: None)
        m.apply(r.config)  # type: ignore[arg-type]
        n = sum(len(h.runners) for h in m.servers.values())
        m._run_script(str(bad))
        await asyncio.sleep(0.3)
        m.stop()
        return n

    with caplog.at_level(logging.INFO, logger="pykeepalived.checker"):
        runners = asyncio.run(go())
    assert runners == 0
    lines = [rec.getMessage() for rec in caplog.records]
    assert any(f"Disabling misc script {bad} due to insecure" in x for x in lines), lines
    assert any(f"Disabling notify script {bad} due to insecure" in x for x in lines), lines
    assert not (root_dir / "ran").exists()


def test_misc_script_runs_as_the_script_user(root_dir: Path) -> None:
    out = root_dir / "uid"
    root_dir.chmod(0o755)
    (root_dir / "w").mkdir()
    (root_dir / "w").chmod(0o777)
    ok = script(root_dir, 0o755, f"id -u > {root_dir}/w/uid")
    conf = ("global_defs {\n enable_script_security\n script_user nobody\n}\n"
            "virtual_server 203.0.113.1 80 {\n protocol TCP\n delay_loop 5\n real_server 127.0.0.1 1 {\n"
            f" MISC_CHECK {{\n misc_path {ok}\n warmup 0\n }}\n }}\n}}\n")
    r = load_text(conf)
    assert r.config is not None

    async def go() -> None:
        m = HealthManager(lambda k, d: None)
        m.apply(r.config)  # type: ignore[arg-type]
        for _ in range(50):
            if (root_dir / "w" / "uid").exists() and (root_dir / "w" / "uid").read_text().strip():
                break
            await asyncio.sleep(0.05)
        m.stop()

    asyncio.run(go())
    assert (root_dir / "w" / "uid").read_text().strip() == "65534"
    assert not out.exists()
