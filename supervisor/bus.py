"""The bus envelope: the one message format every process speaks, and the bus endpoints.

Wire format (one ZeroMQ multipart message)::

    frame 0  topic   UTF-8, dot-separated, e.g. b"vrrp.instance.VI_1", b"hb.checker", b"cfg.generation"
    frame 1  body    UTF-8 JSON object:
                     {"v": 1,                 major version of this format (int)
                      "topic": "vrrp.…",      repeated, must equal frame 0
                      "kind": "state",        "state" | "delete" | "heartbeat" | "event" | "command"
                      "src": "vrrp",          sender role: supervisor | vrrp | checker | ipvs | ctl
                      "pid": 1234,            sender pid
                      "seq": 17,              sender's own sequence number, +1 per message sent
                      "gen": 3,               configuration generation the sender was running
                      "ts": 1764681600.123,   wall-clock time of sending (seconds, float)
                      "data": {...}}          payload, a JSON object
    frame 2  bseq    (only on messages forwarded by the broker) 8-byte big-endian unsigned: the
                     broker's sequence number for this message, the same counter the last-value cache
                     uses in its snapshots (see ``supervisor.cache``).

Compatibility: a receiver rejects a body whose major ``v`` it does not know and ignores keys it does
not know, so a minor addition is a new key and needs no version change. A rejected message is dropped
and counted by reason (``Rejects``); nothing malformed ever raises past ``from_wire``.

Topics in use (``kind`` in brackets; "state" keys are kept by the last-value cache):

    cfg.generation            [state]      supervisor: {"gen", "path"} the generation roles must run
    role.<role>               [state]      a role: {"state": "ready"|"stopping", "gen", "pid"};
                                           deleted when it has stopped
    hb.<role>                 [heartbeat]  a role, every hb_interval: {"gen", "loop_lag_ms", "progress",
                                           "stopping"} (progress counts teardown steps during a stop)
    vrrp.instance.<name>      [state]      vrrp: {"state", "priority", "interface", "vips"}
    vrrp.resume               [state]      vrrp: {"instances", "clock": "monotonic"} what a respawned
                                           vrrp role needs to resume as MASTER safely (last adverts)
    vrrp.stats                [state]      vrrp: counters (adverts, drops by reason), published periodically
    checker.rs.<vs>/<rs>      [state]      checker: {"vs", "rs", "health": "up"|"down", "weight", "reason",
                                           "failed", "dynamic_weight", …}
    ipvs.vs.<vs>              [state]      ipvs: {"scheduler", "method", "protocol", "real_servers",
                                           "up", "programmed"}

``<vs>`` is ``ADDR:PORT``, ``fwmark:N`` or ``group:NAME``; ``<rs>`` is ``ADDR:PORT``.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
MAX_MESSAGE_SIZE = 4 * 1024 * 1024  # a full state dump of a big config fits; anything bigger is a bug
KINDS = frozenset({"state", "delete", "heartbeat", "event", "command"})
ROLES = frozenset({"supervisor", "vrrp", "checker", "ipvs", "ctl"})

# Unix socket paths are limited to 107 bytes (sun_path); names are kept short so most run dirs fit.
PUB_NAME = "pub"  # broker's XSUB: roles publish into it
SUB_NAME = "sub"  # broker's XPUB: roles and `pykeepalivectl events` subscribe from it
CTL_NAME = "ctl"  # supervisor's ROUTER: control commands and snapshot requests
_SUN_PATH_MAX = 107


class BusError(ValueError):
    """A message that cannot be accepted; ``reason`` is a short stable key used for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Envelope:
    topic: str
    kind: str
    src: str
    pid: int
    seq: int
    gen: int
    ts: float
    data: dict[str, Any] = field(default_factory=dict)
    v: int = VERSION

    def to_wire(self) -> list[bytes]:
        body = {
            "v": self.v,
            "topic": self.topic,
            "kind": self.kind,
            "src": self.src,
            "pid": self.pid,
            "seq": self.seq,
            "gen": self.gen,
            "ts": self.ts,
            "data": self.data,
        }
        return [self.topic.encode(), json.dumps(body, separators=(",", ":")).encode()]

    @classmethod
    def from_wire(cls, frames: list[bytes]) -> Envelope:
        """Decode frames 0 and 1 (a broker's frame 2 is read by ``split_bseq``)."""
        if len(frames) < 2:
            raise BusError("frames", f"{len(frames)} frame(s)")
        topic_b, body_b = frames[0], frames[1]
        if len(body_b) > MAX_MESSAGE_SIZE:
            raise BusError("too-big", f"{len(body_b)} bytes")
        try:
            topic = topic_b.decode()
            body = json.loads(body_b)
        except (UnicodeDecodeError, ValueError) as e:
            raise BusError("json", str(e))
        if not isinstance(body, dict):
            raise BusError("json", "body is not an object")
        v = body.get("v")
        if type(v) is not int:
            raise BusError("version", f"missing or non-integer v: {v!r}")
        if v != VERSION:
            raise BusError("version", f"unknown major version {v}")
        try:
            env = cls(
                topic=_typed(body, "topic", str),
                kind=_typed(body, "kind", str),
                src=_typed(body, "src", str),
                pid=_typed(body, "pid", int),
                seq=_typed(body, "seq", int),
                gen=_typed(body, "gen", int),
                ts=float(_typed(body, "ts", (int, float))),
                data=_typed(body, "data", dict),
                v=v,
            )
        except KeyError as e:
            raise BusError("field", f"missing {e.args[0]}")
        if env.topic != topic:
            raise BusError("topic", f"frame {topic!r} != body {env.topic!r}")
        if env.kind not in KINDS:
            raise BusError("kind", env.kind)
        return env


