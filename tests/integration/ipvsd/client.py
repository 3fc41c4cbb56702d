"""Client for the load-balancer tests: N sequential TCP requests, one JSON line of answers.

``python client.py HOST PORT COUNT [--duration S] [--connect-only]``: each answer is the real server's
``NAME PEER`` line, or ``ERR:<reason>``. With ``--duration`` it keeps going for S seconds (COUNT is then
a cap) and prints the answers. ``--connect-only`` reports whether the TCP handshake completed.
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def one(host: str, port: int, connect_only: bool) -> str:
    try:
        with socket.create_connection((host, port), timeout=2.0) as s:
            if connect_only:
                return "CONNECTED"
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(2.0)
            data = s.recv(200).decode().strip()
            return data or "ERR:empty"
    except OSError as e:
        return f"ERR:{type(e).__name__}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--connect-only", action="store_true")
    a = ap.parse_args()
    out: list[str] = []
    end = time.monotonic() + a.duration
    while len(out) < a.count:
        out.append(one(a.host, a.port, a.connect_only))
        if a.duration and time.monotonic() >= end:
            break
        if a.duration:
            time.sleep(0.01)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
