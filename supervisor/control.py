"""The supervisor's one command dispatcher and the views it serves (status, dump).

Signals and ``pykeepalivectl`` requests end up here as the same commands, so SIGHUP and
``pykeepalivectl reload`` take exactly the same path (circus's design):

    stop      SIGTERM, SIGINT            orderly stop; a second one kills the roles at once
    reload    SIGHUP, ctl reload         parse in a thread, then reload-apply: validate, new generation,
                                         roles apply the difference (ctl is answered when all acked)
    data      SIGUSR1                    every role writes RUN/<role>.data; we write RUN/supervisor.data
    stats     SIGUSR2                    the VRRP role writes RUN/vrrp.stats
    status    ctl status                 roles (pid, state, uptime, restarts, RSS, CPU) and cached state
    restart   ctl restart ROLE           exactly that role; the others are untouched
    dump      ctl dump [--toml]          configuration and cached state
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]

from supervisor.broker import RequestError
from supervisor.config.load import LoadResult
from supervisor.jsonfile import write_json

if TYPE_CHECKING:
    from supervisor.daemon import Supervisor


async def handle_command(sup: Supervisor, cmd: str, args: dict[str, Any]) -> Any:
    why = args.get("signal") or args.get("why") or "pykeepalivectl"
    if cmd == "stop":
        sup.begin_stop(str(why))
        return "stopping"
    if cmd == "reload":
        return sup.begin_reload(str(why))
    if cmd == "reload-apply":
        # Internal: the parse started by "reload" is done. Only the supervisor itself can send a
        # LoadResult (a control request is JSON), so a client cannot inject a configuration here.
        result = args.get("result")
        if not isinstance(result, (LoadResult, Exception)) or not sup.reloading:
            raise RequestError("unknown command 'reload-apply'")
        sup.apply_reload(result)
        return None
    if cmd == "data":
        sup.forward_signal(signal.SIGUSR1, ("vrrp", "checker", "ipvs"))
        write_json(os.path.join(sup.run_dir, "supervisor.data"), status(sup))
        return "data dump requested"
    if cmd == "stats":
        sup.forward_signal(signal.SIGUSR2, ("vrrp",))
        return "stats dump requested"
    if cmd == "status":
        return status(sup)
    if cmd == "restart":
        role = args.get("role")
        if role not in sup.children:
            raise RequestError(f"unknown role {role!r} (vrrp, checker or ipvs)")
        return sup.restart_role(str(role))
    if cmd == "dump":
        if args.get("format") == "toml":
            from supervisor.config.toml_io import to_toml

            return to_toml(sup.config)
        return {"generation": sup.gen, "config": dataclasses.asdict(sup.config),
                "state": {k: json.loads(e.to_wire()[1]) for k, e in sup.broker.cache.values().items()}}
    raise RequestError(f"unknown command {cmd!r}")


_procs: dict[int, psutil.Process] = {}  # kept so that cpu_percent measures since the previous status


def _proc(pid: int | None) -> dict[str, Any]:
    if pid is None:
        return {}
    try:
        p = _procs.get(pid)
        if p is None or not p.is_running():
            p = _procs[pid] = psutil.Process(pid)
            for old in [q for q, proc in _procs.items() if not proc.is_running()]:
                del _procs[old]
        with p.oneshot():
            return {"rss": p.memory_info().rss, "cpu_percent": p.cpu_percent(interval=None),
                    "cpu_seconds": round(sum(p.cpu_times()[:2]), 3)}
    except psutil.Error:
        return {}


def status(sup: Supervisor) -> dict[str, Any]:
    now = sup.os.monotonic()
    roles = []
    for role, c in sup.children.items():
        roles.append({
            "role": role, "pid": c.pid, "state": c.state.name,
            "uptime": round(now - c.started_at, 1) if c.pid is not None else None,
            "restarts": c.restarts, "generation": c.gen,
            "last_exit": c.last_exit.describe() if c.last_exit else None,
            **_proc(c.pid),
        })
    cache = sup.broker.cache.values()
    instances = [{"name": k.split(".", 2)[2], **e.data} for k, e in cache.items() if k.startswith("vrrp.instance.")]
    real_servers = [{"key": k.split(".", 2)[2], **e.data} for k, e in cache.items() if k.startswith("checker.rs.")]
    virtual_servers = [{"key": k.split(".", 2)[2], **e.data} for k, e in cache.items() if k.startswith("ipvs.vs.")]
    return {
        "supervisor": {"pid": os.getpid(), "uptime": round(time.time() - sup.started, 1), "generation": sup.gen,
                       "reloading": sup.reloading, "reloads": sup.reloads, "stopping": sup.stopping,
                       "run_dir": sup.run_dir, "config": sup.config_path, **_proc(os.getpid())},
        "roles": roles,
        "vrrp_instances": instances,
        "real_servers": real_servers,
        "virtual_servers": virtual_servers,
        "bus": {"forwarded": sup.broker.forwarded, "rejected": dict(sup.broker.rejects.by_reason),
                "cache_bseq": sup.broker.cache.bseq, "cached_keys": len(cache)},
    }


