from hypothesis import given
from hypothesis import strategies as st

from supervisor.bus import Envelope
from supervisor.cache import LastValueCache, Mirror


def _e(topic: str, kind: str = "state", value: int = 0, src: str = "vrrp", pid: int = 1) -> Envelope:
    return Envelope(topic, kind, src, pid, value, 1, 0.0, {"value": value})


def test_cache_keeps_last_value_and_deletes() -> None:
    c = LastValueCache()
    c.stamp(_e("vrrp.instance.A", value=1))
    c.stamp(_e("vrrp.instance.A", value=2))
    c.stamp(_e("hb.vrrp", kind="heartbeat"))
    c.stamp(_e("vrrp.instance.B", value=3))
    seq, items = c.snapshot("vrrp.")
    assert seq == 4
    assert [(b, e.topic, e.data["value"]) for b, e in items] == [(2, "vrrp.instance.A", 2), (4, "vrrp.instance.B", 3)]
    c.stamp(_e("vrrp.instance.A", kind="delete"))
    assert list(c.values()) == ["vrrp.instance.B"]
    assert c.snapshot("checker.")[1] == []


def test_drop_sender_keeps_new_process() -> None:
    c = LastValueCache()
    c.stamp(_e("vrrp.instance.A", pid=1))
    c.stamp(_e("vrrp.instance.B", pid=2))
    c.stamp(_e("checker.rs.x", src="checker", pid=3))
    assert c.drop_sender("vrrp", keep_pid=2) == ["vrrp.instance.A"]
    assert sorted(c.values()) == ["checker.rs.x", "vrrp.instance.B"]


def test_mirror_buffers_until_snapshot_and_drops_older() -> None:
    c = LastValueCache()
    m = Mirror(prefix="checker.")
    b1 = c.stamp(_e("checker.rs.a", value=1))
    # The subscriber joined here: b2 and b3 reach it live, but the snapshot is taken after b2.
    b2 = c.stamp(_e("checker.rs.a", value=2))
    assert m.on_update(b2, _e("checker.rs.a", value=2)) is False  # buffered
    snap = c.snapshot("checker.")
    b3 = c.stamp(_e("checker.rs.b", value=3))
    m.on_update(b3, _e("checker.rs.b", value=3))
    m.on_snapshot(*snap)
    assert {k: v.data["value"] for k, v in m.state.items()} == {"checker.rs.a": 2, "checker.rs.b": 3}
    # A late duplicate of something in the snapshot is dropped.
    assert m.on_update(b1, _e("checker.rs.a", value=1)) is False
    assert m.state["checker.rs.a"].data["value"] == 2
    b4 = c.stamp(_e("checker.rs.b", kind="delete"))
    assert m.on_update(b4, _e("checker.rs.b", kind="delete")) is True
    assert list(m.state) == ["checker.rs.a"]
    assert m.on_update(None, _e("checker.rs.z")) is False


@given(
    ops=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.integers(0, 9)), max_size=40),
    join=st.integers(0, 40),
    snap_at=st.integers(0, 40),
)
def test_mirror_converges_to_cache(ops: list[tuple[str, bool, int]], join: int, snap_at: int) -> None:
    """Whenever the subscriber joins and whenever its snapshot is taken, it ends equal to the cache."""
    snap_at = max(snap_at, join)
    c, m = LastValueCache(), Mirror()
    snap = None
    for i, (key, delete, value) in enumerate(ops):
        if i == snap_at:
            snap = c.snapshot()
        env = _e(key, kind="delete" if delete else "state", value=value)
        b = c.stamp(env)
        if i >= join:
            m.on_update(b, env)
    m.on_snapshot(*(snap if snap is not None else c.snapshot()))
    assert {k: e.data for k, e in m.state.items()} == {k: e.data for k, e in c.values().items()}
