"""The VRRP codec against adverts captured from Debian's keepalived 2.2.7, every drop reason, and fuzz."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrrpd import packet as P

# Captured on a veth with tcpdump -x from keepalived 2.2.7 (the IP header is kept for the IPv4 ones).
V2_PASS_IP = bytes.fromhex("45c000280001000 0ff701891c0000201e0000012213364010101 49e7c00002647365637265743132".replace(" ", ""))
V2_PASS_PRIO0_IP = bytes.fromhex("45c00028000300 00ff70188fc0000201e000001221330001 0101ade7c00002647365637265743132".replace(" ", ""))
V3_IP = bytes.fromhex("45c000200001000 0ff701899c0000201e000001231336401 00640572c0000264".replace(" ", ""))
V3_PRIO0_IP = bytes.fromhex("45c0002000030000ff701897c0000201e0000012313300010064 6972c0000264".replace(" ", ""))
V6_SRC = "fe80::a062:1eff:feec:7814"
V3_V6 = bytes.fromhex("31346401006437e4fd000000000000000000000000000100")
V3_V6_PRIO0 = bytes.fromhex("31340001 00649be4fd000000000000000000000000000100".replace(" ", ""))


def ctx4(version: int = 3, **kw: object) -> P.RxContext:
    base: dict[str, object] = dict(version=version, family=4, vrid=51, interval_cs=100,
                                   vips=frozenset({"192.0.2.100"}))
    if version == 2:
        base.update(auth_type=P.AUTH_PASS, auth_pass=P.pass_bytes("secret12345"))
    base.update(kw)
    return P.RxContext(**base)  # type: ignore[arg-type]


def ctx6(**kw: object) -> P.RxContext:
    return P.RxContext(version=3, family=6, vrid=52, interval_cs=100, vips=frozenset({"fd00::100"}), **kw)  # type: ignore[arg-type]


def test_build_matches_keepalived_v2_pass() -> None:
    msg = P.build(2, 4, 51, 100, 100, ["192.0.2.100"], auth_type=P.AUTH_PASS, auth_pass=P.pass_bytes("secret12345"))
    assert msg == V2_PASS_IP[20:]
    msg0 = P.build(2, 4, 51, 0, 100, ["192.0.2.100"], auth_type=P.AUTH_PASS, auth_pass=P.pass_bytes("secret12345"))
    assert msg0 == V2_PASS_PRIO0_IP[20:]


def test_build_matches_keepalived_v3_ipv4_pseudo_header() -> None:
    assert P.build(3, 4, 51, 100, 100, ["192.0.2.100"], src="192.0.2.1", dst="224.0.0.18") == V3_IP[20:]
    assert P.build(3, 4, 51, 0, 100, ["192.0.2.100"], src="192.0.2.1", dst="224.0.0.18") == V3_PRIO0_IP[20:]


def test_build_matches_keepalived_v3_ipv6() -> None:
    assert P.build(3, 6, 52, 100, 100, ["fd00::100"], src=V6_SRC, dst="ff02::12") == V3_V6
    assert P.build(3, 6, 52, 0, 100, ["fd00::100"], src=V6_SRC, dst="ff02::12") == V3_V6_PRIO0


def test_v3_checksum_as_v2_and_rechecksum() -> None:
    m = P.build(3, 4, 51, 100, 100, ["192.0.2.100"], src="192.0.2.1", dst="224.0.0.18", checksum_as_v2=True)
    assert P.inet_csum(m) == 0
    assert P.rechecksum_v3(m, 4, "192.0.2.1", "224.0.0.18") == V3_IP[20:]
    uni = P.rechecksum_v3(m, 4, "192.0.2.1", "192.0.2.2")
    assert P.inet_csum(P.pseudo_header(4, "192.0.2.1", "192.0.2.2", len(uni)) + uni) == 0


def test_parse_and_check_captured() -> None:
    rx = P.parse_ipv4(V2_PASS_IP)
    assert (rx.src, rx.dst, rx.ttl, rx.vrid) == ("192.0.2.1", "224.0.0.18", 255, 51)
    c = P.check(rx, ctx4(2))
    assert c.advert.priority == 100 and c.advert.interval_cs == 100 and c.addr_list_ok
    c3 = P.check(P.parse_ipv4(V3_PRIO0_IP), ctx4(3))
    assert c3.advert.priority == 0 and c3.advert.addresses == ("192.0.2.100",)
    c6 = P.check(P.parse_ipv6(V3_V6, V6_SRC + "%eth0", "ff02::12", 255), ctx6())
    assert c6.advert.vrid == 52 and c6.src == V6_SRC and c6.addr_list_ok


def _reason(rx: P.Received, ctx: P.RxContext) -> str:
    with pytest.raises(P.Drop) as e:
        P.check(rx, ctx)
    return e.value.reason


def _ip(msg: bytes, ttl: int = 255, dst: str = "224.0.0.18", src: str = "192.0.2.1") -> P.Received:
    return P.Received(4, src, dst, ttl, msg)


def test_every_drop_reason_in_order() -> None:
    v2 = V2_PASS_IP[20:]
    v3 = V3_IP[20:]
    assert _reason(_ip(v2[:5]), ctx4(2)) == P.R_TRUNCATED
    assert _reason(_ip(v2 + b"\0\0\0\0"), ctx4(2)) == P.R_LENGTH
    assert _reason(_ip(v2, ttl=254), ctx4(2)) == P.R_TTL
    # length is checked before the TTL, as keepalived does
    assert _reason(_ip(v2[:-1], ttl=1), ctx4(2)) == P.R_LENGTH
    assert _reason(_ip(v2), ctx4(3)) == P.R_VERSION
    assert _reason(_ip(v2), ctx4(2, auth_type=P.AUTH_NONE, auth_pass=b"")) == P.R_AUTH_TYPE
    assert _reason(_ip(v2), ctx4(2, auth_pass=P.pass_bytes("other"))) == P.R_AUTH
    assert _reason(_ip(v2), ctx4(2, interval_cs=200)) == P.R_INTERVAL
    bad_type = bytes([0x22]) + v2[1:]
    assert _reason(_ip(bad_type), ctx4(2)) == P.R_TYPE
    bad_sum = v2[:7] + bytes([v2[7] ^ 1]) + v2[8:]
    assert _reason(_ip(bad_sum), ctx4(2)) == P.R_CHECKSUM
    # v3: pseudo-header makes the destination part of the checksum
    assert _reason(_ip(v3, dst="224.0.0.19"), ctx4(3)) == P.R_CHECKSUM
    assert P.check(_ip(v3), ctx4(3, checksum_as_v2=False)).advert.priority == 100
    assert _reason(_ip(v3), ctx4(3, checksum_as_v2=True)) == P.R_CHECKSUM
    # multicast packet on a unicast instance
    assert _reason(_ip(v3), ctx4(3, unicast=True)) == P.R_DEST
    assert _reason(_ip(v3), ctx4(3, owner_ignore_adverts=True)) == P.R_OWNER_IGNORE
    assert _reason(_ip(v3, src="192.0.2.9"), ctx4(3, own_addresses=frozenset({"192.0.2.9"}))) == P.R_OWN


def test_unicast_ttl_and_source_checks() -> None:
    uni = P.rechecksum_v3(V3_IP[20:], 4, "192.0.2.1", "192.0.2.2")
    ctx = ctx4(3, unicast=True, unicast_peers={"192.0.2.1": (0, 255)})
    assert P.check(_ip(uni, ttl=7, dst="192.0.2.2"), ctx).advert.vrid == 51  # unicast: TTL not checked
    strict = ctx4(3, unicast=True, unicast_peers={"192.0.2.1": (250, 255)})
    assert _reason(_ip(uni, ttl=7, dst="192.0.2.2"), strict) == P.R_TTL
    other = ctx4(3, unicast=True, check_unicast_src=True, unicast_peers={"192.0.2.3": (0, 255)})
    assert _reason(_ip(uni, dst="192.0.2.2"), other) == P.R_UNICAST_SRC
    assert _reason(_ip(uni, dst="192.0.2.2"), ctx4(3)) == P.R_DEST  # unicast packet on a multicast instance


def test_address_list_mismatch_is_counted_not_dropped() -> None:
    c = P.check(_ip(V3_IP[20:]), ctx4(3, vips=frozenset({"192.0.2.101"})))
    assert not c.addr_list_ok and c.advert.priority == 100


def test_address_list_mismatch_drops_in_strict_mode() -> None:
    assert _reason(_ip(V3_IP[20:]), ctx4(3, vips=frozenset({"192.0.2.101"}), strict_addresses=True)) == P.R_ADDR_LIST
    assert P.check(_ip(V3_IP[20:]), ctx4(3, strict_addresses=True)).addr_list_ok


def test_v3_interval_mismatch_is_accepted() -> None:
    assert P.check(_ip(V3_IP[20:]), ctx4(3, interval_cs=30)).advert.interval_cs == 100


def test_parse_ipv4_rejects_bad_headers() -> None:
    for data, reason in [(b"", P.R_TRUNCATED), (V3_IP[:19], P.R_TRUNCATED),
                         (bytes([0x65]) + V3_IP[1:], P.R_IP_HEADER),
                         (V3_IP[:2] + struct.pack("!H", 200) + V3_IP[4:], P.R_IP_HEADER),
                         (V3_IP[:9] + bytes([6]) + V3_IP[10:], P.R_IP_HEADER)]:
        with pytest.raises(P.Drop) as e:
            P.parse_ipv4(data)
        assert e.value.reason == reason
    padded = P.parse_ipv4(V3_IP + b"\0" * 14)  # Ethernet padding beyond tot_len is ignored
    assert padded.msg == V3_IP[20:]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 255), st.sampled_from(["224.0.0.18", "192.0.2.2"]))
def test_fuzz_ipv4_never_raises_anything_but_drop(data: bytes, ttl: int, dst: str) -> None:
    for ctx in (ctx4(2), ctx4(3), ctx4(3, unicast=True, check_unicast_src=True)):
        try:
            P.check(P.parse_ipv4(data), ctx)
        except P.Drop as e:
            assert e.reason in P.DROP_REASONS
        try:
            P.check(_ip(data, ttl=ttl, dst=dst), ctx)
        except P.Drop as e:
            assert e.reason in P.DROP_REASONS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 255))
def test_fuzz_ipv6_and_mutations_never_raise(data: bytes, flip: int) -> None:
    mutated = bytearray(V3_V6)
    if data:
        mutated[flip % len(mutated)] ^= data[0] or 1
    for msg in (data, bytes(mutated), V3_V6[: flip % (len(V3_V6) + 1)]):
        try:
            P.check(P.parse_ipv6(msg, V6_SRC, "ff02::12", 255), ctx6())
        except P.Drop as e:
            assert e.reason in P.DROP_REASONS
        P.decode(msg, 6) if len(msg) >= 8 else None
