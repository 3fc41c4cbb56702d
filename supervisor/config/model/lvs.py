"""Load-balancer blocks: virtual_server(_group), real_server, local_address_group, SSL."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SslConfig:
    password: str | None = None
    ca: str | None = None
    certificate: str | None = None
    key: str | None = None


@dataclass
class LocalAddressGroup:
    name: str
    addresses: list[str] = field(default_factory=list)
    source: str = ""


@dataclass
class VirtualServerGroup:
    name: str
    source: str = ""


@dataclass
class RealServer:
    address: str
    port: int = 0
    source: str = ""


@dataclass
class VirtualServer:
    address: str | None = None
    port: int = 0
    real_servers: list[RealServer] = field(default_factory=list)
    source: str = ""
