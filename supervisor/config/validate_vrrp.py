"""Checks and defaults for the VRRP part that need the whole configuration.

Mirrors keepalived's vrrp_complete_init: effective defaults that depend on other keywords (`state
MASTER` without `priority` is the address owner), families and versions, references to scripts, files
and instances, and strict-mode rules. Instances with fatal problems are reported, never dropped
silently.
"""

from __future__ import annotations

from supervisor.config import values as v
from supervisor.config.diag import Where
from supervisor.config.model.config import Config
from supervisor.config.model.vrrp import VrrpInstance
from supervisor.config.parse.table import Ctx


def where_of(source: str) -> Where:
    file, _, line = source.rpartition(":")
    return Where(file or "<config>", int(line) if line.isdigit() else 0)


def _family(address: str) -> int:
    return v.ip_interface(address).version


def _strict(inst: VrrpInstance, config: Config, ctx: Ctx) -> None:
    """vrrp_strict / strict_mode: keepalived's RFC rules. A keyword that breaks one is reset (with its
    message); a keyword left unset gets the strict default, written into the instance so the running role
    sees one answer whatever the global defaults say."""
    at = where_of(inst.source)
    name = f"({inst.name})"
    diag = ctx.diag
    g = config.global_defs
    owner = inst.is_address_owner
    if inst.state is not None and (inst.state == "MASTER") != owner:
        diag.error(at, f"{name} State MASTER must match being address owner")
        inst.state = "MASTER" if owner else "BACKUP"
    if inst.unicast_peers:
        diag.error(at, f"{name} Unicast peers are not supported in strict mode")
    if inst.auth_type is not None:
        diag.error(at, f"{name} Strict mode does not support authentication. Ignoring.")
        inst.auth_type = None
        inst.auth_pass = None
    if inst.no_virtual_ipaddress:
        diag.warn(at, f"{name} no_virtual_ipaddress and strict mode incompatible, clearing no_virtual_ipaddress")
        inst.no_virtual_ipaddress = False
    if not inst.virtual_ipaddress:
        diag.error(at, f"{name} No VIP specified; at least one is required")
    elif inst.family == "inet6" and not inst.unicast_peers and not v.ip_interface(
            inst.virtual_ipaddress[0].address).ip.is_link_local:
        diag.error(at, f"{name} the first IPv6 VIP address must be link local")
    if inst.preempt_delay:
        diag.error(at, f"{name} preempt_delay is incompatible with strict mode - resetting")
        inst.preempt_delay = 0.0
    if (inst.down_timer_adverts or g.vrrp_down_timer_adverts) != 3:
        diag.error(at, f"{name} down_timer_adverts is incompatible with strict mode - resetting")
    inst.down_timer_adverts = 3  # RFC: Master_Down_Interval is three advert intervals plus the skew
    if inst.garp_lower_prio_repeat:
        diag.error(at, f"{name} Strict mode requires no repeat garps. resetting")
    inst.garp_lower_prio_repeat = 0
    if inst.garp_lower_prio_delay:
        diag.error(at, f"{name} Strict mode requires no repeat garp delay. resetting")
    inst.garp_lower_prio_delay = 0.0
    if inst.lower_prio_no_advert is False:
        diag.error(at, f"{name} Strict mode requires no lower priority advert. resetting")
    inst.lower_prio_no_advert = True
    if inst.higher_prio_send_advert:
        diag.error(at, f"{name} strict mode requires higher_prio_send_advert to be clear. resetting")
    inst.higher_prio_send_advert = False
    if owner:
        if inst.owner_ignore_adverts is False:
            diag.error(at, f"{name} strict_mode with priority 255 requires owner_ignore_adverts")
        inst.owner_ignore_adverts = True
        inst.accept = True
    else:
        if inst.accept and inst.version == 2:
            diag.error(at, f"{name} warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting")
            inst.accept = False
        if inst.accept is None:
            inst.accept = False
    if inst.use_vmac and inst.vmac_xmit_base:
        diag.error(at, f"{name} xmit_base is incompatible with strict mode - resetting")
        inst.vmac_xmit_base = False
    if inst.vmac_mac:
        diag.error(at, f"{name}: cannot specify MAC address with strict mode - clearing")
        inst.vmac_mac = None


