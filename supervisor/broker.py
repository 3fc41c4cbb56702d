"""The supervisor's side of the bus: the XSUB/XPUB forwarder with its last-value cache, and the ROUTER.

Sockets, all ipc:// in the run dir (``supervisor.bus.endpoint``), created with umask 077 in a 0700
directory so only root can connect:

* ``pub`` (XSUB, bound): every role's PUB connects here. The broker subscribes to everything, decodes
  each message (rejects are dropped and counted), stamps it with the next broker sequence, applies it
  to the cache and forwards ``[topic, body, bseq]`` on ``sub``.
* ``sub`` (XPUB, bound): roles and ``pykeepalivectl events`` subscribe here. A welcome message tells a
  new subscriber that its subscription is in place (then it asks for a snapshot).
* ``ctl`` (ROUTER, bound): requests ``{"v": 1, "cmd": ..., ...}`` from roles (``snapshot``) and from
  ``pykeepalivectl`` (status, reload, restart, dump); each gets one JSON reply
  ``{"ok": bool, "result"|"error": ...}``. Requests are handed to the supervisor's dispatcher.

The supervisor publishes its own state (``cfg.generation``) through the same path as a role would, so
it is cached and ordered like everything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import zmq
import zmq.asyncio

from supervisor.bus import (
    CTL_NAME,
    MAX_MESSAGE_SIZE,
    PUB_NAME,
    SUB_NAME,
    Envelope,
    Rejects,
    bseq_frame,
    endpoint,
    enter_run_dir,
)
from supervisor.cache import LastValueCache

log = logging.getLogger("pykeepalived.supervisor")

WELCOME = b"welcome"
Request = dict[str, Any]
RequestHandler = Callable[[Request], Awaitable[Any]]


class Broker:
    def __init__(self, run_dir: str, on_message: Callable[[Envelope], None], on_request: RequestHandler) -> None:
        self.run_dir = run_dir
        self.on_message = on_message
        self.on_request = on_request
        self.cache = LastValueCache()
        self.rejects = Rejects()
        self.forwarded = 0
        self.ctx = zmq.asyncio.Context()
        self._tasks: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()

    def bind(self) -> None:
        enter_run_dir(self.run_dir)
        old = os.umask(0o077)
        try:
            self.xsub = self.ctx.socket(zmq.XSUB)
            self.xsub.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_SIZE + 4096)
            self.xsub.bind(endpoint(self.run_dir, PUB_NAME))
            self.xsub.send(b"\x01")  # subscribe to everything: the cache must see every message
            self.xpub = self.ctx.socket(zmq.XPUB)
            self.xpub.setsockopt(zmq.XPUB_WELCOME_MSG, WELCOME)
            self.xpub.setsockopt(zmq.SNDHWM, 100000)
            self.xpub.bind(endpoint(self.run_dir, SUB_NAME))
            self.router = self.ctx.socket(zmq.ROUTER)
            self.router.setsockopt(zmq.MAXMSGSIZE, 1024 * 1024)
            self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
            self.router.bind(endpoint(self.run_dir, CTL_NAME))
        finally:
            os.umask(old)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(t()) for t in (self._forward, self._subscriptions, self._requests)]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.ctx.destroy(linger=0)
        for name in (PUB_NAME, SUB_NAME, CTL_NAME):
            try:
                os.unlink(os.path.join(self.run_dir, name))
            except OSError:
                pass

    def publish(self, env: Envelope) -> None:
        """Publish a message of the supervisor's own, cached and sequenced like any other."""
        self._stamp_and_forward(env, env.to_wire())

    def _stamp_and_forward(self, env: Envelope, frames: list[bytes]) -> None:
        bseq = self.cache.stamp(env)
        self.forwarded += 1
        try:
            self.xpub.send_multipart([frames[0], frames[1], bseq_frame(bseq)], flags=zmq.NOBLOCK)
        except zmq.ZMQError as e:
            log.debug("forward of %s failed: %s", env.topic, e)

    async def _forward(self) -> None:
        while True:
            try:
                frames = await self.xsub.recv_multipart()
            except zmq.ZMQError as e:  # e.g. EINTR; the socket is still usable
                log.warning("bus receive failed: %s", e)
                await asyncio.sleep(0.01)
                continue
            env = self.rejects.decode(frames)
            if env is None:
                continue
            self._stamp_and_forward(env, frames)
            try:
                self.on_message(env)
            except Exception:
                log.exception("Error handling bus message %s", env.topic)

    async def _subscriptions(self) -> None:
        # Reading the XPUB processes subscriptions promptly; their content is not needed.
        while True:
            await self.xpub.recv_multipart()

    async def _requests(self) -> None:
        while True:
            frames = await self.router.recv_multipart()
            ident, body = frames[0], frames[-1]
            try:
                req = json.loads(body)
                if not isinstance(req, dict) or req.get("v") != 1 or not isinstance(req.get("cmd"), str):
                    raise ValueError("expected {\"v\": 1, \"cmd\": ...}")
            except ValueError as e:
                self.rejects.by_reason["ctl"] += 1
                await self._reply(ident, frames, {"ok": False, "error": f"bad request: {e}"})
                continue
            # Served concurrently (a reload must not hold up snapshot requests); keep a reference so
            # the task is not garbage-collected mid-flight.
            task = asyncio.create_task(self._serve(ident, frames, req))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _serve(self, ident: bytes, frames: list[bytes], req: Request) -> None:
        try:
            if req["cmd"] == "snapshot":
                result: Any = self.snapshot(req.get("prefixes") or [""])
            else:
                result = await self.on_request(req)
            reply = {"ok": True, "result": result}
        except RequestError as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:
            log.exception("Error serving control request %s", req.get("cmd"))
            reply = {"ok": False, "error": f"internal error: {e}"}
        await self._reply(ident, frames, reply)

    async def _reply(self, ident: bytes, frames: list[bytes], reply: dict[str, Any]) -> None:
        # Keep the envelope the client sent (an empty delimiter frame for REQ, maybe none for DEALER).
        head = frames[:-1]
        try:
            await self.router.send_multipart([*head, json.dumps(reply, default=str).encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError as e:
            log.debug("reply to %r failed: %s", ident, e)

    def snapshot(self, prefixes: list[str]) -> dict[str, Any]:
        bseq = self.cache.bseq
        items: list[tuple[int, Envelope]] = []
        for p in prefixes:
            items.extend(self.cache.snapshot(str(p))[1])
        items.sort(key=lambda x: x[0])
        return {"bseq": bseq, "items": [[b, json.loads(e.to_wire()[1])] for b, e in items]}


class RequestError(Exception):
    """A control request that cannot be served; its message goes back to the client."""
