"""VRRP keyword tables: vrrp_script, track_file, vrrp_sync_group, vrrp_instance, static_* blocks.

Address, route and rule lines are parsed into the fields roles act on; words pykeepalived does not
interpret are kept in ``options`` so nothing written is lost on the way to the role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.config import values as v
from supervisor.config.model.globals import Route, Rule, StaticAddress
from supervisor.config.model.vrrp import (
    Tracker,
    TrackFile,
    UnicastPeer,
    Vip,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
)
from supervisor.config.parse.table import (
    BFD_UNSUPPORTED,
    DPVS_ONLY,
    Ctx,
    Handler,
    Table,
    bool_opt,
    deprecated,
    flag,
    int_,
    ip,
    needs_block,
    no_effect_yet,
    not_applicable,
    script,
    source,
    timer,
    word,
)
from supervisor.config.tree import Node

# -- addresses, routes, rules ----------------------------------------------------------------------

_ADDR_VALUE_OPTS = {"brd", "dev", "scope", "label", "peer", "preferred_lft", "metric"}
_ADDR_FLAGS = {"home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track", "use_vmac"}


def parse_address_line(node: Node, ctx: Ctx, cls: type[Any]) -> Any | None:
    """One line of virtual_ipaddress / static_ipaddress: ADDR[/LEN] [brd X] [dev X] [scope X] ..."""
    words = [node.keyword, *node.args]
    iface = v.parse_prefix(node, ctx.diag, words[0])
    if iface is None:
        return None
    obj = cls(address=str(iface), source=source(node.where))
    i = 1
    while i < len(words):
        key = words[i]
        if key in _ADDR_VALUE_OPTS:
            if i + 1 >= len(words):
                ctx.diag.error(node.where, f"{words[0]}: '{key}' needs a value")
                return None
            value = words[i + 1]
            if key in ("brd", "peer"):
                addr = v.ip_or_error(node, ctx.diag, value)
                if addr is None:
                    return None
                value = str(addr)
            if key in ("brd", "dev", "scope", "label", "peer"):
                setattr(obj, key, value)
            else:
                obj.options.extend([key, value])
            i += 2
            continue
        if key in _ADDR_FLAGS:
            if key == "no_track" and hasattr(obj, "no_track"):
                obj.no_track = True
            elif key == "use_vmac" and hasattr(obj, "use_vmac"):
                obj.use_vmac = True
            else:
                obj.options.append(key)
            i += 1
            continue
        ctx.diag.error(node.where, f"{words[0]}: unknown address option '{key}'")
        return None
    return obj


_ROUTE_VALUE_OPTS = {
    "via": "via", "gw": "via", "or": None, "dev": "dev", "oif": "dev", "src": "src", "table": "table",
    "metric": "metric", "preference": "metric", "priority": "metric", "scope": "scope", "proto": None,
    "protocol": None, "realms": None, "mtu": None, "advmss": None, "rtt": None, "rttvar": None,
    "reordering": None, "window": None, "cwnd": None, "initcwnd": None, "initrwnd": None, "ssthresh": None,
    "features": None, "quickack": None, "congctl": None, "pref": None, "from": None, "tos": None,
    "dsfield": None, "nexthop": None, "ttl-propagate": None, "hoplimit": None, "rto_min": None,
    "fastopen_no_cookie": None, "encap": None, "expires": None,
}
_ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat"}
_ROUTE_FLAGS = {"onlink", "no_track", "lock"}


_DEPRECATED_ROUTE_WORDS = {"or": "nexthop", "gw": "via"}


def parse_route_line(node: Node, ctx: Ctx) -> Route | None:
    words = [node.keyword, *node.args]
    for old, new in _DEPRECATED_ROUTE_WORDS.items():
        if old in words:
            ctx.diag.warn(node.where, f'"{old}" for routes is deprecated. Please use "{new}"')
    route = Route(dest="", source=source(node.where))
    i = 0
    while i < len(words):
        key = words[i]
        if key in _ROUTE_TYPES and not route.dest:
            route.route_type = key
            i += 1
            continue
        if key in _ROUTE_VALUE_OPTS:
            if i + 1 >= len(words):
                ctx.diag.error(node.where, f"route: '{key}' needs a value")
                return None
            value = words[i + 1]
            field_name = _ROUTE_VALUE_OPTS[key]
            if field_name in ("via", "src"):
                addr = v.ip_or_error(node, ctx.diag, value)
                if addr is None:
                    return None
                value = str(addr)
            if field_name == "metric":
                try:
                    route.metric = int(value)
                except ValueError:
                    ctx.diag.error(node.where, f"route: invalid metric '{value}'")
                    return None
            elif field_name is not None and field_name != "scope":
                setattr(route, field_name, value)
            else:
                route.options.extend([key, value])
            i += 2
            continue
        if key in _ROUTE_FLAGS:
            route.options.append(key)
            i += 1
            continue
        if not route.dest:
            if key == "default":
                route.dest = key
            else:
                net = v.parse_prefix(node, ctx.diag, key)
                if net is None:
                    return None
                route.dest = str(net.network)
            i += 1
            continue
        ctx.diag.error(node.where, f"route: unknown option '{key}'")
        return None
    if not route.dest:
        ctx.diag.error(node.where, "route: no destination")
        return None
    return route


_RULE_VALUE_OPTS = {
    "from": "from_", "to": "to", "table": "table", "lookup": "table", "priority": "priority",
    "preference": "priority", "pref": "priority", "fwmark": "fwmark", "iif": "iif", "oif": "oif",
    "goto": None, "realms": None, "tos": None, "dsfield": None, "suppress_prefixlength": None,
    "suppress_ifgroup": None, "uidrange": None, "ipproto": None, "sport": None, "dport": None,
    "l3mdev": None, "protocol": None, "tun_id": None,
}
_RULE_ACTIONS = {"blackhole", "prohibit", "unreachable", "nop", "no_track", "not", "l3mdev"}


def parse_rule_line(node: Node, ctx: Ctx) -> Rule | None:
    words = [node.keyword, *node.args]
    rule = Rule(source=source(node.where))
    rule_ = _parse_rule_words(node, ctx, words, rule)
    if rule_ is not None and rule_.priority is None:
        # keepalived gives each rule without a preference the next one down from 16384
        rule_.priority = ctx.next_rule_preference
        ctx.next_rule_preference -= 1
        ctx.diag.warn(
            node.where,
            f"Rule has no preference specified - setting to {rule_.priority}. This is probably not what you want.",
        )
    return rule_


def _parse_rule_words(node: Node, ctx: Ctx, words: list[str], rule: Rule) -> Rule | None:
    i = 0
    while i < len(words):
        key = words[i]
        if key in _RULE_VALUE_OPTS:
            if i + 1 >= len(words):
                ctx.diag.error(node.where, f"rule: '{key}' needs a value")
                return None
            value = words[i + 1]
            name = _RULE_VALUE_OPTS[key]
            if name in ("from_", "to") and value != "all":
                net = v.parse_prefix(node, ctx.diag, value)
                if net is None:
                    return None
                value = str(net.network)
            if name == "priority":
                try:
                    rule.priority = int(value)
                except ValueError:
                    ctx.diag.error(node.where, f"rule: invalid priority '{value}'")
                    return None
            elif name is not None:
                setattr(rule, name, value)
            else:
                rule.options.extend([key, value])
            i += 2
            continue
        if key in _RULE_ACTIONS:
            if key in ("blackhole", "prohibit", "unreachable", "nop"):
                rule.action = key
            else:
                rule.options.append(key)
            i += 1
            continue
        ctx.diag.error(node.where, f"rule: unknown option '{key}'")
        return None
    return rule


def _lines(parse: Callable[[Node, Ctx], Any | None], field_name: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        if not needs_block(node, ctx):
            return
        items: list[Any] = getattr(obj, field_name)
        for child in node.block():
            item = parse(child, ctx)
            if item is not None:
                items.append(item)

    return handle


def _vips(field_name: str) -> Handler:
    return _lines(lambda n, c: parse_address_line(n, c, Vip), field_name)


# -- trackers ----------------------------------------------------------------------------------------


def _tracker_line(node: Node, ctx: Ctx, lo: int, hi: int) -> Tracker | None:
    tracker = Tracker(name=node.keyword, source=source(node.where))
    args = node.args
    if args:
        if args[0] != "weight" or len(args) < 2:
            ctx.diag.error(node.where, f"track entry '{node.keyword}': expected 'weight N [reverse]'")
            return None
        weight = v.parse_int(node, ctx.diag, 1, lo, hi, "a weight")
        if weight is None:
            return None
        tracker.weight = weight
        if len(args) > 2:
            if args[2] != "reverse":
                ctx.diag.error(node.where, f"track entry '{node.keyword}': unknown option '{args[2]}'")
                return None
            tracker.reverse = True
    return tracker


def _trackers(field_name: str, lo: int = -253, hi: int = 253) -> Handler:
    return _lines(lambda n, c: _tracker_line(n, c, lo, hi), field_name)


def _weight(node: Node, obj: Any, ctx: Ctx, lo: int = -253, hi: int = 253) -> None:
    weight = v.parse_int(node, ctx.diag, 0, lo, hi, "a weight")
    if weight is None:
        return
    obj.weight = weight
    if len(node.args) > 1:
        if node.args[1] == "reverse":
            obj.weight_reverse = True
        else:
            ctx.diag.error(node.where, f"weight: unknown option '{node.args[1]}'")


def _user(node: Node, obj: Any, ctx: Ctx) -> None:
    user = v.arg(node, ctx.diag, 0, "a user name")
    if user is not None:
        obj.user = user
        if len(node.args) > 1:
            obj.group = node.args[1].lstrip(":")


# -- vrrp_script / track_file ------------------------------------------------------------------------

VRRP_SCRIPT = Table(
    "vrrp_script",
    {
        "script": script("script"),
        "interval": timer("interval", 0.001, 86400.0),
        "timeout": timer("timeout", 0.001, 86400.0),
        "weight": _weight,
        "rise": int_("rise", 1, 10000),
        "fall": int_("fall", 1, 10000),
        "user": _user,
        "init_fail": flag("init_fail"),
    },
)


def _init_file(node: Node, obj: Any, ctx: Ctx) -> None:
    obj.init_file = 0
    args = list(node.args)
    if args and args[-1] == "overwrite":
        obj.init_file_overwrite = True
        args.pop()
    if args:
        value = v.parse_int(node, ctx.diag, 0, -254, 254)
        if value is not None:
            obj.init_file = value


TRACK_FILE = Table(
    "track_file",
    {
        "file": word("file"),
        "weight": lambda n, o, c: _weight(n, o, c, -254, 254),
        "init_file": _init_file,
    },
)


def _named_block(table: Table, cls: type[Any], list_name: str) -> Handler:
    def handle(node: Node, config: Any, ctx: Ctx) -> None:
        name = v.arg(node, ctx.diag, 0, "a name")
        if name is None or not needs_block(node, ctx):
            return
        obj = cls(name=name, source=source(node.where))
        table.apply(node.block(), obj, ctx)
        names = ctx.names.setdefault(list_name, set())
        if name in names:
            ctx.diag.error(node.where, f"{node.keyword} {name}: defined twice, ignoring this one")
            return
        names.add(name)
        getattr(config, list_name).append(obj)

    return handle


def _vrrp_script_checks(node: Node, config: Any, ctx: Ctx) -> None:
    _named_block(VRRP_SCRIPT, VrrpScript, "vrrp_scripts")(node, config, ctx)
    if config.vrrp_scripts and config.vrrp_scripts[-1].source == source(node.where):
        vs = config.vrrp_scripts[-1]
        if not vs.script:
            ctx.diag.error(node.where, f"vrrp_script {vs.name}: no script given")


# -- vrrp_sync_group -----------------------------------------------------------------------------------


def _group_members(node: Node, obj: Any, ctx: Ctx) -> None:
    if not needs_block(node, ctx):
        return
    for child in node.block():
        obj.group.append(child.keyword)
        obj.group.extend(child.args)


SYNC_GROUP = Table(
    "vrrp_sync_group",
    {
        "group": _group_members,
        "track_interface": _trackers("track_interfaces"),
        "track_script": _trackers("track_scripts"),
        "track_file": _trackers("track_files", -254, 254),
        "track_process": no_effect_yet("track_process is planned"),
        "track_bfd": not_applicable(BFD_UNSUPPORTED),
        "notify_master": script("notify_master"),
        "notify_backup": script("notify_backup"),
        "notify_fault": script("notify_fault"),
        "notify_stop": script("notify_stop"),
        "notify": script("notify"),
        "smtp_alert": bool_opt("smtp_alert"),
        "global_tracking": deprecated(flag("sync_group_tracking_weight"), "global_tracking", "sync_group_tracking_weight"),
        "sync_group_tracking_weight": flag("sync_group_tracking_weight"),
        "notify_priority_changes": bool_opt("notify_priority_changes"),
    },
)

# -- vrrp_instance -------------------------------------------------------------------------------------


def _state(node: Node, inst: Any, ctx: Ctx) -> None:
    value = v.parse_choice(node, ctx.diag, {"master": "MASTER", "backup": "BACKUP"})
    if value is not None:
        inst.state = value


def _advert_int(node: Node, inst: Any, ctx: Ctx) -> None:
    value = v.parse_timer(node, ctx.diag, 0, 0.0, 255.0)
    if value is None:
        return
    if value <= 0:
        ctx.diag.error(node.where, f"advert_int: value {node.args[0]} must be greater than 0")
        return
    inst.advert_int = value


def _authentication(node: Node, inst: Any, ctx: Ctx) -> None:
    if not needs_block(node, ctx):
        return
    for child in node.block():
        if child.keyword == "auth_type":
            value = v.parse_choice(child, ctx.diag, {"pass": "PASS", "ah": "AH"})
            if value is not None:
                inst.auth_type = value
        elif child.keyword == "auth_pass":
            value = v.arg(child, ctx.diag, 0, "a password")
            if value is not None:
                if len(value) > 8:
                    ctx.diag.warn(child.where, "auth_pass: only the first 8 characters are used")
                inst.auth_pass = value[:8]
        else:
            ctx.diag.error(child.where, f"unknown keyword '{child.keyword}' in authentication")


def _unicast_peer_line(node: Node, ctx: Ctx) -> UnicastPeer | None:
    addr = v.ip_or_error(node, ctx.diag, node.keyword)
    if addr is None:
        return None
    peer = UnicastPeer(address=str(addr))
    args = node.args
    i = 0
    while i < len(args):
        if args[i] in ("min_ttl", "max_ttl") and i + 1 < len(args):
            value = v.parse_int(node, ctx.diag, i + 1, 0, 255, args[i])
            if value is None:
                return None
            setattr(peer, args[i], value)
            i += 2
        else:
            ctx.diag.error(node.where, f"unicast_peer {node.keyword}: unknown option '{args[i]}'")
            return None
    return peer


def _use_vmac(node: Node, inst: Any, ctx: Ctx) -> None:
    inst.use_vmac = True
    for word_ in node.args:
        if ":" in word_ and len(word_) == 17:
            inst.vmac_mac = word_.lower()
        else:
            inst.vmac_name = word_


def _vrrp_version(node: Node, inst: Any, ctx: Ctx) -> None:
    value = v.parse_int(node, ctx.diag, 0, 2, 3)
    if value is not None:
        inst.version = value


def _unicast_src(node: Node, inst: Any, ctx: Ctx) -> None:
    value = v.parse_ip(node, ctx.diag)
    if value is not None:
        inst.unicast_src_ip = str(value)


def _check_unicast_src(node: Node, inst: Any, ctx: Ctx) -> None:
    inst.check_unicast_src = True


def _old_unicast_checksum(node: Node, inst: Any, ctx: Ctx) -> None:
    inst.old_unicast_checksum = node.args[0] if node.args else "on"


def _preempt(node: Node, inst: Any, ctx: Ctx) -> None:
    inst.nopreempt = False


def _accept(value: bool) -> Handler:
    def handle(node: Node, inst: Any, ctx: Ctx) -> None:
        inst.accept = value

    return handle


def _lvs_sync_daemon_interface(node: Node, inst: Any, ctx: Ctx) -> None:
    ctx.diag.warn(
        node.where,
        f"({inst.name}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated. "
        "Please use global lvs_sync_daemon",
    )


VRRP_INSTANCE = Table(
    "vrrp_instance",
    {
        "state": _state,
        "interface": word("interface"),
        "virtual_router_id": int_("virtual_router_id", 1, 255),
        "priority": int_("priority", 1, 255),
        "advert_int": _advert_int,
        "version": _vrrp_version,
        "nopreempt": flag("nopreempt"),
        "preempt": _preempt,
        "preempt_delay": timer("preempt_delay", 0.0, 1000.0),
        "accept": _accept(True),
        "no_accept": _accept(False),
        "strict_mode": bool_opt("strict_mode"),
        "skip_check_adv_addr": bool_opt("skip_check_adv_addr"),
        "virtual_ipaddress": _vips("virtual_ipaddress"),
        "virtual_ipaddress_excluded": _vips("virtual_ipaddress_excluded"),
        "no_virtual_ipaddress": flag("no_virtual_ipaddress"),
        "virtual_routes": _lines(parse_route_line, "virtual_routes"),
        "virtual_rules": _lines(parse_rule_line, "virtual_rules"),
        "mcast_src_ip": ip("mcast_src_ip"),
        "unicast_src_ip": _unicast_src,
        "unicast_peer": _lines(_unicast_peer_line, "unicast_peers"),
        "unicast_ttl": int_("unicast_ttl", 1, 255),
        "unicast_fault_no_peer": flag("unicast_fault_no_peer"),
        "check_unicast_src": _check_unicast_src,
        "old_unicast_checksum": _old_unicast_checksum,
        "mcast_dst_ip": ip("mcast_dst_ip"),
        "authentication": _authentication,
        "track_interface": _trackers("track_interfaces"),
        "track_script": _trackers("track_scripts"),
        "track_file": _trackers("track_files", -254, 254),
        "track_process": no_effect_yet("track_process is planned"),
        "track_bfd": not_applicable(BFD_UNSUPPORTED),
        "dont_track_primary": flag("dont_track_primary"),
        "track_src_ip": flag("track_src_ip"),
        "garp_master_delay": timer("garp_master_delay", 0.0, 86400.0),
        "garp_master_repeat": int_("garp_master_repeat", 1, 10000),
        "garp_master_refresh": timer("garp_master_refresh", 0.0, 86400.0),
        "garp_master_refresh_repeat": int_("garp_master_refresh_repeat", 1, 10000),
        "garp_lower_prio_delay": timer("garp_lower_prio_delay", 0.0, 86400.0),
        "garp_lower_prio_repeat": int_("garp_lower_prio_repeat", 0, 10000),
        "garp_extra_if": no_effect_yet(),
        "vmac_garp_intvl": no_effect_yet(),
        "down_timer_adverts": int_("down_timer_adverts", 1, 100),
        "lower_prio_no_advert": bool_opt("lower_prio_no_advert"),
        "higher_prio_send_advert": bool_opt("higher_prio_send_advert"),
        "owner_ignore_adverts": bool_opt("owner_ignore_adverts"),
        "use_vmac": _use_vmac,
        "vmac_xmit_base": flag("vmac_xmit_base"),
        "use_vmac_addr": flag("use_vmac_addr"),
        "use_ipvlan": no_effect_yet("use_ipvlan is planned"),
        "v3_checksum_as_v2": bool_opt("v3_checksum_as_v2"),
        "promote_secondaries": flag("promote_secondaries"),
        "notify_master": script("notify_master"),
        "notify_backup": script("notify_backup"),
        "notify_fault": script("notify_fault"),
        "notify_stop": script("notify_stop"),
        "notify_deleted": script("notify_deleted"),
        "notify": script("notify"),
        "notify_master_rx_lower_pri": script("notify_master_rx_lower_pri"),
        "notify_priority_changes": bool_opt("notify_priority_changes"),
        "smtp_alert": bool_opt("smtp_alert"),
        "auth_hmac": no_effect_yet("auth_hmac is planned"),
        "native_ipv6": no_effect_yet(),
        "vrf": no_effect_yet(),
        "kernel_rx_buf_size": no_effect_yet(),
        "debug": no_effect_yet(),
        "timer_expired_backup": no_effect_yet(),
        "thread_timer_expired": no_effect_yet(),
        "linkbeat_use_polling": no_effect_yet(),
        "lvs_sync_daemon_interface": _lvs_sync_daemon_interface,
        "dpdk_interface": not_applicable(DPVS_ONLY),
    },
)


def _vrrp_instance(node: Node, config: Any, ctx: Ctx) -> None:
    _named_block(VRRP_INSTANCE, VrrpInstance, "vrrp_instances")(node, config, ctx)


def _static(parse: Callable[[Node, Ctx], Any | None], field_name: str) -> Handler:
    return _lines(parse, field_name)


ROOT_HANDLERS: dict[str, Handler] = {
    "vrrp_script": _vrrp_script_checks,
    "track_file": _named_block(TRACK_FILE, TrackFile, "track_files"),
    "vrrp_track_file": deprecated(_named_block(TRACK_FILE, TrackFile, "track_files"), "vrrp_track_file", "track_file"),
    "vrrp_sync_group": _named_block(SYNC_GROUP, VrrpSyncGroup, "vrrp_sync_groups"),
    "vrrp_instance": _vrrp_instance,
    "static_ipaddress": _static(lambda n, c: parse_address_line(n, c, StaticAddress), "static_ipaddress"),
    "static_routes": _static(parse_route_line, "static_routes"),
    "static_rules": _static(parse_rule_line, "static_rules"),
    "vrrp_track_process": no_effect_yet("track_process is planned"),
    "track_group": no_effect_yet(),
    "garp_group": no_effect_yet(),
}


def family_of(address: str) -> str:
    return "inet6" if v.ip_interface(address).version == 6 else "inet"
