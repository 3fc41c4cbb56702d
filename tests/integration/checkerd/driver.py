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
from collections.abc import Callable
from typing import Any

from checkerd.scheduler import HealthManager
from supervisor.config.load import load_text


async def lag_monitor(attempts: Callable[[], int], period: float = 0.01, window: float = 1.0) -> None:
    """Every ``window`` s, print how late a ``period`` s sleep woke up (p50/p99/max, in ms) as a
    ``#lag`` line: the benchmark's view of the loop's stalls, next to the checker's latencies. The line
    also carries the number of attempts made so far, so that CPU can be divided per attempt."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    mark = loop.time()
    while True:
        t = loop.time()
        await asyncio.sleep(period)
        lags.append(loop.time() - t - period)
        if loop.time() - mark >= window:
            lags.sort()
            n = len(lags)
            data = {"p50": 1000 * lags[n // 2], "p99": 1000 * lags[min(n - 1, int(0.99 * n))], "max": 1000 * lags[-1],
                    "attempts": attempts()}
            print(json.dumps({"t": time.monotonic(), "key": "#lag", "data": data}), flush=True)
            lags.clear()
            mark = loop.time()


async def run(conf: str, duration: float, quiet: bool, lag: bool = False) -> None:
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
    monitor = asyncio.get_running_loop().create_task(lag_monitor(
        lambda: sum(r.attempts for h in m.servers.values() for r in h.runners))) if lag else None
    await asyncio.sleep(duration)
    if monitor is not None:
        monitor.cancel()
    m.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("conf")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--lag", action="store_true", help="print the loop's lag every second (#lag lines)")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(created).3f %(message)s")
    asyncio.run(run(a.conf, a.duration, a.quiet, a.lag))


if __name__ == "__main__":
    main()
