"""Keyword tables for the load-balancer blocks, and the checks that need the whole configuration.

Top level: ``SSL``, ``virtual_server_group``, ``virtual_server`` (with ``real_server`` and checkers
inside), the fork block ``local_address_group``, and the DPVS-only blocks (accepted, no effect).

Two stages, as in keepalived 2.2.7:

* when a virtual_server block ends, everything that depends only on that block is settled (what
  keepalived's vs_end_handler / rs_end_handler do, and the parts of validate_check_config that need to
  know which keywords were written): address families, default scheduler and forwarding method,
  duplicate real servers, real server ← virtual server ← checker inheritance, real-server ports;
* ``validate`` (after the whole tree) does what needs other blocks: virtual_server_group,
  local_address_group and track_file references, global_defs defaults (smtp_alert,
  checker_log_all_failures), protocol defaults, quorum sanity, duplicate virtual servers.

Severity: what keepalived reports and then runs with a corrected value (a default it had to choose, a
port it reset) is a warning; what makes it drop a value or a block is an error; what pykeepalived
accepts and keepalived 2.2.7 does not (fork keywords) is a notice at most.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from supervisor.config import values as v
from supervisor.config.model.checkers import Checker
from supervisor.config.model.config import Config
from supervisor.config.model.lvs import (
    DEFAULT_SCHEDULER,
    PERSISTENCE_DEFAULT,
    SCHEDULERS,
    WEIGHT_MAX,
    LocalAddressGroup,
    RealServer,
    SorryServer,
    SslConfig,
    VirtualServer,
    VirtualServerGroup,
    VsgFwmark,
    VsgRange,
)
from supervisor.config.parse.checkers import (
    CHECKER_HANDLERS,
    MIN_TIMER,
    UINT32_MAX,
    Tracked,
    inherit,
    notice_once,
    where_of,
)
from supervisor.config.parse.table import (
    DPVS_ONLY,
    Ctx,
    Handler,
    Table,
    bool_opt,
    flag,
    int_,
    needs_block,
    not_applicable,
    rest_words,
    script,
    source,
    timer,
    word,
)
from supervisor.config.tree import Node

LVS_MAX_TIMEOUT = 86400 * 31

# Keywords of the iqiyi/DPVS fork that only its DPDK data plane can honour.
DPVS_VS_KEYWORDS = (
    "daddr_group_name",
    "waddr_group_name",
    "establish_timeout",
    "proxy_protocol",
    "quic",
    "bps",
    "limit_proportion",
    "hash_target",
    "expire_quiescent_conn",
    "src-range",
    "dst-range",
    "oif",
    "iif",
)
DPVS_ROOT_KEYWORDS = ("deny_address_group", "allow_address_group", "tunnel_group")

_NAT_LIKE = ("NAT", "FNAT")  # methods that translate the destination port: no port fix-ups


# -- small readers -----------------------------------------------------------------------------------


def _port(node: Node, ctx: Ctx, word_: str) -> int | None:
    """A port argument; all zeros means "no port" (0), as keepalived has allowed since 2.0.7."""
    if word_ and word_.strip("0") == "":
        return 0
    try:
        port = int(word_, 10)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        return None
    return port


def _address_port(node: Node, ctx: Ctx, what: str) -> tuple[str, int] | None:
    """`IP [PORT]` as real_server and sorry_server write it; reports and returns None when invalid."""
    if not node.args:
        ctx.diag.error(node.where, f"{node.keyword}: missing {what} address")
        return None
    addr_word = node.args[0]
    port_word = node.args[1] if len(node.args) > 1 else "0"
    port = _port(node, ctx, port_word)
    try:
        addr = v.ip_address(addr_word)
    except ValueError:
        addr = None
    if addr is None or port is None:
        ctx.diag.error(node.where, f"Invalid {what} ip address/port {addr_word}/{port_word} - skipping")
        return None
    return str(addr), port


def _family(address: str) -> str:
    return "inet6" if ":" in address else "inet"


def _parse_forwarding(node: Node, ctx: Ctx, server: str) -> tuple[str, str | None, int, str | None] | None:
    """`NAT|DR|TUN|FNAT [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]` (svr_forwarding_handler)."""
    method = v.arg(node, ctx.diag, 0, "a forwarding method (NAT|DR|TUN|FNAT)")
    if method is None:
        return None
    if method not in ("NAT", "DR", "TUN", "FNAT"):
        ctx.diag.error(node.where, f"PARSER : unknown [{method}] routing method for {server} server.")
        return None
    tun_type, port, csum = "ipip", 0, "nocsum"
    args = node.args[1:]
    i = 0
    while i < len(args):
        opt = args[i]
        if opt == "type":
            if i + 1 >= len(args):
                ctx.diag.error(node.where, f"Missing tunnel type for {server} server.")
                return None
            if args[i + 1] not in ("ipip", "gue", "gre"):
                ctx.diag.error(node.where, f"Unknown tunnel type {args[i + 1]} for {server} server.")
                return None
            tun_type = args[i + 1]
            i += 2
        elif opt == "port":
            if i + 1 >= len(args):
                ctx.diag.error(node.where, f"Missing port for {server} server gue tunnel.")
                return None
            try:
                port = int(args[i + 1], 10)
            except ValueError:
                port = 0
            if not 1 <= port <= 65535:
                ctx.diag.error(node.where, f"Invalid gue tunnel port {args[i + 1]} for {server} server.")
                return None
            i += 2
        elif opt in ("nocsum", "csum", "remcsum"):
            csum = opt
            i += 1
        else:
            ctx.diag.error(node.where, f"Invalid tunnel option {opt} for {server} server.")
            return None
    if (tun_type == "gue") != (port != 0):
        ctx.diag.error(node.where, "gue tunnels require port, otherwise cannot have port.")
        return None
    if tun_type == "ipip" and csum != "nocsum":
        ctx.diag.error(node.where, "ipip tunnels do not support checksum option.")
        return None
    if tun_type == "gre" and csum == "remcsum":
        ctx.diag.error(node.where, "gre tunnels do not support remote checksum option.")
        return None
    if method != "TUN":
        return method, None, 0, None
    return method, tun_type, port, csum


def _forwarding(server: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        parsed = _parse_forwarding(node, ctx, server)
        if parsed is not None:
            obj.lvs_method, obj.tun_type, obj.tun_port, obj.tun_csum = parsed

    return handle


def _snmp_name(node: Node, obj: Any, ctx: Ctx) -> None:
    if len(node.args) != 1:
        ctx.diag.error(node.where, "snmp_name missing or extra parameters")
        return
    obj.snmp_name = node.args[0]


def _once_script(name: str) -> Handler:
    """notify_up / quorum_up …: a script, and only the first one counts."""
    register = script(name)

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        if getattr(obj, name) is not None:
            ctx.diag.error(node.where, f"{node.keyword} script already specified - ignoring {' '.join(node.args)}")
            return
        register(node, obj, ctx)

    return handle


# -- SSL ---------------------------------------------------------------------------------------------


def _ssl_file(name: str, what: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        if not node.args:
            ctx.diag.error(node.where, f"SSL {what} missing")
            return
        if getattr(obj, name) is not None:
            ctx.diag.error(node.where, f"SSL {what} already specified - replacing")
        setattr(obj, name, node.args[0])

    return handle


SSL = Table(
    "SSL",
    {
        "password": _ssl_file("password", "password"),
        "ca": _ssl_file("ca", "cafile"),
        "certificate": _ssl_file("certificate", "certfile"),
        "key": _ssl_file("key", "keyfile"),
    },
)


def _ssl(node: Node, config: Config, ctx: Ctx) -> None:
    if not needs_block(node, ctx):
        return
    if config.ssl is not None:
        ctx.diag.error(node.where, "SSL context already specified - replacing")
    ssl = SslConfig(source=source(node.where))
    SSL.apply(node.block(), ssl, ctx)
    config.ssl = ssl


# -- virtual_server_group ----------------------------------------------------------------------------


def _vsg_range(entry: Node, ctx: Ctx) -> VsgRange | None:
    text = entry.keyword
    port = 0
    if entry.args:
        parsed = _port(entry, ctx, entry.args[0])
        if parsed is None:
            ctx.diag.error(entry.where, f"Invalid virtual server group IP address {text}/port {entry.args[0]} - skipping")
            return None
        port = parsed
    base = text.split("-", 1)[0].split("/", 1)[0]
    try:
        start = v.ip_address(base)
    except ValueError:
        ctx.diag.error(entry.where, f"Invalid virtual server group IP address {text} - skipping")
        return None
    end: ipaddress.IPv4Address | ipaddress.IPv6Address = start
    if "/" in text:
        prefix = text.split("/", 1)[1]
        max_len = start.max_prefixlen
        if not prefix.isdigit() or not 0 < int(prefix) <= max_len:
            ctx.diag.error(entry.where, f"Invalid netmask - {text} - skipping")
            return None
        try:
            net = ipaddress.ip_network(f"{start}/{prefix}", strict=True)
        except ValueError:
            ctx.diag.error(entry.where, f"Address mask bits not empty - {text} - skipping")
            return None
        start, end = net.network_address, net.broadcast_address
    elif "-" in text:
        tail = text.split("-", 1)[1]
        if ("." in tail and start.version == 4) or (":" in tail and start.version == 6):
            try:
                end = v.ip_address(tail)
            except ValueError:
                ctx.diag.error(entry.where, f"Invalid range end {text} - skipping")
                return None
            if end.version != start.version:
                ctx.diag.error(entry.where, f"Range address families do not match {text} - skipping")
                return None
            if int(end) < int(start):
                ctx.diag.error(entry.where, f"Address range end is less than address range start - {text} - skipping")
                return None
        else:
            end_or_none = _last_part_range(entry, ctx, start, tail, "Virtual server group range")
            if end_or_none is None:
                return None
            end = end_or_none
    return VsgRange(str(start), str(end), port, source(entry.where))


def _last_part_range(
    node: Node, ctx: Ctx, start: ipaddress.IPv4Address | ipaddress.IPv6Address, tail: str, what: str
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`a.b.c.d-N`: N replaces the last octet (decimal), or the last IPv6 group (hex)."""
    base, bits, limit = (10, 8, 255) if start.version == 4 else (16, 16, 0xFFFF)
    try:
        last = int(tail, base)
    except ValueError:
        ctx.diag.error(node.where, f"{what} '{node.keyword}' has extra characters at end '{tail}'")
        return None
    if not 0 <= last <= limit:
        ctx.diag.error(node.where, f"{what} '{node.keyword}' end '{tail}' too large")
        return None
    first = int(start) & limit
    if first >= last:
        ctx.diag.error(node.where, f"Address range end is not greater than address range start - {node.keyword} - skipping")
        return None
    return v.ip_address((int(start) >> bits << bits) | last) if start.version == 4 else \
        ipaddress.IPv6Address((int(start) >> bits << bits) | last)


