"""Every checker type against real servers in a namespace: up, down with its reason, recovery, timing.

One driver process (checkerd's HealthManager, see driver.py) runs all the checkers of one config at
once, fast timers (delay_loop 0.5 s, connect_timeout 0.5 s, retry 1, delay_before_retry 0.3 s); the
test flips the servers' mode files and watches the published changes with their timestamps.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.checkerd.conftest import PORTS, ROOT, Lab

pytestmark = [pytest.mark.root]

HELLO = hashlib.md5(b"hello world\n").hexdigest()
A = "192.0.2.10"


class Driver:
    def __init__(self, lab: Lab, conf: str, duration: float = 120) -> None:
        path = lab.dir / f"k{time.monotonic_ns()}.conf"
        path.write_text(conf)
        self.stderr = lab.dir / f"{path.stem}.log"
        self.proc = lab.ns.popen([sys.executable, "-m", "tests.integration.checkerd.driver", str(path),
                                  "--duration", str(duration)], stdout=subprocess.PIPE, text=True,
                                 stderr=open(self.stderr, "w"), cwd=str(ROOT),
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.q: queue.Queue[dict[str, Any]] = queue.Queue()
        self.state: dict[str, dict[str, Any]] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.q.put(json.loads(line))

    def wait(self, key_part: str, health: str, timeout: float = 10) -> tuple[float, dict[str, Any]]:
        """Wait until the real server whose key contains ``key_part`` is published with ``health``."""
        deadline = time.monotonic() + timeout
        for k, d in self.state.items():
            if key_part in k and d and d["health"] == health:
                return time.monotonic(), d
        while time.monotonic() < deadline:
            try:
                ev = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev["key"]:
                self.state[ev["key"]] = ev["data"]
                if key_part in ev["key"] and ev["data"] and ev["data"]["health"] == health:
                    return ev["t"], ev["data"]
        raise AssertionError(f"{key_part} not {health} within {timeout}s; state {self.state.get(key_part)}; "
                             f"log:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return Path(self.stderr).read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def vs(port: int, body: str, proto: str = "TCP") -> str:
    return (f"virtual_server 203.0.113.1 {port} {{\n delay_loop 0.5\n connect_timeout 0.5\n retry 1\n"
            f" delay_before_retry 0.3\n warmup 0\n lb_algo rr\n lb_kind NAT\n protocol {proto}\n{body}\n}}\n")


def rs(port: int, checker: str, extra: str = "", addr: str = A) -> str:
    return f" real_server {addr} {port} {{\n{extra}\n{checker}\n }}\n"


def test_http_tcp_ssl_down_reasons_and_recovery(lab: Lab) -> None:
    lab.mode("http", "ok")
    url = f"url {{\n path /mode\n digest {HELLO}\n }}"
    conf = (vs(1, rs(PORTS["http"], "TCP_CHECK {\n}") + rs(9, "TCP_CHECK {\n}")) +
            vs(2, rs(PORTS["http"], f"HTTP_GET {{\n {url}\n }}")) +
            vs(3, rs(PORTS["http"], "HTTP_GET {\n url {\n path /mode\n regex \"hel+o\"\n }\n }")) +
            vs(4, rs(PORTS["tls"], f"SSL_GET {{\n {url}\n }}")) +
            "".join(vs(10 + i, rs(PORTS["http"], f"HTTP_GET {{\n url {{\n path /{p}\n {d}\n }}\n }}"))
                    for i, (p, d) in enumerate([("garbage", ""), ("noheaderend", ""), ("hang", ""),
                                                ("huge", f"digest {HELLO}"), ("endless", ""),
                                                ("midclose", f"digest {HELLO}"), ("status/404", "")])))
    d = Driver(lab, conf)
    try:
        d.wait(f"203.0.113.1:1/{A}:{PORTS['http']}", "up")
        _, b = d.wait(f"203.0.113.1:1/{A}:9", "down")
        assert "Connection failed" in b["reason"] and b["failed"] == f"TCP_CHECK {A}:9"
        for v in (2, 3, 4):
            d.wait(f"203.0.113.1:{v}/", "up")
        reasons = {}
        for i in range(7):
            _, data = d.wait(f"203.0.113.1:{10 + i}/", "down", timeout=15)
            reasons[i] = data["reason"]
        assert "Read, no data received" in reasons[0]  # garbage: no header
        assert "header larger than 4095 bytes" in reasons[1]
        assert "Timeout WEB read" in reasons[2]
        # 100 MB: streamed into MD5 (bounded memory) until the attempt's deadline or the wrong digest.
        assert "MD5 digest error" in reasons[3] or "response not complete in time" in reasons[3]
        assert "response not complete in time" in reasons[4]
        assert "MD5 digest error" in reasons[5]
        assert "HTTP status code error" in reasons[6] and "status 404" in reasons[6]

        # Wrong status, then wrong digest, then recovery; timing: the failure is seen at the next check
        # (<= delay_loop), then confirmed after retry 1 (delay_before_retry 0.3 s).
        for mode, why in (("500", "HTTP status code error"), ("other", "MD5 digest error")):
            t0 = time.monotonic()
            lab.mode("http", mode)
            t, data = d.wait("203.0.113.1:2/", "down")
            assert why in data["reason"]
            assert 0.3 <= t - t0 <= 0.5 + 0.3 + 0.5 + 0.3, t - t0
            t0 = time.monotonic()
            lab.mode("http", "ok")
            t, _ = d.wait("203.0.113.1:2/", "up")
            # Once down, HTTP_GET retries every max(delay_before_retry, delay_loop) = 0.5 s.
            assert t - t0 <= 0.5 + 0.3, t - t0
        lab.mode("http", "other")
        _, data = d.wait("203.0.113.1:3/", "down")
        assert "Regex match failed" in data["reason"]
        lab.mode("http", "ok")
        d.wait("203.0.113.1:3/", "up")
        log = d.log()
        assert f"TCP connection to [{A}]:tcp:{PORTS['http']} success." in log
        assert f"Removing service [{A}]:tcp:{PORTS['http']} from VS [203.0.113.1]:tcp:2" in log
        assert f"Adding service [{A}]:tcp:{PORTS['http']} to VS [203.0.113.1]:tcp:2" in log
        assert f"HTTP_CHECK on service [{A}]:tcp:{PORTS['http']} failed after 1 retries." in log
        assert "Traceback" not in log
    finally:
        lab.mode("http", "ok")
        d.stop()


def test_misc_smtp_dns_udp_ping_file(lab: Lab) -> None:
    code = lab.dir / "misc.code"
    code.write_text("0")
    tf = lab.dir / "tf.value"
    tf.write_text("0")
    flag = lab.dir / "notified"
    for m in ("smtp", "dns", "udp"):
        lab.mode(m, "ok")
    misc = f'MISC_CHECK {{\n misc_path "/bin/sh -c \'exit $(cat {code})\'"\n misc_dynamic\n }}'
    conf = (f"track_file tf {{\n file {tf}\n weight 2\n}}\n" +
            vs(1, rs(1, misc, f" notify_down \"/bin/sh -c 'echo down >> {flag}'\"\n"
                              f" notify_up \"/bin/sh -c 'echo up >> {flag}'\"")) +
            vs(2, rs(2, "MISC_CHECK {\n misc_path \"/bin/sleep 30\"\n misc_timeout 0.4\n }")) +
            vs(3, rs(PORTS["smtp"], "SMTP_CHECK {\n}")) +
            vs(4, rs(PORTS["dns"], "DNS_CHECK {\n type A\n name example.com\n}"), "UDP") +
            vs(5, rs(PORTS["udp"], "UDP_CHECK {\n payload 01020304\n require_reply 01xx0304\n min_reply_length 4\n}"),
               "UDP") +
            vs(6, rs(1, "PING_CHECK {\n}") + rs(1, "PING_CHECK {\n}", addr="192.0.2.99")) +
            vs(7, rs(1, "FILE_CHECK {\n track_file tf\n}", " weight 10")))
    d = Driver(lab, conf)
    try:
        for v in (1, 3, 4, 5):
            d.wait(f"203.0.113.1:{v}/", "up")
        d.wait(f"203.0.113.1:6/{A}:", "up")
        _, data = d.wait("203.0.113.1:6/192.0.2.99", "down")
        assert "no echo reply" in data["reason"]
        t0 = time.monotonic()
        _, data = d.wait("203.0.113.1:2/", "down")
        assert "timed out" in data["reason"]
        code.write_text("1")
        t0 = time.monotonic()
        t, data = d.wait("203.0.113.1:1/", "down")  # retry 1: two failed runs
        assert "exit status 1" in data["reason"] and t - t0 <= 0.5 + 0.3 + 0.5, t - t0
        code.write_text("7")
        _, data = d.wait("203.0.113.1:1/", "up")
        assert data["weight"] == 5 and data["dynamic_weight"] is True
        for m, bad, why in (("smtp", "bad", "greeting"), ("dns", "servfail", "rcode = 2"),
                            ("udp", "other", "reply data mismatch"), ("udp", "silent", "no reply")):
            lab.mode(m, bad)
            key = {"smtp": 3, "dns": 4, "udp": 5}[m]
            _, data = d.wait(f"203.0.113.1:{key}/", "down")
            assert why in data["reason"], data
            lab.mode(m, "ok")
            d.wait(f"203.0.113.1:{key}/", "up")
        _, data = d.wait("203.0.113.1:7/", "up")
        assert data["weight"] == 10
        tf.write_text("3")
        deadline = time.monotonic() + 5
        while d.state.get(f"203.0.113.1:7/{A}:1", {}).get("weight") != 16 and time.monotonic() < deadline:
            try:
                ev = d.q.get(timeout=0.2)
                d.state[ev["key"]] = ev["data"]
            except queue.Empty:
                pass
        assert d.state[f"203.0.113.1:7/{A}:1"]["weight"] == 16
        tf.write_text("-6")
        d.wait("203.0.113.1:7/", "down")
        assert flag.read_text().split() == ["down", "up"]
        assert "Misc check for" in d.log() and "Traceback" not in d.log()
    finally:
        for m in ("smtp", "dns", "udp"):
            lab.mode(m, "ok")
        d.stop()


def test_smtp_alert_on_real_server_down_and_up(lab: Lab) -> None:
    """A real server going down then up sends keepalived's alert mails, through a sink in the namespace."""
    mail = lab.dir / "mail.log"
    mail.unlink(missing_ok=True)
    lab.mode("smtp", "ok")
    lab.mode("http", "ok")
    conf = ("global_defs {\n router_id lb-test\n notification_email {\n ops@example.com\n noc@example.com\n }\n"
            f" notification_email_from lb@example.com\n smtp_server {A} {PORTS['smtp']}\n"
            " smtp_helo_name lb.example\n smtp_connect_timeout 2\n}\n" +
            vs(1, rs(PORTS["http"], "HTTP_GET {\n url {\n path /mode\n status_code 200\n }\n }", " smtp_alert")))
    d = Driver(lab, conf)
    try:
        d.wait(f"203.0.113.1:1/{A}:{PORTS['http']}", "up")
        lab.mode("http", "500")
        d.wait("203.0.113.1:1/", "down")
        lab.mode("http", "ok")
        d.wait("203.0.113.1:1/", "up")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (not mail.exists() or mail.read_text().count("=====") < 2):
            time.sleep(0.1)
        mails = mail.read_bytes().decode().split("=====")  # bytes: keep the CRLFs
        assert len(mails) >= 3, mails  # down, up (and the trailing remainder)
        down, up = mails[0], mails[1]
        rs_text, vs_text = f"[{A}]:tcp:{PORTS['http']}", "[203.0.113.1]:tcp:1"
        for m in (down, up):
            assert "HELO lb.example\r\n" in m and "MAIL FROM:<lb@example.com>\r\n" in m
            assert "RCPT TO:<ops@example.com>\r\n" in m and "RCPT TO:<noc@example.com>\r\n" in m
            assert "From: lb@example.com\r\n" in m and "X-Mailer: Keepalived\r\n" in m
            assert "To: ops@example.com,\r\n noc@example.com\r\n" in m
        assert f"Subject: [lb-test] Realserver {rs_text} of virtual server {vs_text} - DOWN\r\n" in down
        assert "=> HTTP CHECK failed on service <=" in down and "HTTP status code error" in down
        assert f"Subject: [lb-test] Realserver {rs_text} of virtual server {vs_text} - UP\r\n" in up
        assert "=> HTTP CHECK succeed on service <=" in up
        assert d.log().count("SMTP alert successfully sent.") == 2
    finally:
        lab.mode("http", "ok")
        d.stop()
