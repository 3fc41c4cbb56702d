"""global_defs and the top-level settings (net_namespace, instance, child_wait_time, ...)."""

from __future__ import annotations

from typing import Any

from supervisor.config import values as v
from supervisor.config.parse.table import (
    Ctx,
    Handler,
    Table,
    bool_opt,
    choice,
    deprecated,
    flag,
    int_,
    ip,
    needs_block,
    no_effect_yet,
    not_applicable,
    script,
    timer,
    word,
    words_list,
)
from supervisor.config.tree import Node


def _smtp_server(node: Node, g: Any, ctx: Ctx) -> None:
    addr = v.parse_ip(node, ctx.diag)
    if addr is None:
        # keepalived also accepts a host name here; keep it as written
        if node.args:
            g.smtp_server = node.args[0]
        return
    g.smtp_server = str(addr)
    if len(node.args) > 1:
        port = v.parse_port(node, ctx.diag, 1)
        if port is not None:
            g.smtp_port = port


def _script_user(node: Node, g: Any, ctx: Ctx) -> None:
    user = v.arg(node, ctx.diag, 0, "a user name")
    if user is None:
        return
    g.script_user = user
    if len(node.args) > 1:
        g.script_group = node.args[1].lstrip(":")


def _dynamic_interfaces(node: Node, g: Any, ctx: Ctx) -> None:
    g.dynamic_interfaces = True
    if node.args and node.args[0] == "allow_if_changes":
        g.dynamic_interfaces_allow_changes = True


def _lvs_flush_on_stop(node: Node, g: Any, ctx: Ctx) -> None:
    if not node.args:
        g.lvs_flush_on_stop = "all"
    elif node.args[0].upper() == "VS":
        g.lvs_flush_on_stop = "vs"
    else:
        value = v.parse_bool(node, ctx.diag)
        if value is not None:
            g.lvs_flush_on_stop = "all" if value else "off"


def _lvs_timeouts(node: Node, g: Any, ctx: Ctx) -> None:
    args = node.args
    i = 0
    while i < len(args):
        key = args[i].lower()
        if key not in ("tcp", "tcpfin", "udp") or i + 1 >= len(args):
            ctx.diag.error(node.where, f"lvs_timeouts: invalid or incomplete option '{args[i]}'")
            return
        value = v.parse_int(node, ctx.diag, i + 1, 0, 86400 * 31)
        if value is not None:
            setattr(g, f"lvs_timeout_{key}", value)
        i += 2


def _reload_check_config(node: Node, g: Any, ctx: Ctx) -> None:
    g.reload_check_config = True
    if node.args:
        g.reload_check_config_log = node.args[0]


def _umask(node: Node, g: Any, ctx: Ctx) -> None:
    text = v.arg(node, ctx.diag, 0, "a umask")
    if text is None:
        return
    try:
        value = int(text, 8) if not text.lower().startswith("0x") else int(text, 16)
    except ValueError:
        ctx.diag.error(node.where, f"umask: invalid value '{text}'")
        return
    if not 0 <= value <= 0o777:
        ctx.diag.error(node.where, f"umask: value '{text}' out of range")
        return
    g.umask = value


def _notification_email(node: Node, g: Any, ctx: Ctx) -> None:
    if needs_block(node, ctx):
        words_list("notification_email")(node, g, ctx)


def _min_garp(node: Node, g: Any, ctx: Ctx) -> None:
    value = v.flag_or_bool(node, ctx.diag)
    if value:
        g.vrrp_min_garp = True
        g.vrrp_garp_master_repeat = 1
        g.vrrp_garp_master_delay = 0.0
        g.vrrp_garp_master_refresh = 0.0


def _no_effect_block(node: Node, obj: Any, ctx: Ctx) -> None:
    no_effect_yet()(node, obj, ctx)


_TUNING = "process scheduling and memory tuning are left to the init system"
_SNMP = "SNMP is not supported; use the metrics endpoint"
_DBUS = "D-Bus is not supported"

