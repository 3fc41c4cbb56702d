"""One User-Mode Linux boot per session for the kernel-IPVS tests (tests/uml/boot.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.uml.boot import GuestRun, UmlUnavailable, run_in_uml

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def ipvs_guest(require_root: None) -> GuestRun:
    try:
        run = run_in_uml(HERE / "guest_ipvs.py", timeout=240)
    except UmlUnavailable as e:
        pytest.fail(str(e), pytrace=False)  # CI installs it (packaging/setup-uml.sh): absence is a broken setup
    assert run.rc == 0 and run.data is not None, run.console[-4000:]
    return run
