"""The last-value cache of bus state and the subscriber-side mirror that follows it.

ZeroMQ PUB/SUB drops what is published before a subscriber's subscription is in place (the "slow
joiner") and across reconnects, and for us most messages are *state* (VRRP instance is MASTER, real
server is up), not notifications. So we follow the zguide "Clone" pattern:

* The broker stamps every message it forwards with ``bseq``, a counter it owns, and keeps the last
  envelope of every state key (``LastValueCache``). ``kind == "delete"`` removes a key; heartbeats,
  events and commands are forwarded but not cached.
* A role that (re)starts subscribes first, then asks for a snapshot. The snapshot carries the bseq of
  the last message applied to the cache. While it waits, the role buffers live updates
  (``Mirror``); once the snapshot arrives it applies the snapshot, then only the buffered and later
  updates whose bseq is greater than the snapshot's. Nothing is lost and nothing is applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from supervisor.bus import Envelope

CACHED_KINDS = frozenset({"state", "delete"})


@dataclass
class LastValueCache:
    """Broker side: the latest envelope per state topic and the sequence that orders them."""

    bseq: int = 0
    entries: dict[str, tuple[int, Envelope]] = field(default_factory=dict)

    def stamp(self, env: Envelope) -> int:
        """Give ``env`` the next broker sequence and apply it to the cache if it is state."""
        self.bseq += 1
        if env.kind == "state":
            self.entries[env.topic] = (self.bseq, env)
        elif env.kind == "delete":
            self.entries.pop(env.topic, None)
        return self.bseq

    def snapshot(self, prefix: str = "") -> tuple[int, list[tuple[int, Envelope]]]:
        """(bseq now, [(bseq, envelope) for every key under prefix]), oldest first."""
        items = sorted((v for k, v in self.entries.items() if k.startswith(prefix)), key=lambda x: x[0])
        return self.bseq, items

    def drop_sender(self, src: str, keep_pid: int | None = None) -> list[str]:
        """Forget state published by an earlier process of role ``src`` (not by ``keep_pid``).

        Used when a role is stopped for good (no longer configured): its keys would otherwise describe
        instances nobody runs. A role that is only being respawned keeps its keys; the new process
        republishes them.
        """
        gone = [k for k, (_, e) in self.entries.items() if e.src == src and e.pid != keep_pid]
        for k in gone:
            del self.entries[k]
        return gone

    def values(self, prefix: str = "") -> dict[str, Envelope]:
        return {k: e for k, (_, e) in self.entries.items() if k.startswith(prefix)}


@dataclass
class Mirror:
    """Subscriber side: rebuilds the broker's state from one snapshot plus the live updates."""

    prefix: str = ""
    synced: bool = False
    snapshot_bseq: int = -1
    last_bseq: int = -1
    state: dict[str, Envelope] = field(default_factory=dict)
    _pending: list[tuple[int, Envelope]] = field(default_factory=list)

    def on_update(self, bseq: int | None, env: Envelope) -> bool:
        """Feed one live message; True if it changed the mirror now."""
        if not env.topic.startswith(self.prefix) or env.kind not in CACHED_KINDS:
            return False
        if bseq is None:
            # Not stamped by the broker: cannot be ordered against a snapshot; ignore it.
            return False
        if not self.synced:
            self._pending.append((bseq, env))
            return False
        return self._apply(bseq, env)

    def on_snapshot(self, bseq: int, items: Iterable[tuple[int, Envelope]]) -> None:
        self.state = {}
        self.snapshot_bseq = self.last_bseq = bseq
        for _, env in items:
            if env.topic.startswith(self.prefix) and env.kind == "state":
                self.state[env.topic] = env
        self.synced = True
        pending, self._pending = self._pending, []
        for b, env in sorted(pending, key=lambda x: x[0]):
            self._apply(b, env)

    def _apply(self, bseq: int, env: Envelope) -> bool:
        if bseq <= self.last_bseq:
            return False  # already contained in the snapshot, or a duplicate
        self.last_bseq = bseq
        if env.kind == "delete":
            return self.state.pop(env.topic, None) is not None
        self.state[env.topic] = env
        return True