def _typed(body: dict[str, Any], key: str, types: type | tuple[type, ...]) -> Any:
    value = body[key]
    # bool is an int in Python, never a valid pid/seq/gen on the wire.
    if not isinstance(value, types) or isinstance(value, bool):
        raise BusError("field", f"{key} has type {type(value).__name__}")
    return value


def split_bseq(frames: list[bytes]) -> int | None:
    """The broker's sequence number on a forwarded message, or None on an unstamped one."""
    if len(frames) >= 3 and len(frames[2]) == 8:
        return int.from_bytes(frames[2], "big")
    return None


def bseq_frame(bseq: int) -> bytes:
    return bseq.to_bytes(8, "big")


@dataclass
class Rejects:
    """Counts rejected messages by reason, for status and tests."""

    by_reason: Counter[str] = field(default_factory=Counter)

    def decode(self, frames: list[bytes]) -> Envelope | None:
        try:
            return Envelope.from_wire(frames)
        except BusError as e:
            self.by_reason[e.reason] += 1
            return None

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


@dataclass
class Publisher:
    """Stamps envelopes for one sender: its role, pid, own sequence and current generation."""

    src: str
    gen: int = 0
    pid: int = field(default_factory=os.getpid)
    seq: int = 0

    def make(self, topic: str, kind: str, data: dict[str, Any] | None = None) -> Envelope:
        self.seq += 1
        return Envelope(topic, kind, self.src, self.pid, self.seq, self.gen, time.time(), data or {})


def endpoint(run_dir: str, name: str) -> str:
    """The ipc:// endpoint for one of the bus sockets of the daemon that uses ``run_dir``.

    A path that does not fit in sun_path (107 bytes) is given relative to the run dir, and every
    process that binds or connects works with the run dir as its current directory (``enter_run_dir``);
    the socket stays a file in the 0700 run dir, so its permissions still protect it. (The abstract
    namespace would avoid the limit too, but it is per network namespace and has no permissions:
    ``pykeepalivectl`` in the root namespace could not reach a daemon running under -s.)
    """
    path = os.path.join(os.path.abspath(run_dir), name)
    if len(path.encode()) <= _SUN_PATH_MAX:
        return f"ipc://{path}"
    return f"ipc://{name}"


def enter_run_dir(run_dir: str) -> None:
    """Make ``run_dir`` the current directory, so relative endpoints resolve (also on reconnects)."""
    os.chdir(run_dir)
