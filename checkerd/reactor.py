"""The checker's hot path: one timer wheel and one private epoll set, nested in the role's asyncio loop.

Thousands of checkers at ``delay_loop 1`` mean thousands of timers and sockets a second. Giving each
checker a task that sleeps, and each socket asyncio's ``add_reader``/``add_writer`` bookkeeping, costs
more CPU than the checks themselves. So:

* :class:`Reactor` keeps timers in buckets of :data:`RESOLUTION` seconds; the asyncio loop holds one
  timer per non-empty bucket, not one per checker. A timer fires at most one resolution late, well
  inside keepalived's tolerance (its own timer thread rounds too). Timers are never removed: whoever
  armed one checks on firing that it still matters (cheaper than cancelling thousands a second).
* A few timers are urgent (:meth:`Reactor.call_urgent`): a retry after a failed attempt, whose
  outcome decides a transition. They are exact, not bucketed, and whenever the reactor gets the loop
  (a bucket fires, sockets are ready) it runs the urgent timers that are due first. On a busy loop a
  timer waits behind everything due before it; a retry must not wait behind a backlog of thousands
  of routine checks, or a server's death is reported a loop backlog late. A timer armed while an
  urgent one runs is urgent too (the retry's connect timeout, its HTTP read deadline), unless armed
  with :meth:`Reactor.call_routine` (the checker's next routine attempt).
* It owns a private ``epoll`` whose descriptor is registered once with the asyncio loop as a reader;
  when it becomes readable, every ready socket is dispatched straight to its callback. Registering a
  socket is one ``epoll_ctl`` in C; closing a socket removes it from the set by itself.

There is one Reactor per event loop (:func:`reactor`), kept on the loop object and gone with it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import select
import sys
from collections.abc import Callable
from typing import Any

RESOLUTION = 0.005  # seconds per timer bucket
MAX_EVENTS = 256  # ready sockets handled per wakeup: timers and other work get their turn in between

IN = select.EPOLLIN | select.EPOLLRDHUP
OUT = select.EPOLLOUT

_ATTR = "_pykeepalived_checker_reactor"  # where a loop keeps its Reactor (dies with the loop)


class Reactor:
    """Bucketed timers and a nested epoll set for one asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.time = loop.time
        self._buckets: dict[int, list[tuple[Callable[[Any], None], Any]]] = {}
        self._urgent: list[tuple[float, int, Callable[[Any], None], Any]] = []  # a heap on (when, seq)
        self._seq = itertools.count()
        self._in_urgent = False  # an urgent timer is running: timers it arms are urgent too
        self._ep = select.epoll()
        self._fds: dict[int, Callable[[int], None]] = {}
        loop.add_reader(self._ep.fileno(), self._dispatch)

    # -- timers ----------------------------------------------------------------------------------

    def call_at(self, when: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``fn(arg)`` at loop time ``when`` (rounded up to the bucket; exact and urgent if armed
        by an urgent timer)."""
        if self._in_urgent:
            return self.call_urgent(when, fn, arg)
        self.call_routine(when, fn, arg)

    def call_routine(self, when: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``fn(arg)`` at loop time ``when`` (rounded up to the bucket), never urgent."""
        slot = math.ceil(when / RESOLUTION)
        bucket = self._buckets.get(slot)
        if bucket is None:
            self._buckets[slot] = [(fn, arg)]
            self.loop.call_at(slot * RESOLUTION, self._fire, slot)
        else:
            bucket.append((fn, arg))

    def call_later(self, delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        self.call_at(self.time() + delay, fn, arg)

    def call_urgent(self, when: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``fn(arg)`` at loop time ``when``, exactly and ahead of the routine timers then due."""
        heapq.heappush(self._urgent, (when, next(self._seq), fn, arg))
        self.loop.call_at(when, self._run_urgent)

    def _run_urgent(self) -> None:
        urgent = self._urgent
        if not urgent:
            return
        now = self.time()
        self._in_urgent = True
        try:
            while urgent and urgent[0][0] <= now:
                _, _, fn, arg = heapq.heappop(urgent)
                try:
                    fn(arg)
                except Exception:
                    self.loop.call_exception_handler({"message": "checker timer callback failed",
                                                      "exception": _current_exception()})
        finally:
            self._in_urgent = False

    def _fire(self, slot: int) -> None:
        if self._urgent:
            self._run_urgent()
        for fn, arg in self._buckets.pop(slot, ()):
            try:
                fn(arg)
            except Exception:  # one broken callback must not starve the rest of its bucket
                self.loop.call_exception_handler({"message": "checker timer callback failed",
                                                  "exception": _current_exception()})

    # -- sockets ---------------------------------------------------------------------------------

    def register(self, fd: int, events: int, fn: Callable[[int], None]) -> None:
        """Call ``fn(events)`` whenever ``fd`` is ready for ``events`` (level-triggered)."""
        self._fds[fd] = fn
        self._ep.register(fd, events)

    def modify(self, fd: int, events: int, fn: Callable[[int], None]) -> None:
        self._fds[fd] = fn
        self._ep.modify(fd, events)

    def forget(self, fd: int) -> None:
        """Before closing ``fd``: closing removes it from epoll, but our table must forget it too."""
        self._fds.pop(fd, None)

    def unregister(self, fd: int) -> None:
        if self._fds.pop(fd, None) is not None:
            try:
                self._ep.unregister(fd)
            except OSError:
                pass

    def _dispatch(self) -> None:
        if self._urgent:
            self._run_urgent()
        fds = self._fds
        for fd, ev in self._ep.poll(0, MAX_EVENTS):
            fn = fds.get(fd)
            if fn is None:
                continue
            try:
                fn(ev)
            except Exception:
                self.loop.call_exception_handler({"message": "checker socket callback failed",
                                                  "exception": _current_exception()})

    @property
    def sockets(self) -> int:
        return len(self._fds)

    def close(self) -> None:
        if not self._ep.closed:
            self.loop.remove_reader(self._ep.fileno())
            self._ep.close()


def _current_exception() -> BaseException | None:
    return sys.exc_info()[1]


def reactor(loop: asyncio.AbstractEventLoop | None = None) -> Reactor:
    """The Reactor of ``loop`` (the running loop by default), created on first use."""
    loop = loop or asyncio.get_running_loop()
    r: Reactor | None = getattr(loop, _ATTR, None)
    if r is None or r._ep.closed:
        r = Reactor(loop)
        setattr(loop, _ATTR, r)
    return r
