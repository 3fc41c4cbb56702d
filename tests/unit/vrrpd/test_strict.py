"""vrrp_strict / strict_mode: keepalived's rules, both as the loader reports and resets them and as the
running role's settings apply them (even for a model built without the loader's defaults)."""

from __future__ import annotations

from supervisor.config.diag import Severity
from supervisor.config.load import LoadResult, load_text
from supervisor.config.model.globals import GlobalDefs
from supervisor.config.model.vrrp import UnicastPeer, Vip, VrrpInstance
from vrrpd.instance import Settings, settings


def _load(body: str, strict: bool = True, extra_globals: str = "") -> LoadResult:
    glob = "global_defs {\n    vrrp_strict\n" + extra_globals + "}\n" if strict else ""
    return load_text(glob + "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n" + body + "}\n",
                     name="k.conf")


def _msgs(r: LoadResult) -> list[str]:
    return [p.message for p in r.diag if p.severity >= Severity.ERROR]


def _settings(r: LoadResult) -> Settings:
    assert r.config is not None
    return settings(r.config.vrrp_instances[0], r.config.global_defs, {})


VIP4 = "    virtual_ipaddress {\n        192.0.2.10/24\n    }\n"


def test_strict_defaults_without_any_keyword() -> None:
    r = _load(VIP4 + "    priority 100\n")
    assert _msgs(r) == []
    s = _settings(r)
    assert s.lower_prio_no_advert is True
    assert s.higher_prio_send_advert is False
    assert s.down_timer_adverts == 3
    assert s.garp_lower_prio_repeat == 0
    assert s.accept is False
    assert s.strict_addresses is True
    assert s.owner_ignore_adverts is False  # not an owner


def test_strict_owner_ignores_adverts_and_accepts() -> None:
    s = _settings(_load(VIP4 + "    priority 255\n"))
    assert (s.owner_ignore_adverts, s.accept, s.initial_master) == (True, True, True)
    # without strict mode the owner listens (keepalived's global default)
    s = _settings(_load(VIP4 + "    priority 255\n", strict=False))
    assert (s.owner_ignore_adverts, s.accept) == (False, True)


def test_strict_resets_keywords_that_break_the_rfc_with_keepalived_messages() -> None:
    r = _load(VIP4 + """    priority 100
    state MASTER
    version 2
    accept
    preempt_delay 5
    down_timer_adverts 5
    lower_prio_no_advert false
    higher_prio_send_advert true
    garp_lower_prio_repeat 3
    garp_lower_prio_delay 2
    authentication {
        auth_type PASS
        auth_pass secret
    }
""")
    msgs = _msgs(r)
    for want in ("(VI_1) State MASTER must match being address owner",
                 "(VI_1) Strict mode does not support authentication. Ignoring.",
                 "(VI_1) preempt_delay is incompatible with strict mode - resetting",
                 "(VI_1) down_timer_adverts is incompatible with strict mode - resetting",
                 "(VI_1) Strict mode requires no lower priority advert. resetting",
                 "(VI_1) strict mode requires higher_prio_send_advert to be clear. resetting",
                 "(VI_1) Strict mode requires no repeat garps. resetting",
                 "(VI_1) Strict mode requires no repeat garp delay. resetting",
                 "(VI_1) warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting"):
        assert want in msgs, (want, msgs)
    s = _settings(r)
    assert (s.initial_master, s.preempt_delay, s.down_timer_adverts, s.lower_prio_no_advert,
            s.higher_prio_send_advert, s.garp_lower_prio_repeat, s.accept, s.auth_type) == (
        False, 0.0, 3, True, False, 0, False, 0)


def test_strict_priority_255_with_state_backup_becomes_master() -> None:
    r = _load(VIP4 + "    priority 255\n    state BACKUP\n")
    assert "(VI_1) State MASTER must match being address owner" in _msgs(r)
    assert _settings(r).initial_master is True