def _vsg_fwmark(entry: Node, ctx: Ctx, group: str) -> VsgFwmark | None:
    mark_word = entry.args[0] if entry.args else ""
    try:
        mark = int(mark_word, 10)
    except ValueError:
        mark = -1
    if not 0 <= mark <= UINT32_MAX:
        ctx.diag.error(entry.where, f"({group}): fwmark '{mark_word}' must be in [0, {UINT32_MAX}] - ignoring")
        return None
    family = None
    if len(entry.args) > 1:
        family = entry.args[1]
        if family not in ("inet", "inet6"):
            ctx.diag.error(entry.where, f"({group}): fwmark '{mark}' family {family} unknown - ignoring")
            return None
    return VsgFwmark(mark, family, source(entry.where))


def _vsg(node: Node, config: Config, ctx: Ctx) -> None:
    name = v.arg(node, ctx.diag, 0, "a group name")
    if name is None or not needs_block(node, ctx):
        return
    group = VirtualServerGroup(name, source=source(node.where))
    for entry in node.block():
        if entry.keyword == "fwmark":
            mark = _vsg_fwmark(entry, ctx, name)
            if mark is not None:
                group.fwmarks.append(mark)
        else:
            rng = _vsg_range(entry, ctx)
            if rng is not None:
                group.ranges.append(rng)
    if not group.ranges and not group.fwmarks:
        ctx.diag.error(node.where, f"virtual server group {name} has no entries - removing")
        return
    if group.has_ipv4 and group.has_ipv6 and any(f.family is None for f in group.fwmarks):
        ctx.diag.error(
            node.where, f"virtual server group {name} cannot have IPv4, IPv6 and fwmark without family - removing"
        )
        return
    if any(g.name == name for g in config.virtual_server_groups):
        # keepalived looks groups up by name and finds the first one: a later one is dead text.
        notice_once(ctx, f"vsg-dup:{name}", node.where, f"virtual_server_group {name} already defined - ignoring this one")
        return
    config.virtual_server_groups.append(group)


