"""keepalived's checker timing as a pure state machine: retries, delays, alpha, resume."""

from __future__ import annotations

from checkerd.scheduler import CheckerState, initial_state
from supervisor.config.model.checkers import Checker


def test_tcp_style_retries_then_down_then_recovery() -> None:
    st = CheckerState(retry=2, delay_loop=5, delay_before_retry=1)
    s = st.on_result(True)
    assert (s.delay, s.transition) == (5, "up")  # first success is logged, state already up
    assert [(s.delay, s.transition) for s in (st.on_result(False), st.on_result(False))] == [(1, None), (1, None)]
    s = st.on_result(False)
    assert (s.delay, s.transition, s.retries, st.is_up) == (5, "down", 2, False)
    s = st.on_result(False)  # already down: still retried at delay_before_retry, no new transition
    assert (s.delay, s.transition) == (1, None)
    s = st.on_result(True)
    assert (s.delay, s.transition, st.is_up) == (5, "up", True)
    assert st.on_result(True).transition is None


def test_no_retry_goes_down_at_once() -> None:
    st = CheckerState(retry=0, delay_loop=3, delay_before_retry=1, has_run=True)
    s = st.on_result(False)
    assert (s.delay, s.transition) == (3, "down")


def test_http_style_waits_delay_loop_while_down() -> None:
    st = CheckerState(retry=1, delay_loop=5, delay_before_retry=2, http_style=True, has_run=True)
    assert st.on_result(False).delay == 2
    assert st.on_result(False).transition == "down"
    assert st.on_result(False).delay == 5


def test_alpha_and_resume() -> None:
    c = Checker(type="TCP_CHECK", alpha=True)
    assert initial_state(c, None).is_up is False
    st = initial_state(c, True)  # resumed up: no alpha flap, and no "success" transition to report
    assert (st.is_up, st.has_run) == (True, True)
    assert st.on_result(True).transition is None
    assert initial_state(Checker(type="TCP_CHECK"), False).is_up is False
