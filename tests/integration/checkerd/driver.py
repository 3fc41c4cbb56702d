"""Runs checkerd's HealthManager on a keepalived.conf inside a namespace and prints what it publishes.

``python -m tests.integration.checkerd.driver CONF --duration S`` prints one JSON line per published
change: ``{"t": <monotonic>, "key": ..., "data": {...} | null}``; log lines go to stderr. It is the
checker role minus the bus, so tests (and benchmarks) see exactly the role's decisions and timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from checkerd.scheduler import HealthManager
from supervisor.config.load import load_text


async def run(conf: str, duration: float, quiet: bool) -> None:
    with open(conf) as f:
        res = load_text(f.read(), name=conf)
    if res.config is None:
        for p in res.diag:
            print(p, file=sys.stderr)
        raise SystemExit(2)
    for p in res.diag:
        print(f"config: {p}", file=sys.stderr)

    def publish(key: str, data: dict[str, Any] | None) -> None:
        if not quiet:
            print(json.dumps({"t": time.monotonic(), "key": key, "data": data}), flush=True)

    m = HealthManager(publish)
    m.apply(res.config)
    print(json.dumps({"t": time.monotonic(), "key": "", "data": {"started": len(m.servers)}}), flush=True)
    await asyncio.sleep(duration)
    m.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("conf")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(created).3f %(message)s")
    asyncio.run(run(a.conf, a.duration, a.quiet))


if __name__ == "__main__":
    main()
