"""Load-balancer blocks: virtual_server(_group), real_server, sorry_server, local_address_group, SSL.

Values are effective once ``supervisor.config.parse.lvs.validate`` has run: a real server holds what it
inherits from its virtual server (weight, forwarding method, timers, alpha, inhibit_on_failure), and
each checker holds what it inherits from its real server (see ``model.checkers``). Defaults are
keepalived 2.2.7's (``check_data.c`` alloc_vs/alloc_rs and validate_check_config). Addresses are strings
in canonical form; a port of 0 means "none given".

Forwarding methods are NAT, DR, TUN (kernel IPVS) and FNAT (full NAT, from the alibaba/LVS and
iqiyi/DPVS forks). A TUN server also carries its tunnel encapsulation: ``tun_type`` ipip|gue|gre,
``tun_port`` (gue only) and ``tun_csum`` nocsum|csum|remcsum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config.model.checkers import Checker

# keepalived's IPVS schedulers (check_parser.c lvs_schedulers), in its order.
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos")
LVS_METHODS = ("NAT", "DR", "TUN", "FNAT")
DEFAULT_SCHEDULER = "wlc"
PERSISTENCE_DEFAULT = 360  # seconds: `persistence_timeout` without a value (IPVS_SVC_PERSISTENT_TIMEOUT)
WEIGHT_MAX = 2**31 - 1  # IPVS_WEIGHT_LIMIT


@dataclass
class SslConfig:
    """The SSL block: the client context SSL_GET checkers use (keepalived builds one if it is absent)."""

    password: str | None = None
    ca: str | None = None
    certificate: str | None = None
    key: str | None = None
    source: str = ""


@dataclass
class LocalAddressGroup:
    """Fork block: the source addresses a FNAT service uses towards its real servers.

    ``addresses`` is the expanded pool: ``192.168.3.2-254`` contributes 192.168.3.2 … 192.168.3.254.
    The DPVS form ``IP IFNAME`` is accepted; the DPDK interface name has no meaning here and is dropped.
    """

    name: str
    addresses: list[str] = field(default_factory=list)
    source: str = ""


@dataclass
class VsgRange:
    """One address entry of a virtual_server_group: a single address, or the range first … last."""

    address: str
    address_end: str  # == address for a single address
    port: int = 0
    source: str = ""


@dataclass
class VsgFwmark:
    fwmark: int
    family: str | None = None  # inet | inet6; None: not given (the family comes from the servers)
    source: str = ""


@dataclass
class VirtualServerGroup:
    name: str
    ranges: list[VsgRange] = field(default_factory=list)
    fwmarks: list[VsgFwmark] = field(default_factory=list)
    source: str = ""

    @property
    def has_ipv4(self) -> bool:
        return any(":" not in r.address for r in self.ranges) or any(f.family == "inet" for f in self.fwmarks)

    @property
    def has_ipv6(self) -> bool:
        return any(":" in r.address for r in self.ranges) or any(f.family == "inet6" for f in self.fwmarks)


@dataclass
class SorryServer:
    """Put in service when the quorum is lost."""

    address: str
    port: int = 0
    lvs_method: str = "NAT"
    tun_type: str | None = None
    tun_port: int = 0
    tun_csum: str | None = None
    inhibit: bool = False  # sorry_server_inhibit
    source: str = ""


@dataclass
class RealServer:
    address: str
    port: int = 0  # effective: a NAT/DR/TUN server without a port takes the virtual server's
    weight: int = 1  # effective: the virtual server's `weight` when not given
    lvs_method: str = "NAT"
    tun_type: str | None = None
    tun_port: int = 0
    tun_csum: str | None = None
    uthreshold: int = 0
    lthreshold: int = 0
    notify_up: str | None = None
    notify_down: str | None = None
    inhibit_on_failure: bool = False
    alpha: bool = False
    # Inherited by this server's checkers; None: each checker's own default (see model.checkers).
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    delay_loop: float = 60.0
    connect_timeout: float = 5.0
    # None only until validate(): then global_defs smtp_alert_checker / smtp_alert, else True (keepalived's
    # real-server default, kept by keepalived for backward compatibility).
    smtp_alert: bool | None = None
    virtualhost: str | None = None
    snmp_name: str | None = None
    checkers: list[Checker] = field(default_factory=list)
    source: str = ""


@dataclass
class VirtualServer:
    # Exactly one of address (with port), fwmark or group identifies the service.
    address: str | None = None
    port: int = 0
    fwmark: int | None = None
    group: str | None = None
    ip_family: str | None = None  # inet | inet6; None only for a group holding both families
    protocol: str | None = None  # TCP | UDP | SCTP; None for a fwmark service (IPVS ignores it)
    lb_algo: str = DEFAULT_SCHEDULER
    lvs_method: str = "NAT"
    tun_type: str | None = None
    tun_port: int = 0
    tun_csum: str | None = None
    persistence_timeout: int = 0  # seconds; 0: no persistence
    persistence_granularity: str | None = None  # IPv4 netmask, or IPv6 prefix length as a string
    persistence_engine: str | None = None
    # Scheduler flags
    hashed: bool = False
    ops: bool = False
    flag_1: bool = False
    flag_2: bool = False
    flag_3: bool = False
    sh_port: bool = False
    sh_fallback: bool = False
    mh_port: bool = False
    mh_fallback: bool = False
    # Checker defaults handed down to the real servers
    delay_loop: float = 60.0
    connect_timeout: float = 5.0
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    inhibit_on_failure: bool = False
    alpha: bool = False
    omega: bool = False
    weight: int = 1  # the default real-server weight
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: str | None = None
    quorum_down: str | None = None
    sorry_server: SorryServer | None = None
    ha_suspend: bool = False
    virtualhost: str | None = None
    smtp_alert: bool | None = None  # None only until validate(): global_defs' setting, else False
    snmp_name: str | None = None
    # Fork extensions (alibaba/LVS, iqiyi/DPVS)
    laddr_group_name: str | None = None
    syn_proxy: bool = False
    est_timeout: int | None = None
    vip_bind_dev: str | None = None
    real_servers: list[RealServer] = field(default_factory=list)
    source: str = ""

    def describe(self) -> str:
        """How keepalived names the service in messages (FMT_VS)."""
        if self.group is not None:
            return f"[{self.group}]:{self.port}"
        if self.fwmark is not None:
            return f"FWM {self.fwmark}"
        proto = (self.protocol or "none").lower()
        return f"[{self.address}]:{proto}:{self.port}"
