"""Two routers both configured as address owner (priority 255), through the state machine with a fake
clock: keepalived's rule (survey §6 "Two owners") so that the pair ends with exactly one MASTER."""

from __future__ import annotations

import pytest

from vrrpd.fsm import Action, Event, Heard, Machine, Params, State

LOW, HIGH = "192.0.2.1", "192.0.2.2"


def owner(addr: str, version: int = 3, interval_cs: int = 100) -> Machine:
    x = Machine(Params(version=version, priority=255, interval_cs=interval_cs, own_address=addr,
                       initial_master=True))
    acts = x.handle(Event.START, 0.0)
    assert x.state == State.MASTER and acts[0].kind == "send"
    return x


def logs(acts: list[Action]) -> list[str]:
    return [a.reason for a in acts if a.kind == "log"]


def sends(acts: list[Action]) -> list[int]:
    return [a.priority for a in acts if a.kind == "send"]


def test_two_keepalived_like_owners_end_with_one_master_at_255() -> None:
    low, high = owner(LOW), owner(HIGH)
    # both advertise at t=1; the low one's advert reaches the high one first
    acts = high.handle(Event.ADVERT, 1.0, Heard(LOW, 255, 100))
    assert logs(acts) == [f"CONFIGURATION ERROR: local instance and {LOW} are both configured as address owner, "
                          "please resolve"]
    assert sends(acts) == [255] and high.state == State.MASTER and high.rogue_counter == 2
    # the high one's answer makes the low one back off, with the same complaint
    acts = low.handle(Event.ADVERT, 1.0, Heard(HIGH, 255, 100))
    assert low.state == State.BACKUP and "vips_del" in [a.kind for a in acts]
    assert logs(acts) == [f"CONFIGURATION ERROR: local instance and {HIGH} are both configured as address owner, "
                          "please resolve"]
    assert low.effective_priority == 255  # backing off on the address comparison needs no lower priority
    # the high owner sends its two adverts, then watches 1.2 x 1 s; the low one stays quiet as BACKUP
    t = 1.0
    for _ in range(2):
        t += 1.0
        assert sends(high.handle(Event.TIMER, t)) == [255]
        assert low.state == State.BACKUP
        assert low.handle(Event.ADVERT, t, Heard(HIGH, 255, 100)) == []
    assert high.rogue_counter == 0 and high.rogue_deadline == pytest.approx(t + 1.2)
    assert logs(high.handle(Event.TIMER, t + 1.0)) == []  # still inside the window
    acts = high.handle(Event.TIMER, t + 2.0)
    assert logs(acts) == ["rogue address owner appears to have stopped advertising"]
    assert high.state == State.MASTER and high.effective_priority == 255 and high.rogue_deadline is None


def test_a_rogue_owner_that_keeps_advertising_makes_the_high_one_back_off_to_254() -> None:
    high = owner(HIGH)
    high.handle(Event.ADVERT, 0.5, Heard(LOW, 255, 100))  # conflict seen: two more adverts first
    high.handle(Event.TIMER, 1.0)
    acts = high.handle(Event.ADVERT, 1.5, Heard(LOW, 255, 100))  # before the window: no new complaint
    assert logs(acts) == [] and high.state == State.MASTER
    high.handle(Event.TIMER, 2.0)
    assert high.rogue_deadline == pytest.approx(3.2)
    acts = high.handle(Event.ADVERT, 2.5, Heard(LOW, 255, 100))
    assert logs(acts) == [f"{LOW} is still advertising as address owner, please resolve - reducing our priority"]
    assert high.state == State.BACKUP and high.effective_priority == 254
    assert [a.kind for a in acts] == ["log", "vips_del", "transition"]
    assert high.master_address == LOW
    # the rogue goes on as master: we stay BACKUP at 254, timers on the owner's skew (255)
    high.handle(Event.ADVERT, 3.5, Heard(LOW, 255, 100))
    assert high.effective_priority == 254 and high.deadline == pytest.approx(3.5 + 3.0 + 1 / 256)
    # it disappears: we take over, the first advert still says 254, then 255 is restored
    acts = high.handle(Event.TIMER, high.deadline)
    assert high.state == State.MASTER and sends(acts) == [254] and high.effective_priority == 255
    assert logs(acts) == ["Restoring our priority to 255 since other address owner has disappeared"]
    assert sends(high.handle(Event.TIMER, high.deadline)) == [255]


def test_backed_off_owner_restores_255_on_a_lower_or_other_advert() -> None:
    high = owner(HIGH)
    high.handle(Event.ADVERT, 0.5, Heard(LOW, 255, 100))
    high.handle(Event.TIMER, 1.0)
    high.handle(Event.TIMER, 2.0)
    high.handle(Event.ADVERT, 2.5, Heard(LOW, 255, 100))
    assert (high.state, high.effective_priority) == (State.BACKUP, 254)
    acts = high.handle(Event.ADVERT, 3.0, Heard(LOW, 200, 100))  # the rogue lowered its priority
    assert logs(acts) == ["Restoring our priority to 255 since received advert with lower priority"]
    assert high.effective_priority == 255 and high.state == State.BACKUP
    # and a lower priority is not accepted (preemption): the down timer runs out and we take over
    assert high.deadline == pytest.approx(2.5 + 3.0 + 1 / 256)
    acts = high.handle(Event.TIMER, high.deadline)
    assert high.state == State.MASTER and sends(acts) == [255] and logs(acts) == []


def test_rogue_window_uses_the_longer_interval_and_restarts_after_it_expires() -> None:
    high = owner(HIGH, version=2)
    high.handle(Event.ADVERT, 0.5, Heard(LOW, 255, 300))  # a v2 rogue at 3 s
    high.handle(Event.TIMER, 1.0)
    high.handle(Event.TIMER, 2.0)
    assert high.rogue_deadline == pytest.approx(2.0 + 3.6)
    for t in (3.0, 4.0, 5.0):
        assert logs(high.handle(Event.TIMER, t)) == []
    assert logs(high.handle(Event.TIMER, 6.0)) == ["rogue address owner appears to have stopped advertising"]
    # a late rogue advert starts the procedure again instead of making us back off
    acts = high.handle(Event.ADVERT, 6.5, Heard(LOW, 255, 300))
    assert logs(acts)[0].startswith("CONFIGURATION ERROR") and high.rogue_counter == 2
    assert high.state == State.MASTER and high.effective_priority == 255


def test_leaving_master_forgets_the_rogue_and_non_owners_are_untouched() -> None:
    high = owner(HIGH)
    high.handle(Event.ADVERT, 0.5, Heard(LOW, 255, 100))
    high.handle(Event.FAULT, 0.6, "link down")
    assert (high.rogue_counter, high.rogue_deadline) == (0, None)
    # a non-owner at 254 hearing 255 just goes BACKUP, no owner logic
    x = Machine(Params(version=3, priority=254, own_address=HIGH))
    x.handle(Event.START, 0.0)
    x.handle(Event.TIMER, x.deadline)
    acts = x.handle(Event.ADVERT, 5.0, Heard(LOW, 255, 100))
    assert x.state == State.BACKUP and logs(acts) == [] and x.effective_priority == 254
