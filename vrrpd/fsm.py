"""The VRRP state machine of one instance, as a table, with keepalived's timer rules. Pure: no I/O.

The machine is driven by events (``Event``) carrying the current monotonic time, so tests use a fake
clock and the role uses ``loop.time()``. Each event is looked up in ``TABLE[(state, event)]`` (FRR's
``vrrp_change_state_handlers`` idea: an event with no entry is ignored and counted); the handler
updates the timers and returns *actions* (send an advert, add or remove the VIPs, a transition) that
the role carries out in order: critical actions (advert first, then VIPs) come before the transition
notice, which the role turns into logs, notify scripts and a bus message.

Timers (keepalived ``vrrp.h``, RFC 3768/5798):

* ``skew = (256 - prio) / 256 s`` for v2, ``(256 - prio) * master_adver_int / 256`` for v3;
* ``master_down_interval = down_timer_adverts * master_adver_int + skew``;
* v3: a BACKUP adopts the master's advertised interval; a MASTER advertises its own;
* initial state: an address owner (255) wanting MASTER becomes MASTER at once; ``state MASTER`` below
  255 waits one interval plus the minimal skew; otherwise the full master_down_interval;
* a BACKUP hearing priority 0 takes over after the skew; hearing a lower priority with preemption on,
  it lets its down timer run out (no reset); ``preempt_delay`` accepts lower priorities until the
  delay has passed since the first one;
* two address owners (keepalived's answer to a configuration error the RFC leaves open): hearing
  priority 255 from another owner, the one with the lower address backs off like for any equal
  priority; the one with the higher address sends two more adverts, then watches for
  1.2 x max(both intervals): a rogue advert in that window lowers its effective priority to 254 so
  it backs off too. 255 comes back on becoming MASTER, or as BACKUP on an advert from another master
  or with a priority other than 255.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum


class State(IntEnum):
    # keepalived's numbering (notify_fifo and SNMP use the names; the numbers match VRRP_STATE_*)
    INIT = 0
    BACKUP = 1
    MASTER = 2
    FAULT = 3


class Event(Enum):
    START = "start"  # the instance is ready to run (interface up, trackers fine)
    RESUME = "resume"  # start as MASTER, keeping the VIPs (safe resume after a respawn)
    TIMER = "timer"  # the current deadline passed (advert timer as MASTER, master-down as BACKUP)
    ADVERT = "advert"  # a valid advert (arg: Heard)
    FAULT = "fault"  # a tracker says the instance cannot work
    RECOVER = "recover"  # every fault cleared
    STOP = "stop"  # shutdown (arg: True to release: priority 0 and VIP removal)


@dataclass(frozen=True, slots=True)
class Heard:
    """What the machine needs from a validated advert."""

    src: str
    priority: int
    interval_cs: int


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # send | vips_add | vips_del | garp | transition | log (reason: the message)
    priority: int = 0  # send: the priority to advertise
    old: State = State.INIT  # transition
    new: State = State.INIT  # transition
    reason: str = ""


@dataclass(frozen=True)
class Params:
    version: int = 3
    priority: int = 100  # configured (base) priority
    interval_cs: int = 100
    own_address: str = ""  # compared with an equal-priority sender's address
    initial_master: bool = False  # state MASTER (or the owner's default)
    preempt: bool = True
    preempt_delay: float = 0.0
    down_timer_adverts: int = 3
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False

    @property
    def owner(self) -> bool:
        return self.priority == 255


OWNER = 255
ROGUE_ADVERTS = 2  # adverts the owner with the higher address sends before it watches the rogue owner


def skew(version: int, priority: int, master_interval_cs: int) -> float:
    """Skew_Time in seconds."""
    if version == 2:
        return (256 - priority) / 256.0
    return (256 - priority) * master_interval_cs / 25600.0


def _addr_key(addr: str) -> int:
    try:
        return int(ipaddress.ip_address(addr.split("%", 1)[0]))
    except ValueError:
        return 0


@dataclass
class Machine:
    params: Params
    state: State = State.INIT
    effective_priority: int = 0
    master_interval_cs: int = 0
    deadline: float | None = None  # monotonic seconds of the next TIMER event
    preempt_time: float | None = None
    master_address: str | None = None
    master_priority: int = 0
    ignored: int = 0  # events with no table entry
    transitions: int = 0
    rogue_counter: int = 0  # adverts still to send before watching a rogue address owner
    rogue_interval_cs: int = 0  # the rogue owner's advertised interval
    rogue_deadline: float | None = None  # a rogue advert before this makes us back off (254)
    _out: list[Action] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.effective_priority:
            self.effective_priority = self.params.priority
        if not self.master_interval_cs:
            self.master_interval_cs = self.params.interval_cs

    # -- timers ------------------------------------------------------------------------------------

    @property
    def _skew_prio(self) -> int:
        return 255 if self.params.owner else self.effective_priority

    def skew(self) -> float:
        return skew(self.params.version, self._skew_prio, self.master_interval_cs)

    def master_down_interval(self) -> float:
        return self.params.down_timer_adverts * self.master_interval_cs / 100.0 + self.skew()

    def advert_interval(self) -> float:
        return self.params.interval_cs / 100.0

    # -- driving -----------------------------------------------------------------------------------

    def handle(self, event: Event, now: float, arg: object = None) -> list[Action]:
        handler = TABLE.get((self.state, event))
        self._out = []
        if handler is None:
            self.ignored += 1
            return []
        handler(self, now, arg)
        out, self._out = self._out, []
        return out

    def set_priority(self, priority: int) -> None:
        """Trackers moved the effective priority; the next advert carries it (no state change here)."""
        self.effective_priority = priority

    def _go(self, new: State, reason: str) -> None:
        old, self.state = self.state, new
        self.transitions += 1
        self._out.append(Action("transition", old=old, new=new, reason=reason))

    def _log(self, message: str) -> None:
        self._out.append(Action("log", reason=message))

    def _forget_rogue(self) -> None:
        self.rogue_counter = 0
        self.rogue_deadline = None

    def _send(self, priority: int | None = None) -> None:
        self._out.append(Action("send", priority=self.effective_priority if priority is None else priority))

    # -- handlers ----------------------------------------------------------------------------------

    def _start(self, now: float, arg: object) -> None:
        self._begin(now, "start")

    def _recover(self, now: float, arg: object) -> None:
        self._begin(now, "fault cleared")  # leaving FAULT follows the start rules

    def _begin(self, now: float, reason: str) -> None:
        self.master_interval_cs = self.params.interval_cs
        self.preempt_time = None
        if self.params.owner and self.params.initial_master:
            self._become_master(now, f"{reason}: address owner")
            return
        if self.params.initial_master:
            # keepalived: one advert interval plus the minimal skew, then MASTER unless someone spoke
            wait = self.master_interval_cs / 100.0 + skew(self.params.version, 255, self.master_interval_cs)
        else:
            wait = self.master_down_interval()
        self._out.append(Action("vips_del"))  # nothing left over from before we knew our state
        self.deadline = now + wait
        self._go(State.BACKUP, reason)

    def _resume(self, now: float, arg: object) -> None:
        self.master_interval_cs = self.params.interval_cs
        self._send()
        self._out.append(Action("vips_add"))
        self.deadline = now + self.advert_interval()
        self._go(State.MASTER, "resumed after a restart")

    def _become_master(self, now: float, reason: str) -> None:
        # Advert first, so the old master drops its VIPs; then our VIPs and the GARPs.
        self.master_interval_cs = self.params.interval_cs
        self.preempt_time = None
        self.master_address = None
        self._send()
        if self.params.owner and self.effective_priority != OWNER:
            # keepalived restores it after that first advert: the other owner must have gone away
            self.effective_priority = OWNER
            self._log(f"Restoring our priority to {OWNER} since other address owner has disappeared")
        self._out.append(Action("vips_add"))
        self._out.append(Action("garp"))
        self.deadline = now + self.advert_interval()
        self._go(State.MASTER, reason)

    def _backup_timer(self, now: float, arg: object) -> None:
        self._become_master(now, "master down timer expired")

    def _master_timer(self, now: float, arg: object) -> None:
        self._send()
        if self.rogue_deadline is not None and now >= self.rogue_deadline:
            self.rogue_deadline = None
            self._log("rogue address owner appears to have stopped advertising")
        if self.rogue_counter:
            self.rogue_counter -= 1
            if not self.rogue_counter:
                # "a bit more than" the longer interval: the rogue had time to answer our two adverts
                wait = max(self.rogue_interval_cs, self.params.interval_cs) * 1.2 / 100.0
                self.rogue_deadline = now + wait
        # keep the phase: the next advert is one interval after the one that was due, not after now
        due = self.deadline if self.deadline is not None else now
        nxt = due + self.advert_interval()
        self.deadline = nxt if nxt > now else now + self.advert_interval()

    def _backup_advert(self, now: float, arg: object) -> None:
        assert isinstance(arg, Heard)
        p = self.params
        if p.owner and self.effective_priority == OWNER - 1 and (
                arg.src != self.master_address or arg.priority != OWNER):
            self.effective_priority = OWNER
            self._log(f"Restoring our priority to {OWNER} since received advert with lower priority")
        if arg.priority == 0:
            self.deadline = now + self.skew()
            return
        if p.version == 3:
            self.master_interval_cs = arg.interval_cs or p.interval_cs
        lower = arg.priority < self.effective_priority
        if lower and p.preempt and p.preempt_delay > 0 and not p.initial_master:
            if self.preempt_time is None:
                self.preempt_time = now + p.preempt_delay
        accept = (not p.preempt) or not lower or (self.preempt_time is not None and now < self.preempt_time)
        if not lower:
            self.preempt_time = None
        if accept:
            self.master_address, self.master_priority = arg.src, arg.priority
            self.deadline = now + self.master_down_interval()
        # rejected (lower priority, preemption on): the down timer keeps running out

    def _master_advert(self, now: float, arg: object) -> None:
        assert isinstance(arg, Heard)
        p = self.params
        if arg.priority == 0:
            self._send()
            self.deadline = now + self.advert_interval()
            return
        ours = self.effective_priority
        if p.owner and arg.priority == ours == OWNER and _addr_key(arg.src) != _addr_key(p.own_address):
            ours = self._two_owners(now, arg)
        theirs_wins = arg.priority > ours or (arg.priority == ours and _addr_key(arg.src) > _addr_key(p.own_address))
        if not theirs_wins:
            if not p.lower_prio_no_advert:
                self._send()
            return
        if p.higher_prio_send_advert:
            self._send()
        self._out.append(Action("vips_del"))
        if p.version == 3:
            self.master_interval_cs = arg.interval_cs or p.interval_cs
        self.master_address, self.master_priority = arg.src, arg.priority
        self.preempt_time = None
        self._forget_rogue()
        self.deadline = now + self.master_down_interval()
        self._go(State.BACKUP, f"higher priority advert from {arg.src}")

    def _two_owners(self, now: float, arg: Heard) -> int:
        """Another router claims to own the addresses too; returns our priority for the comparison."""
        conflict = f"CONFIGURATION ERROR: local instance and {arg.src} are both configured as address owner, " \
                   "please resolve"
        if _addr_key(arg.src) > _addr_key(self.params.own_address):
            self._log(conflict)  # its address is higher: we back off as for any equal priority
        elif self.rogue_deadline is not None and now < self.rogue_deadline:
            # it kept advertising after our two adverts: it will not back off, so we do
            self._log(f"{arg.src} is still advertising as address owner, please resolve - reducing our priority")
            self.rogue_deadline = None
            self.effective_priority = OWNER - 1
        else:
            self.rogue_deadline = None
            self.rogue_interval_cs = arg.interval_cs or self.params.interval_cs
            if not self.rogue_counter:
                self._log(conflict)
                self.rogue_counter = ROGUE_ADVERTS
        return self.effective_priority

    def _fault(self, now: float, arg: object) -> None:
        self._forget_rogue()
        if self.state == State.MASTER:
            self._send(0)
            self._out.append(Action("vips_del"))
        self.deadline = None
        self.preempt_time = None
        self._go(State.FAULT, str(arg or "fault"))

    def _stop(self, now: float, arg: object) -> None:
        release = bool(arg)
        self._forget_rogue()
        if self.state == State.MASTER and release:
            self._send(0)
            self._out.append(Action("vips_del"))
        self.deadline = None
        self._go(State.INIT, "stop")


Handler = Callable[[Machine, float, object], None]

TABLE: dict[tuple[State, Event], Handler] = {
    (State.INIT, Event.START): Machine._start,
    (State.INIT, Event.RESUME): Machine._resume,
    (State.INIT, Event.FAULT): Machine._fault,
    (State.BACKUP, Event.TIMER): Machine._backup_timer,
    (State.BACKUP, Event.ADVERT): Machine._backup_advert,
    (State.BACKUP, Event.FAULT): Machine._fault,
    (State.BACKUP, Event.STOP): Machine._stop,
    (State.MASTER, Event.TIMER): Machine._master_timer,
    (State.MASTER, Event.ADVERT): Machine._master_advert,
    (State.MASTER, Event.FAULT): Machine._fault,
    (State.MASTER, Event.STOP): Machine._stop,
    (State.FAULT, Event.RECOVER): Machine._recover,
    (State.FAULT, Event.STOP): Machine._stop,
}
