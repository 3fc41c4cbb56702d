"""Boot User-Mode Linux (Debian's linux.uml, unpacked by packaging/setup-uml.sh into .cache/uml) and run
one Python script inside it, for the kernel-IPVS tests: this machine's kernel has no IPVS.

The guest's root is the host's root through hostfs, read-only (``ro``: without it the guest would write
host files as root), so it runs the host's venv python and ipvsadm at the same paths. PID 1 is a shell
script generated here: it mounts proc/sysfs/devtmpfs and a tmpfs on /run, loads ip_vs and every
scheduler module with busybox insmod (dependencies from modules.dep), runs the script with TMPDIR=/run
and prints ``GUEST-RESULT: rc=N`` on the console, then powers off. The guest's exit status does not
reach the host: :func:`run_in_uml` reads the console log. Lines the script prints between
``GUEST-JSON-BEGIN`` / ``GUEST-JSON-END`` come back parsed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UML_DIR = ROOT / ".cache" / "uml"
LINUX = UML_DIR / "usr" / "bin" / "linux.uml"
WANT_MODULES = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
                "ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_mh", "ip_vs_fo", "ip_vs_ovf", "ip_vs_twos", "ipip", "veth"]


class UmlUnavailable(RuntimeError):
    pass


@dataclass
class GuestRun:
    rc: int | None
    console: str
    data: Any
    seconds: float


def modules_dir() -> Path:
    found = sorted((UML_DIR / "usr" / "lib" / "uml" / "modules").glob("*/modules.dep"))
    if not found or not LINUX.exists():
        raise UmlUnavailable(f"User-Mode Linux is not unpacked in {UML_DIR}: run `bash packaging/setup-uml.sh`")
    return found[-1].parent


def module_order(mdir: Path, wanted: list[str]) -> list[Path]:
    """Module files to insmod, dependencies first, each once."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (mdir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[Path(mod).name.split(".ko")[0].replace("-", "_")] = mod
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for d in deps.get(mod, []):
            visit(d)
        order.append(mod)

    for w in wanted:
        if w in by_name:
            visit(by_name[w])
    return [mdir / m for m in order]


def busybox() -> str:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.access(p, os.X_OK):
            return p
    found = shutil.which("busybox")
    if not found:
        raise UmlUnavailable("busybox (busybox-static) is needed to load modules inside UML")
    return found


def run_in_uml(script: Path, args: list[str] | None = None, *, timeout: float = 180, mem: str = "384M") -> GuestRun:
    import time

    mdir = modules_dir()
    bb = busybox()
    work = Path(tempfile.mkdtemp(prefix="uml-", dir=UML_DIR))  # inside the repo: the guest sees it read-only
    try:
        inserts = "\n".join(f"{bb} insmod {m} 2>/dev/null" for m in module_order(mdir, WANT_MODULES))
        argv = " ".join(f"'{a}'" for a in [sys.executable, str(script), *(args or [])])
        init = work / "init.sh"
        init.write_text(f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /run
mkdir -p /run/tmp
{inserts}
cd {ROOT}
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TMPDIR=/run/tmp PYTHONPATH={ROOT} PYTHONDONTWRITEBYTECODE=1 HOME=/run {argv} </dev/null 2>&1
echo "GUEST-RESULT: rc=$?"
{bb} poweroff -f
""")
        init.chmod(0o755)
        console = work / "console.log"
        t0 = time.monotonic()
        with open(console, "wb") as out:
            try:
                subprocess.run(["timeout", "-k", "5", str(int(timeout)), str(LINUX), f"mem={mem}", "root=/dev/root",
                                "rootfstype=hostfs", "rootflags=/", "ro", f"init={init}", "con=null",
                                "con0=null,fd:1", "quiet"], stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=timeout + 15, check=False)
            except subprocess.TimeoutExpired:
                pass
        seconds = time.monotonic() - t0
        text = console.read_text(errors="replace")
        m = re.search(r"GUEST-RESULT: rc=(\d+)", text)
        data = None
        j = re.search(r"GUEST-JSON-BEGIN\r?\n(.*?)\r?\nGUEST-JSON-END", text, re.S)
        if j:
            data = json.loads(j.group(1))
        return GuestRun(int(m.group(1)) if m else None, text, data, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
