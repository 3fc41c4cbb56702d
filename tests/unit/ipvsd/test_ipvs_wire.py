"""ipvsd.ipvs_wire encodes exactly what pyroute2 would send: both encodings, decoded by pyroute2, agree."""

from __future__ import annotations

import socket
from typing import Any

from pyroute2 import IPVSDest, IPVSService
from pyroute2.netlink.generic import ipvs as gi

from ipvsd import ipvs_wire as wire


def decoded(data: bytes) -> dict[str, Any]:
    m = gi.ipvsmsg(data)
    m.decode()
    out: dict[str, Any] = {"cmd": m["cmd"], "version": m["version"], "len": m["header"]["length"]}
    for name in ("IPVS_CMD_ATTR_SERVICE", "IPVS_CMD_ATTR_DEST"):
        nested = m.get_attr(name)
        if nested is not None:
            out[name] = sorted((k, str(v)) for k, v in nested["attrs"])
    return out


def theirs(cmd: int, svc: dict[str, Any] | None, key_only: bool, dst: dict[str, Any] | None = None) -> bytes:
    m = gi.ipvsmsg()
    m["cmd"] = cmd
    m["version"] = 1
    s = IPVSService(**(svc or {}))
    m["attrs"] = [("IPVS_CMD_ATTR_SERVICE", s.dump_key() if key_only else s.dump_nla())]
    if dst is not None:
        m["attrs"].append(("IPVS_CMD_ATTR_DEST", IPVSDest(**dst).dump_nla()))
    m["header"]["type"] = 30
    m["header"]["flags"] = 5
    m["header"]["sequence_number"] = 7
    m["header"]["pid"] = 9
    m.encode()
    return bytes(m.data)


def ours(cmd: int, service: bytes, dest: bytes | None = None) -> bytes:
    return wire.frame(30, 5, 7, 9, wire.payload(cmd, service, dest))


def test_full_service_matches_pyroute2() -> None:
    key = wire.service_key(socket.AF_INET, 6, "192.0.2.10", 80)
    mine = ours(wire.CMD_NEW_SERVICE, wire.service_full(key, "wlc", 0x1, 60, "255.255.255.0"))
    ref = theirs(wire.CMD_NEW_SERVICE, dict(af=2, addr="192.0.2.10", port=80, protocol=6, sched_name="wlc",
                                            timeout=60, flags={"flags": 1, "mask": 0xFFFF},
                                            netmask="255.255.255.0"), key_only=False)
    assert decoded(mine) == decoded(ref)


def test_fwmark_key_and_dest_match_pyroute2() -> None:
    key = wire.service_key(socket.AF_INET, fwmark=7)
    d = wire.dest(socket.AF_INET, "198.51.100.11", 8080, fwd=3, weight=4, uthresh=100, lthresh=10)
    mine = ours(wire.CMD_NEW_DEST, key, d)
    ref = theirs(wire.CMD_NEW_DEST, dict(af=2, fwmark=7), True,
                 dict(addr="198.51.100.11", port=8080, fwd_method=3, weight=4, u_thresh=100, l_thresh=10))
    assert decoded(mine) == decoded(ref)


def test_ipv6_service_key_and_dest_match_pyroute2() -> None:
    key = wire.service_key(socket.AF_INET6, 17, "fd00::10", 53)
    d = wire.dest(socket.AF_INET6, "fd00::11", 53, fwd=0, weight=2)
    mine = ours(wire.CMD_SET_DEST, key, d)
    ref = theirs(wire.CMD_SET_DEST, dict(af=10, addr="fd00::10", port=53, protocol=17), True,
                 dict(addr="fd00::11", port=53, fwd_method=0, weight=2))
    assert decoded(mine) == decoded(ref)


def test_padding_keeps_attributes_aligned() -> None:
    assert len(wire.nla(6, b"rr\0")) == 8 and len(wire.nla(6, b"wlc\0")) == 8 and len(wire.nla(6, b"sed\0x")) == 12