# -- local_address_group (alibaba/LVS, DPVS) ---------------------------------------------------------


def _lag(node: Node, config: Config, ctx: Ctx) -> None:
    name = v.arg(node, ctx.diag, 0, "a group name")
    if name is None or not needs_block(node, ctx):
        return
    group = LocalAddressGroup(name, source=source(node.where))
    for entry in node.block():
        if entry.args:
            notice_once(ctx, "laddr-ifname", entry.where,
                        f"local_address_group interface '{entry.args[0]}' has no effect here: {DPVS_ONLY}")
        text = entry.keyword
        base, dash, tail = text.partition("-")
        try:
            start = v.ip_address(base)
        except ValueError:
            ctx.diag.error(entry.where, f"local_address_group {name}: invalid IP address '{text}' - skipping")
            continue
        if not dash:
            group.addresses.append(str(start))
            continue
        end = _last_part_range(entry, ctx, start, tail, "local_address_group range")
        if end is None:
            continue
        group.addresses.extend(str(v.ip_address(i)) for i in range(int(start), int(end) + 1))
    if any(g.name == name for g in config.local_address_groups):
        notice_once(ctx, f"lag-dup:{name}", node.where, f"local_address_group {name} already defined - ignoring this one")
        return
    config.local_address_groups.append(group)


