import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.bus import (
    BusError,
    Envelope,
    Publisher,
    Rejects,
    bseq_frame,
    endpoint,
    split_bseq,
)


def _env(**kw: object) -> Envelope:
    base: dict[str, object] = dict(topic="vrrp.instance.VI_1", kind="state", src="vrrp", pid=42, seq=7, gen=3,
                                   ts=1.5, data={"state": "MASTER"})
    base.update(kw)
    return Envelope(**base)  # type: ignore[arg-type]


def test_round_trip() -> None:
    e = _env()
    frames = e.to_wire()
    assert frames[0] == b"vrrp.instance.VI_1"
    assert Envelope.from_wire(frames) == e


@given(topic=st.text(min_size=1, max_size=30), seq=st.integers(0, 2**53), gen=st.integers(0, 2**31),
       data=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4))
def test_round_trip_any(topic: str, seq: int, gen: int, data: dict[str, object]) -> None:
    e = _env(topic=topic, seq=seq, gen=gen, data=data)
    assert Envelope.from_wire(e.to_wire()) == e


def _body(frames: list[bytes]) -> dict[str, object]:
    return json.loads(frames[1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b.update(v=2), "version"),
        (lambda b: b.pop("v"), "version"),
        (lambda b: b.update(v="1"), "version"),
        (lambda b: b.pop("seq"), "field"),
        (lambda b: b.update(pid="x"), "field"),
        (lambda b: b.update(seq=True), "field"),
        (lambda b: b.update(data=[1]), "field"),
        (lambda b: b.update(kind="bogus"), "kind"),
        (lambda b: b.update(topic="other"), "topic"),
    ],
)
def test_rejections_have_reasons(mutate: object, reason: str) -> None:
    frames = _env().to_wire()
    body = _body(frames)
    mutate(body)  # type: ignore[operator]
    with pytest.raises(BusError) as ei:
        Envelope.from_wire([frames[0], json.dumps(body).encode()])
    assert ei.value.reason == reason


def test_unknown_keys_are_ignored() -> None:
    frames = _env().to_wire()
    body = _body(frames)
    body["future"] = {"x": 1}
    assert Envelope.from_wire([frames[0], json.dumps(body).encode()]) == _env()


def test_rejects_are_counted_never_raised() -> None:
    r = Rejects()
    assert r.decode([b"t"]) is None
    assert r.decode([b"t", b"\xff\xfe"]) is None
    assert r.decode([b"t", b"[]"]) is None
    assert r.decode(_env().to_wire()) is not None
    assert r.total == 3
    assert r.by_reason["json"] == 2


@given(st.lists(st.binary(max_size=64), max_size=4))
def test_garbage_never_raises(frames: list[bytes]) -> None:
    Rejects().decode(frames)


def test_bseq_frame() -> None:
    frames = [*_env().to_wire(), bseq_frame(12345)]
    assert split_bseq(frames) == 12345
    assert split_bseq(frames[:2]) is None


def test_publisher_numbers_messages() -> None:
    p = Publisher("checker", gen=2, pid=9)
    a, b = p.make("hb.checker", "heartbeat"), p.make("hb.checker", "heartbeat")
    assert (a.seq, b.seq, b.gen, b.src, b.pid) == (1, 2, 2, "checker", 9)


def test_endpoint_short_and_long() -> None:
    assert endpoint("/run/pykeepalived", "pub") == "ipc:///run/pykeepalived/pub"
    long_dir = "/tmp/" + "x" * 120
    assert endpoint(long_dir, "pub") == "ipc://pub"  # relative to the run dir, the processes' cwd
