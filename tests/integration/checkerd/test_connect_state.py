"""connect_state/connect_now (TCP_INFO first, SO_ERROR only when needed) on real sockets in the lab
namespace: connected, refused, and a connect left pending because the listener's queue is full."""

from __future__ import annotations

import sys

from tests.integration.checkerd.conftest import ROOT, Lab

PROBE = r'''
import errno, socket, _socket, sys, time
from checkerd.checks.base import connect_now, connect_state
addr = sys.argv[1]
out = []
ls = socket.socket(); ls.bind((addr, 0)); ls.listen(0); port = ls.getsockname()[1]

def nb():
    return _socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)

first = nb(); out.append(connect_now(first, (addr, port)))  # fills the accept queue (backlog 0 holds 1)
time.sleep(0.05)
# more connects: their SYNs are dropped while the queue is full, they stay pending (SYN_SENT)
extra = [nb() for _ in range(3)]
pending = [connect_now(s, (addr, port)) for s in extra]
out.append(any(p is None for p in pending))
s = next(s for s, p in zip(extra, pending) if p is None)
out.append(connect_state(s))
ls.settimeout(0.1)
deadline = time.monotonic() + 5  # accepting makes room: the SYN retransmitted after ~1 s gets in
while connect_state(s) is None and time.monotonic() < deadline:
    try:
        ls.accept()[0].close()
    except TimeoutError:
        pass
out.append(connect_state(s))
ls.close()
r = nb(); out.append(connect_now(r, (addr, port)) == errno.ECONNREFUSED)
print(repr(out))
'''


def test_connect_state_connected_pending_refused(lab: Lab) -> None:
    res = lab.ns.run(["env", f"PYTHONPATH={ROOT}", sys.executable, "-c", PROBE, lab.addr], timeout=30)
    assert res.stdout.strip() == repr([0, True, None, 0, True]), res.stderr
