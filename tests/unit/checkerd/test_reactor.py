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



def test_timer_armed_by_urgent_timer_is_urgent_unless_routine() -> None:
    order: list[str] = []

    async def main() -> None:
        r = reactor()
        t = r.time() + 0.02

        def retry(_: object) -> None:
            # as a retry attempt does: arm its timeout (inherits urgency) and, when done, the next
            # routine attempt (call_routine: back in the buckets)
            r.call_at(t + 0.03, order.append, "retry timeout")
            r.call_routine(t + 0.03, order.append, "next routine attempt")

        r.call_urgent(t, retry)
        time.sleep(0.05)
        await asyncio.sleep(0)  # the retry runs and arms both timers
        for i in range(3):
            r.call_at(t + 0.03 - (i + 1) * RESOLUTION, order.append, f"routine{i}")
        time.sleep(0.05)  # stalled again: all due
        await asyncio.sleep(0.05)
        r.close()

    asyncio.run(main())
    assert order[0] == "retry timeout"
    assert order.index("next routine attempt") > order.index("routine0")
