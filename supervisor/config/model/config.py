"""The root of the model: one validated configuration generation."""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config.model.globals import GlobalDefs, Route, Rule, StaticAddress
from supervisor.config.model.lvs import LocalAddressGroup, SslConfig, VirtualServer, VirtualServerGroup
from supervisor.config.model.vrrp import TrackFile, VrrpInstance, VrrpScript, VrrpSyncGroup

MODEL_VERSION = 1


@dataclass
class Config:
    model_version: int = MODEL_VERSION
    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    net_namespace: str | None = None
    net_namespace_ipvs: str | None = None
    instance: str | None = None
    use_pid_dir: bool = False
    child_wait_time: float = 5.0
    static_ipaddress: list[StaticAddress] = field(default_factory=list)
    static_routes: list[Route] = field(default_factory=list)
    static_rules: list[Rule] = field(default_factory=list)
    vrrp_scripts: list[VrrpScript] = field(default_factory=list)
    track_files: list[TrackFile] = field(default_factory=list)
    vrrp_sync_groups: list[VrrpSyncGroup] = field(default_factory=list)
    vrrp_instances: list[VrrpInstance] = field(default_factory=list)
    ssl: SslConfig | None = None
    local_address_groups: list[LocalAddressGroup] = field(default_factory=list)
    virtual_server_groups: list[VirtualServerGroup] = field(default_factory=list)
    virtual_servers: list[VirtualServer] = field(default_factory=list)

    @property
    def has_vrrp(self) -> bool:
        """keepalived runs its VRRP child when there is anything VRRP (instances or static setup)."""
        return bool(self.vrrp_instances or self.static_ipaddress or self.static_routes or self.static_rules)

    @property
    def has_checker(self) -> bool:
        return bool(self.virtual_servers)