def test_strict_owner_cannot_turn_owner_ignore_adverts_off() -> None:
    r = _load(VIP4 + "    priority 255\n    owner_ignore_adverts false\n")
    assert "(VI_1) strict_mode with priority 255 requires owner_ignore_adverts" in _msgs(r)
    assert _settings(r).owner_ignore_adverts is True


def test_owner_ignore_adverts_needs_priority_255_strict_or_not() -> None:
    for strict in (True, False):
        r = _load(VIP4 + "    priority 100\n    owner_ignore_adverts\n", strict=strict)
        assert "(VI_1) ignoring owner_ignore_adverts since priority is not 255" in _msgs(r)
        assert _settings(r).owner_ignore_adverts is False


def test_strict_needs_a_vip_and_refuses_unicast() -> None:
    r = _load("    no_virtual_ipaddress\n")
    assert "(VI_1) No VIP specified; at least one is required" in _msgs(r)
    assert any("no_virtual_ipaddress and strict mode incompatible" in p.message for p in r.diag)
    assert not r.ok
    r = _load(VIP4 + "    unicast_src_ip 192.0.2.1\n    unicast_peer {\n        192.0.2.2\n    }\n")
    assert "(VI_1) Unicast peers are not supported in strict mode" in _msgs(r)
    # the same instances without strict mode are fine
    assert _load("    no_virtual_ipaddress\n", strict=False).ok
    assert _load(VIP4 + "    unicast_src_ip 192.0.2.1\n    unicast_peer {\n        192.0.2.2\n    }\n",
                 strict=False).ok


def test_strict_global_down_timer_adverts_is_reset_too() -> None:
    r = _load(VIP4, extra_globals="    vrrp_down_timer_adverts 5\n")
    assert "(VI_1) down_timer_adverts is incompatible with strict mode - resetting" in _msgs(r)
    assert _settings(r).down_timer_adverts == 3


def test_strict_ipv6_first_vip_must_be_link_local() -> None:
    r = _load("    virtual_ipaddress {\n        fd00::10/64\n    }\n")
    assert "(VI_1) the first IPv6 VIP address must be link local" in _msgs(r)
    assert "(VI_1) the first IPv6 VIP address must be link local" not in _msgs(
        _load("    virtual_ipaddress {\n        fe80::10/64\n        fd00::10/64\n    }\n"))


def test_strict_vmac_xmit_base_is_reset() -> None:
    r = _load(VIP4 + "    use_vmac\n    vmac_xmit_base\n")
    assert "(VI_1) xmit_base is incompatible with strict mode - resetting" in _msgs(r)
    assert _settings(r).vmac_xmit_base is False


def test_running_role_applies_strict_even_without_the_loader() -> None:
    # a model straight from code (no validation pass): the role still runs the RFC's values
    inst = VrrpInstance(name="VI_1", interface="eth0", virtual_router_id=9, priority=255, strict_mode=True,
                        virtual_ipaddress=[Vip("192.0.2.10/24")], down_timer_adverts=7,
                        lower_prio_no_advert=False, higher_prio_send_advert=True, owner_ignore_adverts=False,
                        garp_lower_prio_repeat=4, vmac_xmit_base=True,
                        unicast_peers=[UnicastPeer("192.0.2.2")])
    s = settings(inst, GlobalDefs(), {})
    assert (s.down_timer_adverts, s.lower_prio_no_advert, s.higher_prio_send_advert, s.owner_ignore_adverts,
            s.garp_lower_prio_repeat, s.vmac_xmit_base) == (3, True, False, True, 0, False)
    relaxed = settings(VrrpInstance(name="VI_2", interface="eth0", virtual_router_id=9, priority=100,
                                    down_timer_adverts=7, higher_prio_send_advert=True), GlobalDefs(), {})
    assert (relaxed.down_timer_adverts, relaxed.lower_prio_no_advert, relaxed.higher_prio_send_advert,
            relaxed.accept) == (7, False, True, True)