GLOBAL_DEFS = Table(
    "global_defs",
    {
        "router_id": word("router_id"),
        "notification_email": _notification_email,
        "notification_email_from": word("notification_email_from"),
        "smtp_server": _smtp_server,
        "smtp_helo_name": word("smtp_helo_name"),
        "smtp_connect_timeout": timer("smtp_connect_timeout", 0.0, 3600.0),
        "smtp_alert": bool_opt("smtp_alert"),
        "smtp_alert_vrrp": bool_opt("smtp_alert_vrrp"),
        "smtp_alert_checker": bool_opt("smtp_alert_checker"),
        "no_email_faults": flag("no_email_faults"),
        "script_user": _script_user,
        "enable_script_security": flag("enable_script_security"),
        "startup_script": script("startup_script"),
        "startup_script_timeout": timer("startup_script_timeout", 1.0, 1000.0),
        "shutdown_script": script("shutdown_script"),
        "shutdown_script_timeout": timer("shutdown_script_timeout", 1.0, 1000.0),
        "dynamic_interfaces": _dynamic_interfaces,
        "default_interface": word("default_interface"),
        "umask": _umask,
        "random_seed": int_("random_seed", 0, 2**32 - 1),
        "reload_check_config": _reload_check_config,
        "include_check": flag("include_check"),
        "data_use_instance": flag("data_use_instance"),
        "state_dump_file": word("state_dump_file"),
        "stats_dump_file": word("stats_dump_file"),
        "json_dump_file": word("json_dump_file"),
        "process_names": flag("process_names"),
        "process_name": word("process_name"),
        "vrrp_process_name": word("vrrp_process_name"),
        "checker_process_name": word("checker_process_name"),
        "vrrp_mcast_group4": ip("vrrp_mcast_group4"),
        "vrrp_mcast_group6": ip("vrrp_mcast_group6"),
        "vrrp_version": int_("vrrp_version", 2, 3),
        "vrrp_garp_master_delay": timer("vrrp_garp_master_delay", 0.0, 86400.0),
        "vrrp_garp_master_repeat": int_("vrrp_garp_master_repeat", 1, 10000),
        "vrrp_garp_master_refresh": timer("vrrp_garp_master_refresh", 0.0, 86400.0),
        "vrrp_garp_master_refresh_repeat": int_("vrrp_garp_master_refresh_repeat", 1, 10000),
        "vrrp_garp_lower_prio_delay": timer("vrrp_garp_lower_prio_delay", 0.0, 86400.0),
        "vrrp_garp_lower_prio_repeat": int_("vrrp_garp_lower_prio_repeat", 0, 10000),
        "vrrp_garp_interval": timer("vrrp_garp_interval", 0.000001, 4294.967295),
        "vrrp_gna_interval": timer("vrrp_gna_interval", 0.000001, 4294.967295),
        "vrrp_min_garp": _min_garp,
        "vrrp_down_timer_adverts": int_("vrrp_down_timer_adverts", 1, 100),
        "vrrp_lower_prio_no_advert": bool_opt("vrrp_lower_prio_no_advert"),
        "vrrp_higher_prio_send_advert": bool_opt("vrrp_higher_prio_send_advert"),
        "vrrp_check_unicast_src": flag("vrrp_check_unicast_src"),
        "vrrp_skip_check_adv_addr": flag("vrrp_skip_check_adv_addr"),
        "vrrp_strict": flag("vrrp_strict"),
        "vrrp_startup_delay": timer("vrrp_startup_delay", 0.0, 3600.0),
        "vrrp_delay_after_boot": timer("vrrp_delay_after_boot", 0.0, 3600.0),
        "vrrp_owner_ignore_adverts": flag("vrrp_owner_ignore_adverts"),
        "v3_checksum_as_v2": flag("v3_checksum_as_v2"),
        "vrrp_notify_priority_changes": bool_opt("vrrp_notify_priority_changes"),
        "notify_fifo": word("notify_fifo"),
        "notify_fifo_script": script("notify_fifo_script"),
        "vrrp_notify_fifo": word("vrrp_notify_fifo"),
        "vrrp_notify_fifo_script": script("vrrp_notify_fifo_script"),
        "lvs_notify_fifo": word("lvs_notify_fifo"),
        "lvs_notify_fifo_script": script("lvs_notify_fifo_script"),
        "lvs_flush": flag("lvs_flush"),
        "lvs_flush_on_stop": _lvs_flush_on_stop,
        "lvs_flush_onstop": deprecated(_lvs_flush_on_stop, "lvs_flush_onstop", "lvs_flush_on_stop"),
        "lvs_timeouts": _lvs_timeouts,
        "lvs_sync_daemon": no_effect_yet("the IPVS sync daemon is planned"),
        "checker_log_all_failures": bool_opt("checker_log_all_failures"),
        "rs_init_notifies": flag("rs_init_notifies"),
        "lb_backend": choice("lb_backend", {"auto": "auto", "ipvs": "ipvs", "nftables": "nftables"}),
        # Accepted for compatibility; not built (yet).
        "linkbeat_use_polling": no_effect_yet(),
        "use_symlink_paths": no_effect_yet(),
        "set_supplementary_groups": no_effect_yet(),
        "max_auto_priority": not_applicable(_TUNING),
        "min_auto_priority_delay": not_applicable(_TUNING),
        "disable_local_igmp": no_effect_yet(),
        "vrrp_garp_extra_if": no_effect_yet(),
        "vrrp_vmac_garp_intvl": no_effect_yet(),
        "vrrp_iptables": no_effect_yet(),
        "vrrp_ipsets": no_effect_yet(),
        "nftables": no_effect_yet(),
        "nftables_priority": no_effect_yet(),
        "nftables_ifindex": no_effect_yet(),
        "nftables_ipvs": no_effect_yet(),
        "nftables_ipvs_priority": no_effect_yet(),
        "nftables_ipvs_start_fwmark": no_effect_yet(),
        "nftables_counters": no_effect_yet(),
        "fifo_write_vrrp_states_on_reload": no_effect_yet(),
        "lvs_process_name": word("checker_process_name"),
        "bfd_process_name": not_applicable("BFD is not supported by pykeepalived"),
        "snmp_socket": not_applicable(_SNMP),
        "enable_traps": not_applicable(_SNMP),
        "enable_snmp_vrrp": not_applicable(_SNMP),
        "enable_snmp_keepalived": not_applicable(_SNMP),
        "enable_snmp_rfc": not_applicable(_SNMP),
        "enable_snmp_rfcv2": not_applicable(_SNMP),
        "enable_snmp_rfcv3": not_applicable(_SNMP),
        "enable_snmp_checker": not_applicable(_SNMP),
        "snmp_vs_stats_update_interval": not_applicable(_SNMP),
        "snmp_rs_stats_update_interval": not_applicable(_SNMP),
        "enable_dbus": not_applicable(_DBUS),
        "dbus_service_name": not_applicable(_DBUS),
        "dbus_no_interface_name": not_applicable(_DBUS),
        "no_checker_emails": no_effect_yet(),
        "vrrp_rx_bufs_policy": not_applicable(_TUNING),
        "vrrp_rx_bufs_multiplier": not_applicable(_TUNING),
        "log_unknown_vrids": no_effect_yet(),
        "vmac_prefix": no_effect_yet(),
        "vmac_addr_prefix": no_effect_yet(),
        "reload_time_file": no_effect_yet(),
        "reload_repeat": no_effect_yet(),
        "reload_file": no_effect_yet(),
        "config_save_dir": no_effect_yet(),
        "tmp_config_directory": no_effect_yet(),
        "json_version": no_effect_yet(),
        "iproute_usr_dir": no_effect_yet(),
        "iproute_etc_dir": no_effect_yet(),
        "state_file_location": no_effect_yet(),
        "stats_file_location": no_effect_yet(),
        "json_file_location": no_effect_yet(),
        # Top-level-only keywords that keepalived also accepts inside global_defs
        "net_namespace": no_effect_yet("use it at top level"),
        "instance": no_effect_yet("use it at top level"),
        "use_pid_dir": no_effect_yet("use it at top level"),
        "child_wait_time": no_effect_yet("use it at top level"),
    }
    | {
        f"{role}_{what}": not_applicable(_TUNING)
        for role in ("vrrp", "checker", "bfd")
        for what in ("priority", "no_swap", "rt_priority", "cpu_affinity", "rlimit_rttime", "rlimit_rtime")
    }
    | {
        f"{name}{force}": not_applicable(_TUNING)
        for name in (
            "vrrp_netlink_cmd_rcv_bufs",
            "vrrp_netlink_monitor_rcv_bufs",
            "process_monitor_rcv_bufs",
            "lvs_netlink_cmd_rcv_bufs",
            "lvs_netlink_monitor_rcv_bufs",
        )
        for force in ("", "_force")
    },
)


def _global_defs(node: Node, config: Any, ctx: Ctx) -> None:
    if needs_block(node, ctx):
        GLOBAL_DEFS.apply(node.block(), config.global_defs, ctx)


def _top_word(name: str) -> Handler:
    return word(name)


ROOT_HANDLERS: dict[str, Handler] = {
    "global_defs": _global_defs,
    "net_namespace": _top_word("net_namespace"),
    "net_namespace_ipvs": _top_word("net_namespace_ipvs"),
    "instance": _top_word("instance"),
    "use_pid_dir": flag("use_pid_dir"),
    "child_wait_time": timer("child_wait_time", 0.0, 3600.0),
    "namespace_with_ipsets": no_effect_yet(),
    "linkbeat_use_polling": no_effect_yet(),
    "linkbeat_interfaces": no_effect_yet(),
    "interface_up_down_delays": no_effect_yet(),
    "bfd_instance": not_applicable("BFD is not supported by pykeepalived"),
}
