"""The checker role: resume from the cache without an alpha flap, reload keeps unchanged checkers."""

from __future__ import annotations

import asyncio
from typing import Any

from checkerd.daemon import CheckerRole
from supervisor.bus import Envelope
from supervisor.cache import Mirror
from supervisor.config.load import load_text
from supervisor.config.model.config import Config

KEY = "203.0.113.1:80/127.0.0.1:1"  # port 1 on loopback: refused at once


def config(extra: str = "") -> Config:
    r = load_text("virtual_server 203.0.113.1 80 {\n protocol TCP\n delay_loop 0.2\n"
                  " real_server 127.0.0.1 1 {\n TCP_CHECK {\n retry 0\n warmup 0\n alpha\n connect_timeout 0.2\n"
                  f" }}\n{extra} }}\n}}\n")
    assert r.config is not None, [str(p) for p in r.diag]
    return r.config


class Rt:
    def __init__(self, cached: dict[str, Any] | None = None) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.mirror = Mirror()
        items = [] if cached is None else [(1, Envelope(f"checker.rs.{KEY}", "state", "checker", 1, 1, 1, 0.0, cached))]
        self.mirror.on_snapshot(1, items)

    def publish(self, topic: str, kind: str, data: Any = None) -> None:
        self.sent.append((topic, kind, data))


def test_resume_keeps_a_server_up_until_a_check_says_otherwise() -> None:
    async def go() -> list[tuple[str, str, Any]]:
        role, rt = CheckerRole(), Rt({"health": "up", "weight": 1})
        await role.start(rt, config(), 1)  # type: ignore[arg-type]
        first = list(rt.sent)
        await asyncio.sleep(0.5)
        await role.stop(True, lambda n: None)
        return [*first, ("--", "", None), *rt.sent[len(first):]]

    sent = asyncio.run(go())
    assert sent[0][2]["health"] == "up"  # alpha is not applied to a resumed server
    downs = [d for _, k, d in sent if k == "state" and d["health"] == "down"]
    assert downs and "Connection failed" in downs[0]["reason"] and downs[0]["failed"] == "TCP_CHECK 127.0.0.1:1"


def test_fresh_start_with_alpha_starts_down_and_reload_keeps_checkers() -> None:
    async def go() -> tuple[bool, bool, str]:
        role, rt = CheckerRole(), Rt()
        await role.start(rt, config(), 1)  # type: ignore[arg-type]
        first = rt.sent[0][2]["health"]
        runner = role.manager.servers[KEY].runners[0]
        await role.apply(config(" weight 3\n"), 2)  # the real server changes, its checker does not
        kept = role.manager.servers[KEY].runners[0] is runner
        await role.apply(config().__class__(), 3)  # everything removed
        gone = runner.cancelled
        await asyncio.sleep(0)
        return kept, gone, first

    kept, gone, first = asyncio.run(go())
    assert (kept, gone, first) == (True, True, "down")