# -- real_server -------------------------------------------------------------------------------------

RS = Table(
    "real_server",
    {
        "weight": int_("weight", 0, WEIGHT_MAX),
        "lvs_method": _forwarding("real"),
        "uthreshold": int_("uthreshold", 0, UINT32_MAX),
        "lthreshold": int_("lthreshold", 0, UINT32_MAX),
        "inhibit_on_failure": bool_opt("inhibit_on_failure"),
        "notify_up": _once_script("notify_up"),
        "notify_down": _once_script("notify_down"),
        "alpha": bool_opt("alpha"),
        "retry": int_("retry", 1, UINT32_MAX),
        "delay_before_retry": timer("delay_before_retry", 0.0),
        "warmup": timer("warmup", 0.0),
        "connect_timeout": timer("connect_timeout", MIN_TIMER),
        "delay_loop": timer("delay_loop", MIN_TIMER),
        "smtp_alert": bool_opt("smtp_alert"),
        "virtualhost": rest_words("virtualhost", "a virtualhost name"),
        "snmp_name": _snmp_name,
        **CHECKER_HANDLERS,
    },
)


def _real_server(node: Node, vs: Any, ctx: Ctx) -> None:
    parsed = _address_port(node, ctx, "real server")
    if parsed is None or not needs_block(node, ctx):
        return
    address, port = parsed
    rs: Tracked[RealServer] = Tracked(RealServer(address, port, source=source(node.where)))
    RS.apply(node.block(), rs, ctx)
    # rs_end_handler: a non-tunnelled server must share the virtual server's address family.
    method = rs.model.lvs_method if "lvs_method" in rs.explicit else vs.model.lvs_method
    if method != "TUN":
        family = _family(address)
        if vs.model.ip_family is None:
            vs.model.ip_family = family
        elif vs.model.ip_family != family:
            ctx.diag.error(
                node.where,
                f"Address family of virtual server and real server {address} don't match - skipping real server.",
            )
            return
    vs.children.append(rs)


# -- virtual_server ----------------------------------------------------------------------------------


def _ip_family(node: Node, vs: Any, ctx: Ctx) -> None:
    family = v.arg(node, ctx.diag, 0, "an address family (inet|inet6)")
    if family is None:
        return
    if family not in ("inet", "inet6"):
        ctx.diag.error(node.where, f"unknown address family {family}")
        return
    if vs.model.ip_family is not None and vs.model.ip_family != family:
        ctx.diag.error(node.where, f"Virtual server specified family {family} conflicts with server family")
        return
    vs.ip_family = family


def _lb_algo(node: Node, vs: Any, ctx: Ctx) -> None:
    sched = v.arg(node, ctx.diag, 0, "a scheduler")
    if sched is None:
        return
    if sched == "conhash":
        # DPVS's consistent hashing: no kernel equivalent, so keepalived's default scheduler is used.
        notice_once(ctx, "n/a:conhash", node.where,
                    f"'{node.keyword} conhash' has no effect here: {DPVS_ONLY}; using '{DEFAULT_SCHEDULER}'")
        vs.lb_algo = DEFAULT_SCHEDULER
        return
    if sched not in SCHEDULERS:
        ctx.diag.error(node.where, f"Invalid lvs_scheduler '{sched}' - ignoring")
        return
    vs.lb_algo = sched


def _sched_flag(name: str) -> Handler:
    """Scheduler flags. sh-*/mh-* only mean something to the sh/mh scheduler set so far (as in
    keepalived, the order of lb_algo and the flag matters)."""

    def handle(node: Node, vs: Any, ctx: Ctx) -> None:
        if name.startswith(("sh_", "mh_")):
            needed = name[:2]
            if vs.model.lb_algo != needed or "lb_algo" not in vs.explicit:
                ctx.diag.error(node.where, f"{node.keyword} only applies to {needed} scheduler - ignoring")
                return
        setattr(vs, name, True)

    return handle


def _persistence_timeout(node: Node, vs: Any, ctx: Ctx) -> None:
    if not node.args:
        vs.persistence_timeout = PERSISTENCE_DEFAULT
        return
    value = v.parse_int(node, ctx.diag, 0, 1, LVS_MAX_TIMEOUT)
    if value is not None:
        vs.persistence_timeout = value


