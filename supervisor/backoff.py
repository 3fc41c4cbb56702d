"""Restart backoff for a role that keeps dying: keepalived's policy, with the issue's free restarts.

keepalived (``lib/scheduler.c: calc_restart_delay``) restarts a child at once if it ran more than 60 s,
otherwise after a stored delay that moves 0 → 1 → 2 → 4 … → 60 s: a crash loop costs 0, 1, 2, 4 … s.
Our issue asks for one more thing: "restarted at once; after 3 deaths within 60 s it backs off
(1, 2, 4 … 60 s, reset once it has run 60 s)", i.e. a crash loop costs 0, 0, 0, 1, 2, 4 … 60, 60 s.

How the two are reconciled (the choice, documented):

* A *streak* is the run of consecutive deaths in which every life was shorter than ``stable`` (60 s).
  A life of at least 60 s ends the streak: the next death restarts at once and counts as death 1.
  This is keepalived's reset rule, and it reads "3 deaths within 60 s" as "3 lives shorter than 60 s
  each". A strict sliding 60 s window would let a role that crashes every 30 s restart for ever with
  no delay, which is exactly the spin the backoff exists to prevent.
* Deaths 1 … ``free`` (3) of a streak restart immediately, so one crash never costs an HA pair a
  failover; death ``free + k`` waits ``min(cap, 2 ** (k - 1))`` s: 1, 2, 4, 8, 16, 32, 60, 60 ….
* Uptime is measured from the spawn to the death, on a monotonic clock supplied by the caller, so the
  policy is a pure function of its inputs and is unit-tested with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    free: int = 3  # deaths in a streak restarted without delay
    first: float = 1.0  # first delay after the free restarts
    cap: float = 60.0  # longest delay
    stable: float = 60.0  # a life this long ends the streak
    scale: float = 1.0  # test hook: all delays and the stable time multiplied by this

    def delay_for(self, death_in_streak: int) -> float:
        """Delay before the restart that follows death number ``death_in_streak`` (1-based)."""
        k = death_in_streak - self.free
        if k <= 0:
            return 0.0
        return min(self.cap, self.first * 2 ** (k - 1)) * self.scale


@dataclass(slots=True)
class Backoff:
    """Per-role backoff state: how many deaths the current streak has."""

    policy: BackoffPolicy = BackoffPolicy()
    streak: int = 0

    def on_death(self, uptime: float) -> float:
        """Record a death after ``uptime`` seconds of life; return the delay before the restart."""
        if uptime >= self.policy.stable * self.policy.scale:
            self.streak = 0
        self.streak += 1
        return self.policy.delay_for(self.streak)

    def reset(self) -> None:
        """A commanded restart or stop is not a death: it starts a fresh streak."""
        self.streak = 0
