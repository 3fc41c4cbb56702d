"""The per-role state machine, driven through FakeOS: no fork, no signals, a clock the test moves."""

import signal

import pytest

from supervisor.child import Child, Ev, State, Tunables
from supervisor.exitcodes import ExitCode
from tests.unit.supervisor.fakes import FakeOS, RecordingHooks, exit_status, signal_status


def make(dont_respawn: bool = False, **tun: float) -> tuple[Child, FakeOS, RecordingHooks]:
    fos, hooks = FakeOS(), RecordingHooks()
    c = Child("vrrp", fos, lambda: ["python", "-m", "vrrpd"], dict, hooks, Tunables(**tun),  # type: ignore[arg-type]
              dont_respawn=dont_respawn)
    return c, fos, hooks


def kill9(c: Child) -> None:
    c.handle(Ev.EXIT, status=signal_status(signal.SIGKILL), pid=c.pid)


def test_start_ready_running() -> None:
    c, _, hooks = make()
    c.handle(Ev.START)
    assert c.state is State.STARTING and c.pid == 101 and hooks.spawns == [101]
    c.handle(Ev.READY, gen=1, pid=101)
    assert c.state is State.RUNNING and c.gen == 1


def test_crash_loop_delays_follow_policy() -> None:
    c, fos, _ = make()
    c.handle(Ev.START)
    delays = []
    for _ in range(8):
        fos.advance(0.1)
        kill9(c)
        if c.state is State.STARTING:
            delays.append(0.0)
        else:
            assert c.state is State.BACKOFF
            d = c.respawn_at - fos.now
            delays.append(d)
            fos.advance(d - 0.01)
            c.handle(Ev.TICK)
            assert c.state is State.BACKOFF  # not a moment early
            fos.advance(0.01)
            c.handle(Ev.TICK)
            assert c.state is State.STARTING
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16]
    assert c.restarts == 8 and len(fos.spawned) == 9


def test_uptime_of_60_s_resets_backoff() -> None:
    c, fos, _ = make()
    c.handle(Ev.START)
    for _ in range(3):
        kill9(c)
    kill9(c)
    assert c.state is State.BACKOFF
    fos.advance(1)
    c.handle(Ev.TICK)
    c.handle(Ev.READY, pid=c.pid)
    fos.advance(60)
    c.handle(Ev.HEARTBEAT, pid=c.pid)
    kill9(c)
    assert c.state is State.STARTING  # immediate again


@pytest.mark.parametrize("code", [ExitCode.FATAL, ExitCode.CONFIG, ExitCode.MISSING_PERMISSION])
def test_permanent_exit_codes_terminate_the_daemon(code: ExitCode) -> None:
    c, fos, hooks = make()
    c.handle(Ev.START)
    c.handle(Ev.EXIT, status=exit_status(code), pid=c.pid)
    assert c.state is State.FATAL
    assert hooks.terminations[0][0] == code
    assert len(fos.spawned) == 1


def test_program_error_is_respawned() -> None:
    c, fos, hooks = make()
    c.handle(Ev.START)
    c.handle(Ev.EXIT, status=exit_status(ExitCode.PROGRAM_ERROR), pid=c.pid)
    assert c.state is State.STARTING and len(fos.spawned) == 2 and not hooks.terminations


def test_dont_respawn_terminates_on_any_death() -> None:
    c, fos, hooks = make(dont_respawn=True)
    c.handle(Ev.START)
    kill9(c)
    assert c.state is State.FATAL and hooks.terminations and len(fos.spawned) == 1


def test_commanded_restart_is_not_a_death() -> None:
    c, fos, hooks = make(dont_respawn=True)
    c.handle(Ev.START)
    first = c.pid
    c.handle(Ev.RESTART)
    assert c.state is State.STOPPING and fos.sent(signal.SIGTERM) == [first]
    # A permanent exit code during a commanded stop is still not a death.
    c.handle(Ev.EXIT, status=exit_status(ExitCode.CONFIG), pid=first)
    assert c.state is State.STARTING and c.pid != first
    assert not hooks.terminations and c.deaths == 0 and c.backoff.streak == 0


def test_stale_exit_of_old_pid_is_ignored() -> None:
    c, _, _ = make()
    c.handle(Ev.START)
    c.handle(Ev.EXIT, status=0, pid=999)
    assert c.state is State.STARTING and c.deaths == 0


