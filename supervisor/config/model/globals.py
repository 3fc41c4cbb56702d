"""global_defs and the other top-level settings, and the static addresses, routes and rules."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GlobalDefs:
    router_id: str | None = None  # None: the host name, resolved by whoever needs it
    notification_email: list[str] = field(default_factory=list)
    notification_email_from: str | None = None
    smtp_server: str | None = None
    smtp_port: int = 25
    smtp_helo_name: str | None = None
    smtp_connect_timeout: float = 30.0
    smtp_alert: bool | None = None
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    no_email_faults: bool = False
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    startup_script: str | None = None
    startup_script_timeout: float = 10.0
    shutdown_script: str | None = None
    shutdown_script_timeout: float = 10.0
    dynamic_interfaces: bool = False
    dynamic_interfaces_allow_changes: bool = False
    default_interface: str | None = None
    umask: int | None = None
    random_seed: int | None = None
    reload_check_config: bool = False
    reload_check_config_log: str | None = None
    include_check: bool = False
    data_use_instance: bool = False
    state_dump_file: str | None = None
    stats_dump_file: str | None = None
    json_dump_file: str | None = None
    process_names: bool = False
    process_name: str | None = None
    vrrp_process_name: str | None = None
    checker_process_name: str | None = None
    # VRRP defaults for every instance
    vrrp_mcast_group4: str = "224.0.0.18"
    vrrp_mcast_group6: str = "ff02::12"
    vrrp_version: int = 2
    vrrp_garp_master_delay: float = 5.0
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: float = 0.0
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_delay: float | None = None  # None: = vrrp_garp_master_delay
    vrrp_garp_lower_prio_repeat: int | None = None  # None: = vrrp_garp_master_repeat
    vrrp_garp_interval: float = 0.0
    vrrp_gna_interval: float = 0.0
    vrrp_min_garp: bool = False
    vrrp_down_timer_adverts: int = 3
    vrrp_lower_prio_no_advert: bool | None = None  # None: false, true in strict mode
    vrrp_higher_prio_send_advert: bool = False
    vrrp_check_unicast_src: bool = False
    vrrp_skip_check_adv_addr: bool = False
    vrrp_strict: bool = False
    vrrp_startup_delay: float = 0.0
    vrrp_delay_after_boot: float = 0.0
    vrrp_owner_ignore_adverts: bool = False
    v3_checksum_as_v2: bool = False
    vrrp_notify_priority_changes: bool = False
    notify_fifo: str | None = None
    notify_fifo_script: str | None = None
    vrrp_notify_fifo: str | None = None
    vrrp_notify_fifo_script: str | None = None
    lvs_notify_fifo: str | None = None
    lvs_notify_fifo_script: str | None = None
    # Load balancer
    lvs_flush: bool = False
    lvs_flush_on_stop: str = "off"  # off | all | vs
    lvs_timeout_tcp: int | None = None
    lvs_timeout_tcpfin: int | None = None
    lvs_timeout_udp: int | None = None
    lvs_sync_daemon: str | None = None  # kept as written; the sync daemon is on the roadmap
    checker_log_all_failures: bool = False
    rs_init_notifies: bool = False
    # pykeepalived's own: which data plane writes the load balancer (auto | ipvs | nftables)
    lb_backend: str = "auto"


@dataclass
class StaticAddress:
    address: str  # ADDR/LEN
    dev: str | None = None
    brd: str | None = None
    scope: str | None = None
    label: str | None = None
    peer: str | None = None
    options: list[str] = field(default_factory=list)  # home, -nodad, noprefixroute, ...
    source: str = ""


@dataclass
class Route:
    """A static or virtual route, kept as keepalived's words plus the fields roles act on."""

    dest: str  # prefix, or "default"
    via: str | None = None
    dev: str | None = None
    src: str | None = None
    table: str | None = None
    metric: int | None = None
    route_type: str | None = None  # blackhole, unreachable, prohibit, ...
    options: list[str] = field(default_factory=list)
    source: str = ""


@dataclass
class Rule:
    from_: str | None = None
    to: str | None = None
    table: str | None = None
    priority: int | None = None
    fwmark: str | None = None
    iif: str | None = None
    oif: str | None = None
    action: str | None = None
    options: list[str] = field(default_factory=list)
    source: str = ""