def _persistence_granularity(node: Node, vs: Any, ctx: Ctx) -> None:
    value = v.arg(node, ctx.diag, 0, "a granularity")
    if value is None:
        return
    family = vs.model.ip_family or ("inet" if "." in value else "inet6")
    if family == "inet6":
        if not value.isdigit() or not 1 <= int(value) <= 128:
            ctx.diag.error(node.where, f"Invalid IPv6 persistence_granularity specified - {value}")
            return
        vs.persistence_granularity = str(int(value))
    else:
        try:
            vs.persistence_granularity = str(ipaddress.IPv4Address(value))
        except ValueError:
            ctx.diag.error(node.where, f"Invalid IPv4 persistence_granularity specified - {value}")
            return
    if vs.model.ip_family is None:
        vs.ip_family = family
    if not vs.model.persistence_timeout:
        vs.persistence_timeout = PERSISTENCE_DEFAULT


def _protocol(node: Node, vs: Any, ctx: Ctx) -> None:
    value = v.arg(node, ctx.diag, 0, "a protocol (TCP|UDP|SCTP)")
    if value is None:
        return
    if value.upper() not in ("TCP", "UDP", "SCTP"):
        ctx.diag.error(node.where, f"Unknown protocol {value} - ignoring")
        return
    vs.protocol = value.upper()


def _sorry_server(node: Node, vs: Any, ctx: Ctx) -> None:
    parsed = _address_port(node, ctx, "sorry server")
    if parsed is None:
        return
    vs.sorry_server = SorryServer(parsed[0], parsed[1], source=source(node.where))
    vs.extra["sorry_method_set"] = False


def _sorry_inhibit(node: Node, vs: Any, ctx: Ctx) -> None:
    if vs.model.sorry_server is None:
        ctx.diag.error(node.where, "Ignoring sorry_server inhibit used before or without sorry_server")
        return
    vs.model.sorry_server.inhibit = True


def _sorry_method(node: Node, vs: Any, ctx: Ctx) -> None:
    sorry = vs.model.sorry_server
    if sorry is None:
        ctx.diag.error(node.where, "sorry_server forwarding used without sorry_server")
        return
    parsed = _parse_forwarding(node, ctx, "sorry")
    if parsed is not None:
        sorry.lvs_method, sorry.tun_type, sorry.tun_port, sorry.tun_csum = parsed
        vs.extra["sorry_method_set"] = True


def _smtp_alert(node: Node, vs: Any, ctx: Ctx) -> None:
    value = v.flag_or_bool(node, ctx.diag)
    if value is not None:
        vs.smtp_alert = value


