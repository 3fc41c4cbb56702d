"""The table-driven VRRP state machine with a fake clock: keepalived's timer and election rules."""

from __future__ import annotations

import pytest

from vrrpd.fsm import TABLE, Action, Event, Heard, Machine, Params, State, skew


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind for a in actions]


def m(**kw: object) -> Machine:
    return Machine(Params(**kw))  # type: ignore[arg-type]


def test_skew_v2_v3() -> None:
    assert skew(2, 100, 300) == pytest.approx(156 / 256)  # v2 ignores the interval
    assert skew(3, 100, 100) == pytest.approx(0.609375)
    assert skew(3, 100, 10) == pytest.approx(0.0609375)


def test_master_down_interval_matches_lab_figures() -> None:
    # lab.md: v2 advert 1 s, backup priority 100 -> 3609.4 ms; v3 at 0.1 s -> 360.9 ms
    assert m(version=2, priority=100, interval_cs=100).master_down_interval() == pytest.approx(3.609375)
    assert m(version=3, priority=100, interval_cs=10).master_down_interval() == pytest.approx(0.3609375)


def test_start_backup_then_master_on_timeout() -> None:
    x = m(version=3, priority=100, interval_cs=100, own_address="192.0.2.1")
    acts = x.handle(Event.START, 10.0)
    assert x.state == State.BACKUP and kinds(acts) == ["vips_del", "transition"]
    assert x.deadline == pytest.approx(10.0 + 3.609375)
    acts = x.handle(Event.TIMER, x.deadline)
    assert x.state == State.MASTER
    assert kinds(acts) == ["send", "vips_add", "garp", "transition"]  # advert first
    assert acts[0].priority == 100 and x.deadline == pytest.approx(13.609375 + 1.0)
    acts = x.handle(Event.TIMER, x.deadline + 0.002)  # late timer: the phase is kept
    assert kinds(acts) == ["send"] and x.deadline == pytest.approx(15.609375)


def test_initial_state_rules() -> None:
    owner = m(priority=255, initial_master=True)
    assert kinds(owner.handle(Event.START, 0.0))[:3] == ["send", "vips_add", "garp"]
    assert owner.state == State.MASTER
    wants = m(version=2, priority=150, initial_master=True)
    wants.handle(Event.START, 0.0)
    assert wants.state == State.BACKUP and wants.deadline == pytest.approx(1.0 + 1 / 256)
    v3 = m(version=3, priority=150, interval_cs=10, initial_master=True)
    v3.handle(Event.START, 0.0)
    assert v3.deadline == pytest.approx(0.1 + 0.1 / 256)


def test_backup_accepts_higher_resets_and_priority_zero_skew() -> None:
    x = m(version=3, priority=100, interval_cs=100)
    x.handle(Event.START, 0.0)
    x.handle(Event.ADVERT, 1.0, Heard("192.0.2.9", 200, 100))
    assert x.deadline == pytest.approx(1.0 + 3.609375) and x.master_address == "192.0.2.9"
    x.handle(Event.ADVERT, 2.0, Heard("192.0.2.9", 0, 100))
    assert x.deadline == pytest.approx(2.0 + 0.609375) and x.state == State.BACKUP


def test_v3_backup_adopts_master_interval_and_reverts_as_master() -> None:
    x = m(version=3, priority=100, interval_cs=100)
    x.handle(Event.START, 0.0)
    x.handle(Event.ADVERT, 1.0, Heard("192.0.2.9", 200, 20))
    assert x.master_interval_cs == 20
    assert x.deadline == pytest.approx(1.0 + 3 * 0.2 + 156 * 0.2 / 256)
    x.handle(Event.TIMER, x.deadline)
    assert x.state == State.MASTER and x.master_interval_cs == 100
    assert x.deadline == pytest.approx(1.0 + 0.6 + 156 * 0.2 / 256 + 1.0)


def test_v2_does_not_adopt_interval() -> None:
    x = m(version=2, priority=100, interval_cs=100)
    x.handle(Event.START, 0.0)
    x.handle(Event.ADVERT, 1.0, Heard("192.0.2.9", 200, 300))
    assert x.master_interval_cs == 100


def test_preempt_lower_priority_lets_timer_run_out() -> None:
    x = m(version=3, priority=150, interval_cs=100)
    x.handle(Event.START, 0.0)
    first = x.deadline
    x.handle(Event.ADVERT, 1.0, Heard("192.0.2.9", 100, 100))
    x.handle(Event.ADVERT, 2.0, Heard("192.0.2.9", 100, 100))
    assert x.deadline == first and x.master_address is None  # rejected, not reset