def test_heartbeat_miss_aborts_then_kills_then_respawns() -> None:
    c, fos, _ = make(hb_timeout=5, start_grace=30, abort_grace=2)
    c.handle(Ev.START)
    pid = c.pid
    fos.advance(29)
    c.handle(Ev.TICK)
    assert c.state is State.STARTING  # still in the start grace
    c.handle(Ev.READY, pid=pid)
    fos.advance(29)
    c.handle(Ev.HEARTBEAT, pid=pid)  # grace over now; heartbeats keep it alive
    fos.advance(4)
    c.handle(Ev.TICK)
    assert c.state is State.RUNNING
    fos.advance(1.5)
    c.handle(Ev.TICK)
    assert c.state is State.UNRESPONSIVE and fos.sent(signal.SIGABRT) == [pid]
    fos.advance(1)
    c.handle(Ev.TICK)
    assert fos.sent(signal.SIGKILL) == []
    fos.advance(1)
    c.handle(Ev.TICK)
    assert fos.sent(signal.SIGKILL) == [pid]
    c.handle(Ev.EXIT, status=signal_status(signal.SIGKILL), pid=pid)
    assert c.state is State.STARTING and c.pid != pid


def test_reload_restarts_heartbeat_grace() -> None:
    c, fos, _ = make(hb_timeout=5, start_grace=30)
    c.handle(Ev.START)
    c.handle(Ev.READY, pid=c.pid)
    fos.advance(31)
    c.handle(Ev.HEARTBEAT, pid=c.pid)
    c.handle(Ev.RELOAD)
    fos.advance(20)  # a big config is being loaded: no heartbeats
    c.handle(Ev.TICK)
    assert c.state is State.RUNNING


def test_stop_waits_while_progressing_then_kills() -> None:
    c, fos, _ = make(child_wait_time=5)
    c.handle(Ev.START)
    pid = c.pid
    c.handle(Ev.STOP)
    for n in range(10):  # 20 s of teardown, progressing every 2 s
        fos.advance(2)
        c.handle(Ev.HEARTBEAT, progress=n, pid=pid)
        c.handle(Ev.TICK)
    assert fos.sent(signal.SIGKILL) == []
    for _ in range(3):  # stuck: heartbeats without progress do not buy time
        fos.advance(2)
        c.handle(Ev.HEARTBEAT, progress=9, pid=pid)
        c.handle(Ev.TICK)
    assert fos.sent(signal.SIGKILL) == [pid]
    c.handle(Ev.EXIT, status=signal_status(signal.SIGKILL), pid=pid)
    assert c.state is State.STOPPED and len(fos.spawned) == 1


def test_force_stop_kills_at_once() -> None:
    c, fos, _ = make()
    c.handle(Ev.START)
    c.handle(Ev.STOP)
    c.handle(Ev.FORCE_STOP)
    assert fos.sent(signal.SIGKILL) == [c.pid]


def test_stop_during_backoff_cancels_restart() -> None:
    c, fos, _ = make()
    c.handle(Ev.START)
    for _ in range(4):
        kill9(c)
    assert c.state is State.BACKOFF
    c.handle(Ev.STOP)
    fos.advance(100)
    c.handle(Ev.TICK)
    assert c.state is State.STOPPED and len(fos.spawned) == 4


def test_spawn_failure_backs_off_instead_of_spinning() -> None:
    c, fos, hooks = make()
    fos.fail_spawn = True
    c.handle(Ev.START)
    assert c.state is State.BACKOFF and c.deaths == 4 and not hooks.terminations


def test_unknown_events_are_ignored_and_counted() -> None:
    c, _, _ = make()
    c.handle(Ev.READY)
    c.handle(Ev.TICK)
    assert c.state is State.STOPPED and c.ignored[(State.STOPPED, Ev.READY)] == 1


def test_next_deadline() -> None:
    c, fos, _ = make(start_grace=30)
    assert c.next_deadline() is None
    c.handle(Ev.START)
    assert c.next_deadline() == fos.now + 30


def test_supervisor_stall_is_not_a_heartbeat_miss() -> None:
    c, fos, _ = make(hb_timeout=5, start_grace=1)
    c.handle(Ev.START)
    c.handle(Ev.READY, pid=c.pid)
    fos.advance(8)  # the supervisor's loop was blocked: the role's heartbeats sit unread in the socket
    c.handle(Ev.STALL, lag=8)
    c.handle(Ev.TICK)
    assert c.state is State.RUNNING