def _obsolete(what: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        notice_once(ctx, f"obsolete:{node.keyword}", node.where, f"'{node.keyword}' has no effect here: {what}")

    return handle


VS = Table(
    "virtual_server",
    {
        "ip_family": _ip_family,
        "retry": int_("retry", 1, UINT32_MAX),
        "delay_before_retry": timer("delay_before_retry", 0.0),
        "warmup": timer("warmup", 0.0),
        "connect_timeout": timer("connect_timeout", MIN_TIMER),
        "delay_loop": timer("delay_loop", MIN_TIMER),
        "inhibit_on_failure": flag("inhibit_on_failure"),
        "lb_algo": _lb_algo,
        "lvs_sched": _lb_algo,
        "hashed": flag("hashed"),
        "ops": flag("ops"),
        "flag-1": flag("flag_1"),
        "flag-2": flag("flag_2"),
        "flag-3": flag("flag_3"),
        "sh-port": _sched_flag("sh_port"),
        "sh-fallback": _sched_flag("sh_fallback"),
        "mh-port": _sched_flag("mh_port"),
        "mh-fallback": _sched_flag("mh_fallback"),
        "lb_kind": _forwarding("virtual"),
        "lvs_method": _forwarding("virtual"),
        "persistence_engine": word("persistence_engine"),
        "persistence_timeout": _persistence_timeout,
        "persistence_granularity": _persistence_granularity,
        "protocol": _protocol,
        "ha_suspend": flag("ha_suspend"),
        "smtp_alert": _smtp_alert,
        "virtualhost": rest_words("virtualhost", "a virtualhost name"),
        "snmp_name": _snmp_name,
        "alpha": flag("alpha"),
        "omega": flag("omega"),
        "quorum_up": _once_script("quorum_up"),
        "quorum_down": _once_script("quorum_down"),
        "quorum": int_("quorum", 1, UINT32_MAX),
        "hysteresis": int_("hysteresis", 0, UINT32_MAX),
        "weight": int_("weight", 1, WEIGHT_MAX),
        "sorry_server": _sorry_server,
        "sorry_server_inhibit": _sorry_inhibit,
        "sorry_server_lvs_method": _sorry_method,
        "real_server": _real_server,
        # alibaba/LVS and DPVS forks
        "laddr_group_name": word("laddr_group_name"),
        "syn_proxy": flag("syn_proxy"),
        "est_timeout": int_("est_timeout", 1, UINT32_MAX),
        "vip_bind_dev": word("vip_bind_dev"),
        # keepalived 1.x: the NAT netmask was dropped in 2.0
        "nat_mask": _obsolete("keepalived 1.x keyword, dropped in keepalived 2"),
        **{kw: not_applicable(DPVS_ONLY) for kw in DPVS_VS_KEYWORDS},
    },
)


def _new_vs(node: Node, ctx: Ctx) -> VirtualServer | None:
    where = source(node.where)
    if not node.args:
        ctx.diag.error(node.where, "virtual_server: missing address, 'fwmark N' or 'group NAME'")
        return None
    first = node.args[0]
    second = node.args[1] if len(node.args) > 1 else None
    if first == "group":
        if second is None:
            ctx.diag.error(node.where, "virtual_server group: missing group name")
            return None
        return VirtualServer(group=second, source=where)
    if first == "fwmark":
        try:
            mark = int(second or "", 10)
        except ValueError:
            mark = -1
        if not 0 <= mark <= UINT32_MAX:
            ctx.diag.error(node.where, f"virtual server fwmark '{second}' must be in [0, {UINT32_MAX}] - ignoring")
            return None
        return VirtualServer(fwmark=mark, source=where)
    port = _port(node, ctx, second) if second is not None else 0
    try:
        addr = v.ip_address(first)
    except ValueError:
        addr = None
    if addr is None or port is None:
        shown = f"/port {first}/{second}" if second is not None else f" {first}"
        ctx.diag.error(node.where, f"Invalid virtual server IP address{shown} - skipping")
        return None
    return VirtualServer(address=str(addr), port=port, ip_family=_family(str(addr)), source=where)


def _virtual_server(node: Node, config: Config, ctx: Ctx) -> None:
    model = _new_vs(node, ctx)
    if model is None or not needs_block(node, ctx):
        return
    vs: Tracked[VirtualServer] = Tracked(model)
    VS.apply(node.block(), vs, ctx)
    _finish_vs(vs, node, ctx)
    config.virtual_servers.append(model)


# What a real server takes from its virtual server unless its own block sets it.
_RS_INHERITS = (
    "alpha", "inhibit_on_failure", "retry", "connect_timeout", "delay_loop", "warmup", "delay_before_retry",
    "weight", "virtualhost",
)


def _finish_vs(vs: Tracked[VirtualServer], node: Node, ctx: Ctx) -> None:
    """What keepalived settles per virtual server once its block is read."""
    m = vs.model
    servers: list[Tracked[RealServer]] = vs.children
    sorry = m.sorry_server
    sorry_method = sorry.lvs_method if sorry and vs.extra.get("sorry_method_set") else m.lvs_method
    # vs_end_handler: the sorry server's family, then a family for fwmark services.
    if sorry is not None and sorry_method != "TUN":
        if m.ip_family is None:
            m.ip_family = _family(sorry.address)
        elif m.ip_family != _family(sorry.address):
            ctx.diag.error(
                node.where,
                f"Address family of virtual server and sorry server {sorry.address} don't match - skipping sorry server.",
            )
            m.sorry_server = sorry = None
    if m.ip_family is None and m.group is None:
        families = {_family(s.address) for s in ([sorry] if sorry else [])} | {
            _family(rs.model.address) for rs in servers
        }
        m.ip_family = families.pop() if len(families) == 1 else "inet"

    if "lb_algo" not in vs.explicit:
        ctx.diag.warn(node.where, f"Virtual server {m.describe()}: no scheduler set, setting default '{DEFAULT_SCHEDULER}'")

    # Duplicate real servers (as written), keeping the first.
    kept: list[Tracked[RealServer]] = []
    seen: set[tuple[str, int]] = set()
    for rs in servers:
        key = (rs.model.address, rs.model.port)
        if key in seen:
            ctx.diag.error(
                where_of(rs.model.source),
                f"VS {m.describe()}: real server {rs.model.address}:{rs.model.port} is duplicated - removing second rs",
            )
            continue
        seen.add(key)
        kept.append(rs)

    warned_method = False

    def default_method() -> None:
        nonlocal warned_method
        if "lvs_method" not in vs.explicit and not warned_method:
            ctx.diag.warn(node.where, f"Virtual server {m.describe()}: no forwarding method set, setting default NAT")
            warned_method = True

    for rs in kept:
        r, ex = rs.model, rs.explicit
        if "lvs_method" not in ex:
            default_method()
            r.lvs_method, r.tun_type, r.tun_port, r.tun_csum = m.lvs_method, m.tun_type, m.tun_port, m.tun_csum
        for name in _RS_INHERITS:
            if name not in ex:
                setattr(r, name, getattr(m, name))
    if sorry is not None and not vs.extra.get("sorry_method_set"):
        default_method()
        sorry.lvs_method, sorry.tun_type, sorry.tun_port, sorry.tun_csum = m.lvs_method, m.tun_type, m.tun_port, m.tun_csum

    if m.group is None:
        _fix_ports(m, [rs.model for rs in kept], ctx)

    for rs in kept:
        checkers: list[Tracked[Checker]] = rs.children
        for ch in checkers:
            inherit(ch, rs.model.address, rs.model.port, rs.model, m)
        rs.model.checkers = [ch.model for ch in checkers]
    m.real_servers = [rs.model for rs in kept]


def _fix_ports(m: VirtualServer, servers: list[RealServer], ctx: Ctx) -> None:
    """validate_check_config's port corrections for a virtual server given by address or fwmark."""
    for r in servers:
        where = where_of(r.source)
        if r.lvs_method in _NAT_LIKE:
            if m.fwmark is None and r.port == 0:
                r.port = m.port
            continue
        if m.fwmark is not None:
            if r.port:
                ctx.diag.warn(where, f"WARNING - fwmark virtual server {m.describe()}, real server {r.address}:{r.port} "
                                     "has port specified - clearing")
                r.port = 0
        elif r.port == 0:
            r.port = m.port
        elif r.port != m.port:
            ctx.diag.warn(where, f"WARNING - virtual server {m.describe()} and real server {r.address}:{r.port} "
                                 "ports don't match - resetting")
            r.port = m.port
    s = m.sorry_server
    if s is not None and s.lvs_method not in _NAT_LIKE:
        where = where_of(s.source)
        if m.fwmark is not None:
            if s.port:
                ctx.diag.warn(where, f"WARNING - virtual server {m.describe()}, sorry server has port specified - clearing")
                s.port = 0
        elif s.port == 0:
            s.port = m.port
        elif s.port != m.port:
            ctx.diag.warn(where, f"WARNING - virtual server {m.describe()} and sorry server ports don't match - resetting")
            s.port = m.port


ROOT_HANDLERS: dict[str, Handler] = {
    "SSL": _ssl,
    "virtual_server_group": _vsg,
    "virtual_server": _virtual_server,
    "local_address_group": _lag,
    **{kw: not_applicable(DPVS_ONLY) for kw in DPVS_ROOT_KEYWORDS},
}


# -- after the whole tree ----------------------------------------------------------------------------


def validate(config: Config, ctx: Ctx) -> None:
    """Cross-block checks and defaults; drops what keepalived would drop (see the module docstring)."""
    g = config.global_defs
    groups = {grp.name: grp for grp in config.virtual_server_groups}
    laddr_groups = {grp.name for grp in config.local_address_groups}
    track_files = {tf.name: tf for tf in config.track_files}
    kept: list[VirtualServer] = []
    identities: set[tuple[object, ...]] = set()
    for vs in config.virtual_servers:
        where = where_of(vs.source)
        group = groups.get(vs.group) if vs.group is not None else None
        if vs.group is not None and group is None:
            ctx.diag.error(where, f"Virtual server group {vs.group} specified but not configured - ignoring virtual server {vs.describe()}")
            continue
        if not vs.real_servers:
            ctx.diag.error(where, f"Virtual server {vs.describe()} has no real servers - ignoring")
            continue
        uses_fwmark = vs.fwmark is not None or (group is not None and bool(group.fwmarks))
        if vs.ha_suspend and uses_fwmark:
            ctx.diag.error(where, f"Virtual server {vs.describe()}: cannot use ha_suspend with fwmarks - clearing ha_suspend")
            vs.ha_suspend = False
        by_address = (group is not None and bool(group.ranges)) or (group is None and vs.fwmark is None)
        if by_address:
            if vs.protocol is None:
                ctx.diag.warn(where, f"Virtual server {vs.describe()}: no protocol set - defaulting to UDP")
                vs.protocol = "UDP"
            if vs.ops and vs.protocol != "UDP":
                ctx.diag.error(where, f"Virtual server {vs.describe()}: one packet scheduling requires UDP - resetting")
                vs.ops = False
            if not vs.persistence_timeout and group is None and vs.fwmark is None and not vs.port:
                ctx.diag.warn(where, f"Virtual server {vs.describe()}: zero port only valid for persistent services - setting")
                vs.persistence_timeout = PERSISTENCE_DEFAULT
        if not vs.persistence_timeout and group is not None and any(r.port == 0 for r in group.ranges):
            ctx.diag.warn(where, f"Virtual server {vs.describe()}: zero port only valid for persistent services - setting")
            vs.persistence_timeout = PERSISTENCE_DEFAULT
        only_fwmark = (group is not None and not group.ranges and bool(group.fwmarks)) or (group is None and vs.fwmark is not None)
        if vs.protocol is not None and only_fwmark:
            ctx.diag.warn(where, f"Warning: Virtual server {vs.describe()}: protocol specified for fwmark - protocol will be ignored")
            vs.protocol = None

        if vs.smtp_alert is None:
            vs.smtp_alert = _global_alert(g.smtp_alert_checker, g.smtp_alert, False)
        weight_sum = 0
        for rs in vs.real_servers:
            if rs.smtp_alert is None:
                # keepalived's real-server default is "on" (kept for backward compatibility).
                rs.smtp_alert = _global_alert(g.smtp_alert_checker, g.smtp_alert, True)
            weight_sum += rs.weight
            s = vs.sorry_server
            if s is not None and s.address == rs.address and s.port == rs.port and s.inhibit != rs.inhibit_on_failure:
                action = "sett" if rs.inhibit_on_failure else "clear"
                ctx.diag.warn(where, f"Virtual server {vs.describe()}: real server {rs.address}:{rs.port} matches sorry "
                                     f"server, but inhibit setting differs, {action}ing on sorry server")
                s.inhibit = rs.inhibit_on_failure
            rs.checkers = [c for c in rs.checkers if _finish_checker(c, track_files, g.checker_log_all_failures, ctx)]
        if vs.quorum > weight_sum:
            ctx.diag.warn(where, f"Warning - quorum {vs.quorum} for {vs.describe()} exceeds total weight of real "
                                 f"servers {weight_sum}, reducing quorum to {weight_sum}")
            vs.quorum = weight_sum
        if vs.hysteresis >= vs.quorum and vs.hysteresis:
            new = max(vs.quorum - 1, 0)
            ctx.diag.warn(where, f"Virtual server {vs.describe()}: hysteresis {vs.hysteresis} >= quorum {vs.quorum}; "
                                 f"setting hysteresis to {new}")
            vs.hysteresis = new
        if group is not None:
            _group_port_messages(vs, group, ctx)
        if vs.laddr_group_name is not None and vs.laddr_group_name not in laddr_groups:
            ctx.diag.error(where, f"Virtual server {vs.describe()}: local_address_group {vs.laddr_group_name} not found")
            vs.laddr_group_name = None

        identity: tuple[object, ...] = (
            ("group", vs.group, vs.protocol) if vs.group is not None
            else ("fwmark", vs.fwmark, vs.ip_family) if vs.fwmark is not None
            else ("addr", vs.address, vs.port, vs.protocol)
        )
        if identity in identities:
            ctx.diag.error(where, f"Virtual server {vs.describe()} is duplicated - ignoring this one")
            continue
        identities.add(identity)
        kept.append(vs)
    config.virtual_servers = kept


def _global_alert(checker: bool | None, general: bool | None, default: bool) -> bool:
    if checker is not None:
        return checker
    if general is not None:
        return general
    return default


def _finish_checker(c: Checker, track_files: dict[str, Any], log_all: bool, ctx: Ctx) -> bool:
    # keepalived ORs the global and the checker's own setting when a check fails.
    c.log_all_failures = c.log_all_failures or log_all
    if c.type == "FILE_CHECK":
        tf = track_files.get(c.track_file or "")
        if tf is None:
            ctx.diag.error(where_of(c.source), f"track_file {c.track_file} not found")
            return False
        if c.track_file_weight is None:
            c.track_file_weight, c.track_file_reverse = tf.weight, tf.weight_reverse
    return True


def _group_port_messages(vs: VirtualServer, group: VirtualServerGroup, ctx: Ctx) -> None:
    """keepalived only reports these for a group service; nothing is changed."""
    where = where_of(vs.source)
    tunnelled = [r for r in vs.real_servers if r.lvs_method not in _NAT_LIKE]
    if group.fwmarks:
        for r in tunnelled:
            if r.port:
                ctx.diag.warn(where, f"WARNING - fwmark virtual server {vs.describe()}, real server {r.address}:{r.port} "
                                     "has port specified - port will be ignored")
    for rng in group.ranges:
        for r in tunnelled:
            if r.port and r.port != rng.port:
                ctx.diag.warn(where, f"virtual server {vs.describe()}:[{rng.address},{rng.port}] and real server "
                                     f"{r.address}:{r.port} ports don't match")