def test_nopreempt_accepts_lower_priority() -> None:
    x = m(version=3, priority=150, interval_cs=100, preempt=False)
    x.handle(Event.START, 0.0)
    x.handle(Event.ADVERT, 1.0, Heard("192.0.2.9", 100, 100))
    assert x.deadline == pytest.approx(1.0 + x.master_down_interval())
    for t in range(2, 50):
        x.handle(Event.ADVERT, float(t), Heard("192.0.2.9", 100, 100))
    assert x.state == State.BACKUP


def test_preempt_delay() -> None:
    x = m(version=3, priority=150, interval_cs=100, preempt_delay=5.0)
    x.handle(Event.START, 0.0)
    for t in range(1, 6):  # accepted until 1 + 5 s
        x.handle(Event.ADVERT, float(t), Heard("192.0.2.9", 100, 100))
        assert x.deadline == pytest.approx(t + x.master_down_interval())
    last = x.deadline
    x.handle(Event.ADVERT, 6.5, Heard("192.0.2.9", 100, 100))  # delay passed: rejected
    assert x.deadline == last
    assert x.handle(Event.TIMER, last)[0].kind == "send" and x.state == State.MASTER
    # an advert with priority >= ours clears the delay timer
    y = m(version=3, priority=150, interval_cs=100, preempt_delay=5.0)
    y.handle(Event.START, 0.0)
    y.handle(Event.ADVERT, 1.0, Heard("192.0.2.9", 100, 100))
    y.handle(Event.ADVERT, 2.0, Heard("192.0.2.9", 200, 100))
    assert y.preempt_time is None


def _master(**kw: object) -> Machine:
    x = m(**kw)
    x.handle(Event.START, 0.0)
    x.handle(Event.TIMER, x.deadline or 0.0)
    assert x.state == State.MASTER
    return x


def test_master_rx_rules() -> None:
    x = _master(version=3, priority=100, interval_cs=100, own_address="192.0.2.5")
    assert kinds(x.handle(Event.ADVERT, 5.0, Heard("192.0.2.9", 0, 100))) == ["send"]
    assert kinds(x.handle(Event.ADVERT, 5.1, Heard("192.0.2.9", 50, 100))) == ["send"]
    assert kinds(x.handle(Event.ADVERT, 5.2, Heard("192.0.2.1", 100, 100))) == ["send"]  # equal, lower IP
    acts = x.handle(Event.ADVERT, 5.3, Heard("192.0.2.9", 100, 50))  # equal, higher IP wins
    assert kinds(acts) == ["vips_del", "transition"] and x.state == State.BACKUP
    assert x.master_interval_cs == 50 and x.deadline == pytest.approx(5.3 + 1.5 + 156 * 0.5 / 256)
    quiet = _master(version=3, priority=100, lower_prio_no_advert=True, higher_prio_send_advert=True)
    assert quiet.handle(Event.ADVERT, 5.0, Heard("192.0.2.9", 50, 100)) == []
    assert kinds(quiet.handle(Event.ADVERT, 5.0, Heard("192.0.2.9", 150, 100)))[0] == "send"


def test_fault_and_recover() -> None:
    x = _master(version=3, priority=100, interval_cs=100)
    acts = x.handle(Event.FAULT, 9.0, "eth0 down")
    assert [(a.kind, a.priority) for a in acts][:2] == [("send", 0), ("vips_del", 0)]
    assert x.state == State.FAULT and x.deadline is None
    assert x.handle(Event.ADVERT, 9.5, Heard("192.0.2.9", 150, 100)) == [] and x.ignored == 1
    acts = x.handle(Event.RECOVER, 10.0)
    assert x.state == State.BACKUP and acts[-1].old == State.FAULT and acts[-1].reason == "fault cleared"
    assert x.deadline == pytest.approx(10.0 + x.master_down_interval())


def test_stop_sends_priority_zero_only_when_releasing() -> None:
    x = _master(version=2, priority=100)
    assert [(a.kind, a.priority) for a in x.handle(Event.STOP, 3.0, True)][:2] == [("send", 0), ("vips_del", 0)]
    y = _master(version=2, priority=100)
    assert kinds(y.handle(Event.STOP, 3.0, False)) == ["transition"]  # -V: nothing sent, VIPs kept


def test_resume_keeps_vips_and_adverts_at_once() -> None:
    x = m(version=3, priority=100, interval_cs=100)
    acts = x.handle(Event.RESUME, 0.0)
    assert kinds(acts) == ["send", "vips_add", "transition"] and x.state == State.MASTER  # no GARP burst


def test_owner_skew_uses_255() -> None:
    x = m(version=3, priority=255, interval_cs=100)
    x.set_priority(200)
    assert x.skew() == pytest.approx(1 / 256)


def test_table_covers_every_state() -> None:
    assert {s for s, _ in TABLE} == set(State)
    assert all((s, Event.STOP) in TABLE for s in (State.BACKUP, State.MASTER, State.FAULT))
