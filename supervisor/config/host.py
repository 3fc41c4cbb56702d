"""Checks that depend on the host: do the interfaces the configuration names exist here?

Run in the namespace the daemon will run in. keepalived 2.2.7 reports a missing VRRP interface as an
error ("WARNING - interface X for vrrp_instance Y doesn't exist") plus the "cannot run" class
("Non-existent interface specified in configuration"), unless dynamic_interfaces allows it.
Whether the kernel has IPVS never matters here: that is the data plane's business at run time.
"""

from __future__ import annotations

import socket

from supervisor.config.diag import NOWHERE, Diagnostics, Where
from supervisor.config.model.config import Config
from supervisor.config.validate_vrrp import where_of


def interface_names() -> set[str]:
    try:
        return {name for _, name in socket.if_nameindex()}
    except OSError:
        return set()


def check_interfaces(
    config: Config, diag: Diagnostics, names: set[str] | None = None, top: Where = NOWHERE
) -> None:
    present = interface_names() if names is None else names
    if config.global_defs.dynamic_interfaces:
        return
    missing = False
    for inst in config.vrrp_instances:
        if inst.interface is not None and inst.interface not in present:
            diag.error(
                where_of(inst.source),
                f"WARNING - interface {inst.interface} for vrrp_instance {inst.name} doesn't exist",
            )
            missing = True
        for tracker in inst.track_interfaces:
            if tracker.name not in present:
                diag.error(
                    where_of(tracker.source),
                    f"WARNING - interface {tracker.name} tracked by vrrp_instance {inst.name} doesn't exist",
                )
                missing = True
    if missing:
        diag.fatal(top, "Non-existent interface specified in configuration")
