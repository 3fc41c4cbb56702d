"""unicast_peer min_ttl/max_ttl and check_unicast_src through a running instance: the configuration as
parsed, the instance's receive path, and its drop counters (what the role publishes in vrrp.stats)."""

from __future__ import annotations

import asyncio

from supervisor.config.load import load_text
from vrrpd import packet as P
from vrrpd.instance import Instance, settings

CONF = """
vrrp_instance VU {
  interface eth0
  state BACKUP
  virtual_router_id 51
  priority 100
  advert_int 1
  version 3
  unicast_src_ip 192.0.2.1
  %s
  unicast_peer {
    192.0.2.2 min_ttl 250 max_ttl 254
    192.0.2.3
  }
  virtual_ipaddress { 192.0.2.100 }
}
"""


def _instance(check_src: bool) -> Instance:
    res = load_text(CONF % ("check_unicast_src" if check_src else ""))
    cfg = res.config
    assert cfg is not None, [str(p) for p in res.diag.errors]
    s = settings(cfg.vrrp_instances[0], cfg.global_defs, {})
    return Instance(s, kernel=None, on_transition=lambda i, a: None)


def _advert(src: str, ttl: int, prio: int = 120) -> P.Received:
    msg = P.build(3, 4, 51, prio, 100, ["192.0.2.100"], src=src, dst="192.0.2.1")
    return P.Received(4, src, "192.0.2.1", ttl, msg)


def test_unicast_ttl_range_and_source_drops_are_counted() -> None:
    async def main() -> None:
        inst = _instance(check_src=True)
        try:
            assert inst.s.unicast_peers == (("192.0.2.2", 250, 254), ("192.0.2.3", 0, 255))
            inst.on_packet(_advert("192.0.2.2", 255))  # above max_ttl
            inst.on_packet(_advert("192.0.2.2", 249))  # below min_ttl
            inst.on_packet(_advert("192.0.2.9", 252))  # not a listed peer
            assert inst.counters[P.R_TTL] == 2 and inst.counters[P.R_UNICAST_SRC] == 1
            assert inst.counters["adverts_received"] == 0
            inst.on_packet(_advert("192.0.2.2", 250))  # both ends of the range are inside it
            inst.on_packet(_advert("192.0.2.2", 254))
            inst.on_packet(_advert("192.0.2.3", 1))  # no range given: any TTL
            assert inst.counters["adverts_received"] == 3
            assert inst.counters[P.R_TTL] == 2 and inst.counters[P.R_UNICAST_SRC] == 1
            assert inst.higher_heard  # the accepted ones reached the state machine
        finally:
            await inst.close()
    asyncio.run(main())


def test_ttl_range_alone_also_checks_the_source() -> None:
    # keepalived checks the sender against unicast_peer when any peer has a TTL range, even without
    # check_unicast_src: the range can only be looked up by the sender's address.
    async def main() -> None:
        inst = _instance(check_src=False)
        try:
            assert not inst.s.check_unicast_src
            inst.on_packet(_advert("192.0.2.9", 252))
            inst.on_packet(_advert("192.0.2.2", 100))
            inst.on_packet(_advert("192.0.2.2", 252))
            assert (inst.counters[P.R_UNICAST_SRC], inst.counters[P.R_TTL], inst.counters["adverts_received"]) \
                == (1, 1, 1)
        finally:
            await inst.close()
    asyncio.run(main())
