"""lvs_timeouts: the SET_CONFIG/GET_CONFIG payloads (only the values given are carried), the Engine
hands them to the IPVS backend on every full pass (start, reload), and says once that nftables does not
apply them. The kernel side is witnessed in tests/uml (``ipvsadm -L --timeout``)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import pytest

from ipvsd import ipvs_wire as wire
from ipvsd.desired import Service, ServiceKey
from ipvsd.reconcile import Engine
from supervisor.config.load import load_text

VS = """
virtual_server 192.0.2.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.2 80 {
    }
}
"""


def config(text: str) -> Any:
    r = load_text(text, name="k.conf")
    assert r.config is not None and not r.diag.errors, [str(p) for p in r.diag]
    return r.config


def test_set_config_carries_only_the_values_given() -> None:
    full = wire.config(wire.CMD_SET_CONFIG, 7200, 60, 300)
    assert full[:4] == struct.pack("=BBH", 12, 1, 0)
    assert wire.attrs(full, 4, len(full)) == {4: struct.pack("=I", 7200), 5: struct.pack("=I", 60),
                                              6: struct.pack("=I", 300)}
    part = wire.config(wire.CMD_SET_CONFIG, None, 30, None)
    assert wire.attrs(part, 4, len(part)) == {5: struct.pack("=I", 30)}
    assert wire.config(wire.CMD_GET_CONFIG) == struct.pack("=BBH", 13, 1, 0)


def test_get_config_answer_is_parsed() -> None:
    body = wire.config(wire.CMD_SET_CONFIG, 900, 120, 300)  # the kernel answers GET_CONFIG with SET_CONFIG
    msg = b"\xff" * 8 + wire.frame(30, 0, 1, 0, body)
    assert wire.parse_config(msg, 8) == (900, 120, 300)
    assert wire.parse_config(wire.frame(30, 0, 1, 0, wire.config(wire.CMD_SET_CONFIG, 900)), 0) is None


class FakeIpvs:
    name = "ipvs"

    def __init__(self, owned: set[ServiceKey], flush: bool) -> None:
        self.owned = set(owned)
        self.programmed: dict[ServiceKey, Service] = {}
        self.kernel = [900, 120, 300]  # the kernel's defaults
        self.sets: list[tuple[int | None, int | None, int | None]] = []

    def reconcile(self, services: dict[ServiceKey, Service], only: set[ServiceKey] | None) -> int:
        self.programmed = dict(services)
        self.owned = set(services)
        return 0

    def set_timeouts(self, tcp: int | None, tcpfin: int | None, udp: int | None) -> int:
        want = (tcp, tcpfin, udp)
        if all(w is None or w == h for w, h in zip(want, self.kernel, strict=True)):
            return 0
        self.sets.append(want)
        self.kernel = [h if w is None else w for w, h in zip(want, self.kernel, strict=True)]
        return 1

    def clear(self, flush_all: bool = False) -> int:
        return 0


def test_engine_applies_timeouts_at_start_and_on_a_changing_reload(tmp_path: Path) -> None:
    fakes: list[FakeIpvs] = []

    def factory(owned: set[ServiceKey], flush: bool) -> FakeIpvs:
        fakes.append(FakeIpvs(owned, flush))
        return fakes[-1]

    eng = Engine(str(tmp_path), ipvs_probe=lambda: True, ipvs_factory=factory, sysctls=False)
    g = "global_defs {\n    lb_backend ipvs\n    lvs_timeouts tcp 7200 udp 60\n}\n"
    assert eng.configure(config(g + VS)).changes == 1
    assert fakes[0].sets == [(7200, None, 60)] and fakes[0].kernel == [7200, 120, 60]
    assert eng.configure(config(g + VS)).changes == 0  # a reload that keeps them sends nothing
    eng.configure(config(g.replace("tcp 7200", "tcp 3600") + VS))
    assert fakes[0].sets[-1] == (3600, None, 60) and fakes[0].kernel == [3600, 120, 60]
    eng.configure(config("global_defs {\n    lb_backend ipvs\n}\n" + VS))  # none given: nothing touched
    assert len(fakes[0].sets) == 2


class FakeNft:
    name = "nftables"

    def __init__(self) -> None:
        self.programmed: dict[ServiceKey, Service] = {}

    def reconcile(self, services: dict[ServiceKey, Service]) -> int:
        self.programmed = dict(services)
        return 0

    def clear(self) -> int:
        return 0


def test_nftables_says_once_that_timeouts_are_not_applied(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    eng = Engine(str(tmp_path), ipvs_probe=lambda: False, nft_factory=FakeNft, sysctls=False)
    c = config("global_defs {\n    lvs_timeouts tcp 7200\n}\n" + VS)
    with caplog.at_level(logging.WARNING, logger="pykeepalived.ipvs"):
        eng.configure(c)
        eng.configure(c)
    said = [r.getMessage() for r in caplog.records if "lvs_timeouts" in r.getMessage()]
    assert len(said) == 1 and "not applied" in said[0] and "nftables" in said[0]
