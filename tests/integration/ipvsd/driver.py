"""Test driver: runs ipvsd's Engine inside the load balancer's namespace, commanded by JSON lines.

``python -m tests.integration.ipvsd.driver --run-dir DIR`` reads one JSON object per line on stdin and
answers one per line on stdout: ``{"op": "config", "text": KEEPALIVED_CONF}``,
``{"op": "health", "key": "VS/RS", "data": {...}|null}``, ``{"op": "stop", "release": true}``,
``{"op": "info"}``, ``{"op": "rebalance"}``. The Engine is the product's; only the bus around it is replaced by this pipe.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from ipvsd.reconcile import ConfigRefused, Engine
from supervisor.config.load import load_text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    eng = Engine(args.run_dir)
    warnings: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == logging.WARNING:
                warnings.append(record.getMessage())

    logging.getLogger("pykeepalived.ipvs").addHandler(Keep())
    for line in sys.stdin:
        req = json.loads(line)
        out: dict[str, Any] = {"ok": True}
        t0 = time.perf_counter()
        try:
            if req["op"] == "config":
                r = load_text(req["text"], name="k.conf")
                if r.config is None or r.diag.errors:
                    out = {"ok": False, "errors": [str(p) for p in r.diag.errors]}
                else:
                    warnings.clear()
                    res = eng.configure(r.config)
                    out["changes"] = res.changes
                    out["warnings"] = list(warnings)
            elif req["op"] == "health":
                res = eng.set_health(req["key"], req["data"])
                out["changes"] = res.changes
                out["events"] = [(e.vs, e.up) for e in res.events]
            elif req["op"] == "rebalance":  # one period of the lc/wlc approximation (the role runs it on a timer)
                out["changes"] = eng.rebalance()
            elif req["op"] == "stop":
                out["changes"] = eng.stop(bool(req.get("release", True)))
            elif req["op"] == "info":
                out["programmed"] = eng.programmed()
                out["stats"] = eng.stats()
                out["batches"] = eng.nft.batches if eng.nft is not None else 0
                out["full_reads"] = getattr(eng.nft, "full_reads", 0)
                out["listings"] = getattr(eng.nft, "listings", 0)
        except ConfigRefused as e:
            out = {"ok": False, "errors": e.errors}
        out["ms"] = round((time.perf_counter() - t0) * 1000, 3)
        print(json.dumps(out), flush=True)
        if req["op"] == "stop":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
