"""Health checks, one module per keepalived checker type, and :func:`make_check` to build one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checkerd.checks.base import Check, Result, Target

if TYPE_CHECKING:
    from supervisor.config.model.checkers import Checker

__all__ = ["Check", "Result", "Target", "make_check"]


def make_check(cfg: Checker, target: Target, base_weight: int = 1) -> Check:
    """The check object for one configured checker (raises ValueError for a type we cannot run)."""
    t = cfg.type
    if t in ("HTTP_GET", "SSL_GET"):
        from checkerd.checks.http import HttpCheck

        return HttpCheck(cfg, target)
    if t == "TCP_CHECK":
        from checkerd.checks.tcp import TcpCheck

        return TcpCheck(cfg, target)
    if t == "MISC_CHECK":
        from checkerd.checks.misc import MiscCheck

        return MiscCheck(cfg, target)
    if t == "SMTP_CHECK":
        from checkerd.checks.smtp import SmtpCheck

        return SmtpCheck(cfg, target)
    if t == "DNS_CHECK":
        from checkerd.checks.dns import DnsCheck

        return DnsCheck(cfg, target)
    if t == "UDP_CHECK":
        from checkerd.checks.udp import UdpCheck

        return UdpCheck(cfg, target)
    if t == "PING_CHECK":
        from checkerd.checks.ping import PingCheck

        return PingCheck(cfg, target)
    if t == "FILE_CHECK":
        from checkerd.checks.file import FileCheck

        return FileCheck(cfg, target, base_weight=base_weight)
    raise ValueError(f"{t} is not supported by pykeepalived")
