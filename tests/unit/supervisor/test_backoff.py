from supervisor.backoff import Backoff, BackoffPolicy


def test_crash_loop_costs_0_0_0_then_doubles_to_60() -> None:
    b = Backoff()
    delays = [b.on_death(uptime=0.5) for _ in range(12)]
    assert delays == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_life_of_60_s_resets_the_streak() -> None:
    b = Backoff()
    for _ in range(6):
        b.on_death(uptime=1)
    assert b.on_death(uptime=59.9) == 8
    assert b.on_death(uptime=60.0) == 0
    assert b.streak == 1
    assert [b.on_death(uptime=1) for _ in range(3)] == [0, 0, 1]


def test_role_that_crashes_every_30_s_still_backs_off() -> None:
    # A sliding 60 s window would never see 3 deaths here; keepalived's reset rule does.
    b = Backoff()
    assert [b.on_death(uptime=30) for _ in range(5)] == [0, 0, 0, 1, 2]


def test_scale_shortens_delays_and_stable_time() -> None:
    b = Backoff(BackoffPolicy(scale=0.1))
    assert [b.on_death(uptime=0) for _ in range(5)] == [0, 0, 0, 0.1, 0.2]
    assert b.on_death(uptime=6.0) == 0
