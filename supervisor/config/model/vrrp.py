"""VRRP blocks: vrrp_script, track_file, vrrp_sync_group, vrrp_instance and what they contain."""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config.model.globals import Route, Rule


@dataclass
class VrrpScript:
    name: str
    script: str = ""
    interval: float = 1.0
    timeout: float | None = None  # None: = interval
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    init_fail: bool = False
    source: str = ""


@dataclass
class TrackFile:
    name: str
    file: str = ""
    weight: int = 1
    weight_reverse: bool = False
    init_file: int | None = None
    init_file_overwrite: bool = False
    source: str = ""


@dataclass
class Tracker:
    """A track_interface / track_script / track_file entry: a name and how it moves the priority."""

    name: str
    weight: int | None = None  # None: the tracked object's own weight (scripts, files) or 0
    reverse: bool = False
    source: str = ""


@dataclass
class Vip:
    address: str  # ADDR/LEN
    dev: str | None = None
    brd: str | None = None
    scope: str | None = None
    label: str | None = None
    peer: str | None = None
    no_track: bool = False
    use_vmac: bool = False
    options: list[str] = field(default_factory=list)  # home, -nodad, noprefixroute, autojoin ...
    source: str = ""


@dataclass
class UnicastPeer:
    address: str
    min_ttl: int | None = None
    max_ttl: int | None = None


@dataclass
class VrrpInstance:
    name: str
    interface: str | None = None
    virtual_router_id: int = 0
    state: str | None = None  # MASTER | BACKUP as configured; None: derived from priority
    priority: int = 100
    advert_int: float = 1.0
    version: int | None = None  # None: global vrrp_version (IPv6 instances use 3)
    family: str = "inet"  # inet | inet6, from the VIPs
    nopreempt: bool = False
    preempt_delay: float = 0.0
    accept: bool | None = None  # None: keepalived's default (on, unless strict; always for the owner)
    strict_mode: bool | None = None
    skip_check_adv_addr: bool | None = None
    virtual_ipaddress: list[Vip] = field(default_factory=list)
    virtual_ipaddress_excluded: list[Vip] = field(default_factory=list)
    no_virtual_ipaddress: bool = False
    virtual_routes: list[Route] = field(default_factory=list)
    virtual_rules: list[Rule] = field(default_factory=list)
    mcast_src_ip: str | None = None
    unicast_src_ip: str | None = None
    unicast_peers: list[UnicastPeer] = field(default_factory=list)
    unicast_ttl: int | None = None
    unicast_fault_no_peer: bool = False
    check_unicast_src: bool | None = None
    old_unicast_checksum: str | None = None
    mcast_dst_ip: str | None = None
    auth_type: str | None = None  # PASS | AH
    auth_pass: str | None = None
    track_interfaces: list[Tracker] = field(default_factory=list)
    track_scripts: list[Tracker] = field(default_factory=list)
    track_files: list[Tracker] = field(default_factory=list)
    dont_track_primary: bool = False
    track_src_ip: bool = False
    garp_master_delay: float | None = None
    garp_master_repeat: int | None = None
    garp_master_refresh: float | None = None
    garp_master_refresh_repeat: int | None = None
    garp_lower_prio_delay: float | None = None
    garp_lower_prio_repeat: int | None = None
    down_timer_adverts: int | None = None
    lower_prio_no_advert: bool | None = None
    higher_prio_send_advert: bool | None = None
    owner_ignore_adverts: bool | None = None
    use_vmac: bool = False
    vmac_name: str | None = None
    vmac_mac: str | None = None
    vmac_xmit_base: bool = False
    use_vmac_addr: bool = False
    v3_checksum_as_v2: bool | None = None
    promote_secondaries: bool = False
    notify_master: str | None = None
    notify_backup: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None
    notify_deleted: str | None = None
    notify: str | None = None
    notify_master_rx_lower_pri: str | None = None
    notify_priority_changes: bool | None = None
    smtp_alert: bool | None = None
    sync_group: str | None = None  # filled in from vrrp_sync_group
    source: str = ""

    @property
    def is_address_owner(self) -> bool:
        return self.priority == 255


@dataclass
class VrrpSyncGroup:
    name: str
    group: list[str] = field(default_factory=list)
    track_interfaces: list[Tracker] = field(default_factory=list)
    track_scripts: list[Tracker] = field(default_factory=list)
    track_files: list[Tracker] = field(default_factory=list)
    notify_master: str | None = None
    notify_backup: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None
    notify: str | None = None
    smtp_alert: bool | None = None
    notify_priority_changes: bool | None = None
    sync_group_tracking_weight: bool = False
    source: str = ""
