"""sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (READY=1, RELOADING=1, STOPPING=1 …).

Does nothing when the variable is unset (not started by systemd with Type=notify); never raises.
RELOADING=1 carries MONOTONIC_USEC as systemd ≥ 253 requires for Type=notify-reload; older systemd
ignores the extra field.
"""

from __future__ import annotations

import os
import socket
import time


def notify(*fields: str) -> bool:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    msg = "\n".join(fields)
    if "RELOADING=1" in fields:
        msg += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(msg.encode(), addr)
        return True
    except OSError:
        return False
