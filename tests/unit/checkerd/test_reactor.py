"""The checker reactor's timers: routine timers are bucketed, urgent ones jump a late loop's backlog."""

from __future__ import annotations

import asyncio
import time

from checkerd.reactor import RESOLUTION, reactor


def test_urgent_timer_runs_before_routine_backlog() -> None:
    order: list[str] = []

    async def main() -> None:
        r = reactor()
        t = r.time() + 0.02
        for i in range(3):
            r.call_at(t + i * RESOLUTION, order.append, f"routine{i}")
        r.call_urgent(t + 3 * RESOLUTION, order.append, "urgent")
        r.call_at(t + 0.5, order.append, "later")
        time.sleep(0.1)  # a stalled loop: every timer above but "later" is due when it wakes up
        await asyncio.sleep(0.05)
        r.close()

    asyncio.run(main())
    # due last, run first: the backlog of routine timers waits behind it, "later" is not run early
    assert order == ["urgent", "routine0", "routine1", "routine2"]

