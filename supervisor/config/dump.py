"""A readable dump of the effective configuration (``-d`` / ``--dump-conf``), in keepalived's spirit.

Sections as keepalived's dump names them, then every field that has a value, defaults included, so an
operator sees what the daemon will actually do. Where each block came from is left out, so a
keepalived.conf and its TOML dump print the same text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from supervisor.config.model.config import Config

_SECTIONS = [
    ("global_defs", "Global definitions"),
    ("static_ipaddress", "Static addresses"),
    ("static_routes", "Static routes"),
    ("static_rules", "Static rules"),
    ("vrrp_scripts", "VRRP scripts"),
    ("track_files", "Track files"),
    ("vrrp_sync_groups", "VRRP sync groups"),
    ("vrrp_instances", "VRRP instances"),
    ("ssl", "SSL"),
    ("local_address_groups", "Local address groups"),
    ("virtual_server_groups", "Virtual server groups"),
    ("virtual_servers", "Virtual servers"),
]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _lines(obj: Any, indent: str, out: list[str]) -> None:
    for f in dataclasses.fields(obj):
        if f.name == "source":
            continue
        value = getattr(obj, f.name)
        if value is None or value == []:
            continue
        if dataclasses.is_dataclass(value):
            out.append(f"{indent}{f.name}:")
            _lines(value, indent + "  ", out)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                out.append(f"{indent}{f.name}[{i}]:")
                _lines(item, indent + "  ", out)
        elif isinstance(value, list):
            out.append(f"{indent}{f.name} = {' '.join(_value(v) for v in value)}")
        else:
            out.append(f"{indent}{f.name} = {_value(value)}")


def dump_text(config: Config) -> str:
    out: list[str] = []
    top = [f"{name} = {_value(getattr(config, name))}" for name in
           ("net_namespace", "net_namespace_ipvs", "instance", "use_pid_dir", "child_wait_time")
           if getattr(config, name) is not None]
    out.append("------< Top level >------")
    out.extend(" " + line for line in top)
    for attr, title in _SECTIONS:
        value = getattr(config, attr)
        if value is None or value == []:
            continue
        out.append(f"------< {title} >------")
        items = value if isinstance(value, list) else [value]
        for item in items:
            label = getattr(item, "name", None) or getattr(item, "address", None) or getattr(item, "dest", None)
            if isinstance(value, list):
                out.append(f" {type(item).__name__} {label or ''}".rstrip())
            _lines(item, "   " if isinstance(value, list) else " ", out)
    return "\n".join(out) + "\n"