def _instance(inst: VrrpInstance, config: Config, ctx: Ctx) -> None:
    at = where_of(inst.source)
    name = f"({inst.name})"
    diag = ctx.diag
    if not ctx.was_set(inst, "virtual_router_id"):
        diag.error(at, f"{name} the virtual router id must be set")
    if inst.state == "MASTER" and not ctx.was_set(inst, "priority"):
        inst.priority = 255
    if inst.state == "MASTER" and inst.auth_type == "AH":
        diag.error(at, f"{name} Initial state master is incompatible with AH authentication - clearing")
        inst.state = "BACKUP"
    if inst.interface is None and not inst.unicast_peers:
        inst.interface = config.global_defs.default_interface
        if inst.interface is None:
            diag.error(at, f"{name} no interface specified")

    vips = inst.virtual_ipaddress
    if vips:
        families = {_family(vip.address) for vip in vips}
        first = _family(vips[0].address)
        if len(families) > 1:
            diag.error(
                at,
                f"{name} virtual_ipaddress entries must all be of one family; use virtual_ipaddress_excluded "
                "for the others",
            )
            inst.virtual_ipaddress = [vip for vip in vips if _family(vip.address) == first]
        inst.family = "inet6" if first == 6 else "inet"
    elif inst.unicast_src_ip:
        inst.family = "inet6" if v.ip_address(inst.unicast_src_ip).version == 6 else "inet"
    elif not inst.no_virtual_ipaddress:
        diag.warn(at, f"{name} no VIP specified")

    version = inst.version or config.global_defs.vrrp_version
    if inst.family == "inet6" and version == 2:
        if inst.version == 2:
            diag.warn(at, f"{name} VRRP version 2 does not support IPv6: using version 3")
        version = 3
    inst.version = version

    if version == 2:
        whole = round(inst.advert_int)
        if whole < 1:
            whole = 1
        if whole != inst.advert_int:
            diag.warn(at, f"{name} advert_int {inst.advert_int} rounded to {whole} s for VRRP version 2")
        inst.advert_int = float(whole)
    else:
        centi = round(inst.advert_int * 100)
        if centi > 4095:
            diag.error(at, f"{name} advert_int {inst.advert_int} too large for VRRP version 3 (max 40.95)")
            centi = 4095
        inst.advert_int = max(centi, 1) / 100

    if inst.auth_type is not None and (version == 3 or inst.family == "inet6"):
        diag.error(at, f"{name} authentication is not supported with VRRP version 3: ignoring it")
        inst.auth_type = None
        inst.auth_pass = None
    if inst.auth_type == "PASS" and not inst.auth_pass:
        diag.error(at, f"{name} auth_type PASS without auth_pass")

    strict = inst.strict_mode if inst.strict_mode is not None else config.global_defs.vrrp_strict
    if strict:
        _strict(inst, config, ctx)
    if inst.owner_ignore_adverts and not inst.is_address_owner:
        diag.error(at, f"{name} ignoring owner_ignore_adverts since priority is not 255")
        inst.owner_ignore_adverts = False

    if inst.is_address_owner:
        if inst.nopreempt:
            inst.nopreempt = False
        for trackers in (inst.track_interfaces, inst.track_scripts, inst.track_files):
            for tracker in trackers:
                if tracker.weight:
                    diag.warn(where_of(tracker.source), f"{name} address owner: tracker weight ignored")
                    tracker.weight = 0
    if inst.preempt_delay and (inst.nopreempt or strict or inst.state == "MASTER"):
        inst.preempt_delay = 0.0

    for route in inst.virtual_routes:
        if route.dev is None and "no_track" not in route.options:
            diag.warn(
                where_of(route.source),
                f"Warning - cannot track route {route.dest} with no interface specified, not tracking",
            )

    scripts = {s.name for s in config.vrrp_scripts}
    missing = [t for t in inst.track_scripts if t.name not in scripts]
    for tracker in missing:
        diag.error(where_of(tracker.source), f"{name} track script {tracker.name} not found, ignoring...")
    inst.track_scripts = [t for t in inst.track_scripts if t.name in scripts]
    files = {f.name for f in config.track_files}
    for tracker in inst.track_files:
        if tracker.name not in files:
            diag.error(where_of(tracker.source), f"{name} track file {tracker.name} not found, ignoring...")
    inst.track_files = [t for t in inst.track_files if t.name in files]


def validate(config: Config, ctx: Ctx) -> None:
    for inst in config.vrrp_instances:
        _instance(inst, config, ctx)

    seen: dict[tuple[str | None, str, int], str] = {}
    for inst in config.vrrp_instances:
        key = (inst.interface, inst.family, inst.virtual_router_id)
        if inst.virtual_router_id and key in seen and not inst.unicast_peers:
            ctx.diag.error(
                where_of(inst.source),
                f"({inst.name}) VRID {inst.virtual_router_id} is already used by {seen[key]} on "
                f"{inst.interface} ({inst.family})",
            )
        seen.setdefault(key, inst.name)

    by_name = {inst.name: inst for inst in config.vrrp_instances}
    for group in config.vrrp_sync_groups:
        members = []
        for member in group.group:
            found = by_name.get(member)
            if found is None:
                ctx.diag.error(where_of(group.source), f"vrrp_sync_group {group.name}: instance {member} not found")
                continue
            if found.sync_group is not None:
                ctx.diag.error(
                    where_of(group.source),
                    f"vrrp_sync_group {group.name}: {member} is already in sync group {found.sync_group}",
                )
                continue
            found.sync_group = group.name
            members.append(member)
        group.group = members
        if not members:
            ctx.diag.warn(where_of(group.source), f"Sync group {group.name} has no virtual router(s). removing")
        elif len(members) == 1:
            ctx.diag.warn(
                where_of(group.source),
                f"Sync group {group.name} has only 1 virtual router(s) - this probably isn't what you want",
            )
    config.vrrp_sync_groups = [g for g in config.vrrp_sync_groups if g.group]
